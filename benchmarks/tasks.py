"""The benchmark's tasks and methods, per mode. Each task runs a reference loop; nothing here re-implements one.

A task's `run(method, instance, seed, lr)` returns the loop's result dict: `curve` (step, train_seconds, metric, and
where the task has them objective and retained), `initial_metric`, `final_metric`, `events`, `device`. The metric and
`retained` are higher-is-better, the objective lower-is-better. `prepare(instance)` loads the shipped instance (or
builds it), untimed.

Instances and seeds: an instance is one build of a task's world (OPD: a task seed's teacher and students, shipped in
reference/shipped/, instance i being the i-th valid task seed (benchmarks.loops.opd_task_seed); EchoDistill: the
`model_seed`'s clean model; classic: the `data_seed`'s random teacher), a seed one run on it (data order and samples).
A task runs on `cases`, (instance, seed) pairs: opd-near and classic on every instance x every seed, the others on the
diagonal (seed i on instance i), which costs what three seeds on one instance cost and still says whether a figure
holds across builds. How each task runs its loop and prepares its world: benchmarks.loops.

The race, per post-training task: the bare optimizer at the task's lr (`adamw`), AdamW over an lr grid on each
instance's first seed (`adamw-3x`, ... : multiples of the task's lr), `adamw-tuned` (the grid point a user would pick
on that instance, see benchmarks.yardstick.tuned_multiple, run on every seed), the lr-free `prodigy`, effopt's default
at the task's lr (`effopt`) and at the tuned lr (`effopt-tuned`), and the default with a probe budget
(`effopt-budget`: effopt.ProbeBudget with the task's declared probe cost, PROBE_COSTS); then the other peers and
ablations, on the first case only.
Two tasks look at opd-near from where its users stand: `trl-distill` runs it through TRL's DistillationTrainer
(examples/trl_distill.py) and `opd-near-costly-probe` gives effopt a probe that samples (a few base steps a call).

Modes: "quick" (the default; every task, small sizes, opd-near on 3 instances x 3 seeds and the rest on 3 instances;
sized to about 30 minutes on two cores),
"full" (the whole grid and every row on three seeds, larger budgets; sized for a GPU, and with the held-out tasks),
"heldout" (only the held-out tasks, at the quick sizes: other learning rates and another loss than the benchmark's,
which no default was chosen on), "real" (`opd-smol` and `opd-smol-lr1e-06`: OPD on a real pretrained LM,
SmolLM2-135M-Instruct, pruned and recovered, reference/smol.py, from two users' default lrs; `make real`;
benchmarks/real.py says what it runs; EFFOPT_SMOL_SIZE=gpu for the GPU size) and "smoke" (the harness itself, in
seconds).
"""

from __future__ import annotations

import functools
import os

from benchmarks.loops import (
    classic_run,
    echo_run,
    echo_task,
    opd_run,
    opd_task,
    sft_run,
    trl_distill_run,
)
from benchmarks.race import (  # noqa: F401 (BASELINE, grid_name, optimizer_of, Task: importable from here as before)
    BASELINE,
    PEERS,
    TUNED,
    Task,
    diagonal,
    every,
    grid_name,
    optimizer_of,
)
from benchmarks.real import real_tasks

MODE = os.environ.get("EFFOPT_BENCH_MODE", "quick")
if MODE not in ("quick", "full", "smoke", "heldout", "real"):
    raise ValueError(f"EFFOPT_BENCH_MODE: expected 'quick', 'full', 'smoke', 'heldout' or 'real', got {MODE!r}")
_SEEDS = os.environ.get("EFFOPT_BENCH_SEEDS", "3")
if not _SEEDS.isdigit() or int(_SEEDS) < 1:
    raise ValueError(
        f"EFFOPT_BENCH_SEEDS: expected a positive int (the seeds of every quick and full task), got {_SEEDS!r}"
    )
SEEDS = tuple(range(int(_SEEDS)))  #: seeds 0, 1, ... of every task in the quick and full modes (default 3)
_INSTANCES = os.environ.get("EFFOPT_BENCH_INSTANCES", "3")
if not _INSTANCES.isdigit() or not 1 <= int(_INSTANCES) <= 3:
    raise ValueError(f"EFFOPT_BENCH_INSTANCES: expected 1, 2 or 3 (the shipped instances), got {_INSTANCES!r}")
INSTANCES = tuple(range(int(_INSTANCES)))  #: the instances of every post-training task (default 3)
_THREADS = os.environ.get("EFFOPT_BENCH_THREADS", "2")
if not _THREADS.isdigit() or int(_THREADS) < 1:
    raise ValueError(f"EFFOPT_BENCH_THREADS: expected a positive int, got {_THREADS!r}")
#: torch's CPU threads in every run (default 2, the machine the committed results come from): a reduction split over
#: another number of threads adds in another order, so the thread count is part of what makes two machines agree
THREADS = int(_THREADS)

