"""The gates a run is judged by, parsed once into typed check objects (after pytest-benchmark's).

* `--max-extrapolation-error [TEST][:GROUP][:MEASURE]=PCT` (repeatable; a bare `5%` is
  `larger-n0=5%`): the law's error in one of the generalisation tests (larger-d, larger-n0,
  higher-rho), on L (`mape`) or on the recovery gap L - L0 at the final checkpoint (`gap`),
  for every group the scope covers (`ExtrapolationGate`). A group whose fit is not identified
  fails with the reason; so does a run-away prediction, which is never reported as a percentage.
* `--baseline DIR --max-ppl-regression 2%`: every perplexity in this run against the same
  case and measurement in a stored run (a results directory, its records folder, or a single
  record file) (`PplRegressionGate`).
* `--max-control-improvement 1%`: every control case (an unpruned base post-trained with the
  study's recipe) of the results directory (`ControlGate`). A base that still improves by more
  than this is not at a plateau, and the recovery of its pruned models is partly plain extra
  training.

A study file's ``[gates]`` table and the command line spell them the same way and go through
one parser, `parse_gates`, into a `GateSet`; `GateSet.merged` lays the command line's over the
study's (`bench.harness.run_config`). Each gate says what it checks (`needs`): the law's fit,
this run's records, or every record stored in the results directory. A gate with nothing to
evaluate is a usage error, not a pass: a CI job that gates on the law but produced no
post-training records must not go green.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from pathlib import Path

from bench.errors import UsageError, did_you_mean
from reports.records import Record, RecordError

GATE_KEYS = ("max_extrapolation_error", "baseline", "max_ppl_regression", "max_control_improvement")


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
#: Over the study seeds a group was fitted under: judge its worst seed (the default), or the
#: mean of its seeds' figures. Either way every seed's fit must be identified.
LAW_AGGREGATES = {"worst": "worst seed", "mean": "mean over seeds"}


def group_matches(selector: str, key: str) -> bool:
    """Does a scope's group selector name the group `key` ('family/method@recipe')?

    A selector may be the whole key, 'family/method', the family, the method or the recipe.
    """
    fam_method, _, recipe = key.partition("@")
    family, _, method = fam_method.partition("/")
    return selector in (key, fam_method, family, method, recipe)


def _scope_help(valid_groups) -> str:
    groups = ", ".join(sorted(valid_groups)) if valid_groups else "the groups of the records"
    return (f"a scope is [TEST][:GROUP][:MEASURE][:OVER]=PCT with TEST one of {', '.join(LAW_TESTS)} "
            f"(default {DEFAULT_TEST}), MEASURE one of {', '.join(LAW_MEASURES)} (default mape), OVER one of "
            f"{', '.join(LAW_AGGREGATES)} (the study seeds; default worst), and GROUP a family, method, "
            f"family/method or group key of: {groups}")


@dataclass(frozen=True)
class ExtrapolationGate:
    """One scope of `--max-extrapolation-error`: a test, optionally a group, a measure, a limit,
    and how the study seeds are aggregated.

    Every group the scope covers must have an identified fit under every seed, a test result,
    and a figure at or below the limit for every target (held-out size) of the test: the worst
    seed's by default (each seed's fit is judged), or the mean over the seeds (`mean`). A group
    that is not identified, a test that could not run and a run-away prediction all fail with
    their reason, never with a number.
    """

    max_error: float  # percent
    test: str = DEFAULT_TEST
    group: str | None = None
    measure: str = "mape"
    text: str = ""
    aggregate: str = "worst"

    name = "max-extrapolation-error"
    needs = "fit"

    @property
    def scope(self) -> str:
        parts = [self.test] + ([self.group] if self.group else []) + ([self.measure] if self.measure != "mape" else [])
        return ":".join(parts + ([self.aggregate] if self.aggregate != "worst" else []))

    def check(self, fit) -> Verdict:
        """Judge the law's fit (`bench.harness.law_fit.LawFit`, or None when nothing was fitted)."""
        groups = list(fit.groups) if fit is not None else []
        if not groups:
            raise UsageError("--max-extrapolation-error was given but no held-out model could be predicted: "
                             "run a profile with post-training on several sizes (e.g. nano) or drop the gate")
        chosen = [g for g in groups if self.group is None or group_matches(self.group, g.key)]
        if not chosen:
            raise UsageError(f"--max-extrapolation-error {self.text or self.scope}: group {self.group!r} is not in the "
                             f"fit{did_you_mean(self.group, [g.key for g in groups])}; {_scope_help([g.key for g in groups])}")
        name = f"{self.name}[{self.scope}]"
        failures, parts = [], []
        seeded = {}  # key -> {size: [values]}, for the mean over seeds
        for g in chosen:
            where = g.key if g.seed is None else f"{g.key} (seed {g.seed})"
            ident = g.identifiability or {}
            if not ident.get("identified"):
                why = "; ".join(ident.get("reasons") or ["no identifiability verdict"])
                failures.append(f"{where}: not identified ({why})")
                continue
            test = g.tests.get(self.test)
            if not test or test.get("error") or not test.get("targets"):
                why = (test or {}).get("error") or "no target to predict"
                failures.append(f"{where}: {self.test} could not run ({why})")
                continue
            for size, m in sorted(test["targets"].items()):
                if m.get("runaway"):
                    failures.append(f"{where}/{size}: {m['runaway']}")
                    continue
                value = m["mape"] if self.measure == "mape" else m.get("gap_final_worst")
                if value is None:
                    failures.append(f"{where}/{size}: no {LAW_MEASURES[self.measure]} (no checkpoint above L0)")
                    continue
                if self.aggregate == "mean":
                    seeded.setdefault(g.key, {}).setdefault(size, []).append(value)
                    continue
                label = f"{g.key}/{size}" + ("" if g.seed is None else f"/s{g.seed}")
                parts.append((value, label))
                if not value <= self.max_error:
                    failures.append(f"{label} {_pct(value)}")
        for key, sizes in seeded.items():
            for size, values in sorted(sizes.items()):
                value = sum(values) / len(values)
                label = f"{key}/{size} (mean of {len(values)} seeds)"
                parts.append((value, label))
                if not value <= self.max_error:
                    failures.append(f"{label} {_pct(value)}")
        what = f"{self.test} {LAW_MEASURES[self.measure]}, {LAW_AGGREGATES[self.aggregate]}, limit {self.max_error:g}%" \
            if any(g.seed is not None for g in chosen) else f"{self.test} {LAW_MEASURES[self.measure]}, limit {self.max_error:g}%"
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
    test, group, measure, aggregate = DEFAULT_TEST, None, "mape", "worst"
    seen_test = False
    for token in filter(None, (t.strip() for t in scope.split(":"))):
        if token in LAW_TESTS and not seen_test:
            test, seen_test = token, True
        elif token in LAW_MEASURES:
            measure = token
        elif token in LAW_AGGREGATES:
            aggregate = token
        elif group is None:
            group = token
        else:
            raise UsageError(f"{option} {raw}: {token!r} is not a test, measure or seed aggregate, and the scope already names group "
                             f"{group!r}; {_scope_help(valid_groups)}")
    if group is not None and valid_groups is not None and not any(group_matches(group, k) for k in valid_groups):
        parts = {p for k in valid_groups for p in (k.partition("@")[0].partition("/")[2], k.partition("/")[0])}
        known = sorted(set(LAW_TESTS) | set(LAW_MEASURES) | set(LAW_AGGREGATES) | set(valid_groups) | parts)
        raise UsageError(f"{option} {raw}: {group!r} names no test and no group of this run{did_you_mean(group, known)}; "
                         f"{_scope_help(valid_groups)}")
    return ExtrapolationGate(limit, test, group, measure, raw, aggregate)


