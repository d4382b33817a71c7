"""The nano zoo: tokenizer, cache keys, manifest verification and rebuilds, family shapes."""

from __future__ import annotations

from bench.env import RunEnv

from synthetic_records import cases_of

import dataclasses
import json
import math
import warnings

import pytest
import torch

from bench.training import zoo, zoo_families
from bench.errors import UsageError

# A family small enough to build in seconds: one 1-layer model, 2k pre-training tokens. Tests that
# build take `zoo_cache` (shared by the session) or `new_zoo_cache` (empty, for counting builds),
# which marks them `slow` (tests/conftest.py).
TEST_FAMILY = zoo_families.Family(
    "nano-unittest", "llama",
    (zoo_families.BaseSize("t1", 16, 1, 1, 1, 32, pretrain_tokens=2048, lr=1e-2),
     zoo_families.BaseSize("t2", 16, 2, 1, 1, 32, pretrain_tokens=2048, lr=1e-2)),
    vocab_size=300, seq_len=32, batch_tokens=512, tokenizer_docs=4, pretrain_docs=8, eval_windows=4)


@pytest.fixture
def family(monkeypatch):
    monkeypatch.setitem(zoo_families.FAMILIES, TEST_FAMILY.name, TEST_FAMILY)
    return TEST_FAMILY


@pytest.fixture
def builds(monkeypatch):
    """Counts calls of `build_base` (real training still happens)."""
    calls = []
    real = zoo.build_base

    def counting(family, size, *a, **kw):
        calls.append(size.key)
        return real(family, size, *a, **kw)

    monkeypatch.setattr(zoo, "build_base", counting)
    return calls


def test_spec_parsing_and_unknown_names(family):
    assert zoo_families.is_nano("nano-unittest-t1") and not zoo_families.is_nano("nano-unittest-t9") and not zoo_families.is_nano("tiny-llama")
    fam, size = zoo_families.parse_spec("nano-unittest-t2")
    assert fam is family and size.key == "t2"
    with pytest.raises(UsageError, match="has no size 't3'"):
        zoo_families.parse_spec("nano-unittest-t3")
    with pytest.raises(UsageError, match="unknown nano model 'nano-lama-l2'.*did you mean 'nano-llama-l2'"):
        zoo_families.parse_spec("nano-lama-l2")


@pytest.mark.parametrize("name", ["nano-llama", "nano-qwen2"])
def test_nano_family_can_carry_the_law(name):
    """Issue 11's zoo: N0 spans 8x, 4 fit sizes + the largest held out, embeddings <= 40%."""
    rows = zoo_families.family_table(zoo_families.FAMILIES[name])
    n0 = [r["params"] for r in rows]
    assert len(rows) >= 5 and n0 == sorted(n0) and n0[-1] / n0[0] >= 8
    for r in rows:
        assert 1 - r["non_embedding_params"] / r["params"] <= 0.40, r
    assert len({r["layers"] for r in rows}) == 1  # one depth: a layer is the same share everywhere


def test_nano_depth_ratios_remove_the_same_layers_at_every_size():
    """The nano study's depth cases remove 1, 2 and 3 of the 8 layers at every size."""
    from transformers import AutoModelForCausalLM

    from pruners.depth import layers_for_ratio

    family = zoo_families.FAMILIES["nano-llama"]
    removed = {}
    for case in cases_of("nano"):
        if case.method != "depth":
            continue
        _, size = zoo_families.parse_spec(case.model)
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(family.model_config(size))
        k = layers_for_ratio(model, case.ratio, case.prune.unit)
        removed.setdefault(case.ratio, set()).add(k / size.num_hidden_layers)
    assert removed == {0.15: {1 / 8}, 0.25: {2 / 8}, 0.35: {3 / 8}}


def test_cache_key_covers_every_input(family, data_dir):
    size = family.size("t1")
    key = zoo._digest(zoo.model_inputs(family, size, data_dir))
    assert key == zoo._digest(zoo.model_inputs(family, size, data_dir))  # stable
    variants = [
        (dataclasses.replace(family, vocab_size=320), size),
        (dataclasses.replace(family, arch="qwen2"), size),
        (dataclasses.replace(family, seed=1), size),
        (dataclasses.replace(family, batch_tokens=1024), size),
        (dataclasses.replace(family, tokenizer_docs=5), size),
        (family, dataclasses.replace(size, lr=2e-2)),
        (family, dataclasses.replace(size, pretrain_tokens=4096)),
        (family, dataclasses.replace(size, intermediate_size=64)),
    ]
    keys = {zoo._digest(zoo.model_inputs(f, s, data_dir)) for f, s in variants}
    assert key not in keys and len(keys) == len(variants)


