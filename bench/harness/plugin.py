"""The prunebench pytest plugin: options, the `bench_case` parametrisation, and summaries.

Registered through the ``pytest11`` entry point ``prunebench`` (as pytest-benchmark registers
its own), so an installed prunebench runs from any directory:
``pytest --pyargs bench --study my.toml``. It stays inert in runs that select no benchmark
case: `pytest tests` never reads a study.

Thin on purpose: each hook forwards to `bench.harness.session.BenchSession`, which holds the logic
and is tested without pytest. `pytest_configure` turns the options into the run's command line
(`bench.harness.run_config.CommandLine`, merged into the study once) and its environment
(`bench.env.RunEnv`, with a progress display that writes through the terminal reporter with
capture suspended, so a cold zoo build is not ten silent minutes).
"""

from __future__ import annotations

import contextlib
import os
import sys

from bench import isa

isa.pin()  # before torch initialises, in this process and every process it starts

import pytest  # noqa: E402

from bench.errors import USER_ERRORS, UsageError, one_line  # noqa: E402
from bench.studies.profiles import DEFAULT_PROFILE, profile_help  # noqa: E402
from fitting.laws import LAWS  # noqa: E402

SESSION_KEY = pytest.StashKey["BenchSession"]()


def pytest_addoption(parser):
    group = parser.getgroup("prunebench", "prunebench benchmark suite")
    group.addoption("--profile", default=os.environ.get("PRUNEBENCH_PROFILE", DEFAULT_PROFILE),
                    help=f"which benchmark matrix to run (default {DEFAULT_PROFILE}). {profile_help()}")
    group.addoption("--study", default=None, metavar="FILE",
                    help="run the matrix a study file declares instead of a built-in profile (TOML; copy one "
                         "from `prunebench studies list`); its law, held-out sizes and gates are the defaults")
    group.addoption("--data-dir", default=None,
                    help="local data directory laid out like shared/data (default $PRUNEBENCH_DATA_DIR, else the HF hub)")
    group.addoption("--results-dir", default=None,
                    help="where records, report.md and plots go (default $PRUNEBENCH_RESULTS_DIR, else ./results)")
    group.addoption("--cache-dir", default=None,
                    help="cache: GGUF conversions, the nano zoo, tokenised corpora (default $PRUNEBENCH_CACHE_DIR, else "
                         "~/.cache/prunebench)")
    group.addoption("--models-dir", default=None, metavar="DIR",
                    help="local models directory: a hub id org/name loads from DIR/org/name (a save_pretrained "
                         "directory) before the HF cache and the hub (default $PRUNEBENCH_MODELS_DIR)")
    group.addoption("--device", default=None, help="torch device (default cuda when available, else cpu)")
    group.addoption("--full-eval", action="store_true", default=False,
                    help="evaluate the full test sets instead of the profile's window caps")
    group.addoption("--resume", action="store_true", default=False,
                    help="skip cases whose stored record exists and matches their config")
    group.addoption("--threads", type=int, default=os.environ.get("PRUNEBENCH_THREADS") or None,
                    help="torch CPU threads for the run (default $PRUNEBENCH_THREADS, else one per core); "
                         "use 1 on a machine shared with other jobs, where idle-spinning threads stall")
    group.addoption("--seeds", type=int, default=None, metavar="N",
                    help="run every case under seeds 0..N-1 (the zoo pre-trained and the recipe's data order, "
                         "dropout and LoRA initialisation drawn again per seed; ids end in -s<seed>), fit the law "
                         "once per seed and report each figure's spread (default: the study's seeds, one)")
    group.addoption("--law", default=None,
                    help=f"scaling law fitted at the end ({', '.join(LAWS)}; default: the study's, p2)")
    group.addoption("--holdout", action="append", default=None, metavar="SIZE",
                    help="model size key to hold out for extrapolation (repeatable; default: the largest per family)")
    group.addoption("--max-extrapolation-error", action="append", default=None, metavar="[TEST][:GROUP][:MEASURE]=PCT",
                    help="gate on the law (repeatable): fail when a group's error in TEST (larger-d, larger-n0 "
                         "(default), higher-rho) exceeds PCT, on L (MEASURE mape, default) or on the recovery gap "
                         "L-L0 at the final checkpoint (gap); GROUP picks groups by family, method or key; a group "
                         "whose fit is not identified fails with the reason (e.g. larger-n0:depth=2%%, 5%%)")
    group.addoption("--baseline", default=None, metavar="DIR",
                    help="gate: results directory (or record file) of a stored run to compare perplexities with")
    group.addoption("--max-ppl-regression", default=None, metavar="PCT",
                    help="gate: fail when a perplexity is more than PCT worse than in --baseline (e.g. 2%%)")
    group.addoption("--max-control-improvement", default=None, metavar="PCT",
                    help="gate: fail when a control case (unpruned base, same recipe) improves its held-out "
                         "loss by more than PCT, i.e. the bases are not at a plateau (e.g. 1%%)")
    group.addoption("--no-report", action="store_true", default=False,
                    help="do not fit the law or write report.md at the end")
    group.addoption("--no-progress", action="store_true", default=False,
                    help="show no progress of long work (zoo pre-training, post-training, evaluations); by "
                         "default a terminal gets a live line and a log one line per finished phase")