def _pct(value: float) -> str:
    from reports.numbers import fmt_pct

    return fmt_pct(value / 100)


# --------------------------------------------------------------------------- gates on records


def _ppl_index(records: list[Record]) -> dict[tuple[str, str], float]:
    return {(r.case_id, k): v.ppl for r in records for k, v in (r.ppl or {}).items()}


def load_baseline(path: str | Path) -> tuple[Record, ...]:
    """Records of a stored run (a results directory, its records/ folder, a record file, or a
    bundle ``{"records": [...]}``); other schema versions are refused with the fix."""
    from bench.sources.records import load_records, read_record

    p = Path(path)
    if p.is_file():
        try:
            data = json.loads(p.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise UsageError(f"cannot read baseline {p}: {exc}") from None
        if isinstance(data, dict) and "records" in data:  # a bundle of records
            try:
                return tuple(Record.from_json(r, f"baseline {p}") for r in data["records"])
            except RecordError as exc:
                raise UsageError(f"{exc}; re-create the baseline with this version") from None
        return (read_record(p),)
    if p.is_dir():
        root = p.parent if p.name == "records" else p  # accept the results dir or its records/
        recs = load_records(root)
        if not recs:
            raise UsageError(f"baseline {p} holds no records; point --baseline at a results directory of an earlier run")
        return tuple(recs)
    raise UsageError(f"baseline {p} does not exist; point --baseline at a results directory or record file")


@dataclass(frozen=True)
class PplRegressionGate:
    """Every perplexity of this run against a stored run's (see the module docstring)."""

    baseline: str  # the path given
    max_regression: float  # percent
    records: tuple[Record, ...] = ()  # the baseline's, read by `prepared`

    name = "max-ppl-regression"
    needs = "run"

    def prepared(self) -> "PplRegressionGate":
        """The gate with its baseline read, before any case runs (a bad baseline is refused then)."""
        return self if self.records else replace(self, records=load_baseline(self.baseline))

    def check(self, records: list[Record]) -> Verdict:
        base = _ppl_index(list(self.prepared().records))
        now = _ppl_index(records)
        shared = sorted(set(base) & set(now))
        if not shared:
            raise UsageError(f"--max-ppl-regression: no case of this run is in the baseline {self.baseline}; "
                             "run the same profile/cases as the baseline or drop the gate")
        worst = max(shared, key=lambda k: now[k] / base[k])
        change = 100 * (now[worst] / base[worst] - 1)
        return Verdict(self.name, change <= self.max_regression,
                       f"{len(shared)} perplexities compared with {self.baseline}; worst {worst[0]} {worst[1]}: "
                       f"{base[worst]:.4f} -> {now[worst]:.4f} ({change:+.2f}%, limit +{self.max_regression:g}%)")


@dataclass(frozen=True)
class ControlGate:
    """Every control case's improvement over its budget (see the module docstring)."""

    max_improvement: float  # percent

    name = "max-control-improvement"
    needs = "stored"

    def prepared(self) -> "ControlGate":
        return self

    def check(self, records: list[Record]) -> Verdict:
        figures = {r.case_id: 100 * r.posttrain.control_improvement for r in records
                   if r.method == "control" and r.posttrain is not None and r.posttrain.control_improvement is not None}
        if not figures:
            raise UsageError("--max-control-improvement was given but the results hold no control case with a "
                             "post-training curve: run a post-training profile (e.g. nano) or drop the gate")
        # A NaN figure (the control diverged) is the worst of all and never passes.
        worst = max(figures, key=lambda k: (math.isnan(figures[k]), figures[k]))
        parts = ", ".join(f"{k}={figures[k]:.2f}%" for k in sorted(figures))
        return Verdict(self.name, figures[worst] <= self.max_improvement,
                       f"worst {worst} {figures[worst]:.2f}% vs limit {self.max_improvement:g}% ({parts})")


# --------------------------------------------------------------------------- a run's gates


@dataclass(frozen=True)
class GateSet:
    """The gates of a study file or of a command line; None / () where it sets none."""

    extrapolation: tuple[ExtrapolationGate, ...] = ()
    ppl: PplRegressionGate | None = None
    control: ControlGate | None = None

    def merged(self, over: "GateSet") -> "GateSet":
        """`over` (the command line) laid over these (the study's): each kind it sets replaces ours."""
        return GateSet(over.extrapolation or self.extrapolation, over.ppl or self.ppl, over.control or self.control)

    def all(self) -> tuple:
        return (*self.extrapolation, *(g for g in (self.ppl, self.control) if g is not None))

    def check_groups(self, valid_groups) -> None:
        """Refuse a law-gate scope naming no group this run can fit (checked before any case runs)."""
        for gate in self.extrapolation:
            parse_law_scope(gate.text or gate.scope, valid_groups)

    def prepared(self) -> "GateSet":
        """The gates with everything they compare against read (the baseline's records)."""
        return replace(self, ppl=self.ppl.prepared() if self.ppl is not None else None)


def parse_gates(max_extrapolation_error=(), baseline: str | None = None, max_ppl_regression: str | None = None,
                max_control_improvement: str | None = None, *, default_baseline: str | None = None,
                default_regression: str | None = None) -> GateSet:
    """Gate options (a study's [gates] table or the command line) -> a `GateSet`.

    Args:
        max_extrapolation_error: one scope string or several (each parsed by `parse_law_scope`).
        default_baseline, default_regression: the study's pair, when the command line gives only
            the other half of it.
    Raises:
        UsageError: a malformed scope or percentage, or a baseline without a regression limit
            (or the reverse).
    """
    scopes = [max_extrapolation_error] if isinstance(max_extrapolation_error, str) else list(max_extrapolation_error or ())
    extrapolation = tuple(parse_law_scope(text) for text in scopes)
    ppl = None
    if baseline is not None or max_ppl_regression is not None:
        baseline = baseline if baseline is not None else default_baseline
        max_ppl_regression = max_ppl_regression if max_ppl_regression is not None else default_regression
        if baseline is None or max_ppl_regression is None:
            raise UsageError("--baseline and --max-ppl-regression go together: give both (e.g. --baseline "
                             "results-main --max-ppl-regression 2%)")
        ppl = PplRegressionGate(str(baseline), parse_percent(max_ppl_regression, "--max-ppl-regression"))
    control = None
    if max_control_improvement is not None:
        control = ControlGate(parse_percent(max_control_improvement, "--max-control-improvement"))
    return GateSet(extrapolation, ppl, control)
