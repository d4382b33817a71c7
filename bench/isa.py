"""The CPU kernels' vector ISA, pinned, so a figure made on the CPU is the same on every x86-64.

torch (ATen), oneDNN and MKL each pick their kernels for the CPU's widest vector ISA. The
kernels of AVX2 and AVX-512 add in different orders, so the same commit pre-trains a
different nano zoo on an AVX-512 machine than on an AVX2 one (base losses up to 0.025 nats
apart, measured), and every law figure moves with it. prunebench therefore pins the ISA to AVX2,
which every x86-64 machine it runs on has, through the libraries' own settings (`SETTINGS`),
before any of them initialises:

* `pin` is called when the pytest plugin is imported and when a `prunebench` command starts,
  before torch is imported; it sets the variables in ``os.environ``, so every process started
  from there inherits them: the zoo's builder processes, xdist workers and distributed ranks;
* a variable the user has set is left as it is (their choice wins, and the record says it);
* ``PRUNEBENCH_CPU_ISA=native`` turns the pin off (the libraries' own choice, as before);
* on other architectures (arm64) there is nothing to pin: the kernels differ from x86's anyway.

`state` is what a record keeps: its provenance compares it (`--resume` reruns a case whose
records were made under another pin), and the machine block shows it.
"""

from __future__ import annotations

import os
import platform
import sys

ISA_ENV = "PRUNEBENCH_CPU_ISA"
PINNED = "avx2"
#: The settings that pin the ISA, the smallest set that made a zoo base's weights identical
#: under AVX2 and AVX-512 on one machine (docs/results: the ISA experiment).
SETTINGS = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2",
            "MKL_CBWR": "AVX2"}
X86 = ("x86_64", "amd64", "i386", "i686")


def wanted() -> str | None:
    """The ISA to pin to: "avx2" on x86, None when ``PRUNEBENCH_CPU_ISA=native`` or elsewhere."""
    choice = os.environ.get(ISA_ENV, PINNED).strip().lower() or PINNED
    if choice == "native" or platform.machine().lower() not in X86:
        return None
    if choice != PINNED:
        raise ValueError(f"${ISA_ENV} must be {PINNED} or native, got {choice!r}")
    return choice


def pin() -> None:
    """Set the pinning variables (those the user has not set) before torch initialises."""
    if wanted() is None:
        return
    for name, value in SETTINGS.items():
        os.environ.setdefault(name, value)


def state() -> dict:
    """What the run's CPU kernels were pinned to, for provenance and the machine block:
    ``pinned`` (the ISA, or None), the variables as set, and the capability ATen reports."""
    out = {"pinned": wanted(), "settings": {name: os.environ.get(name) for name in SETTINGS}}
    if "torch" in sys.modules:
        import torch

        out["capability"] = torch.backends.cpu.get_cpu_capability()
    return out