def pytest_configure(config):
    from bench.env import RunEnv, default_results_dir
    from bench.harness.run_config import CommandLine
    from bench.harness.session import BenchSession

    opt = config.getoption
    try:
        isa.wanted()  # a bad $PRUNEBENCH_CPU_ISA, refused here (pin ignores it)
        cli = CommandLine(
            study=_matrix(config), full_eval=opt("--full-eval"), resume=opt("--resume"), report=not opt("--no-report"),
            threads=opt("--threads"), seeds=opt("--seeds"), law=opt("--law"), holdout=tuple(opt("--holdout")) if opt("--holdout") else None,
            max_extrapolation_error=tuple(opt("--max-extrapolation-error") or ()) or None, baseline=opt("--baseline"),
            max_ppl_regression=opt("--max-ppl-regression"), max_control_improvement=opt("--max-control-improvement"))
        env = RunEnv.make(data_dir=opt("--data-dir"), cache_dir=opt("--cache-dir"), models_dir=opt("--models-dir"),
                          results_dir=default_results_dir(opt("--results-dir")), device=opt("--device"),
                          progress=_progress(config))
        session = BenchSession(cli, env)
        if _may_collect_cases(config):
            # The study, its law, held-out sizes and gates, read and checked once, before any
            # case spends compute (a run of `pytest tests` never reads one).
            session.config  # noqa: B018
            # The code identity records carry, taken now: a commit made while a long run goes on
            # is not the code that run loaded.
            from bench.harness.provenance import code_identity

            code_identity()
    except USER_ERRORS as exc:
        raise pytest.UsageError(one_line(exc)) from None
    config.stash[SESSION_KEY] = session
    worker = getattr(config, "workerinput", None)
    # Every record says which command made it; an xdist worker's is its controller's.
    session.argv = list(worker["mainargv"]) if worker is not None else list(sys.argv)
    if worker is not None:
        session.run_id = worker["testrunuid"]
    if worker is not None and worker.get("prunebench_cuda_device") is not None:
        # One GPU per xdist worker; set before anything in this process initialises CUDA.
        os.environ["CUDA_VISIBLE_DEVICES"] = worker["prunebench_cuda_device"]


def _progress(config):
    """Progress through the terminal reporter with capture suspended: a live line in a terminal,
    one line per phase in a log; none for an xdist worker (its output is not shown)."""
    from bench.progress import Live, Log

    if getattr(config, "workerinput", None) is not None or config.getoption("--no-progress"):
        return None

    def write(text: str) -> None:
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        capture = config.pluginmanager.get_plugin("capturemanager")
        if reporter is None:
            return
        with capture.global_and_fixture_disabled() if capture is not None else contextlib.nullcontext():
            if not text.startswith(("\r", "\n")):
                reporter.ensure_newline()  # a log line starts below the test dots
            reporter.write(text)
            reporter.flush()

    return Live(write) if sys.stdout.isatty() else Log(write)


