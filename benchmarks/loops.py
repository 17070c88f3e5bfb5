"""How each task of benchmarks.tasks runs its reference loop: a `*_run(...)` per loop gives the task's
`run(method, instance, seed, lr, steps=...)`, and a `*_task(...)` its world for an instance (loaded or built once per
process, before any clock starts). Nothing here re-implements a loop: each imports its module from reference/ (or
examples/) when it first runs.
"""

from __future__ import annotations

import functools

CLASSIC_DATA_SEED = 1234  # classic's instance 0 (reference.classic.ClassicConfig.data_seed); instance i adds i


def classic_run(steps: int):
    def run(method: str, instance: int, seed: int, lr: float, steps: int = steps) -> dict:
        from reference.classic import ClassicConfig, train

        return train(
            ClassicConfig(optimizer=method, steps=steps, seed=seed, lr=lr, data_seed=CLASSIC_DATA_SEED + instance)
        )

    return run


def opd_task_seed(instance: int, size: str) -> int:
    """The OPD task seed of an instance: the shipped instances' for the quick size (task seeds whose build fell short
    of the task's definition are skipped, see reference.ship), else the instance itself."""
    from reference.common import shipped_manifest

    seeds = shipped_manifest().get("opd_task_seeds", []) if size == "quick" else []
    return seeds[instance] if instance < len(seeds) else instance


@functools.cache
def opd_task(regime: str, size: str, instance: int):
    from reference import opd

    return opd.prepare(opd.OPDConfig(size=size, regime=regime, task_seed=opd_task_seed(instance, size)), progress=False)


def opd_run(regime: str, size: str, steps: int, loss: str, probe: str = "loss"):
    def run(method: str, instance: int, seed: int, lr: float, steps: int = steps) -> dict:
        from reference import opd

        cfg = opd.OPDConfig(
            size=size,
            regime=regime,
            optimizer=method,
            lr=lr,
            steps=steps,
            seed=seed,
            loss=loss,
            probe=probe,
            task_seed=opd_task_seed(instance, size),
        )
        return opd.train(cfg, task=opd_task(regime, size, instance), progress=False)

    return run


def trl_distill_run(size: str, steps: int):
    """opd-near's task through TRL's DistillationTrainer (examples/trl_distill.py: the same instance, prompts and
    batch; what still differs is in its docstring)."""

    def run(method: str, instance: int, seed: int, lr: float, steps: int = steps) -> dict:
        from examples import trl_distill
        from reference import opd

        cfg = opd.OPDConfig(
            size=size,
            regime="near-teacher",
            optimizer=method,
            lr=lr,
            steps=steps,
            seed=seed,
            loss="full",
            task_seed=opd_task_seed(instance, size),
        )
        result = trl_distill.train(cfg, task=opd_task("near-teacher", size, instance), progress=False)
        result.pop("log_history")  # the Trainer's own log: not part of the loop's result
        return result

    return run


def sft_run(size: str, steps: int):
    def run(method: str, instance: int, seed: int, lr: float, steps: int = steps) -> dict:
        from reference import sft

        cfg = sft.SFTConfig(
            size=size, optimizer=method, lr=lr, steps=steps, seed=seed, task_seed=opd_task_seed(instance, size)
        )
        return sft.train(cfg, task=opd_task("near-teacher", size, instance), progress=False)

    return run


@functools.cache
def echo_task(size: str, instance: int):
    from reference import echodistill

    return echodistill.prepare(echodistill.EchoConfig(size=size, model_seed=instance))


def echo_run(size: str, steps: int, eval_every: int):
    def run(method: str, instance: int, seed: int, lr: float, steps: int = steps) -> dict:
        from reference import echodistill

        cfg = echodistill.EchoConfig(
            size=size,
            optimizer=method,
            steps=steps,
            seed=seed,
            metric="noisy",
            lr=lr,
            eval_every=eval_every,
            final_all_snrs=False,
            model_seed=instance,
        )
        return echodistill.train(cfg, task=echo_task(size, instance), progress=False)

    return run


@functools.cache
def smol_task(size: str, instance: int):
    from reference import smol

    return smol.prepare(size)


def smol_run(size: str):
    """OPD on SmolLM2-135M-Instruct (reference/smol.py): one instance, the model as the package ships it."""

    def run(method: str, instance: int, seed: int, lr: float, steps: int | None = None) -> dict:
        from reference import smol

        return smol.train(
            smol.SmolConfig(size=size, optimizer=method, lr=lr, seed=seed, steps=steps),
            task=smol_task(size, instance),
            progress=False,
        )

    return run
