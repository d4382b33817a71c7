"""The prunebench plugin's hooks, called in process on stand-ins for pytest's objects.

A real `pytest bench` costs an interpreter start-up and the imports of torch and transformers
(5-10 s a run, more under xdist). tests/e2e keeps one such run per behaviour; everything else
about the plugin's wiring (an option refused in `pytest_configure`, a model or the results
directory refused in `pytest_collection_finish`, the case ids, a user error failing one case,
the exit status set at the end, the summary) is checked by calling the hook itself here.

The stand-ins carry only what `bench.harness.plugin` reads: options come from the plugin's own
`pytest_addoption`, so a new option needs nothing here.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from types import SimpleNamespace

import pytest

from bench.harness import plugin

REPO = Path(__file__).resolve().parents[1]
BENCH_DIR = REPO / "bench"
#: The benchmark matrix test (`bench/test_matrix.py`), for suites that copy it into a pytester dir.
MATRIX = (BENCH_DIR / "test_matrix.py").read_text()


class _OptionRecorder:
    """A parser stand-in for `plugin.pytest_addoption`: records each option's default and action."""

    def __init__(self):
        self.options: dict[str, dict] = {}

    def getgroup(self, *args, **kwargs):
        return self

    def addoption(self, name, **kwargs):
        self.options[name] = kwargs


def _plugin_options() -> dict[str, dict]:
    recorder = _OptionRecorder()
    plugin.pytest_addoption(recorder)
    return recorder.options


class FakeConfig:
    """What the plugin reads of a `pytest.Config`, for `pytest <paths> <args>`.

    Args:
        args: the command line's options, as a user types them (`--law p3`, `--law=p3`).
        paths: the paths pytest collects (default: bench/, as in `pytest bench`).
        collectonly: as `--collect-only`.
    """

    def __init__(self, args=(), paths=(str(BENCH_DIR),), collectonly: bool = False):
        self.args = list(paths)
        self.invocation_params = SimpleNamespace(args=tuple([*paths, *args]))
        self.stash = pytest.Stash()
        # No terminal reporter: the plugin's progress lines go nowhere.
        self.pluginmanager = SimpleNamespace(get_plugin=lambda name: None)
        declared = _plugin_options()
        self._values = {name: spec.get("default") for name, spec in declared.items()}
        self._values["collectonly"] = collectonly
        rest = list(args)
        while rest:
            arg = rest.pop(0)
            name, _, value = arg.partition("=")
            if name not in declared:
                raise ValueError(f"{name} is not an option of the prunebench plugin")
            action = declared[name].get("action")
            if action == "store_true":
                self._values[name] = True
                continue
            if not _:
                value = rest.pop(0)
            if action == "append":
                self._values[name] = [*(self._values[name] or []), value]
            else:
                self._values[name] = declared[name].get("type", str)(value)

    def getoption(self, name):
        return self._values[name]


@contextlib.contextmanager
def configured(*args, paths=(str(BENCH_DIR),), collectonly: bool = False):
    """`pytest_configure` on `args`; yields the config (its session at `session_of(config)`).

    Raises pytest.UsageError where `pytest bench` would stop with exit status 4. The hook
    exports nothing to the environment (the run's directories live in its `RunEnv`), so there
    is nothing to put back afterwards.
    """
    config = FakeConfig(args, paths, collectonly)
    plugin.pytest_configure(config)
    yield config


def session_of(config):
    """The `BenchSession` the plugin built for `config`."""
    return config.stash[plugin.SESSION_KEY]


def usage_error(*args, **kwargs) -> str:
    """The message `pytest_configure` refuses `args` with (fails the test if it accepts them)."""
    with pytest.raises(pytest.UsageError) as info:
        with configured(*args, **kwargs):
            pass
    return str(info.value)


def matrix_ids(config) -> list[str]:
    """The test ids `pytest_generate_tests` gives the matrix test (`test_case[<id>]`)."""
    calls = []
    metafunc = SimpleNamespace(fixturenames=["bench_case", "run_case"], config=config,
                               parametrize=lambda name, values, ids: calls.append((name, list(values), ids)))
    plugin.pytest_generate_tests(metafunc)
    ((name, _, ids),) = calls
    assert name == "bench_case"
    return list(ids)


def collection_finish(config, cases) -> None:
    """`pytest_collection_finish` after `cases` were collected and selected (single process).

    Runs the preflight checks and takes the results directory, or raises pytest.UsageError.
    """
    items = [SimpleNamespace(fixturenames=("bench_case", "run_case"), callspec=SimpleNamespace(params={"bench_case": c}))
             for c in cases]
    plugin.pytest_collection_finish(SimpleNamespace(config=config, items=items))


def case_runner(config):
    """The plugin's `run_case` fixture for one test: returns (run, user_properties)."""
    node = SimpleNamespace(user_properties=[])
    run = plugin.run_case.__wrapped__(SimpleNamespace(node=node, config=config), session_of(config))
    return run, node.user_properties


class BenchmarkStandIn:
    """What the matrix test uses of pytest-benchmark's fixture: one pedantic round, and
    ``extra_info`` (the real fixture times it; the e2e smoke run goes through it)."""

    def __init__(self):
        self.extra_info: dict = {}
        self.calls = 0

    def pedantic(self, target, args=(), kwargs=None, rounds=1, iterations=1):
        self.calls += 1
        return target(*args, **(kwargs or {}))


def session_finish(config) -> pytest.ExitCode:
    """`pytest_sessionfinish` of a run whose tests all passed; returns the exit status it leaves."""
    session = SimpleNamespace(config=config, exitstatus=pytest.ExitCode.OK)
    plugin.pytest_sessionfinish(session, pytest.ExitCode.OK)
    return session.exitstatus


def summary(config) -> list[str]:
    """The lines `pytest_terminal_summary` writes (its section title first, as `== title ==`)."""
    lines: list[str] = []
    reporter = SimpleNamespace(section=lambda title, **kw: lines.append(f"== {title} =="),
                               write_line=lambda line, **kw: lines.append(line))
    plugin.pytest_terminal_summary(reporter, pytest.ExitCode.OK, config)
    return lines
