"""The CPU kernels' vector ISA, pinned, so a figure made on the CPU is the same on every x86-64.

torch's own kernels (ATen) and MKL's each pick their code for the CPU's widest vector ISA. The
kernels of AVX2 and AVX-512 add in different orders, so the same commit pre-trains a
different nano zoo on an AVX-512 machine than on an AVX2 one (base losses up to 0.025 nats
apart, measured), and every law figure moves with it. prunebench therefore pins the ISA to
AVX2, which every x86-64 machine it runs on has, through the libraries' own settings
(`SETTINGS`), before either initialises. The set is the smallest that made a zoo base's weights
bitwise identical under the native ISA (AVX-512) and under AVX2 forced on every library, on one
machine (docs/reproducibility.md, "The ISA experiment"):

* ``ATEN_CPU_CAPABILITY=avx2``: ATen's vectorised kernels (norms, softmax, AdamW's arithmetic);
* ``MKL_CBWR=AVX2,STRICT``: MKL's GEMMs on their AVX2 code path, in MKL's strict conditional
  numerical reproducibility mode, which also makes a GEMM's result independent of the thread
  count (1 and 2 threads gave the same weights; without STRICT they did not).

oneDNN's ISA (``ONEDNN_MAX_CPU_ISA``) made no difference to the weights (the models' matmuls go
through MKL), so it is left alone.

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

from bench.errors import UsageError

ISA_ENV = "PRUNEBENCH_CPU_ISA"
PINNED = "avx2"
#: The settings that pin the ISA (the module docstring says why these two).
SETTINGS = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2,STRICT"}
X86 = ("x86_64", "amd64", "i386", "i686")


def wanted() -> str | None:
    """The ISA to pin to: "avx2" on x86, None when ``PRUNEBENCH_CPU_ISA=native`` or elsewhere."""
    choice = os.environ.get(ISA_ENV, PINNED).strip().lower() or PINNED
    if choice == "native" or platform.machine().lower() not in X86:
        return None
    if choice != PINNED:
        raise UsageError(f"${ISA_ENV} must be {PINNED} or native, got {choice!r}; unset it to pin the CPU "
                         f"kernels to {PINNED}")
    return choice


def pin() -> None:
    """Set the pinning variables (those the user has not set) before torch initialises.

    Never raises: it runs at import time, where an error would be a traceback. A bad
    ``PRUNEBENCH_CPU_ISA`` pins nothing here, and the run's start (`wanted`, called by the
    plugin's configure and the CLI) refuses it in one line.
    """
    try:
        if wanted() is None:
            return
    except UsageError:
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
