"""The benchmark's yardstick on hand-made curves: the target, the crossing that holds, never, k/n, medians, the
tuned lr, a target within the metric's noise, the probe bill and modelled seconds (benchmarks.yardstick)."""

import pytest
from handmade import curve, run_info

from benchmarks import yardstick
from benchmarks.yardstick import RETAINED_TOLERANCE, median_never, ratio, reach, target, tuned_multiple


def test_target_is_the_share_of_the_gain_to_the_baselines_smoothed_tail():
    base = curve([0.5, 0.6, 0.7, 0.8, 0.86, 0.9, 0.94])  # tail: mean of the last three, 0.9
    assert yardstick.tail(base, "metric") == pytest.approx(0.9)
    assert target(base, "metric") == pytest.approx(0.5 + 0.95 * 0.4)
    # the objective falls: the target lies below the start
    loss = curve([0.0] * 4, objective=[1.0, 0.5, 0.4, 0.3])
    assert target(loss, "objective", higher=False) == pytest.approx(1.0 - 0.95 * (1.0 - 0.4))


def test_a_crossing_counts_only_where_the_smoothed_curve_stays():
    goal = 0.8
    spike = curve([0.5, 0.9, 0.95, 0.95, 0.6, 0.6, 0.6, 0.85, 0.85, 0.85, 0.85])
    # smoothed: 0.5, 0.7, 0.783, 0.933, 0.833, 0.717, 0.6, 0.683, 0.767, 0.85, 0.85: above at 30-40, below at 50-80
    assert reach(spike, "metric", goal) == (90, pytest.approx(9.0))
    one_point = curve([0.5, 0.5, 1.0, 0.5, 0.5])  # a single high point never lifts the smoothed curve to 0.8
    assert reach(one_point, "metric", goal) == (None, None)
    ends_below = curve([0.5, 0.9, 0.9, 0.9, 0.7, 0.7, 0.7])
    assert reach(ends_below, "metric", goal) == (None, None)
    assert reach(curve([0.9, 0.9]), "metric", goal) == (0, 0.0)
    loss = curve([0.0] * 5, objective=[1.0, 0.5, 0.4, 0.3, 0.3])
    assert reach(loss, "objective", 0.45, higher=False) == (30, pytest.approx(3.0))  # smoothed 0.4 at step 30
    assert reach(loss, "objective", None, higher=False) == (None, None)


def test_medians_count_misses_as_never_and_ratios_as_zero():
    assert median_never([10, None, 30]) == 30
    assert median_never([10, None, None]) is None
    assert median_never([10, 20]) == 15
    assert ratio(100, 50) == 2.0 and ratio(100, None) == 0.0 and ratio(None, 50) is None
    assert yardstick.reached([10, None, 30]) == "2/3"
    assert yardstick.spread([10, None]) == (10, float("inf"))


def test_the_tuned_lr_is_the_fastest_that_keeps_the_retained_skill():
    kept, lost = [1.0] * 8, [1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3]
    grid = {
        "adamw": run_info("adamw", 0, [0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.88, 0.9], kept),
        "adamw-3x": run_info("adamw-3x", 0, [0.5, 0.7, 0.8, 0.9, 0.9, 0.9, 0.9, 0.9], kept, 3),  # stays from 40
        "adamw-10x": run_info("adamw-10x", 0, [0.5, 0.9, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95], lost, 10),
    }
    assert tuned_multiple(grid) == 3  # 10x is faster but forgets more than the tolerance
    assert tuned_multiple(grid, tolerance=1.0) == 10  # a looser tolerance admits it (REPORT.md's knife-edge table)
    grid["adamw-10x"]["curve"] = curve(
        [0.5, 0.9, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95], retained=[1.0] * 7 + [1.0 - RETAINED_TOLERANCE / 2]
    )
    assert tuned_multiple(grid) == 10  # within the tolerance, the fastest wins
    grid.pop("adamw-3x"), grid.pop("adamw-10x")
    grid["adamw-10x"] = run_info("adamw-10x", 0, [0.5, 0.9, 0.95, 0.95, 0.95, 0.95, 0.95, 0.95], None, 10)
    assert tuned_multiple(grid) == 1.0  # a run without the retained measure cannot show that it kept the skill
    grid.pop("adamw-10x")
    assert tuned_multiple(grid) == 1.0


def test_no_gain_no_target_and_ratios_at_the_start():
    flat = curve([0.5, 0.5, 0.4, 0.4, 0.4])
    assert target(flat, "metric") is None and reach(flat, "metric", target(flat, "metric")) == (None, None)
    rising_loss = curve([0.0] * 3, objective=[1.0, 1.1, 1.2])
    assert target(rising_loss, "objective", higher=False) is None
    assert ratio(0, 0) == 1.0


def test_a_metric_target_within_the_metrics_noise_is_no_target():
    # 512 examples at 0.7: one standard error is 0.020, three 0.061
    small = curve([0.65, 0.68, 0.70, 0.70, 0.70])  # gains 0.05
    large = curve([0.60, 0.65, 0.70, 0.70, 0.70])  # gains 0.10
    assert not yardstick.conditioned(small, "metric", 512) and yardstick.conditioned(large, "metric", 512)
    assert target(small, "metric", examples=512) is None and target(small, "metric") is not None
    assert target(large, "metric", examples=512) == pytest.approx(0.6 + 0.95 * 0.1)
    assert yardstick.conditioned(small, "metric", 4096)  # a larger eval set resolves the same gain


def test_the_probe_bill_and_modelled_seconds_follow_the_runs_own_costs():
    # 100 steps in 13 s, of which two events took 2 s and 1 s for 4 and 2 probe calls (guard included)
    points = [
        {"step": 0, "train_seconds": 0.0},
        {"step": 50, "train_seconds": 7.0},
        {"step": 100, "train_seconds": 13.0},
    ]
    events = [
        {"step": 10, "values": [1, 2, 3], "guard": [1], "seconds": 2.0},
        {"step": 60, "values": [1, 2], "guard": [], "seconds": 1.0},
    ]
    bill = yardstick.probe_bill(points, events)
    assert bill["probe_share"] == pytest.approx(3 / 13) and bill["probe_calls_per_100_steps"] == pytest.approx(6)
    assert bill["step_seconds"] == pytest.approx(0.1) and bill["probe_call_seconds"] == pytest.approx(0.5)
    assert yardstick.modelled_seconds(50, events, bill) == pytest.approx(50 * 0.1 + 4 * 0.5)
    assert yardstick.modelled_seconds(100, events, bill) == pytest.approx(13.0)  # at the end: the measured total
    assert yardstick.modelled_seconds(None, events, bill) is None
    bare = yardstick.probe_bill(points, [])
    assert bare["probe_share"] == 0 and yardstick.modelled_seconds(50, [], bare) == pytest.approx(6.5)
