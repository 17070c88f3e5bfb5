"""effopt where frameworks build and drive the optimizer: transformers' Trainer, TRL's GRPOTrainer, accelerate on two
CPU processes; the class-style factory, the callback, and the README snippets that show them.

Each end-to-end test runs an example from reference/ at tiny size and checks, through tests/moves.MoveRecorder, that
every event moved the weights to ``A + m * (theta_1 - A)`` for the multiplier it recorded."""

import copy
import math
import os
import pickle
import re
import socket
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import pytest
import torch

from effopt import ExtrapolatingOptimizer, Fixed, Guard, ProbeError, StepScale
from effopt.integrations import (
    PROBE_NOT_SET,
    TrainerEvalLoss,
    event_metrics,
    extrapolating,
    reshard_after,
    unwrap_optimizer,
)

sys.path.insert(0, str(Path(__file__).parent))
from moves import MoveRecorder

ROOT = Path(__file__).resolve().parents[1]
FRAMEWORKS = ("transformers", "trl", "accelerate", "datasets")


def quiet_env():
    return {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": str(ROOT),
    }


def test_effopt_imports_no_framework():
    code = f"import sys, effopt, effopt.integrations; print(sorted(m for m in {FRAMEWORKS!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=quiet_env())
    assert out.stdout.strip() == "[]"
    code = "import sys, effopt.integrations as i; i.EffoptCallback; print('transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=quiet_env())
    assert out.stdout.strip() == "True"  # the callback, and only it, brings transformers in


# --- The class-style factory --------------------------------------------------------------------------------------


def tiny_model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))


X, Y = torch.randn(32, 4, generator=torch.Generator().manual_seed(1)), torch.randn(32, 1)


def train(model, opt, steps):
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(X), Y).backward()
        opt.step()


def test_extrapolating_builds_the_wrapper_as_a_framework_would():
    from transformers.trainer_optimizer import is_optimizer_factory

    cls = extrapolating(torch.optim.SGD, preset="effopd", tolerance=0.01)
    assert cls.__name__ == "ExtrapolatingSGD" and issubclass(cls, ExtrapolatingOptimizer)
    assert not is_optimizer_factory(cls)  # the Trainer calls cls(grouped_params, **kwargs), not cls()(model, ...)
    model = tiny_model()
    groups = [
        {"params": [model[0].weight, model[2].weight], "weight_decay": 0.1},
        {"params": [model[0].bias, model[2].bias], "weight_decay": 0.0},
    ]
    opt = cls(groups, lr=0.1, momentum=0.9)
    assert type(opt.optimizer) is torch.optim.SGD and opt.param_groups[0]["momentum"] == 0.9
    assert opt.param_groups[0]["weight_decay"] == 0.1 and opt.tolerance == 0.01
    assert opt.probe is PROBE_NOT_SET
    with pytest.raises(ProbeError) as err:  # preset "effopd": an event after the first step
        train(model, opt, 1)
    assert "EffoptCallback" in str(err.value.__cause__)

    second = cls(tiny_model().parameters(), lr=0.1)
    assert second.schedule is not opt.schedule and second.search is not opt.search  # pieces are per optimizer


def test_extrapolating_gives_each_optimizer_its_own_step_scale_and_guard_reference():
    model = tiny_model()
    reads = []
    guard = Guard(lambda: reads.append(1) or float(len(reads)), budget=100.0)
    cls = extrapolating(torch.optim.AdamW, search=Fixed(2.0), probe=lambda: 0.0, guard=guard, step_scale=StepScale())
    first, second = cls(model.parameters(), lr=1e-2), cls(tiny_model().parameters(), lr=1e-2)
    assert first.step_scale is not second.step_scale and first.guard is not second.guard
    assert first.guard.probe is guard.probe  # the probe itself is shared, as `probe` is
    train(model, first, 1)
    assert first.guard.reference == 1.0 and second.guard.reference is None and guard.reference is None


def test_extrapolating_optimizers_train_pickle_and_copy():
    model = tiny_model()
    cls = extrapolating(torch.optim.AdamW, search=Fixed(2.0))  # probe-free: no placeholder is ever called
    opt = cls(model.parameters(), lr=1e-2)
    with MoveRecorder() as recorder:
        train(model, opt, 4)
    assert recorder.checked == [(1, 2.0), (3, 2.0)]  # Backoff: events after steps 1 and 3
    for clone in (pickle.loads(pickle.dumps(opt)), copy.deepcopy(opt)):
        assert type(clone).__name__ == "ExtrapolatingAdamW"
        assert clone.state_dict()["param_groups"] == opt.state_dict()["param_groups"]
        assert clone.events == opt.events


