"""The study's cost: the coarse multistart search against the full grid, and the whole report step.

    pytest tests/benchmarks/bench_study.py --benchmark-group-by=group
    PRUNEBENCH_BENCH_STUDY=1 pytest tests/benchmarks/bench_study.py -k report_step   # ~1-2 minutes on 2 cores

The main fit and every bootstrap replicate use the same search, so a study's cost is about
(1 + replicates) fits per group. `test_coarse_search_ratio` times the coarse grid (128 starts,
2 polished) with the full grid (2,187 starts, 5 polished) timed before each round on the
same nano-shaped runs, reports the ratio of the medians in ``extra_info``, and checks that
the coarse search reaches the full grid's optimum. `test_report_step_nano_shaped` runs the
whole study (3 groups of 4 sizes, 100 replicates, the three tests, six candidate forms) once;
it is opt-in because it takes a minute or two.
"""

from __future__ import annotations

import os
import statistics
import time

import pytest

from bench.harness.fit_runs import group_runs
from bench.harness.group_fit import FitConfig
from bench.harness.law_fit import fit_law
from fitting import fit, get_law
from synthetic_records import synthetic_records


def _runs():
    groups = group_runs(synthetic_records(noise=0.003))
    (runs,) = [rs for (f, m, r, s), rs in groups.items() if m == "depth"]
    return [r for r in runs if r.group != "s4"]  # the 9 fitted runs of a nano-shaped group


def test_coarse_search_ratio(benchmark):
    runs, law = _runs(), get_law("p2")
    units = {"N0": 1e6}
    full_times, fulls = [], []

    def setup():
        t = time.perf_counter()
        fulls.append(fit(runs, law, units=units))
        full_times.append(time.perf_counter() - t)

    coarse = benchmark.pedantic(lambda: fit(runs, law, units=units, starts=law.search_grid("coarse"), n_polish=2),
                                setup=setup, rounds=3, iterations=1)
    if not fulls:  # --benchmark-disable: the call ran once, without the setup hook
        setup()
    if not benchmark.disabled:
        ratio = statistics.median(full_times) / benchmark.stats.stats.median
        benchmark.extra_info.update(full_grid_median_s=statistics.median(full_times), speedup=ratio,
                                    coarse_starts=coarse.n_starts, full_starts=fulls[0].n_starts)
    assert coarse.objective <= fulls[0].objective * (1 + 1e-6)


@pytest.mark.skipif(os.environ.get("PRUNEBENCH_BENCH_STUDY") != "1",
                    reason="the whole report step takes 1-2 minutes; set PRUNEBENCH_BENCH_STUDY=1")
def test_report_step_nano_shaped(benchmark):
    recs = synthetic_records(noise=0.003, controls=True, width=True)
    study = benchmark.pedantic(lambda: fit_law(recs, FitConfig(bootstrap=100)), rounds=1, iterations=1)
    benchmark.extra_info.update(groups=len(study.groups), replicates=100,
                                seconds_per_group=benchmark.stats.stats.median / len(study.groups))
    assert len(study.groups) == 3 and all(g.bootstrap is not None for g in study.groups)
