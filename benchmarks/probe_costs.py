"""One probe call's cost in base steps, per task, from a benchmark run: what benchmarks.tasks.PROBE_COSTS declares.

    python -m benchmarks.probe_costs benchmarks/results/benchmark.json

For each effopt row with events (effopt, effopt-noscale, effopt-budget; reused runs counted once), the clock model's
seconds per probe call over its plain-step seconds (benchmarks.yardstick.probe_bill); per task, the median over rows.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from pathlib import Path

from benchmarks import yardstick

ROWS = ("effopt", "effopt-noscale", "effopt-budget")


def probe_costs(data: dict) -> dict[str, float]:
    costs = defaultdict(list)
    for bench in data["benchmarks"]:
        run = bench["extra_info"]
        if run.get("kind") != "speedup" or run["method"] not in ROWS or run.get("reused") or not run["events"]:
            continue
        bill = yardstick.probe_bill(run["curve"], run["events"])
        if bill["step_seconds"] > 0:
            costs[run["task"]].append(bill["probe_call_seconds"] / bill["step_seconds"])
    return {task: statistics.median(values) for task, values in costs.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json", type=Path, help="the file written by pytest --benchmark-json")
    for task, cost in probe_costs(json.loads(parser.parse_args().json.read_text())).items():
        print(f"{task}: {cost:.2g} base steps a probe call")


if __name__ == "__main__":
    main()