def _may_collect_cases(config) -> bool:
    """Whether this run can collect benchmark cases: a matrix named (command line or
    $PRUNEBENCH_PROFILE), or a path to collect in or above bench/. `pytest tests/x.py` skips
    loading the study, which imports every pruning method (about 5 CPU seconds at each start);
    a case collected anyway still loads it, in pytest_generate_tests."""
    from pathlib import Path

    if os.environ.get("PRUNEBENCH_PROFILE") or any(
            a.split("=")[0] in ("--profile", "--study") for a in config.invocation_params.args):
        return True
    bench_dir = Path(__file__).resolve().parent
    paths = [Path(str(a).split("::")[0]).resolve() for a in config.args]
    return not paths or any(p == bench_dir or bench_dir in p.parents or p in bench_dir.parents for p in paths)


def _matrix(config) -> str:
    """--study FILE (as an absolute path, the same for xdist workers), else --profile NAME."""
    from pathlib import Path

    study = config.getoption("--study")
    if study is None:
        return config.getoption("--profile")
    if any(a == "--profile" or a.startswith("--profile=") for a in config.invocation_params.args):
        raise UsageError("--study and --profile both name the matrix to run; give one of them")
    path = Path(study).expanduser()
    if not path.is_file():
        raise UsageError(f"--study {study}: no such file; pass the path of a study file (TOML), e.g. a copy of "
                         f"bench/studies/nano.toml")
    return str(path.resolve())


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node):
    """xdist controller, per worker: pin the worker to one GPU when several are visible."""
    session = node.config.stash[SESSION_KEY]
    session.run_id = node.workerinput["testrunuid"]  # one id for the controller and its workers
    index = int(str(node.workerinput.get("workerid", "gw0")).lstrip("gw") or 0)
    node.workerinput["prunebench_cuda_device"] = session.worker_cuda_device(index)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_node_collection_finished(node, ids):
    """xdist controller: take the results directory before the first case is scheduled."""
    bench = node.config.stash[SESSION_KEY]
    if bench.holds_results() or not any("test_matrix.py::" in i for i in ids):
        return  # not a benchmark run (e.g. `pytest tests -n 2`): no study is read
    cases = {f"[{c.id}]": c for c in bench.cases()}
    selected = [cases[i[i.rfind("["):]] for i in ids if i.endswith("]") and i[i.rfind("["):] in cases]
    if not selected:
        return  # not a benchmark run (e.g. `pytest tests -n 2`): leave the results directory alone
    try:
        # The workers skip the preflight checks; the controller runs them once, before the lock.
        bench.preflight(list(dict.fromkeys(selected)), collect_only=node.config.getoption("collectonly"))
        bench.acquire_results(bench.run_id, os.getpid())
    except USER_ERRORS as exc:
        pytest.exit(one_line(exc), returncode=pytest.ExitCode.USAGE_ERROR)


OUTCOME_PROPERTY = "prunebench_outcome"


def pytest_runtest_logreport(report):
    """xdist controller: collect each case's outcome as its worker reports it.

    Outcomes travel in the test report's user_properties, one report at a time, so the
    cases a worker finished before it crashed still count; the controller then fits and
    reports once, from the records on disk.
    """
    if getattr(report, "node", None) is None or report.when != "call":
        return  # not a report relayed from an xdist worker
    outcomes = [value for name, value in report.user_properties if name == OUTCOME_PROPERTY]
    if outcomes:
        report.node.config.stash[SESSION_KEY].add_worker_outcomes(outcomes)