def test_tokenizer_is_byte_level_bpe_with_one_bos(family, data_dir, zoo_cache):
    tok = zoo.load_tokenizer(family, zoo_cache, data_dir)
    assert len(tok) == family.vocab_size
    ids = tok("Hello , world .\n\nnaïve")["input_ids"]
    assert ids[0] == tok.bos_token_id and tok.bos_token_id not in ids[1:]
    assert tok.decode(ids[1:]) == "Hello , world .\n\nnaïve"  # byte level: lossless


def test_build_then_reuse_across_loads(family, data_dir, new_zoo_cache, builds):
    a = zoo.load("nano-unittest-t1", RunEnv.make(cache_dir=new_zoo_cache, data_dir=data_dir))
    b = zoo.load("nano-unittest-t1", RunEnv.make(cache_dir=new_zoo_cache, data_dir=data_dir))
    assert builds == ["t1"]
    assert a.info["zoo_key"] == b.info["zoo_key"] and a.info["rebuilt_because"] == "missing"
    for pa, pb in zip(a.model.parameters(), b.model.parameters()):
        assert torch.equal(pa, pb)
    manifest = zoo.read_manifest(zoo.ensure("nano-unittest-t1", RunEnv.make(cache_dir=new_zoo_cache, data_dir=data_dir)))
    assert manifest["pretrain"]["tokens"] == 2048 and len(manifest["pretrain"]["trajectory"]) == 4
    assert manifest["non_embedding_params"] == zoo_families.non_embedding_params(a.model)
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= set(manifest["files"])


@pytest.mark.parametrize("damage", ["flip-weight-byte", "drop-file", "garble-manifest", "other-key"])
def test_corrupted_or_stale_entry_is_rebuilt_with_a_warning(family, data_dir, new_zoo_cache, builds, damage):
    directory = zoo.ensure("nano-unittest-t1", RunEnv.make(cache_dir=new_zoo_cache, data_dir=data_dir))
    weights = directory / "model.safetensors"
    if damage == "flip-weight-byte":
        blob = bytearray(weights.read_bytes())
        blob[-3] ^= 0xFF
        weights.write_bytes(bytes(blob))
    elif damage == "drop-file":
        (directory / "tokenizer.json").unlink()
    elif damage == "garble-manifest":
        (directory / zoo.MANIFEST).write_text("{not json")
    else:
        manifest = json.loads((directory / zoo.MANIFEST).read_text())
        manifest["key"] = "0" * 16
        (directory / zoo.MANIFEST).write_text(json.dumps(manifest))
    key = directory.name.rsplit("-", 1)[1]
    assert zoo.check_entry(directory, key) is not None
    with pytest.warns(UserWarning, match="rebuilding it"):
        again = zoo.ensure("nano-unittest-t1", RunEnv.make(cache_dir=new_zoo_cache, data_dir=data_dir))
    assert again == directory and zoo.check_entry(directory, key) is None
    assert builds == ["t1", "t1"]
    assert zoo.read_manifest(directory)["rebuilt_because"] != "missing"


def test_intact_entry_is_used_without_warning(family, data_dir, new_zoo_cache, builds):
    zoo.ensure("nano-unittest-t1", RunEnv.make(cache_dir=new_zoo_cache, data_dir=data_dir))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        zoo.ensure("nano-unittest-t1", RunEnv.make(cache_dir=new_zoo_cache, data_dir=data_dir))
    assert builds == ["t1"]


