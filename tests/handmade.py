"""Hand-made curves and runs for the benchmark's tests: a curve from its metric values, a run's extra_info around
one, and the real model's two tasks as `make real` records them (`real_runs`)."""


def curve(metric, every=10, retained=None, objective=None, seconds_per_step=0.1):
    points = []
    for i, value in enumerate(metric):
        point = {"step": i * every, "train_seconds": i * every * seconds_per_step, "metric": value}
        if retained is not None:
            point["retained"] = retained[i]
        if objective is not None:
            point["objective"] = objective[i]
        points.append(point)
    return points


def run_info(method, seed, metric, retained=None, multiple=1.0, objective=None, events=(), instance=0):
    return dict(
        task="t",
        method=method,
        seed=seed,
        instance=instance,
        curve=curve(metric, retained=retained, objective=objective),
        initial_metric=metric[0],
        final_metric=metric[-1],
        events=list(events),
        device_name="cpu",
        regime="post-training",
        notes="",
        lr=1e-5 * multiple,
        lr_multiple=multiple,
        run_seconds=1.0,
    )


# The real model's race (benchmarks/real.py), every curve evaluated every 10 steps at 0.1 s a step
FAST = [0.5, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9]  # smoothed over 3 points: 0.5, 0.7, 0.767, 0.9, ...
PRODIGY = [0.5, 0.6, 0.9, 0.9, 0.9, 0.9, 0.9]  # smoothed: 0.5, 0.55, 0.667, 0.8, 0.9, ...
TUNED_CURVES = {  # per seed: the target is 0.5 + 0.95 * (0.9 - 0.5) = 0.88, then 0.5 + 0.95 * 0.3 = 0.785
    0: [0.5, 0.7, 0.8, 0.9, 0.9, 0.9, 0.9],  # smoothed 0.867 at step 40, 0.9 at 50
    1: [0.5, 0.6, 0.7, 0.8, 0.8, 0.8, 0.8],  # smoothed 0.767 at step 40, 0.8 at 50
}
SLOW = [0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8]  # adamw at 2e-5: 0.8 at the end, under seed 0's fixed target
CRAWL = [0.5, 0.51, 0.52, 0.53, 0.54, 0.55, 0.56]  # adamw at 1e-6


def real_runs(
    with_low=True, peers=("adamw-tuned", "prodigy", "schedulefree"), effopt=(PRODIGY, FAST), seeds=(0, 1), kept=None
):
    """The real model's two tasks (benchmarks.real) on `seeds`, as `make real` records them: opd-smol-lr1e-06's
    adamw-tuned and prodigy are opd-smol's runs (reused), its adamw on seed 0 is opd-smol's grid run at 1e-6; effopt's
    curves at 2e-5 and 1e-6 are `effopt`'s; `kept` ({method: retained skill, all along}) gives rows a retained skill."""
    from benchmarks.real import SMOL, SMOL_LOW

    runs = []
    for seed in seeds:
        rows = {"adamw": (SLOW, 1.0), "effopt": (effopt[0], 1.0)}
        rows |= {"adamw-tuned": (TUNED_CURVES[seed], 3.0), "prodigy": (PRODIGY, None), "schedulefree": ([0.5] * 7, 1.0)}
        for method, (metric, multiple) in rows.items():
            if method in peers or method not in ("adamw-tuned", "prodigy", "schedulefree"):
                runs.append(dict(run_info(method, seed, metric, multiple=multiple or 1.0), task=SMOL))
        if with_low:
            rows = {"adamw": (CRAWL, 1.0), "effopt": (effopt[1], 1.0), "schedulefree": ([0.5] * 7, 1.0)}
            rows |= {"adamw-tuned": (TUNED_CURVES[seed], 60.0), "prodigy": (PRODIGY, None)}
            for method, (metric, multiple) in rows.items():
                if method in peers or method not in ("adamw-tuned", "prodigy", "schedulefree"):
                    run = dict(run_info(method, seed, metric, multiple=multiple or 1.0), task=SMOL_LOW)
                    run["lr"] = None if multiple is None else 1e-6 * multiple
                    if method in ("adamw-tuned", "prodigy") or (method, seed) == ("adamw", 0):
                        run["reused"] = f"{SMOL}/{method if method != 'adamw' else 'adamw-0.05x'}"
                    runs.append(run)
    for run in runs:
        run["target_from"] = "adamw-tuned"
        for point in run["curve"] if kept is not None else ():
            point["retained"] = kept.get(run["method"], 0.33)
        if run["method"] == "prodigy":
            run["lr"] = run["lr_multiple"] = None
    return runs
