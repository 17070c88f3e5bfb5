"""How much the CPU's own kernels move the race: one opd-near case under several kernel settings, on the same shipped
instance.

    python -m benchmarks.kernels          # about 3 minutes on two cores; writes benchmarks/results/kernels/KERNELS.md

The instances are shipped (reference/shipped/), so every machine starts from the same bits; but training itself runs
on the machine's kernels, and another CPU may take another code path (AVX2 against AVX-512, another BLAS path). This
runs AdamW and effopt at the task's lr on instance 0, seed 0, of opd-near in fresh processes under
`ATEN_CPU_CAPABILITY` (torch's vectorised kernels: default, avx2, avx512) and `MKL_CBWR=COMPATIBLE` (MKL's
conditional numerical reproducibility), and says whether the curves are identical and where each reaches its target.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks import yardstick
from reference.ship import cpu_name

SETTINGS = {  # name -> environment added to the run's
    "this machine's default": {},
    "ATEN_CPU_CAPABILITY=avx2": {"ATEN_CPU_CAPABILITY": "avx2"},
    "ATEN_CPU_CAPABILITY=default (no vector kernels)": {"ATEN_CPU_CAPABILITY": "default"},
    "MKL_CBWR=COMPATIBLE": {"MKL_CBWR": "COMPATIBLE"},
}
RUN = """
import json, sys, torch
from benchmarks.tasks import THREADS
from reference import opd
torch.set_num_threads(THREADS)
cfg = opd.OPDConfig(size="quick", regime="near-teacher", optimizer=sys.argv[1], steps=int(sys.argv[2]), seed=0,
                    task_seed=0, device="cpu")
result = opd.train(cfg, progress=False)
json.dump({"curve": result["curve"], "capability": torch.backends.cpu.get_cpu_capability()}, open(sys.argv[3], "w"))
"""


def run(setting: dict, optimizer: str, steps: int) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        subprocess.run(
            [sys.executable, "-c", RUN, optimizer, str(steps), out.name], env=dict(os.environ, **setting), check=True
        )
        return json.loads(Path(out.name).read_text())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.kernels", description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=300, help="the race's budget")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "kernels")
    args = parser.parse_args(argv)
    runs = {(name, opt): run(env, opt, args.steps) for name, env in SETTINGS.items() for opt in ("adamw", "effopt")}
    first = next(iter(SETTINGS))
    rows = [
        "| setting | torch kernels | method | steps to target | steps to objective target | final metric | "
        "curve identical to the default's |",
        "|---|---|---|---:|---:|---:|---|",
    ]
    for (name, opt), r in runs.items():
        base = runs[(name, "adamw")]["curve"]
        reach = [
            yardstick.reach(r["curve"], key, yardstick.target(base, key, higher), higher)[0]
            for key, higher in (("metric", True), ("objective", False))
        ]
        same = all(
            a[k] == b[k]
            for a, b in zip(r["curve"], runs[(first, opt)]["curve"])
            for k in ("metric", "objective", "retained")
        )
        rows.append(
            f"| {name} | {r['capability']} | {opt} | {reach[0]} | {reach[1]} | "
            f"{yardstick.tail(r['curve'], 'metric'):.3f} | {'yes' if same else 'no'} |"
        )
    args.out.mkdir(parents=True, exist_ok=True)
    made = (
        f"Made by `python -m benchmarks.kernels` (steps {args.steps}) on {cpu_name()}, {os.cpu_count()} cores; "
        "targets from each setting's own AdamW run."
    )
    about = __doc__.split("\n\n")[2].replace("\n", " ")
    text = "\n".join(["# One opd-near case under several kernel settings", "", about, "", made, "", *rows, ""])
    (args.out / "KERNELS.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