#: What a user would pick instead of the baseline (the race's headline, on every seed), and effopt's rows: the default
#: at the task's lr and at the tuned lr, the default without its persistent step size (effopt.StepScale), and the
#: default with a guard on the retained skill (effopt.Guard).
HEADLINE = (BASELINE, TUNED, "prodigy", "effopt", "effopt-tuned", "effopt-noscale", "effopt-guard", "effopt-budget")
# Rows that say which change bought what: the published rule, then its probe swapped for the smooth loss, then the
# search swapped for the quadratic line search, then the schedule swapped for Backoff (effopt-noscale), then effopt
# adds the step scale; and a denoised direction.
ABLATIONS = ("effopt-paper-loss", "effopt-quadratic", "effopt-backoff5", "effopt-lowrank")
GRID = (3, 10, 30)  #: AdamW's lr grid, as multiples of the task's lr (1x is `adamw` itself)
#: One probe call's cost in base steps, per task, declared so that effopt-budget's events are the same on every machine:
#: the median over the effopt rows of `python -m benchmarks.probe_costs benchmarks/results/benchmark.json` on the
#: results made at addd19d (AMD EPYC, family 25, model 17, 2 threads), rounded to two figures.
PROBE_COSTS = {
    "opd-near": 0.23,
    "opd-near-costly-probe": 5.4,
    "sft": 0.59,
    "echodistill": 0.88,
    "trl-distill": 0.16,
    "opd-grpo": 0.31,
    "opd-far": 0.23,
    "classic": 0.61,
}