def test_bad_input_names_the_argument():
    with pytest.raises(TypeError, match="optimizer_cls: expected a torch.optim.Optimizer subclass"):
        extrapolating(torch.optim.AdamW([torch.zeros(1, requires_grad=True)]))
    with pytest.raises(TypeError, match="optimizer_cls: expected the base optimizer class"):
        extrapolating(ExtrapolatingOptimizer)
    with pytest.raises(TypeError, match=r"unknown option\(s\) \['lr'\].*go to the class when it is called"):
        extrapolating(torch.optim.AdamW, lr=1e-3)
    with pytest.raises(ValueError, match="mode: expected 'min' or 'max'"):
        extrapolating(torch.optim.AdamW, mode="maximize")
    with pytest.raises(TypeError, match="optimizer: expected an effopt.ExtrapolatingOptimizer.*AdamW"):
        unwrap_optimizer(torch.optim.AdamW(tiny_model().parameters()))
    with pytest.raises(TypeError, match="probe: expected a callable"):
        reshard_after(0.5, tiny_model())
    with pytest.raises(TypeError, match="model: expected a torch.nn.Module"):
        extrapolating(torch.optim.AdamW, model=[tiny_model(), None])

    from effopt.integrations import EffoptCallback

    with pytest.raises(ValueError, match="pass probe= .*, trainer= .*, or both"):
        EffoptCallback()
    with pytest.raises(TypeError, match="trainer: expected a transformers Trainer"):
        EffoptCallback(lambda: 0.0, trainer=object())
    with pytest.raises(ValueError, match="max_batches: only used without probe="):
        EffoptCallback(lambda: 0.0, max_batches=2)
    with pytest.raises(TypeError, match="trainer: expected a transformers Trainer"):
        EffoptCallback(trainer=object())
    fake = types.SimpleNamespace(
        get_eval_dataloader=None, prediction_step=None, model=None, state=None, callback_handler=None
    )
    with pytest.raises(ValueError, match="max_batches: expected a positive int"):
        EffoptCallback(trainer=fake, max_batches=0)
    opt = extrapolating(torch.optim.AdamW, mode="max")(tiny_model().parameters())
    with pytest.raises(ValueError, match="eval loss .* mode='max'"):
        EffoptCallback(trainer=fake).on_train_begin(None, None, None, optimizer=opt)


# --- End to end -----------------------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models: one thread is fastest, and it leaves the other core to whatever else runs."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def check_run(opt, recorder, min_events):
    events = [(e["step"], e["accepted"]) for e in opt.events]
    assert len(events) >= min_events
    assert recorder.checked == events  # every event was seen, and moved the weights as it recorded
    assert any(m != 1.0 for _, m in events)


