"""Resume, checkpoints and copies (bit-identical continuation, plain checkpoints, deepcopy and pickle, the anchor's
device and memory), repr and the event history."""

import copy
import io
import pickle

import pytest
import torch
from tiny import assert_same_tensors, make_model, make_wrapped, probe_for, train, weights

from effopt import ANCHOR, Backoff, Every, ExtrapolatingOptimizer, Fixed, Guard, StepScale, extrapolation_groups
from effopt.optimizer import STEP

# --- Resume, checkpoints, copies ------------------------------------------------------------------------------------


@pytest.mark.parametrize("schedule", [Every(4), Backoff(interval=3, max_interval=8)], ids=repr)
@pytest.mark.parametrize("scaled", [False, True], ids=["", "step_scale"])
def test_resume_is_bit_identical_to_the_uninterrupted_run(schedule, scaled):
    def build(model):
        return make_wrapped(
            model,
            schedule=copy.deepcopy(schedule),
            step_scale=StepScale(power=0.5, high=4.0, start=1) if scaled else None,
        )

    model = make_model()
    opt = build(model)
    train(model, opt, 6)
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "opt": opt.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)

    resumed_model = make_model(seed=123)
    resumed_model.load_state_dict(saved["model"])
    resumed = build(resumed_model)
    resumed.load_state_dict(saved["opt"])
    assert resumed.step_count == 6
    if scaled:
        assert resumed.step_scale.factor == opt.step_scale.factor

    events_before = len(opt.events)
    train(model, opt, 10, start=6)
    train(resumed_model, resumed, 10, start=6)
    assert_same_tensors(weights(model), weights(resumed_model))
    assert_same_tensors(opt.state_dict(), resumed.state_dict())
    assert len(resumed.events) >= 2
    # The same events, except that the resumed run has no previous update to compare its first one with.
    assert resumed.events[0]["stability"] is None and opt.events[events_before]["stability"] is not None
    assert opt.events[events_before:] == [
        dict(e, seconds=f["seconds"], stability=f["stability"] if i == 0 else e["stability"])
        for i, (e, f) in enumerate(zip(resumed.events, opt.events[events_before:]))
    ]


def test_state_dict_before_the_first_step_is_standard_and_loadable():
    model = make_model()
    opt = make_wrapped(model)
    sd = opt.state_dict()
    assert set(sd) == {"state", "param_groups"} and sd["state"] == {}
    buffer = io.BytesIO()
    torch.save(sd, buffer)
    buffer.seek(0)
    fresh = make_wrapped(make_model())
    fresh.load_state_dict(torch.load(buffer, weights_only=True))
    train(model, fresh, 1)  # still usable


def test_checkpoint_is_plain_and_holds_the_anchor_and_counter():
    model = make_model()
    opt = make_wrapped(model)
    train(model, opt, 5)
    sd = opt.state_dict()
    assert type(sd["state"]) is dict and all(type(s) is dict for s in sd["state"].values())
    assert all(ANCHOR in s for s in sd["state"].values())
    assert all(g[STEP] == 5 and g["extrapolate"] is True for g in sd["param_groups"])


def test_loads_a_bare_base_optimizer_checkpoint_and_keeps_the_selection():
    model = make_model()
    bare = torch.optim.AdamW(extrapolation_groups(model, lr=0.01))
    train(model, bare, 3)
    opt = ExtrapolatingOptimizer(
        torch.optim.AdamW(extrapolation_groups(model, lr=0.01)), probe=probe_for(model), schedule=Every(2)
    )
    opt.load_state_dict(bare.state_dict())
    assert [g["extrapolate"] for g in opt.param_groups] == [True, False]
    assert opt.step_count == 0
    before = weights(model)
    train(model, opt, 2, start=3)
    assert len(opt.events) == 1
    assert not torch.equal(before["attn.weight"], model.attn.weight)


def test_deepcopy_and_pickle_round_trip_and_continue_identically():
    model = make_model()
    opt = make_wrapped(model, search=Fixed(2.0))
    train(model, opt, 5)
    copied_model, copied_opt = copy.deepcopy((model, opt))
    pickled_model, pickled_opt = pickle.loads(pickle.dumps((model, opt)))
    for clone_model, clone_opt in ((copied_model, copied_opt), (pickled_model, pickled_opt)):
        assert isinstance(clone_opt, ExtrapolatingOptimizer)
        assert clone_opt.param_groups[0]["params"][0] is next(clone_model.parameters())
        assert clone_opt.state[clone_opt.param_groups[0]["params"][0]][ANCHOR] is not None
    train(model, opt, 4, start=5)
    for clone_model, clone_opt in ((copied_model, copied_opt), (pickled_model, pickled_opt)):
        train(clone_model, clone_opt, 4, start=5)
        assert_same_tensors(weights(clone_model), weights(model))
        assert [e["accepted"] for e in clone_opt.events] == [e["accepted"] for e in opt.events]


