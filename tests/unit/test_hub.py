"""Hub ids offline: a models directory, then the HF cache (its real layout), then the hub; pins.

Nothing here touches the network: HF_HUB_OFFLINE=1 and HF_HUB_CACHE points at a tmp directory
laid out as huggingface_hub lays out its cache (`tests/hub_helpers.py`).
"""

from __future__ import annotations

from bench.env import RunEnv, MODELS_DIR_ENV

import pytest
import torch

from bench.sources import hub
from bench.errors import UsageError
from bench.sources.models import load_model
from bench.harness.provenance import model_identity
from hub_helpers import hf_cache_entry, save_tiny
from plugin_helpers import case_runner, collection_finish, configured, session_finish, session_of

SHA_A = "3f1c0d2e4b5a69788796a5b4c3d2e1f0a9b8c7d6"
SHA_B = "9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d"
HUB_ID = "tiny-org/tiny-llama-hub"


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """Offline, an empty HF cache and no models directory, all under tmp_path."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.delenv(MODELS_DIR_ENV, raising=False)
    monkeypatch.setenv("PRUNEBENCH_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path


@pytest.fixture
def cached(offline):
    """HUB_ID in the HF cache as snapshot SHA_A (refs/main -> SHA_A)."""
    saved = save_tiny(offline / "saved", seed=3)
    hf_cache_entry(offline / "hf", HUB_ID, saved, SHA_A)
    return saved


def _logits(model) -> torch.Tensor:
    with torch.no_grad():
        return model(torch.arange(10).view(1, 10)).logits


def test_parse_hub_specs():
    assert hub.parse("org/name") == hub.HubSpec("org/name", None)
    assert hub.parse(f"org/name@{SHA_A}") == hub.HubSpec("org/name", SHA_A)
    for not_hub in ("./org/name", "/abs/path", "a/b/c", "org/name@", "tiny-llama", "org/"):
        assert hub.parse(not_hub) is None, not_hub


def test_hf_cache_snapshot_loads_offline_with_its_commit(cached):
    loaded = load_model(HUB_ID, RunEnv.make(device="cpu"))
    assert loaded.kind == "hub" and loaded.spec == HUB_ID
    assert (loaded.info["source"], loaded.info["revision"], loaded.info["pinned"]) == ("hf-cache", SHA_A, None)
    assert loaded.info["path"].endswith(f"snapshots/{SHA_A}")
    # The weights are the saved ones, read through the snapshot's symlinks into the blobs.
    assert torch.equal(_logits(loaded.model), _logits(load_model(str(cached), RunEnv.make(device="cpu")).model))
    ident = model_identity(HUB_ID, RunEnv.make())
    assert (ident["kind"], ident["source"], ident["revision"]) == ("hub", "hf-cache", SHA_A)


def test_a_pin_to_the_cached_commit_or_its_ref_loads(cached):
    for pin in (SHA_A, "main"):
        loaded = load_model(f"{HUB_ID}@{pin}", RunEnv.make(device="cpu"))
        assert (loaded.info["revision"], loaded.info["pinned"]) == (SHA_A, pin)
        assert model_identity(f"{HUB_ID}@{pin}", RunEnv.make())["revision"] == SHA_A


def test_a_pin_to_another_commit_fails_in_one_line_naming_both(cached):
    with pytest.raises(UsageError) as err:
        load_model(f"{HUB_ID}@{SHA_B}", RunEnv.make(device="cpu"))
    msg = str(err.value)
    assert "\n" not in msg and SHA_A in msg and SHA_B in msg and HUB_ID in msg
    with pytest.raises(UsageError, match=SHA_B):
        model_identity(f"{HUB_ID}@{SHA_B}", RunEnv.make())  # provenance is computed before a case runs: same refusal


def test_the_models_dir_comes_first_and_declares_or_digests_its_revision(cached, offline, monkeypatch):
    root = offline / "models"
    entry = save_tiny(root / HUB_ID, seed=5)
    monkeypatch.setenv(MODELS_DIR_ENV, str(root))
    where = hub.resolve(HUB_ID)
    assert where.source == "models-dir" and where.path == entry and where.revision.startswith("sha256:")
    digest = where.revision
    save_tiny(entry, seed=6)  # other weights, other digest
    assert hub.resolve(HUB_ID).revision != digest
    (entry / hub.REVISION_FILE).write_text("v1.0\n")
    assert hub.resolve(HUB_ID).revision == "v1.0"
    assert hub.resolve(f"{HUB_ID}@v1.0").source == "models-dir"
    # A pin the models dir does not hold skips it; the HF cache has that commit.
    assert hub.resolve(f"{HUB_ID}@{SHA_A}").source == "hf-cache"
    loaded = load_model(HUB_ID, RunEnv.make(device="cpu"))
    assert (loaded.info["source"], loaded.info["revision"]) == ("models-dir", "v1.0")
    with pytest.raises(UsageError) as err:
        hub.resolve(f"{HUB_ID}@{SHA_B}")
    assert "v1.0" in str(err.value) and SHA_A in str(err.value) and SHA_B in str(err.value)


def test_offline_with_no_copy_names_every_way_to_provide_one(offline, monkeypatch):
    monkeypatch.setenv(MODELS_DIR_ENV, str(offline / "models"))
    with pytest.raises(UsageError) as err:
        load_model("nobody/nothing-7b", RunEnv.make(device="cpu"))
    msg = str(err.value)
    assert "\n" not in msg and "nobody/nothing-7b" in msg
    assert str(offline / "models" / "nobody" / "nothing-7b") in msg  # the models dir path it looked at
    assert str(offline / "hf" / "models--nobody--nothing-7b") in msg  # the HF cache entry it looked for
    assert "HF_HUB_OFFLINE" in msg and "go online" in msg and "--models-dir" in msg
    monkeypatch.delenv(MODELS_DIR_ENV)
    with pytest.raises(UsageError, match=r"\$PRUNEBENCH_MODELS_DIR is not set"):
        hub.resolve("nobody/nothing-7b")


def test_a_lone_snapshot_without_refs_resolves(offline):
    saved = save_tiny(offline / "saved")
    hf_cache_entry(offline / "hf", HUB_ID, saved, SHA_B, ref=None)
    assert hub.resolve(HUB_ID).revision == SHA_B


STUDY = """
[study]
name = "pin"