def test_trainer_builds_effopt_and_probes_with_its_own_eval_loss(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from examples import hf_trainer

    with MoveRecorder() as recorder:
        trainer = hf_trainer.main(max_steps=16, output_dir=str(tmp_path))
    opt = unwrap_optimizer(trainer.optimizer)
    assert type(trainer.optimizer).__name__ == "AcceleratedOptimizer" and trainer.optimizer.optimizer is opt
    assert recorder.steps == 16 and opt.step_count == 16
    check_run(opt, recorder, min_events=4)  # Backoff: after steps 1, 3, 7, 15
    assert trainer.model.training  # the probe puts the model back in train mode
    assert isinstance(opt.probe, TrainerEvalLoss)
    assert opt.probe() == pytest.approx(trainer.evaluate()["eval_loss"], rel=1e-5)  # the Trainer's own eval loss


def log_recorder():
    """A callback that receives the Trainer's log as every report_to backend does: through on_log."""
    from transformers import TrainerCallback

    class LogRecorder(TrainerCallback):
        def __init__(self):
            self.logs = []

        def on_log(self, args, state, control, logs=None, **kwargs):
            self.logs.append(dict(logs))

    return LogRecorder()


def test_trainer_log_gets_every_event_between_logging_steps(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from examples import hf_trainer

    backend = log_recorder()
    trainer = hf_trainer.main(max_steps=16, output_dir=str(tmp_path), callbacks=[backend])
    events = unwrap_optimizer(trainer.optimizer).events
    assert [e["step"] for e in events] == [1, 3, 7, 15]  # logging_steps is 10: none of them is a logging step
    lines = [h for h in trainer.state.log_history if "effopt/multiplier" in h]
    assert [(h["step"], h["effopt/multiplier"]) for h in lines] == [(e["step"], e["accepted"]) for e in events]
    for line, event in zip(lines, events):
        assert line["effopt/probe_value"] == event["values"][event["multipliers"].index(event["accepted"])]
        assert line["effopt/probe_seconds"] == event["seconds"] and "effopt/events" not in line
        assert line.get("effopt/stability") == event["stability"]  # None at the first event: left out
    assert "effopt/stability" not in lines[0] and "effopt/stability" in lines[1]
    assert [h["step"] for h in trainer.state.log_history if "loss" in h] == [10]  # the Trainer's own lines as before
    received = [logs for logs in backend.logs if "effopt/multiplier" in logs]
    assert [logs["effopt/multiplier"] for logs in received] == [e["accepted"] for e in events]

    # Two events since the last line (not something the Trainer's loop does): one line, the last one's, and the count
    callback = next(c for c in trainer.callback_handler.callbacks if type(c).__name__ == "EffoptCallback")
    events.extend([{**events[1], "accepted": 2.5}, events[2]])
    callback.on_step_end(trainer.args, trainer.state, trainer.control)
    assert trainer.state.log_history[-1] == {
        **event_metrics(events[2]),
        "effopt/events": 2,
        "epoch": trainer.state.epoch,
        "step": 16,
    }


def test_a_callback_made_before_the_trainer_logs_events_into_its_state():
    """Without trainer= the callback has no Trainer to log through (callbacks are handed its state, not itself): the
    line Trainer.log would append goes into state.log_history; DeepSpeed is refused before anything runs."""
    from transformers import TrainerControl, TrainerState

    from effopt.integrations import EffoptCallback

    opt = extrapolating(torch.optim.AdamW, search=Fixed(2.0))(tiny_model().parameters(), lr=1e-2)
    callback, state = EffoptCallback(lambda: 0.0), TrainerState()
    args = types.SimpleNamespace(include_num_input_tokens_seen="no")
    callback.on_train_begin(args, state, TrainerControl(), optimizer=opt)
    event = {"step": 1, "multipliers": [], "values": [], "accepted": 2.0, "seconds": 0.1, "stability": None}
    opt.events.append(event)
    state.global_step, state.epoch = 1, 0.5
    callback.on_step_end(args, state, TrainerControl())
    callback.on_step_end(args, state, TrainerControl())  # nothing new: no line
    assert state.log_history == [{"effopt/multiplier": 2.0, "effopt/probe_seconds": 0.1, "epoch": 0.5, "step": 1}]
    for deepspeed in (types.SimpleNamespace(deepspeed="ds.json"), types.SimpleNamespace(deepspeed_plugin=object())):
        with pytest.raises(NotImplementedError, match="DeepSpeed is not supported"):
            EffoptCallback(lambda: 0.0).on_train_begin(deepspeed, state, TrainerControl(), optimizer=opt)


def test_the_callback_counts_new_events_past_a_bounded_history():
    from effopt.integrations import _since

    a, b, c = ({"step": s} for s in (1, 2, 3))
    assert _since([a, b, c], b) == 1 and _since([a, b, c], c) == 0 and _since([a, b, c], None) == 3
    assert _since([b, c], a) == 2  # the last logged event has left the history: every kept one is new
    assert _since([a, dict(a)], a) == 1  # the very dict, not an equal one


def test_event_metrics_leave_out_what_is_unknown():
    event = {
        "step": 4,
        "multipliers": [1.0, 2.0, 3.0],
        "values": [0.5, 0.4, 0.45],
        "accepted": 2.0,
        "seconds": 0.25,
        "reason": "",
        "stability": 0.9,
    }
    assert event_metrics(event) == {
        "effopt/multiplier": 2.0,
        "effopt/probe_value": 0.4,
        "effopt/stability": 0.9,
        "effopt/probe_seconds": 0.25,
    }
    probe_free = {**event, "multipliers": [], "values": [], "stability": None}
    assert event_metrics(probe_free, prefix="x/") == {"x/multiplier": 2.0, "x/probe_seconds": 0.25}
    nan_baseline = {**event, "multipliers": [1.0], "values": [math.nan], "accepted": 1.0}
    assert "effopt/probe_value" not in event_metrics(nan_baseline)
    guarded = {**event, "guard": [[1.0, 0.01], [3.0, 0.2], [2.0, 0.04]]}  # the guard refused 3, kept 2
    assert event_metrics(guarded)["effopt/guard_value"] == 0.04
    assert "effopt/guard_value" not in event_metrics({**guarded, "guard": [[1.0, 0.01]]})


def test_trl_grpo_trainer_with_effopt(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from examples import trl_grpo

    with MoveRecorder() as recorder:
        trainer = trl_grpo.main(max_steps=8, output_dir=str(tmp_path))
    opt = unwrap_optimizer(trainer.optimizer)
    assert type(opt).__name__ == "ExtrapolatingAdamW" and opt.mode == "max"
    assert recorder.steps == 8
    check_run(opt, recorder, min_events=3)  # after steps 1, 3, 7
    logged = [row["effopt/multiplier"] for row in trainer.state.log_history if "effopt/multiplier" in row]
    assert logged == [event["accepted"] for event in opt.events]  # every event reached the Trainer's log


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_accelerate_two_cpu_processes_agree(tmp_path):
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc-per-node",
        "2",
        "--master-addr",
        "127.0.0.1",
        "--master-port",
        str(free_port()),
        __file__,
        "--accelerate-worker",
        str(tmp_path),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=quiet_env(), timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-4000:]
    rank0, rank1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2))
    assert rank0["world"] == rank1["world"] == 2
    assert rank0["own"] != rank1["own"]  # each process probes different data...
    assert rank0["events"] == rank1["events"]  # ...yet they take the same decisions, on the mean value
    assert len(rank0["events"]) == 4 and any(m != 1.0 for _, m in rank0["events"])
    assert rank0["checked"] == rank0["events"] and rank1["checked"] == rank1["events"]
    for a, b in zip(rank0["weights"], rank1["weights"]):
        assert torch.equal(a, b)


