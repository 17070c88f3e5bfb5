"""Build the quick-size task instances from scratch and write them to reference/shipped/ with their SHA-256s.

    python -m reference.ship     # 3 valid OPD task seeds and EchoDistill model seeds 0-2, about 20 minutes on 2 cores

An instance is what a task's runs start from: for OPD (and the SFT and RL loops on the same task) the teacher and the
students' starts of one `task_seed`; for EchoDistill the data and the clean model of one `model_seed`. An OPD build is
an instance only if every model reached its recipe's target on the dev split (the teacher 0.99, the students their
regime's): a warm-up that stopped at its step limit short of it built another task (a student at 2% is not a capable
student). Task seeds are tried from 0, and those that fall short are listed in the manifest with their figures.

Instances are trained here once and shipped, because training amplifies the last bits in which CPUs' floating-point
kernels differ: built on another CPU they are other models and give other benchmark figures. OPD's data is not
shipped: it comes from Python's own random generator and tokenizer, which are exact on every machine.
`reference.common.load_shipped` checks each file's SHA-256 against MANIFEST.json at load; `EFFOPT_IGNORE_SHIPPED=1`
builds instead (into $EFFOPT_CACHE).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
from pathlib import Path

import torch

from reference.common import SHIPPED_DIR, ShowDefaults, dataset_digest, sha256_file, write_shipped


def cpu_name() -> str:
    """The CPU's model name with its family and model numbers (Linux's /proc/cpuinfo), else what platform says."""
    try:
        fields = dict(
            line.split(":", 1)
            for line in Path("/proc/cpuinfo").read_text().split("\n\n")[0].splitlines()
            if ":" in line
        )
        fields = {k.strip(): v.strip() for k, v in fields.items()}
        return f"{fields['model name']} (family {fields['cpu family']}, model {fields['model']})"
    except (OSError, KeyError):
        return platform.processor() or platform.machine()


def opd_shortfalls(task_seed: int, size: str = "quick") -> list[str]:
    """What keeps one OPD build from being an instance of the task: a teacher or a student's start whose warm-up
    stopped at its step limit short of its recipe's target on the dev split (empty: a valid instance)."""
    from reference import opd

    reached = {}  # who -> (dev exact match, its target); the teacher is the same in both regimes
    for regime, spec in opd.REGIMES.items():
        task = opd.prepare(opd.OPDConfig(size=size, regime=regime, task_seed=task_seed, device="cpu"), progress=False)
        student = opd.build_model(task.student_spec)
        student.load_state_dict(task.student_state)
        with torch.no_grad():
            reached["teacher"] = (opd.exact_match(task.teacher, task.data["dev"]), opd.SIZES[size].teacher_target)
            reached[f"{regime} student"] = (opd.exact_match(student.eval(), task.data["dev"]), spec.student_target)
    return [
        f"{who}: dev exact match {got:.3f} < its target {goal}" for who, (got, goal) in reached.items() if got < goal
    ]


def build(instances: int, size: str = "quick") -> dict:
    """Build `instances` valid OPD task seeds (trying 0, 1, 2, ... and skipping those with shortfalls) and EchoDistill
    model seeds 0 .. instances - 1; return {"opd_task_seeds": [...], "rejected": {task seed: shortfalls}}."""
    from reference import echodistill

    seeds, rejected, seed = [], {}, 0
    while len(seeds) < instances:
        if len(rejected) >= 2 * instances:
            raise RuntimeError(
                f"size {size!r}: {len(rejected)} OPD task seeds fell short of their recipes' targets "
                f"({rejected}); fix the recipe before shipping"
            )
        shortfalls = opd_shortfalls(seed, size)
        if shortfalls:
            rejected[str(seed)] = shortfalls
        else:
            seeds.append(seed)
        seed += 1
    for seed in range(instances):
        echodistill.prepare(echodistill.EchoConfig(size=size, model_seed=seed, device="cpu"))
    return {"opd_task_seeds": seeds, "rejected": rejected}


def portable_digests(cache: Path, skip: set[int] = frozenset()) -> dict:
    """{folder name: dataset_digest} of the datasets a build left in `cache` (OPD's data, but that of the task seeds
    in `skip`): not shipped, because they are exact on every machine, which tests/test_shipped.py checks against these
    digests."""
    import datasets

    folders = [
        path
        for path in sorted(cache.iterdir())
        if (path / "effopt_config.json").exists()
        and json.loads((path / "effopt_config.json").read_text())["seed"] not in skip
    ]
    return {path.name: dataset_digest(datasets.load_from_disk(str(path))) for path in folders}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m reference.ship", description=__doc__.split("\n\n")[0], formatter_class=ShowDefaults
    )
    parser.add_argument("--instances", type=int, default=3, help="valid instances of each task to ship")
    parser.add_argument("--size", default="quick", help="the size to build and ship")
    parser.add_argument("--out", type=Path, default=SHIPPED_DIR, help="where the files and MANIFEST.json go")
    parser.add_argument("--threads", type=int, default=2, help="torch's CPU threads (part of what fixes the bits)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as cache:
        os.environ["EFFOPT_IGNORE_SHIPPED"], os.environ["EFFOPT_CACHE"] = "1", cache
        chosen = build(args.instances, args.size)
        skip = {int(seed) for seed in chosen["rejected"]}  # OPD's configs carry their task seed as "seed"
        files = {}
        for path in sorted(Path(cache).glob("*.pt")):
            saved = torch.load(path, map_location="cpu", weights_only=True)
            kind = path.name.rsplit("-", 1)[0]
            if kind.startswith("opd-") and saved["config"].get("seed") in skip:
                continue
            shipped = write_shipped(kind, saved["config"], saved["state_dict"], args.out)
            files[shipped.name] = {"kind": kind, "sha256": sha256_file(shipped), "bytes": shipped.stat().st_size}
        portable = portable_digests(Path(cache), skip)
    manifest = {
        "built_on": {
            "cpu": cpu_name(),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        },
        "command": f"python -m reference.ship --instances {args.instances} --size {args.size} --threads {args.threads}",
        "files": files,
        "portable": portable,
        **chosen,
    }
    (args.out / "MANIFEST.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    print(f"{len(files)} files, {sum(f['bytes'] for f in files.values()) / 2**20:.1f} MiB, in {args.out}")


if __name__ == "__main__":
    main()