def pytest_generate_tests(metafunc):
    if "bench_case" not in metafunc.fixturenames:
        return
    session = metafunc.config.stash[SESSION_KEY]
    try:
        cases = session.cases()
    except USER_ERRORS as exc:
        raise pytest.UsageError(one_line(exc)) from None
    metafunc.parametrize("bench_case", cases, ids=[c.id for c in cases])


def pytest_collection_finish(session):
    # Refuse unresolvable models, cases that cannot fit and an unwritable results directory
    # before any case spends compute, and before anything is written.
    if any("bench_case" in getattr(item, "fixturenames", ()) for item in session.items):
        bench = session.config.stash[SESSION_KEY]
        # The cases left after -k: what the session checks and prepares for (e.g. the nano zoo).
        selected = [item.callspec.params["bench_case"] for item in session.items
                    if "bench_case" in getattr(getattr(item, "callspec", None), "params", {})]
        try:
            # An xdist worker does neither: its controller checks the cases and takes the results
            # directory (`pytest_xdist_node_collection_finished`), so a refusal writes nothing.
            if getattr(session.config, "workerinput", None) is None:
                bench.preflight(selected, collect_only=session.config.getoption("collectonly"))
                bench.acquire_results(bench.run_id, os.getpid())  # writable, and not in use by another run
        except USER_ERRORS as exc:
            raise pytest.UsageError(one_line(exc)) from None
        bench.select(selected)


@pytest.fixture(scope="session")
def bench_session(request):
    """The run's `BenchSession` (records, runner, options)."""
    return request.config.stash[SESSION_KEY]


@pytest.fixture
def run_case(request, bench_session):
    """Run a case through the session; a user error fails the case with its one-line message."""

    def _run(case):
        before = len(bench_session.outcomes)
        try:
            return bench_session.run_case(case)
        except USER_ERRORS as exc:
            pytest.fail(f"{case.id}: {one_line(exc)}", pytrace=False)
        finally:
            for outcome in bench_session.outcomes[before:]:  # for an xdist controller
                request.node.user_properties.append((OUTCOME_PROPERTY, bench_session.outcome_summary(outcome)))

    return _run


def pytest_sessionfinish(session, exitstatus):
    bench = session.config.stash.get(SESSION_KEY, None)
    if bench is None:
        return
    if getattr(session.config, "workerinput", None) is not None:
        return  # an xdist worker: its outcomes went to the controller with each test report
    try:
        if bench.outcomes:
            fin = bench.finish()
            if fin.usage_error:
                session.exitstatus = pytest.ExitCode.USAGE_ERROR
            elif fin.failed_gates and session.exitstatus == pytest.ExitCode.OK:
                session.exitstatus = pytest.ExitCode.TESTS_FAILED
    finally:
        bench.release_results()


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    session = config.stash.get(SESSION_KEY, None)
    if session is None:
        return
    lines = session.summary_lines()
    if lines:
        terminalreporter.section("prunebench summary")
        for line in lines:
            terminalreporter.write_line(line)


@pytest.hookimpl(optionalhook=True)
def pytest_benchmark_update_machine_info(config, machine_info):
    """pytest-benchmark's saved runs say which study made them (see the compare hook)."""
    machine_info["prunebench"] = {"study": _study_name(config)}


@pytest.hookimpl(optionalhook=True)
def pytest_benchmark_compare_machine_info(config, benchmarksession, machine_info, compared_benchmark):
    """`--benchmark-compare` against a saved run of another study is refused in one line: its
    cases' timings measure other work."""
    saved = ((compared_benchmark.get("machine_info") or {}).get("prunebench") or {}).get("study")
    current = _study_name(config)
    if saved is not None and saved != current:
        raise pytest.UsageError(f"--benchmark-compare: the saved run is of study {saved!r} and this run is of study "
                                f"{current!r}; compare runs of one study (or save this one with --benchmark-autosave)")


def _study_name(config) -> str:
    """The study a run selects, as a name: a profile, or a study file's stem."""
    from pathlib import Path

    study = config.getoption("--study")
    return Path(study).stem if study else config.getoption("--profile")
