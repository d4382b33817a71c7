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

from bench.errors import UsageError, did_you_mean


def parse_percent(text: str, option: str) -> float:
    """'5%' or '5' -> 5.0 (percent). Negative or non-numeric values are refused."""
    raw = str(text).strip()
    num = raw[:-1] if raw.endswith("%") else raw
    try:
        value = float(num)
    except ValueError:
        raise UsageError(f"{option} takes a percentage such as 5% (got {text!r})") from None
    if not value >= 0:
        raise UsageError(f"{option} must be a non-negative percentage (got {text!r})")
    return value


@dataclass(frozen=True)
class Verdict:
    name: str
    passed: bool
    detail: str

    def to_dict(self) -> dict:
        return {"name": self.name, "passed": self.passed, "detail": self.detail}


#: The generalisation tests a law gate can read (fitting.generalise.TESTS) and its measures:
#: `mape` is the MAPE on L of each target; `gap` the worst relative error on the recovery gap
#: L - L0 at a run's final checkpoint.
LAW_TESTS = ("larger-d", "larger-n0", "higher-rho")
LAW_MEASURES = {"mape": "MAPE on L", "gap": "gap error at the final checkpoint"}
DEFAULT_TEST = "larger-n0"


def group_matches(selector: str, key: str) -> bool:
    """Does a scope's group selector name the group `key` ('family/method@recipe')?

    A selector may be the whole key, 'family/method', the family, the method or the recipe.
    """
    fam_method, _, recipe = key.partition("@")
    family, _, method = fam_method.partition("/")
    return selector in (key, fam_method, family, method, recipe)


def _scope_help(valid_groups) -> str:
    groups = ", ".join(sorted(valid_groups)) if valid_groups else "the groups of the records"
    return (f"a scope is [TEST][:GROUP][:MEASURE]=PCT with TEST one of {', '.join(LAW_TESTS)} "
            f"(default {DEFAULT_TEST}), MEASURE one of {', '.join(LAW_MEASURES)} (default mape), and GROUP a "
            f"family, method, family/method or group key of: {groups}")


@dataclass(frozen=True)
class ExtrapolationGate:
    """One scope of `--max-extrapolation-error`: a test, optionally a group, a measure, a limit.

    Every group the scope covers must have an identified fit, a test result, and a figure
    at or below the limit for every target (held-out size) of the test. A group that is not
    identified, a test that could not run and a run-away prediction all fail with their
    reason, never with a number.
    """

    max_error: float  # percent
    test: str = DEFAULT_TEST
    group: str | None = None
    measure: str = "mape"
    text: str = ""

    name = "max-extrapolation-error"
    needs = "study"

    @property
    def scope(self) -> str:
        parts = [self.test] + ([self.group] if self.group else []) + ([self.measure] if self.measure != "mape" else [])
        return ":".join(parts)

    def check(self, study) -> Verdict:
        groups = list(study.groups) if study is not None else []
        if not groups:
            raise UsageError("--max-extrapolation-error was given but no held-out model could be predicted: "
                             "run a profile with post-training on several sizes (e.g. nano) or drop the gate")
        chosen = [g for g in groups if self.group is None or group_matches(self.group, g.key)]
        if not chosen:
            raise UsageError(f"--max-extrapolation-error {self.text or self.scope}: group {self.group!r} is not in the "
                             f"study{did_you_mean(self.group, [g.key for g in groups])}; {_scope_help([g.key for g in groups])}")
        name = f"{self.name}[{self.scope}]"
        failures, parts = [], []
        for g in chosen:
            ident = g.identifiability or {}
            if not ident.get("identified"):
                why = "; ".join(ident.get("reasons") or ["no identifiability verdict"])
                failures.append(f"{g.key}: not identified ({why})")
                continue
            test = g.tests.get(self.test)
            if not test or test.get("error") or not test.get("targets"):
                why = (test or {}).get("error") or "no target to predict"
                failures.append(f"{g.key}: {self.test} could not run ({why})")
                continue
            for size, m in sorted(test["targets"].items()):
                if m.get("runaway"):
                    failures.append(f"{g.key}/{size}: {m['runaway']}")
                    continue
                value = m["mape"] if self.measure == "mape" else m.get("gap_final_worst")
                if value is None:
                    failures.append(f"{g.key}/{size}: no {LAW_MEASURES[self.measure]} (no checkpoint above L0)")
                    continue
                parts.append((value, f"{g.key}/{size}"))
                if not value <= self.max_error:
                    failures.append(f"{g.key}/{size} {_pct(value)}")
        what = f"{self.test} {LAW_MEASURES[self.measure]}, limit {self.max_error:g}%"
        measured = ", ".join(f"{k}={_pct(v)}" for v, k in sorted(parts, key=lambda t: t[1]))
        if failures:
            return Verdict(name, False, f"{what}: failed {'; '.join(failures)}" + (f" (measured: {measured})" if measured else ""))
        worst = max(parts)
        return Verdict(name, True, f"{what}: worst {worst[1]} {_pct(worst[0])} ({measured})")


def parse_law_scope(text: str, valid_groups=None) -> ExtrapolationGate:
    """'5%', 'larger-n0:depth=2%', 'higher-rho:nano-llama/width:gap=25%' -> a gate.

    Args:
        text: one value of --max-extrapolation-error.
        valid_groups: the group keys this run can have (from its cases); when given, a group
            selector that names none of them is a usage error here, before any case runs.
    """
    option = "--max-extrapolation-error"
    raw = str(text).strip()
    scope, eq, pct = raw.rpartition("=")
    if not eq:
        scope, pct = "", raw
    limit = parse_percent(pct, f"{option} {raw}")
    test, group, measure = DEFAULT_TEST, None, "mape"
    seen_test = False
    for token in filter(None, (t.strip() for t in scope.split(":"))):
        if token in LAW_TESTS and not seen_test:
            test, seen_test = token, True
        elif token in LAW_MEASURES:
            measure = token
        elif group is None:
            group = token
        else:
            raise UsageError(f"{option} {raw}: {token!r} is not a test or measure, and the scope already names group "
                             f"{group!r}; {_scope_help(valid_groups)}")
    if group is not None and valid_groups is not None and not any(group_matches(group, k) for k in valid_groups):
        parts = {p for k in valid_groups for p in (k.partition("@")[0].partition("/")[2], k.partition("/")[0])}
        known = sorted(set(LAW_TESTS) | set(LAW_MEASURES) | set(valid_groups) | parts)
        raise UsageError(f"{option} {raw}: {group!r} names no test and no group of this run{did_you_mean(group, known)}; "
                         f"{_scope_help(valid_groups)}")
    return ExtrapolationGate(limit, test, group, measure, raw)


def _pct(value: float) -> str:
    from reports.numbers import fmt_pct

    return fmt_pct(value / 100)


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