[[models]]
spec = "{spec}"
key = "m"
{revision}

[[methods]]
method = "dense"

[evaluation]
datasets = ["ptb"]
seq_lens = [32]
max_windows = 1
"""


def _run_study(tmp_path, data_dir, spec, revision=""):
    """`pytest bench --study pin.toml --device=cpu` in process (`plugin_helpers`).

    Raises pytest.UsageError where the run stops before any case; returns the results directory.
    """
    study = tmp_path / "pin.toml"
    study.write_text(STUDY.format(spec=spec, revision=revision))
    results = tmp_path / "results"
    with configured(f"--study={study}", f"--results-dir={results}", "--device=cpu", f"--data-dir={data_dir}") as config:
        cases = session_of(config).cases()
        try:
            collection_finish(config, cases)
            run, _ = case_runner(config)
            for case in cases:
                run(case)
        finally:
            session_finish(config)
    return results


def test_a_study_on_a_hub_id_offline_with_no_copy_is_refused_before_any_case(offline, data_dir):
    with pytest.raises(pytest.UsageError, match="model nobody/nothing-7b is not available offline"):
        _run_study(offline, data_dir, "nobody/nothing-7b")
    assert not (offline / "results").exists()  # nothing written


def test_a_study_pinned_to_a_revision_not_found_locally_is_refused(cached, offline, data_dir):
    with pytest.raises(pytest.UsageError) as info:
        _run_study(offline, data_dir, HUB_ID, f'revision = "{SHA_B}"')
    line = next(line for line in str(info.value).splitlines() if SHA_B in line)
    assert SHA_A in line and HUB_ID in line
    assert not (offline / "results").exists()
    results = _run_study(offline, data_dir, HUB_ID, f'revision = "{SHA_A}"')
    import json

    rec = json.loads(next((results / "records").glob("*.json")).read_text())
    assert rec["provenance"]["model"]["revision"] == SHA_A and rec["provenance"]["model"]["pinned"] == SHA_A
    assert rec["model"]["info"]["source"] == "hf-cache"


def test_a_study_on_a_spec_that_resolves_nowhere_is_refused_before_any_case(offline, data_dir):
    with pytest.raises(pytest.UsageError) as info:
        _run_study(offline, data_dir, "./no/such/model")
    assert any("unknown model './no/such/model'" in line and "hub id like org/name" in line
               for line in str(info.value).splitlines())
    assert not (offline / "results").exists()


def test_several_snapshots_and_no_main_ref_ask_for_a_pin(offline):
    saved = save_tiny(offline / "saved")
    for sha in (SHA_A, SHA_B):
        hf_cache_entry(offline / "hf", HUB_ID, saved, sha, ref=None)
    with pytest.raises(UsageError, match=f"holds snapshots {SHA_A}, {SHA_B} and no refs/main"):
        hub.resolve(HUB_ID)
    assert hub.resolve(f"{HUB_ID}@{SHA_B}").revision == SHA_B
