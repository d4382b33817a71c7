"""The benchmark session: everything the pytest plugin does, without pytest.

Pipeline (after pytest-benchmark's session object): collect cases -> run each (or resume it
from its stored record) -> write records -> summarise -> report and gates at the end. The
plugin only translates pytest hooks into calls on this object, so all of it can be unit
tested directly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from bench import records as rec_mod
from reports.markdown import fmt_num, fmt_pct
from bench.cases import Case
from bench.errors import UsageError
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
    threads: int | None = None  # torch intra-op threads (None: torch's default, one per core)
    law: str = "p2"
    holdout: tuple[str, ...] | None = None
    gates: tuple = ()  # bench.gates check objects
    report: bool = True


@dataclass
class Finish:
    """What the end of a session produced: the study, gate verdicts and written files."""

    study: object = None
    verdicts: list = field(default_factory=list)
    files: dict = field(default_factory=dict)
    usage_error: str | None = None

    @property
    def failed_gates(self) -> list:
        return [v for v in self.verdicts if not v.passed]


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
    finished: Finish | None = None
    selected: list[Case] | None = None  # the cases this run will execute (after -k), if known
    _prepared: bool = False

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
            if self.options.threads is not None:
                import torch

                if self.options.threads < 1:
                    raise UsageError(f"--threads must be at least 1, got {self.options.threads}")
                torch.set_num_threads(self.options.threads)
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
        self.prepare(case)
        fields = self.runner.run(case)
        rec = rec_mod.new_record(case.id, **fields)
        rec_mod.write_record(self.results_dir, rec)
        self.outcomes.append(CaseOutcome(case, rec))
        if rec.get("status") == "diverged":
            # The record keeps the trajectory up to the divergence; the case still fails.
            from bench.posttrain import Diverged

            div = rec.get("posttrain", {}).get("divergence") or {}
            raise Diverged(
                f"post-training diverged at step {div.get('step')} ({div.get('tokens')} tokens): loss "
                f"{div.get('loss', div.get('val_loss'))} at lr {div.get('lr')}; the trajectory so far is kept in "
                f"{rec_mod.record_path(self.results_dir, case.id)} with status 'diverged'; lower the learning rate")
        return rec

    # ------------------------------------------------------------------ report and gates

    def finish(self) -> Finish:
        """Fit the law on every stored record, evaluate the gates, render the report.

        All records in the results directory take part, not only this run's, so `-k` slices
        and `--resume` runs build one complete report. A gate with nothing to evaluate is
        reported as a usage error.
        """
        from bench.errors import UsageError
        from bench.study import StudyConfig, run_study

        fin = Finish()
        self.finished = fin
        if not self.outcomes:
            return fin
        records = rec_mod.load_records(self.results_dir)
        try:
            study = run_study(records, StudyConfig(law=self.options.law, holdout=self.options.holdout))
            fin.study = study if study.groups else None
            targets = {"study": fin.study, "run": [o.record for o in self.outcomes], "stored": records}
            for gate in self.options.gates:
                fin.verdicts.append(gate.check(targets[gate.needs]))
        except UsageError as exc:
            fin.usage_error = str(exc)
        if self.options.report:
            from reports.render import write_report

            fin.files = write_report(records, fin.study, [v.to_dict() for v in fin.verdicts], self.results_dir)
        return fin

    def select(self, cases: list[Case]) -> None:
        """Tell the session which cases this run executes (the plugin calls it after `-k`)."""
        self.selected = list(cases)

    def prepare(self, first: Case) -> None:
        """Before the first computed case: build the nano zoo models every pending case needs,
        all at once (in parallel on a multi-core CPU), rather than one by one inside cases."""
        if self._prepared:
            return
        self._prepared = True
        pending = [c for c in (self.selected or [first])
                   if c is first or not (self.options.resume and self.stored(c) is not None)]
        self.runner.prepare(pending)

    # ------------------------------------------------------------------ summary

    def summary_rows(self) -> list[list]:
        rows = []
        for out in self.outcomes:
            r = out.record
            params = r.get("params", {})
            ppl = "  ".join(f"{k}={fmt_num(v.get('ppl'))}" for k, v in sorted(r.get("ppl", {}).items()))
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
        lines = [f"prunebench: {len(self.outcomes)} record(s) in {self.results_dir / 'records'}", *table.splitlines()]
        fin = self.finished
        if fin is not None:
            if fin.study is not None:
                for key, err in sorted(fin.study.heldout_errors().items()):
                    lines.append(f"law {self.options.law}: extrapolation error on held-out {key}: {fmt_pct(err / 100)}")
            for v in fin.verdicts:
                lines.append(f"{'GATE PASSED' if v.passed else 'GATE FAILED'} {v.name}: {v.detail}")
            if fin.usage_error:
                lines.append(f"prunebench: usage error: {fin.usage_error}")
            if "report.md" in fin.files:
                lines.append(f"report: {fin.files['report.md']}")
        return lines

