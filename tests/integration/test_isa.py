"""The CPU kernels' pinned vector ISA (issue 20 item 4): one zoo base built under the pin, under
AVX2 forced on every library, and under the native ISA, in fresh processes."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from bench import isa

pytestmark = pytest.mark.skipif(platform.machine().lower() not in isa.X86, reason="the pin is x86-64's")

#: Everything the libraries read to choose an ISA: a test process starts from none of them.
ALL_KNOBS = ("ATEN_CPU_CAPABILITY", "MKL_CBWR", "MKL_ENABLE_INSTRUCTIONS", "ONEDNN_MAX_CPU_ISA", isa.ISA_ENV)

BUILD = r"""
import hashlib, json, sys
from pathlib import Path
from bench import isa
isa.pin()  # as the plugin and the CLI do, before torch
import torch
from bench.env import RunEnv
from bench.training import zoo
from bench.training.zoo_families import BaseSize, Family, register_family
register_family(Family("isa-probe", "llama", (BaseSize("p1", 64, 2, 2, 1, 128, pretrain_tokens=16384, lr=3e-3),),
                       vocab_size=512, seq_len=64, batch_tokens=1024, eval_windows=4, tokenizer_docs=64,
                       pretrain_docs=64))
d = zoo.ensure("isa-probe-p1", RunEnv.make(cache_dir=sys.argv[1], data_dir=sys.argv[2]))
print(json.dumps({"sha": hashlib.sha256((d / "model.safetensors").read_bytes()).hexdigest(),
                  "capability": torch.backends.cpu.get_cpu_capability(), "state": isa.state()}))
"""


def build(tmp_path: Path, data_dir: Path, name: str, threads: int = 1, **env) -> dict:
    clean = {k: v for k, v in os.environ.items() if k not in ALL_KNOBS}
    clean.update(env, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    run = subprocess.run([sys.executable, "-c", BUILD, str(tmp_path / name), str(data_dir)], env=clean,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_pinned_weights_equal_forced_avx2_and_differ_from_native_avx512(tmp_path, data_dir):
    pinned = build(tmp_path, data_dir, "pinned")
    # AVX2 forced on every library the way an AVX2-only CPU would choose (the pin off): the pin's
    # two settings must give the same weights, so MKL's instruction cap and oneDNN's ISA add nothing.
    forced = build(tmp_path, data_dir, "forced", PRUNEBENCH_CPU_ISA="native", ATEN_CPU_CAPABILITY="avx2",
                   MKL_CBWR="AVX2,STRICT", MKL_ENABLE_INSTRUCTIONS="AVX2", ONEDNN_MAX_CPU_ISA="AVX2")
    two = build(tmp_path, data_dir, "two-threads", threads=2)
    assert pinned["capability"] == forced["capability"] == "AVX2"
    assert pinned["state"]["pinned"] == "avx2" and pinned["state"]["settings"] == isa.SETTINGS
    assert pinned["sha"] == forced["sha"]
    assert two["sha"] == pinned["sha"]  # MKL's strict mode: the thread count does not matter
    native = build(tmp_path, data_dir, "native", PRUNEBENCH_CPU_ISA="native")
    assert native["state"]["pinned"] is None
    if native["capability"] == "AVX2":
        pytest.skip("this CPU has no AVX-512: its native ISA is the pinned one (pinned == forced checked)")
    assert native["sha"] != pinned["sha"]  # the pin changes the kernels on this CPU


def test_pin_sets_what_the_user_left_unset_and_native_turns_it_off(monkeypatch):
    for name in ALL_KNOBS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MKL_CBWR", "COMPATIBLE")  # the user's choice wins, and the state says so
    isa.pin()
    assert os.environ["ATEN_CPU_CAPABILITY"] == "avx2" and os.environ["MKL_CBWR"] == "COMPATIBLE"
    assert isa.state()["settings"] == {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "COMPATIBLE"}
    monkeypatch.delenv("ATEN_CPU_CAPABILITY")
    monkeypatch.setenv(isa.ISA_ENV, "native")
    isa.pin()
    assert "ATEN_CPU_CAPABILITY" not in os.environ and isa.state()["pinned"] is None


def test_an_unknown_isa_choice_is_one_line_at_the_start_of_a_command(monkeypatch, capsys):
    from bench.cli import main

    monkeypatch.setenv(isa.ISA_ENV, "avx512")
    isa.pin()  # at import time: no traceback, nothing pinned
    assert main(["studies", "list"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "$PRUNEBENCH_CPU_ISA must be avx2 or native, got 'avx512'" in err
