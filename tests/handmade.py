"""Hand-made curves and runs for the benchmark's tests: a curve from its metric values, a run's extra_info around
one."""


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
