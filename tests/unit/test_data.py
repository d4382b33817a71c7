"""The data layer: hub-identical rows from local files, checksums, and clear errors."""

from __future__ import annotations

import shutil

import pytest

from bench.sources import data
from bench.errors import UsageError

# Row counts and `num_bytes` from the Hugging Face dataset cards. For a string column
# `num_bytes` is the UTF-8 size of every row plus 4 bytes of offset per row, so matching it
# exactly means our rows are the hub's rows byte for byte.
HUB_CARD = {
    ("wikitext2", "test"): (4358, 1_305_088),
    ("wikitext2", "validation"): (3760, 1_159_288),
    ("wikitext2-tokens", "train"): (36718, 10_918_118),
    ("wikitext2-tokens", "validation"): (3760, 1_134_123),
    ("wikitext2-tokens", "test"): (4358, 1_270_947),
}
PTB_ROWS = {"train": 42068, "validation": 3370, "test": 3761}


@pytest.mark.parametrize(("dataset", "split"), sorted(HUB_CARD))
def test_wikitext_rows_match_hub_card(data_dir, dataset, split):
    rows = data.load_rows(dataset, split, data_dir)
    n_rows, num_bytes = HUB_CARD[(dataset, split)]
    assert len(rows) == n_rows
    assert sum(len(r.encode("utf-8")) + 4 for r in rows) == num_bytes


def test_wikitext_row_semantics(data_dir):
    rows = data.load_rows("wikitext2", "test", data_dir)
    assert rows[0] == ""  # the file's first line is the blank " \n"
    assert rows[1] == " = Robert Boulter = \n"  # non-blank rows keep their newline
    assert all(r == "" or r.endswith("\n") for r in rows)
    assert sum(r == "" for r in rows) == 1467


@pytest.mark.parametrize("split", sorted(PTB_ROWS))
def test_ptb_rows_are_stripped_sentences(data_dir, split):
    rows = data.load_rows("ptb", split, data_dir)
    assert len(rows) == PTB_ROWS[split]
    assert all(r == r.strip() for r in rows)
    if split == "validation":
        assert rows[0] == "consumers may want to move their telephones a little closer to the tv set"
        # Mikolov's counts: words plus one <eos> per sentence.
        assert sum(len(r.split()) + 1 for r in rows) == 73_760


def test_c4_sample_documents(data_dir):
    rows = data.load_rows("c4", "train", data_dir)
    assert len(rows) == 1000
    assert rows[0].startswith("Beginners BBQ Class Taking Place in Missoula!")


def test_join_uses_blank_line(data_dir):
    text = data.joined_text("ptb", "validation", data_dir)
    rows = data.load_rows("ptb", "validation", data_dir)
    assert text == "\n\n".join(rows)
    assert text.count("\n\n") == len(rows) - 1


def test_rows_from_lines_rules():
    lines = [" \n", " = A = \n", "  two  spaces \n"]
    assert data.rows_from_lines(lines, "wikitext") == ["", " = A = \n", "  two  spaces \n"]
    assert data.rows_from_lines(lines, "ptb") == ["", "= A =", "two  spaces"]


def _copy_layout(src, dst, relpath):
    (dst / relpath).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src / relpath, dst / relpath)


def test_checksum_mismatch_is_refused_naming_the_file(data_dir, tmp_path):
    rel = "ptb/ptb.valid.txt"
    _copy_layout(data_dir, tmp_path, rel)
    with open(tmp_path / rel, "a") as fh:
        fh.write(" one extra line \n")
    with pytest.raises(UsageError, match=r"checksum mismatch for .*ptb\.valid\.txt"):
        data.load_rows("ptb", "validation", tmp_path)


def test_verified_copy_is_accepted(data_dir, tmp_path):
    rel = "ptb/ptb.valid.txt"
    _copy_layout(data_dir, tmp_path, rel)
    assert len(data.load_rows("ptb", "validation", tmp_path)) == PTB_ROWS["validation"]


def test_missing_file_names_it(tmp_path):
    with pytest.raises(UsageError, match=r"missing data file .*wiki\.test\.raw"):
        data.load_rows("wikitext2", "test", tmp_path)


def test_no_source_names_both_fixes(isolated_env):
    with pytest.raises(UsageError) as err:
        data.load_rows("wikitext2", "test")
    msg = str(err.value)
    assert "PRUNEBENCH_DATA_DIR" in msg and "hub" in msg and "\n" not in msg


def test_env_var_is_the_default_data_dir(data_dir, isolated_env, monkeypatch):
    monkeypatch.setenv("PRUNEBENCH_DATA_DIR", str(data_dir))
    assert len(data.load_rows("ptb", "test")) == PTB_ROWS["test"]


@pytest.mark.parametrize(("dataset", "split", "pattern"), [
    ("wikitext3", "test", "unknown dataset 'wikitext3' .*did you mean 'wikitext2'"),
    ("ptb", "valid", "unknown split 'valid' .*choose one of test, train, validation"),
])
def test_unknown_names(dataset, split, pattern, tmp_path):
    with pytest.raises(UsageError, match=pattern):
        data.load_rows(dataset, split, tmp_path)
