"""`prunebench report`: re-render from stored records; mixed recipes give separate groups and plots."""

from __future__ import annotations

import json

from bench.cli import main
from bench.records import write_record
from synthetic_records import LORA_RECIPE, synthetic_records


def test_mixed_recipes_render_separate_groups_and_plots(tmp_path, capsys):
    for rec in synthetic_records(noise=0.001, nm=False) + synthetic_records(noise=0.001, nm=False, recipe=LORA_RECIPE,
                                                                             profile="synth-lora"):
        write_record(tmp_path, rec)
    out = tmp_path / "out"
    assert main(["report", "--results-dir", str(tmp_path), "--out", str(out), "--bootstrap", "3"]) == 0
    fit = json.loads((out / "fit.json").read_text())
    assert fit["schema"] == "prunebench.fit/2" and len(fit["groups"]) == 2
    recipes = {g["recipe"] for g in fit["groups"]}
    assert {r.split("-")[0] for r in recipes} == {"full", "lora"}
    pngs = sorted(p.name for p in out.glob("loss_*.png"))
    assert pngs == sorted(f"loss_synth-llama_depth_{r}.png" for r in recipes)
    report = (out / "report.md").read_text()
    assert "- `lora-" in report and "LoRA r=8, lr 0.005 constant" in report and "full, lr 0.0005 constant" in report
    assert fit["groups"][0]["bootstrap"]["n"] == 3


def test_bad_bootstrap_and_missing_dir(tmp_path, capsys):
    write_record(tmp_path, synthetic_records()[0])
    assert main(["report", "--results-dir", str(tmp_path), "--bootstrap", "-1"]) == 2
    assert "--bootstrap must be >= 0" in capsys.readouterr().err
    assert main(["report", "--results-dir", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err