def _accelerate_worker(out_dir):
    torch.set_num_threads(1)
    from examples import accelerate_ddp

    with MoveRecorder() as recorder:
        accelerator, model, opt = accelerate_ddp.main(steps=24)
    torch.save(
        {
            "world": accelerator.num_processes,
            "events": [(e["step"], e["accepted"]) for e in opt.events],
            "checked": recorder.checked,
            "own": opt.probe(),
            "weights": [p.detach() for p in model.parameters()],
        },
        os.path.join(out_dir, f"rank{accelerator.process_index}.pt"),
    )
    accelerator.wait_for_everyone()
    accelerator.end_training()


# --- The examples' command lines ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, options",
    [
        ("hf_trainer", ["--max-steps", "--output-dir"]),
        ("trl_grpo", ["--max-steps", "--output-dir"]),
        ("trl_distill", ["--size", "--task-seed", "--steps", "--optimizer", "--lr", "--out"]),
        ("accelerate_ddp", ["--steps"]),
    ],
)
def test_example_help_answers_without_training(name, options):
    done = subprocess.run(
        [sys.executable, "-m", f"examples.{name}", "--help"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=quiet_env(),
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert f"python -m examples.{name}" in done.stdout
    for option in options:
        assert option in done.stdout
    assert "(default:" in done.stdout


# --- The README shows the examples, word for word -------------------------------------------------------------------

SNIPPET = re.compile(r"<!-- snippet: (\S+) (\w+) -->\n```python\n(.*?)```", re.DOTALL)


def test_readme_snippets_are_the_tested_examples():
    """The README and every docs/ page: each marked snippet is its example's `# README: name` region, word for word."""
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    found = [(page.relative_to(ROOT), *snippet) for page in pages for snippet in SNIPPET.findall(page.read_text())]
    assert {(path, name) for _, path, name, _ in found} >= {
        ("examples/hf_trainer.py", "trainer"),
        ("examples/trl_grpo.py", "grpo"),
        ("examples/accelerate_ddp.py", "accelerate"),
        ("examples/trl_distill.py", "distill"),
    }
    for page, path, name, snippet in found:
        source = (ROOT / path).read_text()
        region = re.search(rf"\n( *)# README: {name}\n(.*?)\n *# README: end\n", source, re.DOTALL)
        assert region, f"{page}: {path} has no '# README: {name}' region"
        assert textwrap.dedent(region.group(2)).strip() == snippet.strip(), f"{page}: snippet {path} {name} differs"


if __name__ == "__main__" and sys.argv[1:2] == ["--accelerate-worker"]:
    _accelerate_worker(sys.argv[2])
