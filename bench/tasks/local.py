"""The datasets behind the shipped offline lm-eval tasks, built from the local data directory.

lm-eval calls these functions as a task's ``custom_dataset``, passing the task's metadata as
keyword arguments; prunebench (and a user of lm-eval's CLI, with ``--metadata``) puts the data
directory there as ``data_dir``. Without it, ``$PRUNEBENCH_DATA_DIR`` is used. The file is the
checksum-verified WikiText-2 raw test of `bench.sources.data`.

Both builders are deterministic functions of that one file, so a task's documents, and with
them its numbers, depend on nothing else.
"""

from __future__ import annotations

import re

from bench.errors import UsageError

# A paragraph's last word qualifies as a target only when it is made of letters.
_WORD = re.compile(r"[A-Za-z]+")
# Paragraphs whose context (everything before the target) has fewer words than this are
# dropped: LAMBADA's passages are several sentences long, and a one-line paragraph says
# little about its own last word.
MIN_CONTEXT_WORDS = 40


def _raw_test_text(data_dir) -> str:
    """WikiText-2 raw test, verified, exactly as stored."""
    from bench.sources import data

    root = data.resolve_data_dir(data_dir)
    if root is None:
        raise UsageError(
            "the offline zero-shot tasks need the local data directory: pass data_dir in the task "
            f"metadata (lm-eval --metadata '{{\"data_dir\": DIR}}') or set {data.DATA_DIR_ENV}")
    src = data.get_source("wikitext2", "test")
    path = root / src.relpath
    if not path.is_file():
        raise UsageError(f"missing data file {path}; copy it into the data directory (layout of shared/data)")
    data.verify_file(path, src.sha256)
    with open(path, encoding="utf-8", newline="") as fh:
        return fh.read()


def _is_title(line: str) -> bool:
    """An article title line (`` = Robert Boulter = ``), not a section heading (`` = = ...``)."""
    squeezed = line.replace("= = =", "===").replace("= =", "==").strip()
    return squeezed.startswith("= ") and squeezed.endswith(" =")


def split_pages(text: str) -> list[str]:
    """Cut WikiText raw text into articles the way the hub's ``wikitext_document_level`` does.

    Each article starts at its title line and runs to the line before the next title; lines
    keep their spacing and are joined with ``"\\n"``. Leading text before the first title is
    kept only if it is not blank, and the last article is kept as it is (it ends with the
    empty string after the file's final newline).
    """
    pages, current = [], []
    for line in text.split("\n"):
        if _is_title(line):
            page = "\n".join(current)
            if page.strip():
                pages.append(page)
            current = []
        current.append(line)
    pages.append("\n".join(current))
    return pages


def lastword_items(text: str, min_context_words: int = MIN_CONTEXT_WORDS) -> list[dict]:
    """(context, target) pairs: each qualifying test paragraph, minus its final word.

    A paragraph is a non-blank line that is not a heading. It is detokenised with lm-eval's
    WikiText detokenizer (so ``@-@`` and `` , `` read as ordinary text) and kept when it ends
    with a full stop whose preceding word is all letters and is preceded by at least
    `min_context_words` words. The target is that word with its leading space, the context
    everything before it; the full stop itself is not scored. Order is the file's.
    """
    from lm_eval.tasks.wikitext.preprocess_wikitext import wikitext_detokenizer

    items = []
    for line in text.split("\n"):
        if not line.strip() or line.strip().startswith("="):
            continue
        paragraph = wikitext_detokenizer({"page": line}).strip()
        if not paragraph.endswith("."):
            continue
        context, _, word = paragraph[:-1].rstrip().rpartition(" ")
        if not _WORD.fullmatch(word) or len(context.split()) < min_context_words:
            continue
        items.append({"context": context, "target": " " + word})
    return items


def _dataset(rows: list[dict]):
    import datasets

    columns = {key: [row[key] for row in rows] for key in rows[0]} if rows else {}
    return datasets.DatasetDict({"test": datasets.Dataset.from_dict(columns)})


def wikitext_pages(data_dir=None, **_metadata):
    """lm-eval ``custom_dataset`` of the ``wikitext`` task: one row per article (``page``)."""
    return _dataset([{"page": page} for page in split_pages(_raw_test_text(data_dir))])


def lastword_passages(data_dir=None, **_metadata):
    """lm-eval ``custom_dataset`` of ``wikitext_lastword``: rows of ``context`` and ``target``."""
    return _dataset(lastword_items(_raw_test_text(data_dir)))