def tasks(mode: str = MODE) -> list[Task]:
    if mode == "real":  # the real model's race, from both users' defaults: benchmarks/real.py
        return real_tasks(SEEDS)
    if mode == "smoke":  # two seeds on instance 0 and one on instance 1, whose first seed runs its own grid
        return [
            Task(
                "classic",
                "from scratch",
                classic_run(40),
                lambda instance: None,
                3e-3,
                "MLP from scratch, 40 steps",
                cases=((0, 0), (0, 1), (1, 0)),
                others=(),
                headline=(BASELINE, TUNED, "effopt", "effopt-tuned"),
                grid=(3,),
                metric_examples=2048,
            )
        ]
    from reference.echodistill import SIZES as ECHO_SIZES
    from reference.opd import SIZES as OPD_SIZES

    full = mode == "full"
    size = "gpu" if full else "quick"
    steps = 600 if full else 300
    opd_examples, echo_examples = OPD_SIZES[size].splits["eval"], ECHO_SIZES[size]["n_eval"]
    near = "capable student (about 60% exact match) that also knows a second skill (reversal, about 99%), small lr"
    on_every, on_diagonal = every(INSTANCES, SEEDS), diagonal(INSTANCES, SEEDS)
    # quick (about 25 minutes on two cores): opd-near's baseline, tuned lr and default on every instance x seed, its
    # lr-free peer and the default at the tuned lr on one seed an instance, schedule-free AdamW and the published rule
    # on the first case; the other post-training races on the diagonal, their variants on the first case. Left out of
    # the quick mode, as telling nothing the rows kept do not (REPORT.md says so): effopt-budget outside the
    # costly-probe task (a probe that costs little leaves it nothing to do), Prodigy, adamw-tuned and effopt-tuned
    # through TRL (opd-near has them on the same cases), effopt-noscale where nothing is to gain and on opd-near's
    # instances (sft's first case shows what the step scale buys; benchmarks/results/step-scale compares the rules on
    # every case), the ablation chain between the published rule and the default, and the peers far behind it on the
    # committed quick runs (lookahead never reached the target; expo 1.75x to the default's 4.67x).
    race = (
        dict(cases=on_every, headline=HEADLINE, grid=GRID)
        if full
        else dict(cases=on_diagonal, headline=(BASELINE, TUNED, "prodigy", "effopt"), grid=GRID)
    )
    near_race = (
        race
        if full
        else dict(
            race,
            cases=on_every,
            headline=(BASELINE, TUNED, "effopt"),
            sparse=("prodigy", "effopt-tuned"),
        )
    )
    no_harm = dict(
        cases=on_every if full else on_diagonal,
        headline=(BASELINE, "effopt") if mode == "quick" else (BASELINE, "effopt", "effopt-noscale", "effopt-budget"),
    )
    others = PEERS + ABLATIONS if full else ("effopt-paper", "schedulefree")
    others_short = PEERS if full else ("effopt-tuned", "effopt-noscale", "effopt-paper", "effopt-guard")
    near_task = functools.partial(opd_task, "near-teacher", size)
    far_task = functools.partial(opd_task, "far", size)
    # opd-near seen from where its users stand: its lr grid picks their tuned lr (the same world and prompts)
    views = dict(cases=on_every if full else on_diagonal, grid=(), others=(), tuned_from="opd-near")
    listed = [
        Task(
            "opd-near",
            "post-training",
            opd_run("near-teacher", size, steps, "full"),
            near_task,
            1e-5,
            f"OPD, {near} 1e-5, full-vocabulary reverse KL, {steps} steps",
            others=others,
            metric_examples=opd_examples,
            **near_race,
        ),
        Task(
            "sft",
            "post-training",
            sft_run(size, steps),
            near_task,
            3e-6,
            f"supervised fine-tuning of the OPD task's {near} 3e-6, {steps} steps",
            others=others_short,
            metric_examples=opd_examples,
            **race,
        ),
        Task(
            "echodistill",
            "post-training",
            echo_run(size, 200 if full else 150, 15),
            functools.partial(echo_task, size),
            1e-3,
            "EchoDistill (full method) of the clean-trained audio LM on noisy audio; metric: Noisy (agreement "
            "of the noisy prediction with the clean teacher's answer) at -10 dB; retained: accuracy on clean audio",
            others=others_short,
            metric_examples=echo_examples,
            **race,
        ),
        # Seconds where the probe costs something: opd-near with effopt reading the reverse KL on the student's own
        # samples (reference.opd.make_probes "rollout", a few base steps a call) instead of the teacher-forced one.
        # Its probe-free rows are opd-near's runs: the loop differs only in effopt's probe.
        Task(
            "opd-near-costly-probe",
            "post-training",
            opd_run("near-teacher", size, steps, "full", probe="rollout"),
            near_task,
            1e-5,
            f"opd-near, effopt's probe the reverse KL on its own samples, 4 of each of 128 fixed "
            f"prompts (common random numbers), {steps} steps",
            metric_examples=opd_examples,
            same_runs_as="opd-near",
            **dict(views, headline=(BASELINE, TUNED, "effopt", "effopt-budget")),
        ),
        # opd-near where its users run it: TRL's DistillationTrainer, effopt through its callback; one seed an instance
        Task(
            "trl-distill",
            "post-training",
            trl_distill_run(size, steps),
            near_task,
            1e-5,
            f"opd-near through TRL's DistillationTrainer: OPD, {near} 1e-5, full-vocabulary reverse KL, {steps} steps",
            metric_examples=opd_examples,
            **dict(
                views,
                headline=(BASELINE, TUNED, "prodigy", "effopt", "effopt-tuned") if full else (BASELINE, "effopt"),
            ),
        ),
        # Do no harm: where extrapolation is not expected to pay, on every case.
        Task(
            "opd-grpo",
            "RL (post-training)",
            opd_run("near-teacher", size, steps, "grpo"),
            near_task,
            1e-5,
            f"RL on the OPD task's {near} 1e-5: exact-match reward, GRPO advantages over 8 samples, {steps} steps",
            others=(),
            metric_examples=opd_examples,
            **no_harm,
        ),
        Task(
            "opd-far",
            "far from the teacher, tuned lr",
            opd_run("far", size, steps, "full"),
            far_task,
            5e-4,
            f"OPD, barely trained student (about 5%), AdamW's best lr 5e-4, full-vocabulary reverse KL, {steps} steps",
            others=("prodigy",) + (PEERS if full else ()),
            metric_examples=opd_examples,
            **no_harm,
        ),
        Task(
            "classic",
            "from scratch",
            classic_run(1500 if full else 600),
            lambda instance: None,
            3e-3,
            "MLP on a random teacher's labels, from scratch, AdamW lr 3e-3 (tuned)",
            others=("prodigy",) + (PEERS if full else ()),
            metric_examples=2048,
            **dict(no_harm, cases=on_every),
        ),
    ]
    if not full:  # declared at the quick sizes, where they were measured
        for task in listed:
            task.probe_cost = PROBE_COSTS.get(task.name)
    held_out = []  # not in the quick mode: other learning rates, and the sampled-token loss of the EffOPD code
    if mode == "heldout":  # the defaults against AdamW, and nothing else
        no_harm = dict(no_harm, others=())
    if full or mode == "heldout":
        for lr in (3e-6, 3e-5):
            held_out.append(
                Task(
                    f"opd-near-lr{lr:g}",
                    "post-training",
                    opd_run("near-teacher", size, steps, "full"),
                    near_task,
                    lr,
                    f"OPD, {near} {lr:g}, full-vocabulary reverse KL",
                    metric_examples=opd_examples,
                    **no_harm,
                )
            )
        for lr in (2e-4, 1e-3):
            held_out.append(
                Task(
                    f"opd-far-lr{lr:g}",
                    "far from the teacher",
                    opd_run("far", size, steps, "full"),
                    far_task,
                    lr,
                    f"OPD, barely trained student, lr {lr:g}",
                    metric_examples=opd_examples,
                    **no_harm,
                )
            )
        held_out.append(
            Task(
                "opd-near-sampled",
                "post-training",
                opd_run("near-teacher", size, steps, "sampled"),
                near_task,
                1e-5,
                f"OPD, {near} 1e-5, sampled-token reverse KL (EffOPD's form)",
                metric_examples=opd_examples,
                **dict(no_harm, others=PEERS + ABLATIONS) if full else no_harm,
            )
        )
    return held_out if mode == "heldout" else listed + held_out
