"""Foresight: does on-policy distillation fix its update direction earlier than RL, and does that predict the gain?

    python -m benchmarks.foresight                      # quick size, 3 seeds: about 3 minutes on two CPU cores
    python -m benchmarks.foresight --size tiny --steps 6 --seeds 0 --out /tmp/foresight   # a smoke run

Both objectives train the same near-teacher student (about 60% exact match on 4-digit addition) with AdamW at the
same learning rate and the same number of rollouts per step (reference/opd.py): OPD (full-vocabulary reverse KL to
the teacher) and its RL counterpart GRPO (exact-match reward, 8 samples per prompt, no teacher). Each run saves its
weights every `every` steps to disk; from those checkpoints, at each step t, with U_t = theta_t - theta_0
(effopt.analysis):

- concentration: the share of |U_t|^2 in the largest 10% of tensors;
- low rank: the share of the matrices' |U_t|^2 in each one's top 4 singular directions, and their median effective
  rank;
- alignment: the cosine of U_t with the final update, and the mean top-4 principal angle between them; "early" is
  step 0.1 T of a T-step run, and a run has "settled" at the first checkpoint whose cosine reaches 0.9.

Then both objectives run again under effopt's default wrapper: its speed-up to AdamW's target (as in the benchmark
report) and the direction stability its events record on line. Writes FORESIGHT.md, foresight.json and
foresight.png to --out (default benchmarks/results/foresight/).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from effopt.analysis import alignment, summarize, update_profile

OUT = Path(__file__).parent / "results" / "foresight"
OBJECTIVES = {"OPD": "full", "GRPO": "grpo"}  # name -> reference.opd loss
EARLY_SHARE = 0.1  # "early" = the first 10% of the steps
K = 4  # top directions in energy_k and the principal angles
SETTLED = 0.9  # an update has "settled" once its cosine with the final update reaches this


class Checkpoints:
    """The parameters' values at step 0 (when made) and after every step where `keep(step)`, as CPU state dicts;
    written to `folder` (one file a step) when given, else kept in memory."""

    def __init__(self, params: dict[str, torch.Tensor], keep: Callable[[int], bool], folder: Path | None = None):
        self.params, self.keep, self.folder = params, keep, folder
        self.saved: dict[int, dict | Path] = {}
        self.step = 0
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
            for old in folder.glob("step*.pt"):
                old.unlink()
        self.save()

    def attach(self, optimizer: torch.optim.Optimizer) -> torch.optim.Optimizer:
        optimizer.register_step_post_hook(lambda *_: self.stepped())
        return optimizer

    def stepped(self) -> None:
        self.step += 1
        if self.keep(self.step):
            self.save()

    def save(self) -> None:
        state = {name: p.detach().to("cpu", copy=True) for name, p in self.params.items()}
        if self.folder is None:
            self.saved[self.step] = state
        else:
            path = self.folder / f"step{self.step:06d}.pt"
            torch.save(state, path)
            self.saved[self.step] = path

    def __getitem__(self, step: int) -> dict:
        state = self.saved[step]
        return torch.load(state, weights_only=True) if isinstance(state, Path) else state

    def nearest(self, step: float) -> int:
        """The saved step nearest `step`, after step 0."""
        return min((s for s in self.saved if s > 0), key=lambda s: (abs(s - step), s))


def figures(start: dict, at: dict, final: dict) -> dict:
    """Whole-model figures of the update ``at - start``, and its alignment with the final update."""
    return summarize(update_profile(start, at, k=K), alignment(start, at, final, k=K))


def _foresight(early_step: int, steps: int, early: dict, final: dict) -> dict:
    """How the early update lines up with the final one, and how concentrated and low-rank the final update is."""
    return {
        "early_step": early_step,
        "steps": steps,
        "cosine": early["cosine"],
        "principal_angle": early["principal_angle"],
        "energy_k": final["energy_k"],
        "top_share": final["top_share"],
        "effective_rank": final["effective_rank"],
    }


def trajectory(checkpoints: Checkpoints) -> dict:
    """The figures at every saved step (each checkpoint read once), the run's foresight, and the share of the final
    update's squared norm by module kind."""
    start, final = checkpoints[0], checkpoints[checkpoints.step]
    steps = sorted(checkpoints.saved)
    over = [figures(start, final if step == checkpoints.step else checkpoints[step], final) for step in steps]
    early = checkpoints.nearest(EARLY_SHARE * checkpoints.step)
    squares = {name: float((final[name].double() - start[name].double()).norm() ** 2) for name in start}
    total = sum(squares.values()) or 1.0
    modules: dict[str, float] = {}
    for name, square in squares.items():
        modules[module_kind(name)] = modules.get(module_kind(name), 0.0) + square / total
    return {
        "steps": steps,
        "figures": over,
        "early": _foresight(early, checkpoints.step, over[steps.index(early)], over[-1]),
        "modules": dict(sorted(modules.items(), key=lambda kv: -kv[1])),
    }


