"""The benchmark matrix: one test per case of the selected study (`pytest bench --profile P`).

Each test runs its case, writes its record, and checks that what it measured is a usable
number: a case that produces a NaN perplexity or an inconsistent parameter count fails.
"""

import math


def test_case(bench_case, run_case):
    record = run_case(bench_case)
    params = record.params
    assert 0 < params.after <= params.before
    if bench_case.unpruned:
        assert params.after == params.before
    assert set(record.ppl) == {e.key for e in bench_case.evals}
    for key, result in record.ppl.items():
        assert math.isfinite(result.ppl) and result.ppl > 1, f"{key}: ppl {result.ppl}"
        assert result.windows >= 1 and result.tokens == result.windows * (result.seq_len - 1)
