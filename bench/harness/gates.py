"""CI gates, parsed from options into typed check objects (after pytest-benchmark's).

* `--max-extrapolation-error [TEST][:GROUP][:MEASURE]=PCT` (repeatable; a bare `5%` is
  `larger-n0=5%`): the law's error in one of the generalisation tests (larger-d, larger-n0,
  higher-rho), on L (`mape`) or on the recovery gap L - L0 at the final checkpoint (`gap`),
  for every group the scope covers. A group whose fit is not identified fails with the
  reason; so does a run-away prediction, which is never reported as a percentage.
* `--baseline FILE --max-ppl-regression 2%`: every perplexity in this run against the same
  case and measurement in a stored run (a results directory, its records folder, or a
  single record file).
* `--max-control-improvement 1%`: every control case (an unpruned base post-trained with the
  study's recipe) of the results directory. A base that still improves by more than this is
  not at a plateau, and the recovery of its pruned models is partly plain extra training.

Each gate says what it checks (`needs`): the fitted study, this run's records, or every
record stored in the results directory.

A gate with nothing to evaluate is a usage error, not a pass: a CI job that gates on the law
but produced no post-training records must not go green.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from bench.errors import UsageError
from bench.studies.gate_specs import (DEFAULT_TEST, LAW_MEASURES, LAW_TESTS, ExtrapolationGate, Verdict,  # noqa: F401
                                      _pct, group_matches, parse_law_scope, parse_percent)


def _ppl_index(records: list[dict]) -> dict[tuple[str, str], float]:
    return {(r["case_id"], k): v["ppl"] for r in records for k, v in (r.get("ppl") or {}).items()}


def load_baseline(path: str | Path) -> list[dict]:
    """Records of a stored run; other schema versions are refused with the fix."""
    from bench.harness.records import SCHEMA, load_records, read_record

    p = Path(path)
    if p.is_file():
        try:
            data = json.loads(p.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise UsageError(f"cannot read baseline {p}: {exc}") from None
        if isinstance(data, dict) and "records" in data:  # a bundle of records
            recs = data["records"]
            bad = [r.get("schema") for r in recs if r.get("schema") != SCHEMA]
            if bad:
                raise UsageError(f"baseline {p} holds records of schema {bad[0]!r}, this prunebench reads {SCHEMA!r}; "
                                 "re-create the baseline with this version")
            return recs
        return [read_record(p)]
    if p.is_dir():
        root = p.parent if p.name == "records" else p  # accept the results dir or its records/
        recs = load_records(root)
        if not recs:
            raise UsageError(f"baseline {p} holds no records; point --baseline at a results directory of an earlier run")
        return recs
    raise UsageError(f"baseline {p} does not exist; point --baseline at a results directory or record file")


@dataclass(frozen=True)
class PplRegressionGate:
    baseline: tuple  # records
    max_regression: float  # percent
    source: str

    name = "max-ppl-regression"
    needs = "run"

    def check(self, records: list[dict]) -> Verdict:
        base = _ppl_index(list(self.baseline))
        now = _ppl_index(records)
        shared = sorted(set(base) & set(now))
        if not shared:
            raise UsageError(f"--max-ppl-regression: no case of this run is in the baseline {self.source}; "
                             "run the same profile/cases as the baseline or drop the gate")
        worst = max(shared, key=lambda k: now[k] / base[k])
        change = 100 * (now[worst] / base[worst] - 1)
        return Verdict(self.name, change <= self.max_regression,
                       f"{len(shared)} perplexities compared with {self.source}; worst {worst[0]} {worst[1]}: "
                       f"{base[worst]:.4f} -> {now[worst]:.4f} ({change:+.2f}%, limit +{self.max_regression:g}%)")


@dataclass(frozen=True)
class ControlGate:
    max_improvement: float  # percent

    name = "max-control-improvement"
    needs = "stored"

    def check(self, records: list[dict]) -> Verdict:
        figures = {r["case_id"]: 100 * r["posttrain"]["control_improvement"] for r in records
                   if r.get("method") == "control" and (r.get("posttrain") or {}).get("control_improvement") is not None}
        if not figures:
            raise UsageError("--max-control-improvement was given but the results hold no control case with a "
                             "post-training curve: run a post-training profile (e.g. nano) or drop the gate")
        # A NaN figure (the control diverged) is the worst of all and never passes.
        worst = max(figures, key=lambda k: (math.isnan(figures[k]), figures[k]))
        parts = ", ".join(f"{k}={figures[k]:.2f}%" for k in sorted(figures))
        return Verdict(self.name, figures[worst] <= self.max_improvement,
                       f"worst {worst} {figures[worst]:.2f}% vs limit {self.max_improvement:g}% ({parts})")


def build_gates(max_extrapolation_error, baseline: str | None, max_ppl_regression: str | None,
                max_control_improvement: str | None = None, valid_groups=None) -> list:
    """Option values -> check objects, validating combinations.

    Args:
        max_extrapolation_error: None, one scope string or a list of them (the option may be
            given several times), each parsed by `parse_law_scope`.
        valid_groups: the law groups the run can have ('family/method@recipe' keys, e.g.
            from `bench.harness.study.case_group_names(cases)`); with them a scope naming no group is
            refused here rather than after the run.
    """
    gates = []
    scopes = [max_extrapolation_error] if isinstance(max_extrapolation_error, str) else list(max_extrapolation_error or [])
    for text in scopes:
        gates.append(parse_law_scope(text, valid_groups))
    if (baseline is None) != (max_ppl_regression is None):
        raise UsageError("--baseline and --max-ppl-regression go together: give both (e.g. --baseline results-main "
                         "--max-ppl-regression 2%)")
    if baseline is not None:
        gates.append(PplRegressionGate(tuple(load_baseline(baseline)),
                                       parse_percent(max_ppl_regression, "--max-ppl-regression"), str(baseline)))
    if max_control_improvement is not None:
        gates.append(ControlGate(parse_percent(max_control_improvement, "--max-control-improvement")))
    return gates
