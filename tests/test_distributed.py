"""Two CPU processes (gloo): ranks whose probes differ still take the same decisions and end with the same weights,
under DDP and FSDP2 (``fully_shard``), and a torch.distributed.checkpoint round-trip restores the anchors exactly."""

import math
import os
import sys
import tempfile
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from effopt import ANCHOR, Backoff, Every, ExtrapolatingOptimizer, Greedy, ProbeBudget, Quadratic
from effopt.integrations import reshard_after

sys.path.insert(0, str(Path(__file__).parent))
from moves import MoveRecorder


def _worker(rank: int, world: int, init_file: str, out_dir: str, search_name: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        torch.manual_seed(0)  # the same model on every rank
        model = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
        ddp = torch.nn.parallel.DistributedDataParallel(model)
        data = torch.Generator().manual_seed(100 + rank)  # each rank its own data and its own probe data
        x, y = torch.randn(64, 6, generator=data), torch.randn(64, 1, generator=data)
        px, py = torch.randn(32, 6, generator=data), torch.randn(32, 1, generator=data)

        def probe():
            return torch.nn.functional.mse_loss(model(px), py).item()

        search = Greedy((2, 3, 4)) if search_name == "greedy" else Quadratic()
        opt = ExtrapolatingOptimizer(
            torch.optim.AdamW(ddp.parameters(), lr=1e-2), probe=probe, search=search, schedule=Every(3)
        )
        with MoveRecorder() as recorder:
            for _ in range(12):
                opt.zero_grad()
                torch.nn.functional.mse_loss(ddp(x), y).backward()
                opt.step()
        torch.save(
            {
                "weights": [p.detach() for p in model.parameters()],
                "events": opt.events,
                "own": probe(),
                "checked": recorder.checked,
            },
            os.path.join(out_dir, f"rank{rank}.pt"),
        )
        dist.barrier()  # both ranks are done with the group before either tears it down
    finally:
        dist.destroy_process_group()


def _run(search_name, worker=_worker):
    with tempfile.TemporaryDirectory() as out_dir:
        init_file = os.path.join(out_dir, "init")
        try:
            mp.spawn(worker, args=(2, init_file, out_dir, search_name), nprocs=2, join=True)
        except mp.ProcessExitedException:
            # gloo has been seen to abort once while tearing its threads down after the work: what this test checks
            # is the results both ranks wrote before that; without both files the failure is real.
            if not all(os.path.exists(os.path.join(out_dir, f"rank{r}.pt")) for r in range(2)):
                raise
        return [torch.load(os.path.join(out_dir, f"rank{r}.pt"), weights_only=True) for r in range(2)]


def test_ddp_ranks_with_different_probes_accept_the_same_multipliers():
    for search_name in ("greedy", "quadratic"):
        rank0, rank1 = _run(search_name)
        assert rank0["own"] != rank1["own"]  # the probes really differ between ranks
        assert len(rank0["events"]) == 4
        assert [e["accepted"] for e in rank0["events"]] == [e["accepted"] for e in rank1["events"]]
        assert [e["values"] for e in rank0["events"]] == [e["values"] for e in rank1["events"]]  # the ranks' mean
        assert any(e["accepted"] != 1.0 for e in rank0["events"])
        for rank in (rank0, rank1):  # each event moved the weights to A + m * (theta_1 - A) for its m
            assert rank["checked"] == [(e["step"], e["accepted"]) for e in rank["events"]]
        for a, b in zip(rank0["weights"], rank1["weights"]):
            assert torch.equal(a, b)


def _budget_worker(rank: int, world: int, init_file: str, out_dir: str, _: str) -> None:
    import time

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
        ddp = torch.nn.parallel.DistributedDataParallel(model)
        data = torch.Generator().manual_seed(100 + rank)
        x, y = torch.randn(64, 6, generator=data), torch.randn(64, 1, generator=data)
        px, py = torch.randn(32, 6, generator=data), torch.randn(32, 1, generator=data)

        def probe():  # rank 1's probe is slower: left to itself, each rank would measure another cost
            time.sleep(0.004 * rank)
            return torch.nn.functional.mse_loss(model(px), py).item()

        budget = ProbeBudget(share=0.2)
        opt = ExtrapolatingOptimizer(
            torch.optim.AdamW(ddp.parameters(), lr=1e-2),
            probe=probe,
            schedule=Backoff(interval=2, max_interval=4),
            budget=budget,
        )
        for _ in range(40):
            opt.zero_grad()
            torch.nn.functional.mse_loss(ddp(x), y).backward()
            opt.step()
        torch.save(
            {
                "weights": [p.detach() for p in model.parameters()],
                "events": opt.events,
                "cost": budget.call_cost(),
                "calls": budget.calls,
            },
            os.path.join(out_dir, f"rank{rank}.pt"),
        )
        dist.barrier()
    finally:
        dist.destroy_process_group()


def test_a_measured_probe_budget_takes_the_same_decisions_on_every_rank():
    rank0, rank1 = _run("budget", worker=_budget_worker)
    assert rank0["cost"] is not None and rank0["cost"] == rank1["cost"]  # the cost is the ranks' mean
    assert [(e["step"], e["accepted"]) for e in rank0["events"]] == [
        (e["step"], e["accepted"]) for e in rank1["events"]
    ]
    assert len(rank0["events"]) >= 2 and rank0["calls"] == rank1["calls"]
    for a, b in zip(rank0["weights"], rank1["weights"]):
        assert torch.equal(a, b)


def _raising_worker(rank: int, world: int, init_file: str, out_dir: str, _: str) -> None:
    import datetime

    from effopt import ProbeError

    torch.set_num_threads(1)
    # a hang would fail the test after the timeout instead of blocking it forever
    dist.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=world, timeout=datetime.timedelta(seconds=60)
    )
    try:
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
        ddp = torch.nn.parallel.DistributedDataParallel(model)
        data = torch.Generator().manual_seed(100 + rank)
        x, y = torch.randn(64, 6, generator=data), torch.randn(64, 1, generator=data)
        calls = []

        def probe():  # rank 1's probe raises at its third call, in the middle of the first event's search
            calls.append(1)
            if rank == 1 and len(calls) == 3:
                raise RuntimeError("rank 1's evaluation data is gone")
            return torch.nn.functional.mse_loss(model(x), y).item()

        group = dist.new_group([0, 1])
        opt = ExtrapolatingOptimizer(
            torch.optim.AdamW(ddp.parameters(), lr=1e-2),
            probe=probe,
            schedule=Every(2),
            budget=ProbeBudget(
                share=None, process_group=group
            ),  # measured over the group; no share: timing-free events
        )
        errors, after_base_step = [], None
        for _ in range(6):  # after the failed event, training goes on: no rank is left waiting in a reduction
            opt.zero_grad()
            torch.nn.functional.mse_loss(ddp(x), y).backward()
            try:
                opt.step()
            except ProbeError as err:
                errors.append(f"{err} | {err.__cause__}")
                after_base_step = [p.detach().clone() for p in model.parameters()]
        torch.save(
            {
                "errors": errors,
                "weights": [p.detach() for p in model.parameters()],
                "after": after_base_step,
                "events": [(e["step"], e["accepted"], e["reason"]) for e in opt.events],
            },
            os.path.join(out_dir, f"rank{rank}.pt"),
        )
        dist.barrier()
    finally:
        dist.destroy_process_group()


