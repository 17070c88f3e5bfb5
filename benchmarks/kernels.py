"""Whether the race computes the same bits on another CPU: the kernels' fingerprint on several CPUs, and every task's
first case with the pinned kernels (benchmarks/pins.py, EFFOPT_BENCH_KERNELS=pinned) against this CPU's own.

    python -m benchmarks.kernels                       # about 10 minutes on two cores
    python -m benchmarks.kernels --emulate Haswell Skylake-Server EPYC-Milan   # and the fingerprint on other CPUs

The instances are shipped (reference/shipped/), so every machine starts from the same bits; but training runs on the
machine's kernels, and torch's libraries pick their code path by the CPU they find (benchmarks/pins.py). Two checks:
1. The fingerprint: each task's model (OPD's Llamas, EchoDistill's convolutions and Qwen2, built from their configs)
   forward and backward on a fixed batch, then an AdamW step and a sampling draw, as SHA-256 digests. Under
   `--emulate`, the same with the pinned kernels on other CPU models, emulated by `qemu-x86_64 -cpu MODEL` (Debian's
   qemu-user): Intel without AVX-512, Intel with it, AMD. qemu computes exactly what a CPU computes exactly (sums,
   products, fused multiply-adds, square roots), but it answers the approximate reciprocal instructions (`rsqrtps`,
   `rcpps`, each vendor's own table in hardware) with the exact value: a digest of code that uses them (MKL's vector
   square root does on some of its branches) differs under emulation from every real CPU, and says nothing.
2. Every task's first case (instance 0, seed 0) of the quick benchmark, AdamW and effopt at the task lr, in fresh
   processes, pinned and with this CPU's own kernels: whether each curve is the same bits as the pinned run and as
   the committed run (benchmarks/results/benchmark.json), and where each reaches its target. The real model
   (opd-smol) runs its first 10 steps, AdamW only.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import pins

RESULTS = Path(__file__).parent / "results"
SMOL_STEPS = 10  #: the real model's steps here (a step takes about 6 s on two cores)


def _digest(*tensors) -> str:
    h = hashlib.sha256()
    for t in tensors:
        h.update(t.detach().contiguous().numpy().tobytes())
    return h.hexdigest()[:12]


def fingerprint() -> dict[str, str]:
    """Digests of what the tasks compute, on fixed inputs (no shipped data: it runs in minutes under emulation)."""
    import torch

    from reference.addition import SIZES, VOCAB, build_model
    from reference.audio_lm import VOCAB as AUDIO_VOCAB
    from reference.audio_lm import AudioLM

    out, g = {}, torch.Generator().manual_seed(0)

    def grads(model) -> list:
        return [p.grad for p in model.parameters() if p.grad is not None]

    for name in ("teacher", "student"):  # OPD, SFT, GRPO, TRL: the quick size's Llamas, a batch of 64 x 24 tokens
        torch.manual_seed(0)
        model = build_model(getattr(SIZES["quick"], name))
        logits = model(torch.randint(3, len(VOCAB), (64, 24), generator=g)).logits
        logits.log_softmax(-1).mean().backward()
        out[f"OPD {name}"] = _digest(logits, *grads(model))
    torch.manual_seed(0)  # EchoDistill: 16 clips' log-mels (32 x 26), questions, 8 answers each
    model = AudioLM("quick")
    mel = torch.rand(16, 32, 26, generator=g)
    question = torch.randint(3, len(AUDIO_VOCAB), (16, 15), generator=g)
    logprobs = model.answer_logprobs(mel, question, torch.randint(3, len(AUDIO_VOCAB), (16, 8, 3), generator=g))
    out["EchoDistill encoder (convolutions)"] = _digest(model.encoder(mel))
    logprobs.mean().backward()
    out["EchoDistill audio LM"] = _digest(logprobs, *grads(model))
    torch.optim.AdamW(model.parameters(), lr=1e-3).step()
    out["AdamW step"] = _digest(*model.parameters())
    draws = torch.multinomial(
        logprobs.detach().exp().flatten(0, 2), 4, True, generator=torch.Generator().manual_seed(1)
    )
    out["sampling"] = _digest(draws)
    return out


def first_cases(out: Path) -> None:
    """Every task's first case, AdamW and effopt at the task lr, with this process's kernels (benchmarks.pins)."""
    import torch

    from benchmarks.tasks import BASELINE, THREADS, optimizer_of, tasks

    kernels = pins.pin()
    torch.set_num_threads(THREADS)
    runs = []
    for mode in ("quick", "real"):
        real = mode == "real"
        for task in tasks(mode)[:1] if real else tasks(mode):  # the real model's first task: the other is its world
            task.prepare(0)
            for method in (BASELINE,) if real else (BASELINE, "effopt"):
                started = time.perf_counter()
                result = task.run(optimizer_of(method, task), 0, 0, task.lr, **({"steps": SMOL_STEPS} if real else {}))
                seconds = time.perf_counter() - started
                runs.append({"task": task.name, "method": method, "curve": result["curve"], "seconds": seconds})
                print(f"{task.name} {method}: done", flush=True)
    out.write_text(json.dumps({"kernels": kernels, "runs": runs}))


def child(args: list[str], env: dict, emulate: str | None = None) -> str:
    """Run `python -m benchmarks.kernels ARGS` in a fresh process (under qemu-x86_64 -cpu EMULATE); its stdout."""
    command = [sys.executable, "-m", "benchmarks.kernels", *args]
    command = ["qemu-x86_64", "-cpu", emulate, *command] if emulate else command
    own = {k: v for k, v in os.environ.items() if k not in pins.PINS}  # this process's pins are not the child's
    done = subprocess.run(command, env=own | env, check=True, capture_output=True, text=True, cwd=RESULTS.parent.parent)
    return done.stdout


def _committed() -> dict:
    data = json.loads((RESULTS / "benchmark.json").read_text())
    return {
        (r["task"], r["method"]): r["curve"]
        for r in (b["extra_info"] for b in data["benchmarks"])
        if r.get("kind") == "speedup" and r.get("instance", 0) == 0 and r["seed"] == 0
    }


def fingerprint_table(emulate: list[str]) -> list[str]:
    settings = [("this CPU", None, kernels) for kernels in ("pinned", "native")]
    settings += [(f"emulated {cpu}", cpu, "pinned") for cpu in emulate]
    prints = {}
    for name, cpu, kernels in settings:
        out = child(["--fingerprint"], {"EFFOPT_BENCH_KERNELS": kernels}, cpu)
        prints[(name, kernels)] = json.loads(out.strip().splitlines()[-1])
        print(name, kernels, prints[(name, kernels)], flush=True)
    reference = prints[("this CPU", "pinned")]["digests"]
    parts = list(reference)
    rows = [
        "| CPU | kernels | torch's vector kernels | " + " | ".join(parts) + " |",
        "|---|---|---|" + "---|" * len(parts),
    ]
    for (name, kernels), p in prints.items():
        same = ["same" if p["digests"][k] == reference[k] else f"**differs** ({p['digests'][k]})" for k in parts]
        rows.append(f"| {name} | {kernels} | {p['kernels']['cpu_capability']} | " + " | ".join(same) + " |")
    return [
        "## The kernels' fingerprint on several CPUs",
        "",
        "Each cell: whether the digest equals this CPU's with the pinned kernels "
        f"({', '.join(f'{k} {v}' for k, v in reference.items())}).",
        "",
        *rows,
        "",
    ]


def runs_table() -> list[str]:
    from benchmarks import yardstick

    settings = {}
    for kernels in ("pinned", "native"):
        with tempfile.TemporaryDirectory() as tmp:
            child(["--first-cases", f"{tmp}/runs.json"], {"EFFOPT_BENCH_KERNELS": kernels})
            settings[kernels] = json.loads(Path(f"{tmp}/runs.json").read_text())["runs"]
    committed = _committed()
    rows = [
        "| task | method | kernels | steps to target | to the objective's | final metric | same bits as the pinned "
        "run | as the committed run |",
        "|---|---|---|---:|---:|---:|---|---|",
    ]
    for kernels, runs in settings.items():
        for run, pinned in zip(runs, settings["pinned"]):
            base = next(r for r in runs if r["task"] == run["task"] and r["method"] == "adamw")["curve"]
            reach = [
                yardstick.reach(run["curve"], key, yardstick.target(base, key, higher), higher)[0]
                for key, higher in (("metric", True), ("objective", False))
            ]
            theirs = committed.get((run["task"], run["method"]))
            rows.append(
                f"| {run['task']} | {run['method']} | {kernels} | {reach[0] or 'never'} | {reach[1] or 'never'} | "
                f"{yardstick.tail(run['curve'], 'metric'):.3f} | {_same(run['curve'], pinned['curve'])} | "
                f"{'-' if theirs is None else _same(run['curve'], theirs)} |"
            )
    seconds = {kernels: sum(r["seconds"] for r in runs) for kernels, runs in settings.items()}
    return [
        "## Every task's first case, pinned and with this CPU's own kernels",
        "",
        "Instance 0, seed 0, at the task lr, each setting in a fresh process; targets from each setting's own AdamW "
        f'run. opd-smol (the real model, `make real`) runs its first {SMOL_STEPS} steps only. "As the committed '
        'run": the curve of that case in benchmarks/results/benchmark.json ("-": none there).',
        "",
        *rows,
        "",
        f"The pinned runs took {seconds['pinned'] / seconds['native']:.2f} times the seconds of the native ones "
        f"({seconds['pinned'] / 60:.1f} against {seconds['native'] / 60:.1f} minutes, one after the other here).",
        "",
    ]


def _same(a: list[dict], b: list[dict]) -> str:
    keys = ("step", "metric", "objective", "retained")
    return "yes" if [[p.get(k) for k in keys] for p in a] == [[p.get(k) for k in keys] for p in b] else "**no**"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.kernels", description=__doc__.split("\n\n")[0])
    parser.add_argument("--emulate", nargs="*", default=[], help="qemu-x86_64 CPU models for the fingerprint")
    parser.add_argument("--fingerprint", action="store_true", help=argparse.SUPPRESS)  # a child: print the digests
    parser.add_argument("--first-cases", type=Path, help=argparse.SUPPRESS)  # a child: run the first cases
    parser.add_argument("--out", type=Path, default=RESULTS / "kernels")
    args = parser.parse_args(argv)
    if args.fingerprint:
        kernels = pins.pin()
        print(json.dumps({"kernels": kernels, "digests": fingerprint()}))
        return
    if args.first_cases:
        first_cases(args.first_cases)
        return
    if args.emulate and not shutil.which("qemu-x86_64"):
        parser.error("--emulate needs qemu-x86_64 (Debian: apt-get install qemu-user)")
    from reference.ship import cpu_name

    made = (
        f"Made by `python -m benchmarks.kernels{' --emulate ' + ' '.join(args.emulate) if args.emulate else ''}` "
        f"on {cpu_name()}, {os.cpu_count()} cores. The pins (benchmarks/pins.py): "
        + ", ".join(f"`{k}={v}`" for k, v in pins.PINS.items())
        + "."
    )
    about = __doc__.split("\n\n")[2]
    text = "\n".join(
        ["# Kernels: the same bits on another CPU", "", about, "", made, "", *fingerprint_table(args.emulate)]
        + runs_table()
    )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "KERNELS.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
