"""Post-training corpora: c4 and SlimPajama-format directories, seeded disjoint slices, the disk cache.

The SlimPajama-format directories are built in tmp_path from the local C4 sample, one part per
format (.jsonl, .jsonl.zst, .parquet), so every reader runs on real text offline.
"""

from __future__ import annotations

from bench.env import RunEnv

import json
from pathlib import Path

import pytest
import torch

from bench.training import corpus
from bench.errors import UsageError
from bench.training.recipe import Recipe
from bench.training.posttrain import heldout_windows, posttrain, training_windows

N_DOCS = 60


@pytest.fixture
def c4_rows(data_dir) -> list[str]:
    from bench.sources.data import load_rows

    return load_rows("c4", "train", data_dir)


def write_jsonl(path, texts, compress=False):
    lines = "".join(json.dumps({"text": t, "meta": {"redpajama_set_name": "RedPajamaC4"}}) + "\n" for t in texts)
    path.parent.mkdir(parents=True, exist_ok=True)
    if compress:
        import zstandard

        path.write_bytes(zstandard.ZstdCompressor().compress(lines.encode()))
    else:
        path.write_text(lines, encoding="utf-8")


def write_parquet(path, texts, column="text"):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({column: texts, "meta": ["c4"] * len(texts)}), path)


@pytest.fixture
def sp_dir(tmp_path, c4_rows):
    """A SlimPajama-format directory: C4 documents 0-59 over three files, one per format."""
    root = tmp_path / "slimpajama"
    write_jsonl(root / "train" / "chunk1" / "part-0.jsonl", c4_rows[:20])
    write_jsonl(root / "train" / "chunk2" / "part-1.jsonl.zst", c4_rows[20:40], compress=True)
    write_parquet(root / "train" / "chunk3" / "part-2.parquet", c4_rows[40:N_DOCS])
    return root


