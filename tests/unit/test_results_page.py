"""`prunebench tables`: a results page rendered from a run's records, provenance stated once."""

from __future__ import annotations

import copy
import json
from pathlib import Path

from bench.sources.records import write_record
from reports.records import Record
from reports.results_tables import extrapolation_table, zoo_table
from reports.results_page import page_header, render_page
from synthetic_records import edited, synthetic_records

GOLDEN = json.loads((Path(__file__).resolve().parents[1] / "golden" / "inputs.json").read_text())  # a real smoke run
GOLDEN_RECORDS = [Record.from_json(r) for r in GOLDEN["records"]]

COMMIT = "0123456789abcdef0123456789abcdef01234567"
MACHINE = {"platform": "Linux-6.1-x86_64-with-glibc2.36", "machine": "x86_64", "processor": "AMD EPYC 7B13",
           "cpu_count": 16, "torch_threads": 8, "gpu": "NVIDIA H100 80GB HBM3", "gpu_capability": [9, 0],
           "blas": "mkl", "cpu_isa": {"pinned": "avx2", "capability": "AVX2",
                                      "settings": {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2,STRICT"}}}


def _provenanced(records, commit=COMMIT, created="2026-02-03T04:05:06+00:00", dirty=False):
    """Synthetic records with the provenance a real run writes (synthetic_records has none)."""
    def stamp(doc):
        doc.update(machine=dict(MACHINE), created=created,
                   invocation={"argv": ["/venv/bin/pytest", "bench", "--profile", "synth", "-k", "s1 or s2"],
                               "run_id": "run-1"},
                   provenance={"code": {"commit": commit, "dirty": dirty, "prunebench": "0.1.0"},
                               "data": {"wikitext2/test": "ab" * 32, "ptb/validation": "cd" * 32},
                               "device": "cuda", "dtype": "bfloat16", "torch": "2.13.0", "transformers": "5.24.0"})

    return [edited(rec, stamp) for rec in records]


def test_the_page_states_command_commit_machine_and_conditions_once_at_the_top():
    records = _provenanced(synthetic_records(controls=True))
    fit = copy.deepcopy(GOLDEN["fit"])
    page = render_page(records, fit, notes=["cold cache: the zoo was built in the run"])
    head, body = page.split("## Zoo", 1)
    assert head.startswith("# Results: synth at 0123456789\n")  # default title: profile and commit
    for expected in ("`pytest bench --profile synth -k 's1 or s2'`", "0123456789", "AMD EPYC 7B13, 16 cores",
                     "CPU kernels AVX2, pinned (ATEN_CPU_CAPABILITY=avx2 MKL_CBWR=AVX2,STRICT); BLAS mkl",
                     "GPU NVIDIA H100 80GB HBM3 (sm 9.0)", "8 torch threads", "2026-02-03T04:05:06+00:00",
                     "profile synth", f"{len(records)} records of 1 run(s)", "device cuda", "dtype bfloat16",
                     "torch 2.13.0", "transformers 5.24.0", "law p2, 20 bootstrap replicates, coarse search",
                     "ptb/validation `cdcdcdcdcdcd`", "wikitext2/test `abababababab`",
                     "- **Note**: cold cache: the zoo was built in the run"):
        assert expected in head, expected
    # Once: no table below the header repeats the provenance.
    assert page.count("0123456789") == 2 and "0123456789" not in body  # the title and the commit row
    assert page.count("AMD EPYC") == 1 and "prunebench tables" in head
    for rec in records:  # every pruned case has its recovery row, every control its zoo row
        assert f"`{rec.case_id}`" in body or rec.method == "control"
    assert body.count("`synth:") == sum(r.method == "control" for r in records)


def test_records_that_disagree_are_counted_never_merged():
    a = _provenanced(synthetic_records(controls=True))
    b = _provenanced(synthetic_records(controls=True)[:1], commit="fedcba9876" + "0" * 30,
                     created="2026-02-04T00:00:00+00:00", dirty=True)
    b += _provenanced(synthetic_records(controls=True)[1:2], commit="fedcba9876" + "0" * 30,
                      created="2026-02-04T00:00:00+00:00")
    head = page_header(a + b, None)
    assert f"0123456789 ({len(a)} records)" in head and "fedcba9876 (1 records)" in head
    assert "fedcba9876 (uncommitted changes) (1 records)" in head
    assert "2026-02-03T04:05:06+00:00 to 2026-02-04T00:00:00+00:00" in head
    assert "no fit.json" in head


def test_tables_from_a_real_smoke_run():
    records, fit = GOLDEN_RECORDS, GOLDEN["fit"]
    page = render_page(records, fit, title="Smoke, golden inputs")
    assert page.startswith("# Smoke, golden inputs\n")
    assert "## Zoo" in page and "## Recovery" in page and "## Extrapolation to held-out sizes" in page
    zoo = zoo_table(records)
    controls = [r for r in records if r.method == "control"]
    for rec in controls:  # one zoo row per control case, with its L0 and control improvement
        assert f"`{rec.model.spec}`" in zoo and f"{rec.posttrain.L0:.4f}" in zoo
    for rec in records:
        if rec.method != "control":
            assert f"`{rec.case_id}`" in page
    assert "embedding share" in zoo


def test_a_runaway_prediction_is_never_a_percentage():
    fit = copy.deepcopy(GOLDEN["fit"])
    group = fit["groups"][0]
    size = next(iter(group["extrapolation"]))
    group["extrapolation"][size].update(runaway="run-away prediction (off by a factor 1e6)", mape=1.7e35,
                                        gap_mean=3e10, gap_final=4e10)
    row = next(line for line in extrapolation_table(fit).splitlines() if group["key"] in line)
    assert row.count("run-away") == 4 and "%" not in "".join(row.split("|")[4:8])


def _cli(capsys, *args):
    """`prunebench tables ARGS`, in process: (exit status, stdout, stderr)."""
    from types import SimpleNamespace

    from bench.cli import main

    code = main(["tables", *args])
    out = capsys.readouterr()
    return SimpleNamespace(returncode=code, stdout=out.out, stderr=out.err)


def test_tables_cli_writes_a_results_page(tmp_path, capsys):
    results = tmp_path / "results"
    for rec in _provenanced(GOLDEN_RECORDS):
        write_record(results, rec)
    (results / "fit.json").write_text(json.dumps(GOLDEN["fit"]))
    page = tmp_path / "docs" / "results" / "smoke.md"
    page.parent.mkdir(parents=True)
    run = _cli(capsys, "--results-dir", str(results), "--out", str(page), "--title", "Smoke", "--note", "quiet machine")
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == str(page)
    text = page.read_text()
    assert text.startswith("# Smoke\n") and "- **Note**: quiet machine" in text and "## Zoo" in text
    printed = _cli(capsys, "--results-dir", str(results), "--title", "Smoke", "--note", "quiet machine")
    assert printed.returncode == 0 and printed.stdout == text  # stdout is the same page

    bad = _cli(capsys, "--results-dir", str(tmp_path / "none"))
    assert bad.returncode == 2 and "does not exist" in bad.stderr and bad.stdout == ""
    nowhere = _cli(capsys, "--results-dir", str(results), "--out", str(tmp_path / "missing" / "page.md"))
    assert nowhere.returncode == 2 and "directory" in nowhere.stderr and "does not exist" in nowhere.stderr


def test_a_run_with_two_recipes_gets_their_comparison_and_one_recipe_does_not():
    """A results page of CE and KD records carries the report's 'Recovery recipes compared'."""
    from bench.harness.recipe_fit import compare_cases
    from test_recipe_fit import study

    records = study(noise=0.0)
    fit = copy.deepcopy(GOLDEN["fit"])
    assert "Recovery recipes compared" not in render_page(_provenanced(records), fit)
    fit["recipes"] = {"cases": compare_cases(records), "joint": []}
    page = render_page(_provenanced(records), fit)
    section = page.split("## Recovery recipes compared", 1)[1]
    rows = [line for line in section.splitlines() if line.startswith("| ") and "×" in line]
    assert "token multiplier" in section and len(rows) == 15  # a row per case: 5 sizes x 3 ratios
