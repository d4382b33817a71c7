"""The unit tier runs in process: a test here that starts a Python process or builds a nano zoo
model fails, naming where it belongs.

tests/conftest.py marks a test from the fixtures it requests; this catches what no fixture
shows (a helper that calls `subprocess.run([sys.executable, ...])`, a case that needs a zoo
base). Other programs (git, for a record's code identity) may run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

_VENV_BIN = os.path.dirname(os.path.abspath(sys.executable))  # python, and console scripts (prunebench)


def _starts_python(args) -> bool:
    argv = args.split() if isinstance(args, str) else [os.fspath(a) for a in args] if isinstance(args, (list, tuple)) \
        else [os.fspath(args)]
    program = shutil.which(argv[0]) or argv[0] if argv else ""
    program = os.path.abspath(program)
    return os.path.dirname(program) == _VENV_BIN or os.path.basename(program).startswith("python")


@pytest.fixture(autouse=True)
def in_process_only(monkeypatch):
    from bench.training import zoo

    real_init = subprocess.Popen.__init__

    def popen(self, args, *rest, **kwargs):
        if _starts_python(args):
            pytest.fail(f"a unit test starts a Python process ({args!r}): it belongs in tests/integration "
                        "(request `child_env`), or call the code in process", pytrace=False)
        real_init(self, args, *rest, **kwargs)

    def build_base(family, size, *args, **kwargs):
        pytest.fail(f"a unit test builds the zoo model {family.name}-{size.key}: it belongs in "
                    "tests/integration (request `zoo_cache`)", pytrace=False)

    monkeypatch.setattr(subprocess.Popen, "__init__", popen)
    monkeypatch.setattr(zoo, "build_base", build_base)