@pytest.fixture
def cache(monkeypatch, tmp_path):
    monkeypatch.setenv("PRUNEBENCH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv(corpus.SLIMPAJAMA_DIR_ENV, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    corpus._STREAMS.clear()
    return tmp_path / "cache"


def tiny():
    from bench.sources.tiny import tiny_model

    return tiny_model("llama", hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=1, head_dim=16)


def recipe(**kw) -> Recipe:
    base = dict(tokens=512, checkpoint_every=256, batch_tokens=128, micro_batch_tokens=64, seq_len=32,
                lr=3e-3, eval_windows=4)
    base.update(kw)
    return Recipe(**base)


class CountingTokenizer:
    """A real tokenizer that counts how often it is asked to tokenise (the disk cache must stop it)."""

    def __init__(self, inner):
        self.inner, self.calls = inner, 0
        self.backend_tokenizer = inner.backend_tokenizer  # the identity `tokenizer_key` reads

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.inner(*args, **kwargs)


# ----------------------------------------------------------------------------- reading directories


def test_a_directory_reads_every_format_in_path_order(sp_dir, c4_rows):
    from bench.sources import corpora_local

    assert [p.name for p in corpora_local.corpus_files(sp_dir)] == ["part-0.jsonl", "part-1.jsonl.zst",
                                                                    "part-2.parquet"]
    assert corpora_local.read_directory(sp_dir) == c4_rows[:N_DOCS]


def test_the_format_does_not_change_the_corpus(tmp_path, c4_rows, cache):
    """The same documents as one .jsonl or as one .parquet file: the same texts, slices and digest."""
    write_jsonl(tmp_path / "j" / "all.jsonl", c4_rows[:N_DOCS])
    write_parquet(tmp_path / "p" / "all.parquet", c4_rows[:N_DOCS])
    a, b = (corpus.SliceSpec("slimpajama", corpus_dir=str(tmp_path / d)) for d in ("j", "p"))
    assert corpus.slice_texts(a, "posttrain") == corpus.slice_texts(b, "posttrain")
    assert corpus.corpus_hash(a) == corpus.corpus_hash(b)
    assert corpus.source_identity(a)["sha256"] != corpus.source_identity(b)["sha256"]  # different files


# ----------------------------------------------------------------------------- slices


def specs(kind, sp_dir, **kw):
    if kind == "c4":
        return corpus.SliceSpec("c4", **kw)
    return corpus.SliceSpec("slimpajama", corpus_dir=str(sp_dir), **kw)


@pytest.mark.parametrize("kind", ["c4", "slimpajama"])
def test_slices_are_seeded_disjoint_and_cover_the_corpus(kind, sp_dir, data_dir, cache):
    def cut(seed):
        return {n: corpus.slice_texts(specs(kind, sp_dir, seed=seed), n, data_dir) for n in corpus.SLICES}

    a, again, other = cut(0), cut(0), cut(1)
    assert a == again
    assert a["heldout"] != other["heldout"] and a["posttrain"] != other["posttrain"]
    sets = {n: set(t) for n, t in a.items()}
    assert not sets["heldout"] & sets["posttrain"] and not sets["heldout"] & sets["pretrain"]
    assert not sets["posttrain"] & sets["pretrain"]
    n = 1000 if kind == "c4" else N_DOCS
    assert sum(len(t) for t in a.values()) == n
    info = corpus.slice_info(specs(kind, sp_dir), data_dir)
    assert info["documents"] == n and sum(info["documents_per_slice"].values()) == n


def test_the_heldout_windows_never_hold_training_text(sp_dir, cache):
    from bench.sources.tiny import byte_tokenizer

    r = recipe(corpus="slimpajama", corpus_dir=str(sp_dir))
    train = {tuple(w.tolist()) for w in training_windows(byte_tokenizer(), r, RunEnv.make())}
    held = {tuple(w.tolist()) for w in heldout_windows(byte_tokenizer(), r, RunEnv.make())}
    assert train and held and not train & held


# ----------------------------------------------------------------------------- post-training on them


def test_posttrain_on_a_slimpajama_directory(sp_dir, cache):
    from bench.sources.tiny import byte_tokenizer

    m = tiny()
    before = m.model.layers[0].mlp.up_proj.weight.detach().clone()
    out, pt = posttrain(m, byte_tokenizer(), recipe(corpus="slimpajama", corpus_dir=str(sp_dir)), RunEnv.make())
    assert [c["tokens"] for c in pt["trajectory"]] == [256, 512]
    assert all(torch.isfinite(torch.tensor(c["val_loss"])) for c in pt["trajectory"])
    assert not torch.equal(before, out.model.layers[0].mlp.up_proj.weight)
    data = pt["slices"]["data"]
    assert (data["dataset"], data["source"], data["files"]) == ("slimpajama", "local", 3)
    assert pt["recipe"]["corpus_dir"] == str(sp_dir) and pt["slices"]["documents"] == N_DOCS


def test_the_environment_variable_names_the_same_directory(sp_dir, cache, monkeypatch):
    from bench.sources.tiny import byte_tokenizer

    explicit = training_windows(byte_tokenizer(), recipe(corpus="slimpajama", corpus_dir=str(sp_dir)), RunEnv.make())
    monkeypatch.setenv(corpus.SLIMPAJAMA_DIR_ENV, str(sp_dir))
    r = recipe(corpus="slimpajama")
    assert "corpus_dir" not in r.to_dict()
    assert torch.equal(training_windows(byte_tokenizer(), r, RunEnv.make()), explicit)


def test_posttrain_on_the_c4_sample(data_dir, cache):
    from bench.sources.tiny import byte_tokenizer

    _, pt = posttrain(tiny(), byte_tokenizer(), recipe(corpus="c4", max_documents=20), RunEnv.make(data_dir=data_dir))
    assert len(pt["trajectory"]) == 2 and pt["slices"]["documents_per_slice"] == {
        "heldout": 40, "posttrain": 100, "pretrain": 860}
    assert pt["slices"]["data"]["sha256"] == "cdd5b754119131d2934e3e799a059a9d64f53a6aac9e7e2ef79b43120bb01a32"


def test_wikitext2_recipes_keep_their_dicts_and_digest(data_dir):
    """The nano zoo's cache keys read these: a new optional field must not show up in them."""
    assert "corpus_dir" not in Recipe().to_dict() and "corpus_dir" not in corpus.SliceSpec().to_dict()
    assert repr(corpus.SliceSpec()) == "SliceSpec(corpus='wikitext2', heldout_frac=0.04, posttrain_frac=0.1, seed=0)"
    assert corpus.corpus_hash(corpus.SliceSpec(), data_dir) == "cd25d392547b5b15"


# ----------------------------------------------------------------------------- the disk cache


def test_a_slice_is_tokenised_once_then_read_from_disk(sp_dir, cache):
    from bench.sources.tiny import byte_tokenizer

    spec = corpus.SliceSpec("slimpajama", corpus_dir=str(sp_dir))
    first = CountingTokenizer(byte_tokenizer())
    ids = corpus.token_stream(first, spec, "posttrain")
    assert first.calls == 1 and len(list((cache / "corpora").glob("*.pt"))) == 1
    corpus._STREAMS.clear()  # as a new process starts
    corpus._COUNTS.clear()
    corpus._document_texts.cache_clear()
    second = CountingTokenizer(byte_tokenizer())
    assert torch.equal(corpus.token_stream(second, spec, "posttrain"), ids) and second.calls == 0
    # The record's document counts came with the entry: the corpus files were not read again.
    assert corpus.slice_info(spec)["documents"] == N_DOCS
    assert corpus._document_texts.cache_info().misses == 0
    # A copy of the directory elsewhere is the same data: the same entry.
    import shutil

    shutil.copytree(sp_dir, sp_dir.parent / "copy")
    corpus._STREAMS.clear()
    third = CountingTokenizer(byte_tokenizer())
    copy_spec = corpus.SliceSpec("slimpajama", corpus_dir=str(sp_dir.parent / "copy"))
    assert torch.equal(corpus.token_stream(third, copy_spec, "posttrain"), ids) and third.calls == 0


def test_changed_data_or_cut_is_a_new_entry(sp_dir, cache, c4_rows):
    from bench.sources.tiny import byte_tokenizer

    spec = corpus.SliceSpec("slimpajama", corpus_dir=str(sp_dir))
    a = corpus.token_stream(byte_tokenizer(), spec, "heldout")
    corpus.token_stream(byte_tokenizer(), corpus.SliceSpec("slimpajama", corpus_dir=str(sp_dir), seed=1), "heldout")
    assert len(list((cache / "corpora").glob("*.pt"))) == 2
    write_jsonl(sp_dir / "train" / "chunk1" / "part-0.jsonl", c4_rows[100:120])  # same size of corpus, new text
    corpus._STREAMS.clear()
    corpus._document_texts.cache_clear()
    b = corpus.token_stream(byte_tokenizer(), spec, "heldout")
    assert len(list((cache / "corpora").glob("*.pt"))) == 3 and not torch.equal(a, b)


# ----------------------------------------------------------------------------- bad input: one line each


def test_records_without_text_name_the_file(tmp_path, cache):
    bad = tmp_path / "d" / "x.jsonl"
    bad.parent.mkdir()
    bad.write_text(json.dumps({"content": "no text field"}) + "\n")
    with pytest.raises(UsageError, match=r"x\.jsonl: line 1 has no 'text' field") as e:
        corpus.slice_texts(corpus.SliceSpec("slimpajama", corpus_dir=str(tmp_path / "d")), "posttrain")
    assert "\n" not in str(e.value)


def test_parquet_without_a_text_column_names_the_file(tmp_path, c4_rows, cache):
    write_parquet(tmp_path / "d" / "y.parquet", c4_rows[:5], column="body")
    with pytest.raises(UsageError, match=r"y\.parquet has no 'text' column \(it has body, meta\)"):
        corpus.slice_texts(corpus.SliceSpec("slimpajama", corpus_dir=str(tmp_path / "d")), "posttrain")


def test_a_directory_without_corpus_files_names_it_and_the_formats(tmp_path, cache):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "notes.txt").write_text("not a corpus file")
    with pytest.raises(UsageError, match=r"d' holds no \.jsonl, \.jsonl\.zst, \.parquet files"):
        corpus.slice_texts(corpus.SliceSpec("slimpajama", corpus_dir=str(tmp_path / "d")), "posttrain")
    with pytest.raises(UsageError, match=r"corpus directory .*nowhere' does not exist"):
        corpus.slice_texts(corpus.SliceSpec("slimpajama", corpus_dir=str(tmp_path / "nowhere")), "posttrain")