def test_anchor_offloaded_to_cpu_gives_the_same_result():
    results = []
    for device in (None, "cpu"):
        model = make_model()
        opt = make_wrapped(model, anchor_device=device)
        train(model, opt, 9)
        results.append(weights(model))
        assert all(opt.state[p][ANCHOR].device.type == "cpu" for p in model.parameters())
    assert_same_tensors(*results)


def test_memory_at_rest_is_one_copy_of_the_selected_parameters():
    model = make_model()
    opt = ExtrapolatingOptimizer(torch.optim.SGD(extrapolation_groups(model), lr=0.1), probe=probe_for(model))
    train(model, opt, 5)
    selected = [*model.attn.parameters(), *model.mlp.parameters()]
    extra = [t for s in opt.state.values() for t in s.values() if isinstance(t, torch.Tensor)]
    assert sum(t.numel() for t in extra) == sum(p.numel() for p in selected)
    assert opt._pending == {}


# --- repr and the event history ---------------------------------------------------------------------------------------


def test_repr_shows_every_piece():
    model = make_model()
    opt = ExtrapolatingOptimizer(
        torch.optim.SGD(model.parameters(), lr=0.1),
        probe=probe_for(model),
        model=model,
        guard=Guard(lambda: 0.0, budget=0.5),
        tolerance=0.01,
        history=5,
    )
    text = repr(opt)
    for piece in (
        "SGD (",
        "probe=ProbeLoss",
        "model=['Tiny']",
        "mode='min'",
        "schedule=Backoff(",
        "search=Quadratic(",
        "direction=Accumulated()",
        "step_scale=StepScale(",
        "guard=Guard(budget=0.5",
        "budget=None",
        "tolerance=0.01",
        "anchor_device=None",
        "foreach=True",
        "history=5",
    ):
        assert piece in text, piece


def test_events_keep_the_last_history_and_count_every_one_through_a_checkpoint():
    model = make_model()
    opt = make_wrapped(model, schedule=Every(1), history=3)
    full = make_wrapped(make_model(), schedule=Every(1), history=None)
    train(model, opt, 7)
    train(full.probe.model, full, 7)
    assert [e["step"] for e in opt.events] == [5, 6, 7] and len(full.events) == 7
    assert [dict(e, seconds=0) for e in opt.events] == [dict(f, seconds=0) for f in full.events[-3:]]
    moves = sum(e["accepted"] != 1.0 for e in full.events)
    assert opt.events_run == full.events_run == 7 and opt.moves_accepted == full.moves_accepted == moves > 0
    assert opt.state_dict()["param_groups"][0]["effopt_counts"] == {"events": 7, "moves": moves}

    resumed = make_wrapped(make_model(), schedule=Every(1), history=3)
    resumed.load_state_dict(opt.state_dict())
    assert resumed.events == [] and (resumed.events_run, resumed.moves_accepted) == (7, moves)
    train(resumed.probe.model, resumed, 1, start=7)
    assert resumed.events_run == 8 and [e["step"] for e in resumed.events] == [8]
    for clone in (pickle.loads(pickle.dumps(opt)), copy.deepcopy(opt)):
        assert clone.events == opt.events and type(clone.events) is list and clone.history == 3
        assert (clone.events_run, clone.moves_accepted) == (7, moves)

    nothing_kept = make_wrapped(make_model(), schedule=Every(1), history=0)
    train(nothing_kept.probe.model, nothing_kept, 3)
    assert nothing_kept.events == [] and nothing_kept.events_run == 3


def test_the_default_history_is_bounded():
    model = make_model()
    assert make_wrapped(model).history == 1000
    with pytest.raises(ValueError, match="history: expected an int >= 0 or None"):
        make_wrapped(model, history=-1)


def test_a_checkpoint_template_made_before_the_first_event_restores_every_piece(tmp_path):
    """torch.distributed.checkpoint loads only the keys its template holds: a fresh wrapper's groups must hold the
    step scale's and the schedule's state already, or a resumed run silently restarts them."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

    def build(model):
        return make_wrapped(model, schedule=Backoff(interval=3), step_scale=StepScale())

    model = make_model()
    opt = build(model)
    train(model, opt, 9)
    assert opt.step_scale.factor != 1.0 and opt.schedule.wait != 1
    model_sd, optim_sd = get_state_dict(model, opt)
    dcp.save({"model": model_sd, "optim": optim_sd}, checkpoint_id=str(tmp_path))
    resumed_model = make_model(seed=123)
    resumed = build(resumed_model)
    model_sd, optim_sd = get_state_dict(resumed_model, resumed)  # the template: made before any step
    dcp.load({"model": model_sd, "optim": optim_sd}, checkpoint_id=str(tmp_path))
    set_state_dict(resumed_model, resumed, model_state_dict=model_sd, optim_state_dict=optim_sd)
    assert resumed.step_scale.factor == opt.step_scale.factor
    assert resumed.schedule.state_dict() == opt.schedule.state_dict()
