"""REPORT.md's learning-curve plots: per method, the median over cases of the metric (by step and by training
seconds) and of the retained skill (matplotlib, written as PNG)."""

from __future__ import annotations

import statistics
from collections import defaultdict
from pathlib import Path

from benchmarks.tasks import BASELINE


def _style(method: str, k: int) -> dict:
    """A distinct colour per method (tab20) and a line style per family: AdamW solid, effopt dashed, others dotted."""
    import matplotlib

    family = "-" if method.startswith(BASELINE) else "--" if method.startswith("effopt") else ":"
    return dict(color=matplotlib.colormaps["tab20"](k % 20), ls=family, lw=2.2 if method == "effopt" else 1.3)


def plot(task: str, runs: list[dict], out: Path, target: float | None = None, methods: tuple[str, ...] | None = None):
    """Per method, the median over cases of the metric (by step and by training seconds) and of the retained skill,
    with a min-max band over cases; the median target as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_method = defaultdict(list)
    for run in runs:
        if methods is None or run["method"] in methods:
            by_method[run["method"]].append(run["curve"])
    retained = any(p.get("retained") is not None for curves in by_method.values() for c in curves for p in c)
    fig, axes = plt.subplots(1, 3 if retained else 2, figsize=(16 if retained else 11, 4.2))
    for k, (method, curves) in enumerate(sorted(by_method.items())):
        n = min(len(c) for c in curves)
        steps = [curves[0][j]["step"] for j in range(n)]
        seconds = [statistics.median(c[j]["train_seconds"] for c in curves) for j in range(n)]
        style = _style(method, k)
        panels = [("metric", steps, axes[0]), ("metric", seconds, axes[1])]
        if retained:
            panels.append(("retained", steps, axes[2]))
        for key, x, ax in panels:
            if any(c[0].get(key) is None for c in curves):
                continue
            values = [[c[j][key] for c in curves] for j in range(n)]
            ax.plot(x, [statistics.median(v) for v in values], label=method if ax is axes[0] else None, **style)
            if len(curves) > 1:
                ax.fill_between(
                    x, [min(v) for v in values], [max(v) for v in values], color=style["color"], alpha=0.12, lw=0
                )
    for ax in axes[:2]:
        ax.set_ylabel("task metric (higher is better)")
        if target is not None:
            ax.axhline(target, color="k", lw=0.8, ls="-.", label="target (median)" if ax is axes[0] else None)
    axes[0].set_xlabel("optimizer step")
    axes[1].set_xlabel("training seconds (probes included, evaluation excluded)")
    if retained:
        axes[2].set_xlabel("optimizer step")
        axes[2].set_ylabel("retained skill (exact match)")
    for ax in axes:
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    cases = max(len(c) for c in by_method.values())
    fig.suptitle(f"{task} ({runs[0]['regime']}): median over {cases} cases (instance x seed), band min..max")
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)
