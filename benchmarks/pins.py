"""The CPU kernels a benchmark run computes with: pinned on request (EFFOPT_BENCH_KERNELS=pinned), so that a run
gives the same bits on any Intel x86-64 CPU with AVX2, with or without AVX-512 (measured:
benchmarks/results/kernels/KERNELS.md, `make kernels`).

Left alone, three libraries inside torch each pick their code path by the CPU they find: ATen's vectorised kernels
(AVX-512 or AVX2), MKL's BLAS and vector maths (a branch per CPU) and oneDNN's convolutions (AVX-512 or AVX2). Each
path adds in its own order, so a run's last bits differ from CPU to CPU, and a loop that samples (EchoDistill) turns
those bits into other answers and another race. Pinned: the AVX2 path of all three (MKL's through its conditional
numerical reproducibility, CNR). The thread count is pinned beside them, always (benchmarks.tasks.THREADS).

Why not by default, as measured: the pins make the race slower on an AVX-512 CPU (1.10 times the seconds in
KERNELS.md's first cases; the first 15 runs of a pinned `make bench` took 17-19 s against 15.6-16.3 s, which put it
past its 30 minutes), and they do not reach another vendor's CPU: MKL honours its CNR branches on Intel CPUs only (an
emulated AMD EPYC-Milan computes the same digests pinned as unpinned), and on an AMD CPU takes its own path unless
MKL_CBWR=COMPATIBLE, which made 100 opd-near steps 1.6 times slower here. The committed results are this CPU's own
kernels (`native`).

Set on import, before torch computes anything (benchmarks/conftest.py imports this first).
"""

from __future__ import annotations

import os

#: environment -> value, read by ATen, MKL and oneDNN on their first use in the process
PINS = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
_KERNELS = os.environ.get("EFFOPT_BENCH_KERNELS", "native")
if _KERNELS not in ("pinned", "native"):
    raise ValueError(f"EFFOPT_BENCH_KERNELS: expected 'pinned' or 'native', got {_KERNELS!r}")
PINNED = _KERNELS == "pinned"


if PINNED:  # before torch computes anything: each library reads its variable on its first use
    for _name, _value in PINS.items():
        if os.environ.setdefault(_name, _value) != _value:
            raise ValueError(f"{_name}: the benchmark pins it to {_value!r}, got {os.environ[_name]!r}")


def pin() -> dict[str, str]:
    """This process's kernels, as a run records them beside its results (the pins themselves are set on import).
    Raises where the pins were asked for but torch chose its kernels before they were set."""
    import torch

    if PINNED:
        if torch.backends.cpu.get_cpu_capability() != "AVX2":
            raise RuntimeError(
                f"torch runs its {torch.backends.cpu.get_cpu_capability()} kernels: import benchmarks.pins before "
                "torch computes anything (or this CPU lacks AVX2: leave EFFOPT_BENCH_KERNELS unset)"
            )
    return {
        "kernels": _KERNELS,
        **{name: os.environ.get(name, "") for name in PINS},
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
    }
