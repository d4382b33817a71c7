"""The benchmark matrix: one test per case of the selected study (`pytest bench --profile P`).

Each test runs its case, writes its record, and checks that what it measured is a usable
number: a case that produces a NaN perplexity or an inconsistent parameter count fails.

Each case that runs is one measurement of pytest-benchmark's `benchmark` fixture (one round,
one iteration: a case is far too long to repeat), with its phases in ``extra_info``: pruning
time, post-training tokens/s and evaluation tokens/s, the figures its record keeps under
``timings``. So ``--benchmark-autosave`` and ``--benchmark-compare ...
--benchmark-compare-fail=mean:10%`` gate speed like the gates gate quality. A case `--resume`
reuses ran nothing, so it is not timed (it would look infinitely fast); under pytest-xdist,
pytest-benchmark turns itself off and every case runs untimed, the record keeping its timings.
"""

import math


def test_case(bench_case, run_case, bench_session, benchmark):
    if bench_session.cli.resume and bench_session.stored(bench_case) is not None:
        record = run_case(bench_case)
    else:
        record = benchmark.pedantic(run_case, args=(bench_case,), rounds=1, iterations=1)
        benchmark.extra_info.update({k: v for k, v in (record.timings or {}).items() if v is not None})
    params = record.params
    assert 0 < params.after <= params.before
    if bench_case.unpruned:
        assert params.after == params.before
    assert set(record.ppl) == {e.key for e in bench_case.evals}
    for key, result in record.ppl.items():
        assert math.isfinite(result.ppl) and result.ppl > 1, f"{key}: ppl {result.ppl}"
        assert result.windows >= 1 and result.tokens == result.windows * (result.seq_len - 1)
