"""The law gate's scopes and the percentages of every gate, parsed and checked.

A study file declares its gates (`bench.studies.sections`), and the harness builds them from
options (`bench.harness.gates`): both read the same parsers here, which is why they sit below
the harness. `ExtrapolationGate` judges a fitted study; the gates that read records live with
the records in `bench.harness.gates`.
"""

from __future__ import annotations

from dataclasses import dataclass

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