def module_kind(name: str) -> str:
    """ "model.layers.1.self_attn.q_proj.weight" -> "q_proj"; embeddings, norms and the head by their own names."""
    parts = [p for p in name.split(".") if not re.fullmatch(r"\d+|weight|bias|model|layers|self_attn|mlp", p)]
    return parts[-1] if parts else name


def _run(objective: str, method: str, seed: int, args, task, folder: Path | None) -> tuple[dict, Checkpoints | None]:
    from reference import opd
    from reference.optimizers import build_optimizer

    cfg = opd.OPDConfig(
        size=args.size,
        regime="near-teacher",
        optimizer=method,
        lr=args.lr,
        steps=args.steps,
        seed=seed,
        loss=OBJECTIVES[objective],
    )
    kept: list[Checkpoints] = []

    def make_optimizer(model, probes):
        opt = build_optimizer(method, model, args.lr, probes)
        if folder is not None:
            keep = lambda step: step % args.every == 0 or step == args.steps  # noqa: E731
            kept.append(Checkpoints(dict(model.named_parameters()), keep, folder))
            kept[-1].attach(opt)
        return opt

    result = opd.train(cfg, make_optimizer=make_optimizer, task=task, progress=False)
    return result, (kept[0] if kept else None)


def main(argv: list[str] | None = None) -> dict:
    from benchmarks.summary import summarise
    from reference import opd
    from reference.common import cache_dir

    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.foresight",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--size", default="quick", choices=tuple(opd.SIZES))
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--lr", type=float, default=1e-5, help="AdamW's lr for both objectives (default 1e-5)")
    parser.add_argument("--every", type=int, default=10, help="steps between checkpoints")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--checkpoints", type=Path, default=None, help="default: $EFFOPT_CACHE/foresight")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    task = opd.prepare(opd.OPDConfig(size=args.size, regime="near-teacher"), progress=False)
    folders = args.checkpoints or cache_dir() / "foresight"

    curves, runs_for_summary, over_time, stability = {}, [], {}, {}
    for objective in OBJECTIVES:
        for seed in args.seeds:
            for method in ("adamw", "effopt"):
                folder = folders / f"{objective}-seed{seed}" if method == "adamw" else None
                result, checkpoints = _run(objective, method, seed, args, task, folder)
                curves[(objective, method, seed)] = result["curve"]
                runs_for_summary.append(
                    dict(
                        task=objective,
                        method=method,
                        seed=seed,
                        curve=result["curve"],
                        initial_metric=result["initial_metric"],
                        final_metric=result["final_metric"],
                        events=result["events"],
                        device_name=result["device"],
                        regime="post-training",
                        notes="",
                    )
                )
                if checkpoints is not None:
                    over_time[(objective, seed)] = trajectory(checkpoints)
                else:
                    stability[(objective, seed)] = [
                        e["stability"] for e in result["events"] if e["stability"] is not None
                    ]
    speed = summarise(runs_for_summary)
    seconds = time.perf_counter() - started
    report = _write(args, over_time, speed, stability, curves, seconds)
    print(report)
    return {"over_time": over_time, "speed": speed, "stability": stability, "seconds": seconds}


def _mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.fmean(values) if values else None


