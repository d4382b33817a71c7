"""The benchmark session: everything the pytest plugin does, without pytest.

Pipeline (after pytest-benchmark's session object): collect cases -> run each (or resume it
from its stored record) -> write records -> summarise -> report and gates at the end. The
plugin only translates pytest hooks into calls on this object, so all of it can be unit
tested directly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from bench import records as rec_mod
from bench.cases import Case
from bench.profiles import DEFAULT_PROFILE, ProfileOptions, get_cases
from bench.runner import CaseRunner, RunContext


@dataclass
class SessionOptions:
    profile: str = DEFAULT_PROFILE
    data_dir: str | None = None
    results_dir: str | None = None
    cache_dir: str | None = None
    device: str | None = None
    full_eval: bool = False
    resume: bool = False
    progress: bool = True


@dataclass
class CaseOutcome:
    case: Case
    record: dict
    resumed: bool = False


@dataclass
class BenchSession:
    options: SessionOptions
    outcomes: list[CaseOutcome] = field(default_factory=list)
    _results_dir: Path | None = None
    _runner: CaseRunner | None = None
    _cases: list[Case] | None = None

    # ------------------------------------------------------------------ setup

    def cases(self) -> list[Case]:
        if self._cases is None:
            self._cases = get_cases(self.options.profile, ProfileOptions(full_eval=self.options.full_eval))
        return self._cases

    @property
    def results_dir(self) -> Path:
        """Created and checked on first use, so `pytest tests` never touches it."""
        if self._results_dir is None:
            self._results_dir = rec_mod.resolve_results_dir(self.options.results_dir)
        return self._results_dir

    @property
    def runner(self) -> CaseRunner:
        if self._runner is None:
            self._runner = CaseRunner(RunContext(
                data_dir=self.options.data_dir, cache_dir=self.options.cache_dir,
                device=self.options.device, progress=self.options.progress))
        return self._runner

    # ------------------------------------------------------------------ running

    def stored(self, case: Case) -> dict | None:
        """The stored record of `case` if it is complete and was made with the same config."""
        path = rec_mod.record_path(self.results_dir, case.id)
        if not path.is_file():
            return None
        try:
            rec = rec_mod.read_record(path)
        except Exception:
            return None  # unreadable or other schema: recompute rather than trust it
        if rec.get("fingerprint") == case.fingerprint() and rec.get("status") == "ok":
            return rec
        return None

    def run_case(self, case: Case) -> dict:
        """Run (or resume) one case, write its record, and remember it for the summary."""
        if self.options.resume:
            rec = self.stored(case)
            if rec is not None:
                self.outcomes.append(CaseOutcome(case, rec, resumed=True))
                return rec
        _ = self.results_dir  # fail on an unwritable directory before spending compute
        fields = self.runner.run(case)
        rec = rec_mod.new_record(case.id, **fields)
        rec_mod.write_record(self.results_dir, rec)
        self.outcomes.append(CaseOutcome(case, rec))
        return rec

    # ------------------------------------------------------------------ summary

    def summary_rows(self) -> list[list]:
        rows = []
        for out in self.outcomes:
            r = out.record
            params = r.get("params", {})
            ppl = "  ".join(f"{k}={_fmt(v.get('ppl'))}" for k, v in sorted(r.get("ppl", {}).items()))
            rows.append([
                r["case_id"], r.get("label", r.get("method")),
                f"{params.get('after', 0):,}/{params.get('before', 0):,}",
                ppl, r.get("status"), "resumed" if out.resumed else f"{r.get('timings', {}).get('case_s', 0):.1f}s",
            ])
        return rows

    def summary_lines(self) -> list[str]:
        from tabulate import tabulate

        if not self.outcomes:
            return []
        table = tabulate(self.summary_rows(), headers=["case", "method", "params after/before",
                                                       "ppl ↓", "status", "time"], tablefmt="github")
        return [f"prunebench: {len(self.outcomes)} record(s) in {self.results_dir / 'records'}", *table.splitlines()]


def _fmt(x) -> str:
    if x is None:
        return "-"
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    return f"{x:.2f}"
