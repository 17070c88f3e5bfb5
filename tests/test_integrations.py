"""effopt where frameworks build and drive the optimizer: transformers' Trainer, TRL's GRPOTrainer, accelerate on two
CPU processes; the class-style factory, the callback, and the README snippets that show them.

Each end-to-end test runs an example from reference/ at tiny size and checks, through tests/moves.MoveRecorder, that
every event moved the weights to ``A + m * (theta_1 - A)`` for the multiplier it recorded."""

import copy
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

from effopt import ExtrapolatingOptimizer, Fixed, ProbeError
from effopt.integrations import (
    PROBE_NOT_SET,
    TrainerEvalLoss,
    extrapolating,
    reshard_after,
    unwrap_optimizer,
)

sys.path.insert(0, str(Path(__file__).parent))
from moves import MoveRecorder

ROOT = Path(__file__).resolve().parents[1]
FRAMEWORKS = ("transformers", "trl", "accelerate", "datasets")


def quiet_env():
    return {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
            "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


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
    groups = [{"params": [model[0].weight, model[2].weight], "weight_decay": 0.1},
              {"params": [model[0].bias, model[2].bias], "weight_decay": 0.0}]
    opt = cls(groups, lr=0.1, momentum=0.9)
    assert type(opt.optimizer) is torch.optim.SGD and opt.param_groups[0]["momentum"] == 0.9
    assert opt.param_groups[0]["weight_decay"] == 0.1 and opt.tolerance == 0.01
    assert opt.probe is PROBE_NOT_SET
    with pytest.raises(ProbeError) as err:  # preset "effopd": an event after the first step
        train(model, opt, 1)
    assert "EffoptCallback" in str(err.value.__cause__)

    second = cls(tiny_model().parameters(), lr=0.1)
    assert second.schedule is not opt.schedule and second.search is not opt.search  # pieces are per optimizer


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

    with pytest.raises(ValueError, match="exactly one of probe= .* and trainer="):
        EffoptCallback()
    with pytest.raises(ValueError, match="exactly one of probe="):
        EffoptCallback(lambda: 0.0, trainer=object())
    with pytest.raises(ValueError, match="max_batches: only used with trainer="):
        EffoptCallback(lambda: 0.0, max_batches=2)
    with pytest.raises(TypeError, match="trainer: expected a transformers Trainer"):
        EffoptCallback(trainer=object())
    fake = types.SimpleNamespace(get_eval_dataloader=None, prediction_step=None, model=None)
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
    from reference import hf_trainer

    with MoveRecorder() as recorder:
        trainer = hf_trainer.main(max_steps=16, output_dir=str(tmp_path))
    opt = unwrap_optimizer(trainer.optimizer)
    assert type(trainer.optimizer).__name__ == "AcceleratedOptimizer" and trainer.optimizer.optimizer is opt
    assert recorder.steps == 16 and opt.step_count == 16
    check_run(opt, recorder, min_events=4)  # Backoff: after steps 1, 3, 7, 15
    assert trainer.model.training  # the probe puts the model back in train mode
    assert isinstance(opt.probe, TrainerEvalLoss)
    assert opt.probe() == pytest.approx(trainer.evaluate()["eval_loss"], rel=1e-5)  # the Trainer's own eval loss


def test_trl_grpo_trainer_with_effopt(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from reference import trl_grpo

    with MoveRecorder() as recorder:
        trainer = trl_grpo.main(max_steps=8, output_dir=str(tmp_path))
    opt = unwrap_optimizer(trainer.optimizer)
    assert type(opt).__name__ == "ExtrapolatingAdamW" and opt.mode == "max"
    assert recorder.steps == 8
    check_run(opt, recorder, min_events=3)  # after steps 1, 3, 7


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_accelerate_two_cpu_processes_agree(tmp_path):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
           "--master-port", str(free_port()), __file__, "--accelerate-worker", str(tmp_path)]
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
    from reference import accelerate_ddp

    with MoveRecorder() as recorder:
        accelerator, model, opt = accelerate_ddp.main(steps=24)
    torch.save({
        "world": accelerator.num_processes,
        "events": [(e["step"], e["accepted"]) for e in opt.events],
        "checked": recorder.checked,
        "own": opt.probe(),
        "weights": [p.detach() for p in model.parameters()],
    }, os.path.join(out_dir, f"rank{accelerator.process_index}.pt"))
    accelerator.wait_for_everyone()
    accelerator.end_training()


# --- The README shows the examples, word for word -------------------------------------------------------------------

SNIPPET = re.compile(r"<!-- snippet: (\S+) (\w+) -->\n```python\n(.*?)```", re.DOTALL)


def test_readme_snippets_are_the_tested_examples():
    readme = (ROOT / "README.md").read_text()
    found = SNIPPET.findall(readme)
    assert {(path, name) for path, name, _ in found} >= {
        ("reference/hf_trainer.py", "trainer"), ("reference/trl_grpo.py", "grpo"),
        ("reference/accelerate_ddp.py", "accelerate"),
    }
    for path, name, snippet in found:
        source = (ROOT / path).read_text()
        region = re.search(rf"\n( *)# README: {name}\n(.*?)\n *# README: end\n", source, re.DOTALL)
        assert region, f"{path} has no '# README: {name}' region"
        assert textwrap.dedent(region.group(2)).strip() == snippet.strip(), f"README snippet {path} {name} differs"


if __name__ == "__main__" and sys.argv[1:2] == ["--accelerate-worker"]:
    _accelerate_worker(sys.argv[2])