def _fmt(value, digits=3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _settled(run: dict) -> int | None:
    """None for a run that never moved."""
    steps = (s for s, f in zip(run["steps"], run["figures"]) if f["cosine"] is not None and f["cosine"] >= SETTLED)
    return next(steps, None)


def _times(value) -> str:
    return "never" if value is None else f"{value:.2f}x"


def _write(args, over_time: dict, speed: dict, stability: dict, curves: dict, seconds: float) -> str:
    args.out.mkdir(parents=True, exist_ok=True)
    names = list(OBJECTIVES)
    per = {name: [over_time[(name, s)] for s in args.seeds] for name in names}
    early = {
        name: {
            key: _mean(run["early"][key] for run in per[name])
            for key in ("cosine", "principal_angle", "energy_k", "top_share", "effective_rank")
        }
        for name in names
    }
    for name in names:  # the first checkpoint whose update has cosine >= SETTLED with the final one
        early[name]["settled_step"] = _mean(_settled(run) for run in per[name])
    early_step = per[names[0]][0]["early"]["early_step"]
    stab = {name: _mean(v for s in args.seeds for v in stability[(name, s)]) for name in names}
    for name in names:
        early[name]["stability"] = stab[name]
    opd_, rl = early[names[0]], early[names[1]]

    def compare(key: str, higher: bool, digits: int = 3, unit: str = "") -> tuple[bool | None, str]:
        x, y = opd_[key], rl[key]
        if x is None or y is None:
            return None, f"{_fmt(x, digits)} vs {_fmt(y, digits)}"
        return (x > y) == higher and x != y, f"{x:.{digits}f} vs {y:.{digits}f}{unit}"

    answers = [
        (
            f"earlier alignment (higher cosine of the step-{early_step} update with the final one)",
            *compare("cosine", True),
        ),
        (
            f"earlier alignment (smaller mean top-{K} principal angle at step {early_step})",
            *compare("principal_angle", False, 1, " degrees"),
        ),
        (
            f"earlier alignment (fewer steps until cos(U_t, U_final) >= {SETTLED})",
            *compare("settled_step", False, 0, " steps"),
        ),
        (f"higher low-rank concentration of the final update (top-{K} energy)", *compare("energy_k", True)),
        ("more concentrated on a few modules (share in the top 10% of tensors)", *compare("top_share", True)),
        ("more stable on line (mean event stability under effopt)", *compare("stability", True)),
    ]
    lines = [
        "# Foresight: OPD against RL on the same task and student",
        "",
        f"Made by `python -m benchmarks.foresight --size {args.size} --steps {args.steps} --lr {args.lr:g} "
        f"--every {args.every} --seeds {' '.join(map(str, args.seeds))}` in {seconds / 60:.1f} minutes "
        f"({torch.get_num_threads()} threads). Both objectives start from the same near-teacher student with AdamW at "
        f"lr {args.lr:g}, {args.steps} steps, the same rollouts per step; figures are means over seeds "
        f"{list(args.seeds)}. Early = step {early_step} ({EARLY_SHARE:.0%} of the run).",
        "",
        f"## Does OPD show higher concentration and earlier alignment than {names[1]} here?",
        "",
        f"| OPD, compared with {names[1]} | {'yes/no'} | OPD vs {names[1]} |",
        "|---|---|---|",
    ]
    lines += [
        f"| {what} | {'n/a' if ok is None else 'yes' if ok else 'no'} | {measured} |" for what, ok, measured in answers
    ]
    lines += [
        "",
        "## Per seed",
        "",
        "| objective | seed | cosine at early step | principal angle | top-4 energy (final) | effective rank "
        "(final, median) | top-10% share | AdamW final metric | effopt speed-up (steps) | effopt final |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in names:
        for seed, run in zip(args.seeds, per[name]):
            e = run["early"]
            base = curves[(name, "adamw", seed)][-1]["metric"]
            ours = curves[(name, "effopt", seed)][-1]["metric"]
            lines.append(
                f"| {name} | {seed} | {_fmt(e['cosine'])} | {_fmt(e['principal_angle'], 1)} | "
                f"{_fmt(e['energy_k'])} | {_fmt(e['effective_rank'], 1)} | {_fmt(e['top_share'])} | "
                f"{base:.3f} | {_times(_speedup(name, seed, curves))} | {ours:.3f} |"
            )
    lines += [
        "",
        "## The gain: effopt's default on each objective",
        "",
        "| objective | effopt speed-up to AdamW's target (steps, median over seeds) | "
        "effopt final | AdamW final | mean event stability |",
        "|---|---:|---:|---:|---:|",
    ]
    for name in names:  # no seconds: the AdamW runs write checkpoints inside their timed steps
        ours, base = speed[name]["effopt"], speed[name]["adamw"]
        lines.append(
            f"| {name} | {_times(ours['speedup_steps'])} | "
            f"{ours['final_metric']:.3f} | {base['final_metric']:.3f} | {_fmt(stab[name])} |"
        )
    lines += [
        "",
        "## Where the final update goes (share of |U|^2 by module kind, mean over seeds)",
        "",
        "| module | " + " | ".join(names) + " |",
        "|---|" + "---:|" * len(names),
    ]
    kinds = list(per[names[0]][0]["modules"])
    for kind in kinds:
        lines.append(
            f"| {kind} | " + " | ".join(_fmt(_mean(r["modules"].get(kind) for r in per[n])) for n in names) + " |"
        )
    lines += ["", "![foresight](foresight.png)", ""]
    report = "\n".join(lines)
    (args.out / "FORESIGHT.md").write_text(report)
    published = {
        "config": {"size": args.size, "steps": args.steps, "lr": args.lr, "every": args.every, "seeds": args.seeds},
        "seconds": seconds,
        "early": early,
        "stability": stab,
        "answers": [{"question": w, "yes": ok, "measured": m} for w, ok, m in answers],
        "speedup_steps": {n: speed[n]["effopt"]["speedup_steps"] for n in names},
        "over_time": {f"{n}-seed{s}": over_time[(n, s)] for n in names for s in args.seeds},
    }
    (args.out / "foresight.json").write_text(json.dumps(published, indent=1) + "\n")
    _plot(args, over_time, curves, args.out / "foresight.png")
    return report


def _speedup(name: str, seed: int, curves: dict) -> float | None:
    from benchmarks.yardstick import ratio, reach, target

    base = curves[(name, "adamw", seed)]
    goal = target(base, "metric")
    return ratio(reach(base, "metric", goal)[0], reach(curves[(name, "effopt", seed)], "metric", goal)[0])


def _plot(args, over_time: dict, curves: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [
        ("metric", "exact match (eval)"),
        ("top_share", "share of |U|^2 in top 10% of tensors"),
        ("energy_k", f"top-{K} energy of U (matrices)"),
        ("effective_rank", "effective rank of U (median)"),
        ("cosine", "cosine(U_t, U_final)"),
        ("principal_angle", f"mean top-{K} principal angle to U_final (deg)"),
    ]
    fig, axes = plt.subplots(2, 3, figsize=(14, 7))
    for i, name in enumerate(OBJECTIVES):
        colour = f"C{i}"
        for j, seed in enumerate(args.seeds):
            label = name if j == 0 else None
            for ax, (key, title) in zip(axes.flat, panels):
                if key == "metric":
                    for method, style in (("adamw", "-"), ("effopt", "--")):
                        curve = curves[(name, method, seed)]
                        ax.plot(
                            [p["step"] for p in curve],
                            [p["metric"] for p in curve],
                            style,
                            color=colour,
                            lw=1,
                            label=f"{name} {method}" if j == 0 else None,
                        )
                else:
                    run = over_time[(name, seed)]
                    ax.plot(run["steps"][1:], [f[key] for f in run["figures"][1:]], color=colour, lw=1, label=label)
                ax.set_title(title, fontsize=9)
    for ax in axes.flat:
        ax.set_xlabel("step", fontsize=8)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"OPD vs GRPO from the same student (quick size, AdamW lr {args.lr:g}; dashed: effopt)")
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)


if __name__ == "__main__":
    main()