def test_slimpajama_offline_without_a_directory_says_how_to_give_one(cache):
    r = Recipe(corpus="slimpajama")  # a study naming it validates anywhere; reading it is what needs data
    with pytest.raises(UsageError, match=r"needs a local directory offline: set the recipe's corpus_dir or "
                                         r"\$PRUNEBENCH_SLIMPAJAMA_DIR"):
        corpus.slice_texts(r.slices, "posttrain")


def test_corpus_dir_belongs_to_directory_corpora_only():
    with pytest.raises(UsageError, match="corpus_dir applies to slimpajama only"):
        Recipe(corpus="wikitext2", corpus_dir="/data/x")


def test_a_study_names_slimpajama_and_its_directory(tmp_path, sp_dir):
    from bench.studies.schema import load_study

    head = (Path(__file__).resolve().parents[2] / "bench" / "studies" / "tiny.toml").read_text()
    good = tmp_path / "mine.toml"
    good.write_text(head + f'\n[posttrain]\ncorpus = "slimpajama"\ncorpus_dir = "{sp_dir}"\ntokens = 512\n'
                           'checkpoint_every = 256\nbatch_tokens = 128\nmicro_batch_tokens = 128\nseq_len = 32\n')
    study = load_study(good)
    assert dict(study.posttrain)["corpus_dir"] == str(sp_dir)
    bad = tmp_path / "typo.toml"
    bad.write_text(head + '\n[posttrain]\ncorpus = "slimpajama"\ncorpus_dirs = "/x"\n')
    with pytest.raises(UsageError, match="did you mean 'corpus_dir'"):
        load_study(bad)


def test_the_token_cache_honours_an_explicit_cache_dir(cache, sp_dir, tmp_path):
    from bench.sources.tiny import byte_tokenizer

    spec = corpus.SliceSpec("slimpajama", corpus_dir=str(sp_dir))
    elsewhere = tmp_path / "elsewhere"
    ids = corpus.token_stream(byte_tokenizer(), spec, "heldout", cache_dir=elsewhere)
    assert len(list((elsewhere / "corpora").glob("*.pt"))) == 1 and ids.numel() > 0
    assert not (cache / "corpora").exists() or not list((cache / "corpora").glob("*.pt"))