def test_a_probe_that_raises_on_one_rank_raises_on_every_rank_and_nobody_hangs():
    rank0, rank1 = _run("raising", worker=_raising_worker)
    assert len(rank0["errors"]) == len(rank1["errors"]) == 1
    assert "raised on 1 other rank(s)" in rank0["errors"][0]
    assert "rank 1's evaluation data is gone" in rank1["errors"][0]
    assert [e[:2] for e in rank0["events"]] == [e[:2] for e in rank1["events"]] and len(rank0["events"]) == 3
    assert rank0["events"][0][1] == 1.0  # the failed event moved nothing
    for a, b in zip(rank0["weights"], rank1["weights"]):
        assert torch.equal(a, b)


# --- Sharded parameters (FSDP2) and distributed checkpoints --------------------------------------------------------


def _build(kind: str, rank: int, via_model: bool = False):
    """The same model on every rank, under DDP or sharded by FSDP2 (root and first layer; the last layer's bias, one
    element, leaves rank 1 an empty shard); its optimizer; the rank's own data and probe, made safe under FSDP2 by
    :func:`reshard_after` or, with ``via_model``, by the optimizer's ``model=``."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
    if kind == "fsdp2":
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard

        mesh = init_device_mesh("cpu", (dist.get_world_size(),))
        fully_shard(model[0], mesh=mesh)
        fully_shard(model, mesh=mesh)
        trained = model
    else:
        trained = torch.nn.parallel.DistributedDataParallel(model)
    data = torch.Generator().manual_seed(100 + rank)
    x, y = torch.randn(64, 6, generator=data), torch.randn(64, 1, generator=data)
    px, py = torch.randn(32, 6, generator=data), torch.randn(32, 1, generator=data)

    def probe():
        return torch.nn.functional.mse_loss(model(px), py).item()

    if not via_model:
        probe = reshard_after(probe, model)  # FSDP2 keeps the root gathered after a forward: see reshard_after
    opt = ExtrapolatingOptimizer(
        torch.optim.AdamW(model.parameters(), lr=1e-2),
        probe=probe,
        search=Greedy((2, 3, 4)),
        schedule=Every(3),
        model=model if via_model else None,
    )
    return model, trained, opt, probe, (x, y)


def _steps(model, trained, opt, probe, batch, n, fresh: list):
    """``n`` training steps; after each event, the probe evaluated afresh (everything resharded first) at the
    accepted point, averaged over ranks: it must be the value the event recorded there."""
    x, y = batch
    for _ in range(n):
        events = len(opt.events)
        opt.zero_grad()
        torch.nn.functional.mse_loss(trained(x), y).backward()
        opt.step()
        if len(opt.events) > events:
            from effopt.integrations import _reshard

            assert model.training  # with model=, in eval mode for each probe call and back in train mode after
            _reshard(model)
            value = torch.tensor([probe()], dtype=torch.float64)
            dist.all_reduce(value)
            event = opt.events[-1]
            fresh.append(
                (value.item() / dist.get_world_size(), event["values"][event["multipliers"].index(event["accepted"])])
            )


def _local_state(model, opt):
    weights = [(p.to_local() if hasattr(p, "to_local") else p).detach().clone() for p in model.parameters()]
    anchors = [opt.state[p][ANCHOR] for p in model.parameters()]
    return weights, [(a.to_local() if hasattr(a, "to_local") else a).clone() for a in anchors]


def _sharded_worker(rank: int, world: int, init_file: str, out_dir: str, kind: str) -> None:
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        model, trained, opt, probe, batch = _build(kind, rank)
        fresh = []
        with MoveRecorder() as recorder:
            _steps(model, trained, opt, probe, batch, 9, fresh)
            saved_weights, saved_anchors = _local_state(model, opt)
            model_sd, optim_sd = get_state_dict(trained, opt)
            dcp.save({"model": model_sd, "optim": optim_sd}, checkpoint_id=os.path.join(out_dir, "ckpt"))
            _steps(model, trained, opt, probe, batch, 6, fresh)  # the uninterrupted run

            model2, trained2, opt2, probe2, _ = _build(kind, rank)  # a fresh start, restored from the checkpoint
            model_sd, optim_sd = get_state_dict(trained2, opt2)  # initialises opt2's state with a step at lr 0
            dcp.load({"model": model_sd, "optim": optim_sd}, checkpoint_id=os.path.join(out_dir, "ckpt"))
            set_state_dict(trained2, opt2, model_state_dict=model_sd, optim_state_dict=optim_sd)
            restored_weights, restored_anchors = _local_state(model2, opt2)
            restored_steps = opt2.step_count
            _steps(model2, trained2, opt2, probe2, batch, 6, [])
        torch.save(
            {
                "events": [(e["step"], e["accepted"]) for e in opt.events],
                "resumed_events": [(e["step"], e["accepted"]) for e in opt2.events],
                "checked": recorder.checked,
                "fresh": fresh,
                "own": probe(),
                "shapes": [
                    tuple(p.to_local().shape) if hasattr(p, "to_local") else tuple(p.shape) for p in model.parameters()
                ],
                "saved": saved_weights + saved_anchors,
                "restored": restored_weights + restored_anchors,
                "restored_steps": restored_steps,
                "final": _local_state(model, opt)[0],
                "resumed_final": _local_state(model2, opt2)[0],
            },
            os.path.join(out_dir, f"rank{rank}.pt"),
        )
        dist.barrier()
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("kind", ["ddp", "fsdp2"])
def test_sharded_ranks_agree_and_checkpoints_restore_the_anchor(kind):
    rank0, rank1 = _run(kind, worker=_sharded_worker)
    assert rank0["own"] != rank1["own"]  # the ranks' probes differ
    events = rank0["events"]
    assert events == rank1["events"] and [s for s, _ in events] == [3, 6, 9, 12, 15]
    assert any(m != 1.0 for _, m in events)
    for rank in (rank0, rank1):
        # every event moved this rank's weights (its shard, under FSDP2) to A + m * (theta_1 - A) for its m ...
        assert rank["checked"] == events + [(s, m) for s, m in rank["resumed_events"] if s > 9]
        # ... and the model evaluated there afresh gives the value the event recorded: the probe saw those weights
        for value, recorded in rank["fresh"]:
            assert math.isclose(value, recorded, rel_tol=1e-5)
        # DCP: the anchors and weights come back exactly, and the resumed run continues as the uninterrupted one
        assert rank["restored_steps"] == 9
        for a, b in zip(rank["saved"], rank["restored"]):
            assert torch.equal(a, b)
        assert rank["resumed_events"][-2:] == events[-2:]
        for a, b in zip(rank["final"], rank["resumed_final"]):
            assert torch.equal(a, b)
    if kind == "fsdp2":
        assert rank0["shapes"] != rank1["shapes"] and (0,) in rank1["shapes"]  # really sharded, one shard empty
    else:
        for a, b in zip(rank0["final"], rank1["final"]):
            assert torch.equal(a, b)


def _model_option_worker(rank: int, world: int, init_file: str, out_dir: str, kind: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        model, trained, opt, probe, batch = _build(kind, rank, via_model=True)
        fresh = []
        with MoveRecorder() as recorder:
            _steps(model, trained, opt, probe, batch, 9, fresh)
        torch.save(
            {"events": [(e["step"], e["accepted"]) for e in opt.events], "checked": recorder.checked, "fresh": fresh},
            os.path.join(out_dir, f"rank{rank}.pt"),
        )
        dist.barrier()
    finally:
        dist.destroy_process_group()


def test_fsdp2_probe_sees_the_moved_weights_with_the_model_option():
    """The probe is not wrapped in reshard_after; ``model=`` reshards after each probe call instead. Without it, the
    root's gathered parameters from the first probe call would be reused by the later ones."""
    rank0, rank1 = _run("fsdp2", worker=_model_option_worker)
    events = rank0["events"]
    assert events == rank1["events"] and [s for s, _ in events] == [3, 6, 9]
    assert any(m != 1.0 for _, m in events)
    for rank in (rank0, rank1):
        assert rank["checked"] == events
        assert len(rank["fresh"]) == 3
        for value, recorded in rank["fresh"]:
            assert math.isclose(value, recorded, rel_tol=1e-5)


def test_an_empty_tensor_among_the_selected_ones():
    """An empty local shard (FSDP2 shards a one-element bias over two ranks) in the foreach path: the finite check
    once raised, as the inf-norm of an empty tensor has no identity."""
    torch.manual_seed(0)
    weight, empty = torch.nn.Parameter(torch.randn(3)), torch.nn.Parameter(torch.zeros(0))
    for foreach in (True, False):
        opt = ExtrapolatingOptimizer(
            torch.optim.SGD([weight, empty], lr=0.1),
            probe=lambda: (weight - 1).square().sum().item(),
            search=Greedy((2, 3)),
            schedule=Every(1),
            foreach=foreach,
        )
        for _ in range(3):
            opt.zero_grad()
            ((weight - 1).square().sum() + empty.sum()).backward()
            opt.step()
        assert [e["reason"] for e in opt.events] == ["", "", ""] and opt.events[0]["accepted"] > 1.0