def test_unwritable_cache_dir_is_a_usage_error(family, data_dir, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(UsageError, match="cache directory .* is not writable"):
        zoo.ensure("nano-unittest-t1", RunEnv.make(cache_dir=blocker / "cache", data_dir=data_dir))


def test_slices_are_disjoint_and_cover_the_corpus(data_dir):
    from bench.training import corpus

    spec = corpus.SliceSpec()
    docs = corpus._documents(spec, data_dir)
    parts = corpus.assignment(len(docs), spec)
    sets = {k: set(v) for k, v in parts.items()}
    assert not (sets["heldout"] & sets["posttrain"]) and not (sets["heldout"] & sets["pretrain"])
    assert not (sets["posttrain"] & sets["pretrain"])
    assert set().union(*sets.values()) == set(range(len(docs)))
    held = set(corpus.slice_texts(spec, "heldout", data_dir))
    assert held and not held & set(corpus.slice_texts(spec, "posttrain", data_dir))
    assert parts == corpus.assignment(len(docs), spec)  # deterministic
    with pytest.raises(UsageError, match="unknown corpus 'ptb'"):
        corpus.SliceSpec(corpus="ptb")


def test_ensure_all_builds_missing_models_in_parallel_workers(family, data_dir, new_zoo_cache):
    specs = ["nano-unittest-t1", "nano-unittest-t2"]
    dirs = zoo.ensure_all(specs, RunEnv.make(cache_dir=new_zoo_cache, data_dir=data_dir), workers=2)
    assert set(dirs) == set(specs)
    stamps = {}
    for spec, directory in dirs.items():
        key = directory.name.rsplit("-", 1)[1]
        assert zoo.check_entry(directory, key) is None
        assert zoo.read_manifest(directory)["spec"] == spec
        stamps[spec] = (directory / zoo.MANIFEST).stat().st_mtime_ns
    again = zoo.ensure_all(specs, RunEnv.make(cache_dir=new_zoo_cache, data_dir=data_dir), workers=2)  # all cached: nothing rebuilt
    assert again == dirs and all((d / zoo.MANIFEST).stat().st_mtime_ns == stamps[s] for s, d in again.items())


def test_qwen2_family_builds_the_same_way(data_dir, zoo_cache, monkeypatch):
    qwen = dataclasses.replace(TEST_FAMILY, name="nano-unitq", arch="qwen2")
    monkeypatch.setitem(zoo_families.FAMILIES, qwen.name, qwen)
    loaded = zoo.load("nano-unitq-t1", RunEnv.make(cache_dir=zoo_cache, data_dir=data_dir))
    assert type(loaded.model).__name__ == "Qwen2ForCausalLM"
    assert loaded.model.model.layers[0].self_attn.q_proj.bias is not None  # Qwen2's q/k/v biases
    assert loaded.info["pretrain_val_loss"] < math.log(qwen.vocab_size)  # it learned something


# A vocabulary large enough to hold merges across digits and newlines, where Qwen2Tokenizer's
# own pre-tokenizer splits differently from the byte-level pipeline the base was trained with.
MERGY = dataclasses.replace(TEST_FAMILY, vocab_size=1024, tokenizer_docs=64)


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_a_loaded_base_reproduces_its_pretraining_heldout_loss(arch, data_dir, zoo_cache, monkeypatch):
    """L0 of every case is the loaded base's held-out loss: it must be the one pre-training ended at."""
    from bench.training.engine import heldout_loss
    from bench.training.posttrain import heldout_windows

    fam = dataclasses.replace(MERGY, name=f"nano-unit{arch}", arch=arch)
    monkeypatch.setitem(zoo_families.FAMILIES, fam.name, fam)
    loaded = zoo.load(f"{fam.name}-t1", RunEnv.make(cache_dir=zoo_cache, data_dir=data_dir))
    recipe = fam.recipe(fam.sizes[0])
    held = heldout_windows(loaded.tokenizer, recipe, RunEnv.make(data_dir=data_dir))
    assert heldout_loss(loaded.model, held, 64, recipe) == pytest.approx(loaded.info["pretrain_val_loss"], abs=1e-6)


def test_a_tokenizer_that_loads_differently_is_refused(data_dir, zoo_cache, monkeypatch):
    """AutoTokenizer on a Qwen2 directory swaps in Qwen2Tokenizer's pipeline; zoo.load must notice."""
    from transformers import AutoTokenizer

    from bench.sources import loaders

    fam = dataclasses.replace(MERGY, name="nano-unitqq", arch="qwen2")
    monkeypatch.setitem(zoo_families.FAMILIES, fam.name, fam)
    zoo.ensure(f"{fam.name}-t1", RunEnv.make(cache_dir=zoo_cache, data_dir=data_dir))
    monkeypatch.setattr(loaders, "load_saved_tokenizer", lambda path: AutoTokenizer.from_pretrained(path))
    with pytest.raises(RuntimeError, match="tokenizes differently from the family tokenizer"):
        zoo.load(f"{fam.name}-t1", RunEnv.make(cache_dir=zoo_cache, data_dir=data_dir))
