"""Record provenance, and `--resume` reusing a record only when config and provenance match."""

from __future__ import annotations

from synthetic_records import cases_of

import re

import pytest

from bench.env import RunEnv
from bench.harness import provenance
from bench.harness.run_config import CommandLine
from bench.harness.session import BenchSession
from bench.training import zoo


def test_code_identity_of_this_checkout():
    code = provenance.code_identity()
    assert code["prunebench"]
    assert re.fullmatch(r"[0-9a-f]{40}", code["commit"] or ""), code
    assert isinstance(code["dirty"], bool)
    assert (code["diff_sha256"] is None) == (not code["dirty"])


def test_stale_reasons_name_what_changed():
    old = {"code": {"prunebench": "0.1.0", "commit": "1a2b3c4d" * 5, "dirty": False, "diff_sha256": None},
           "model": {"kind": "zoo", "zoo_key": "aaaa"}, "data": {"ptb/validation": "x"}, "device": "cpu",
           "dtype": "float32", "torch": "2.13.0", "transformers": "5.0"}
    assert provenance.stale_reasons(old, dict(old)) == []
    new = dict(old, code=dict(old["code"], commit="4d5e6f7a" * 5))
    assert provenance.stale_reasons(old, new) == ["code 1a2b3c4 -> 4d5e6f7"]
    new = dict(old, code=dict(old["code"], dirty=True, diff_sha256="9f8e7d6c"))
    assert provenance.stale_reasons(old, new) == ["code 1a2b3c4 -> 1a2b3c4+dirty.9f8e"]
    new = dict(old, model={"kind": "zoo", "zoo_key": "bbbb"}, dtype="bfloat16", data={"ptb/validation": "y"})
    assert provenance.stale_reasons(old, new) == ["model aaaa -> bbbb", "data ptb/validation changed",
                                                  "dtype float32 -> bfloat16"]
    assert provenance.stale_reasons(None, old) == ["no provenance (record made by an older prunebench)"]


def test_case_provenance_lists_every_file_the_case_reads(data_dir):
    case = next(c for c in cases_of("nano") if c.label == "depth")
    prov = provenance.case_provenance(case, RunEnv.make(data_dir=data_dir))
    # Evaluation (WikiText-2 test, PTB validation), calibration and post-training corpus.
    assert set(prov["data"]) == {"wikitext2/test", "ptb/validation", "wikitext2-tokens/train"}
    assert all(re.fullmatch(r"[0-9a-f]{64}", v) for v in prov["data"].values())
    assert prov["model"]["kind"] == "zoo" and prov["model"]["zoo_key"]
    assert (prov["device"], prov["dtype"]) == ("cpu", "float32")


def test_zoo_key_changes_when_the_zoo_recipe_changes(data_dir, monkeypatch):
    env = RunEnv.make(data_dir=data_dir)
    before = provenance.model_identity("nano-llama-l1", env)
    monkeypatch.setattr(zoo, "ZOO_VERSION", zoo.ZOO_VERSION + 1)
    after = provenance.model_identity("nano-llama-l1", env)
    assert before["zoo_key"] != after["zoo_key"]


def test_gguf_and_local_identities_hash_content(tmp_path):
    weights = tmp_path / "m"
    weights.mkdir()
    (weights / "config.json").write_text("{}")
    (weights / "model.safetensors").write_bytes(b"abc")
    (weights / "README.md").write_text("not a weight file")
    env = RunEnv.make()
    first = provenance.model_identity(str(weights), env)
    (weights / "README.md").write_text("edited")
    assert provenance.model_identity(str(weights), env) == first  # only config and weights count
    (weights / "model.safetensors").write_bytes(b"abd")
    assert provenance.model_identity(str(weights), env)["weights_sha256"] != first["weights_sha256"]
    gguf = tmp_path / "x.gguf"
    gguf.write_bytes(b"GGUF1234")
    import hashlib

    assert provenance.model_identity(str(gguf), env)["sha256"] == hashlib.sha256(b"GGUF1234").hexdigest()


@pytest.fixture
def tiny_session(data_dir, tmp_path):
    session = BenchSession(CommandLine("tiny", resume=True, report=False),
                           RunEnv.make(data_dir=data_dir, results_dir=tmp_path / "r", cache_dir=tmp_path / "c"))
    case = next(c for c in session.cases() if c.id == "tiny-llama-dense-ptb-128")
    rec = session.run_case(case)
    return session, case, rec


def test_resume_reuses_a_record_only_when_provenance_matches(tiny_session):
    import dataclasses

    from bench.sources import records

    session, case, rec = tiny_session
    assert rec.provenance == session.provenance(case)
    reused = session.check_stored(case).record  # same config, same provenance: reused
    assert reused is not None and reused.created == rec.created
    path = records.record_path(session.results_dir, case.id)
    for field, value, reason in [
        ("code", dict(rec.provenance["code"], commit="4d5e6f7" + "0" * 33, dirty=False), "code "),
        ("dtype", "bfloat16", "dtype bfloat16 -> float32"),
        ("model", {"kind": "zoo", "zoo_key": "0123456789ab"}, "model 0123456789ab -> "),
    ]:
        tampered = dataclasses.replace(rec, provenance=dict(rec.provenance, **{field: value}))
        records.write_record(session.results_dir, tampered)
        found = session.check_stored(case)
        assert found.record is None and found.reason.startswith(reason), found
    # The case then runs again; its new record says why and carries the current provenance.
    fresh = session.run_case(case)
    assert fresh.resume["rerun_because"].startswith("model 0123456789ab -> ")
    assert fresh.provenance == session.provenance(case)
    assert session.summary_lines()[-1].startswith(f"stale: {case.id}: model 0123456789ab -> ")
    path.write_text(path.read_text()[:50])  # truncated
    assert session.check_stored(case).reason.startswith("unusable record (cannot read record")


def test_a_directory_corpus_is_identified_by_its_files(tmp_path, monkeypatch, data_dir):
    """A SlimPajama-format directory has no published checksum: its files' digest stands in."""
    import dataclasses
    import json as _json

    case = next(c for c in cases_of("smoke") if c.method == "control")  # no calibration data
    corpus_dir = tmp_path / "sp"
    corpus_dir.mkdir()
    (corpus_dir / "part-0.jsonl").write_text("\n".join(_json.dumps({"text": f"document {i} " * 50})
                                                      for i in range(40)) + "\n")
    sp_case = dataclasses.replace(case, recipe=dataclasses.replace(case.recipe, corpus="slimpajama",
                                                                   corpus_dir=str(corpus_dir)))
    env = RunEnv.make(data_dir=data_dir)
    first = provenance.case_provenance(sp_case, env)
    assert set(first["data"]) == {"wikitext2/test", "ptb/validation", "corpus:slimpajama"}
    (corpus_dir / "part-0.jsonl").write_text(_json.dumps({"text": "edited " * 60}) + "\n")
    second = provenance.case_provenance(sp_case, env)
    assert second["data"]["corpus:slimpajama"] != first["data"]["corpus:slimpajama"]
    assert provenance.stale_reasons(first, second) == ["data corpus:slimpajama changed"]
