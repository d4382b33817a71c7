"""What only a separate process can show: each test says why it needs one.

The installed console script (not `bench.cli.main`), imports a fresh interpreter makes, an
environment read when a library is imported, a disk cache read by a process that has none in
memory, and two processes racing for one cache entry or killed in the middle of a build.
Everything a direct call can check is checked in process, in tests/unit.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from bench.sources import cache
from bench.sources.locks import LOCK_DIR
from process_helpers import prunebench


def test_console_script_prints_one_json_object(data_dir, child_env):
    """The `prunebench` script pip installs (its entry point and imports), not bench.cli.main."""
    out = prunebench("ppl", "--model", "tiny-qwen2", "--dataset", "ptb", "--seq-len", "64", "--max-windows", "4",
                     "--data-dir", str(data_dir), "--json", env=child_env)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)  # exactly one JSON document, nothing else on stdout
    for key in ("ppl", "windows", "tokens", "seq_len", "dataset", "split"):
        assert key in result
    assert (result["dataset"], result["split"], result["windows"], result["tokens"]) == ("ptb", "validation", 4, 4 * 63)


def test_eval_of_a_hub_task_offline_names_the_offline_tasks(data_dir, tmp_path, child_env):
    """HF_HUB_OFFLINE/HF_DATASETS_OFFLINE must be set before `datasets` is imported."""
    pytest.importorskip("lm_eval")
    out = prunebench("eval", "--model", "tiny-llama", "--tasks", "wikitext,boolq", "--data-dir", str(data_dir),
                     "--results-dir", str(tmp_path / "results"), env={**child_env, "HF_DATASETS_OFFLINE": "1"})
    assert out.returncode == 2 and out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "task boolq" in lines[0] and "offline tasks: wikitext, wikitext_lastword" in lines[0]
    assert not (tmp_path / "results" / "records").exists()


def test_fit_command_never_imports_torch(tmp_path, child_env):
    """A fresh interpreter: in this one, torch is long imported."""
    path = tmp_path / "p.csv"
    rows = ["N,D,L"] + [f"{n},{d},{1.8 + 400 / n**0.34 + 2000 / d**0.37}"
                        for n in (1e8, 1e9, 1e10) for d in (1e9, 1e10, 1e11)]
    path.write_text("\n".join(rows) + "\n")
    code = ("import sys; from bench.cli import main; "
            f"rc = main(['fit', '--points', {str(path)!r}, '--law', 'chinchilla', '--columns', 'N,D,L', '--json']); "
            "assert 'torch' not in sys.modules, 'torch imported'; sys.exit(rc)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=child_env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["n_points"] == 9


_READ_STREAM = """
import sys
from bench.training import corpus
from bench.sources.tiny import byte_tokenizer


class CountingTokenizer:
    def __init__(self, inner):
        self.inner, self.calls = inner, 0
        self.backend_tokenizer = inner.backend_tokenizer  # the identity `tokenizer_key` reads

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.inner(*args, **kwargs)


tok = CountingTokenizer(byte_tokenizer())
ids = corpus.token_stream(tok, corpus.SliceSpec("slimpajama", corpus_dir=sys.argv[1]), "heldout")
print(tok.calls, ids.numel(), int(ids.sum()))
"""


def test_a_second_process_reads_the_corpus_cache(data_dir, tmp_path, child_env, monkeypatch):
    """Its cache key must not depend on anything of the process that wrote it (hash seeds, ids)."""
    from bench.sources.data import load_rows
    from bench.sources.tiny import byte_tokenizer
    from bench.training import corpus

    sp_dir = tmp_path / "slimpajama"
    (sp_dir / "train" / "chunk1").mkdir(parents=True)
    (sp_dir / "train" / "chunk1" / "part-0.jsonl").write_text("".join(
        json.dumps({"text": t, "meta": {"redpajama_set_name": "RedPajamaC4"}}) + "\n"
        for t in load_rows("c4", "train", data_dir)[:60]))
    monkeypatch.setenv("PRUNEBENCH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(corpus, "_STREAMS", {})  # nothing in memory, here or there
    ids = corpus.token_stream(byte_tokenizer(), corpus.SliceSpec("slimpajama", corpus_dir=str(sp_dir)), "heldout")
    out = subprocess.run([sys.executable, "-c", _READ_STREAM, str(sp_dir)], capture_output=True, text=True,
                         check=True, env={**child_env, "PRUNEBENCH_CACHE_DIR": str(tmp_path / "cache")})
    assert out.stdout.split() == ["0", str(ids.numel()), str(int(ids.sum()))]


_SLOW_BUILD = """
import sys, time
from pathlib import Path
from bench.sources.cache import atomic_dir

def build(tmp):
    (tmp / "weights").write_text("half")
    print("building", flush=True)
    time.sleep(60)

atomic_dir(Path(sys.argv[1]), build)
"""


def test_a_killed_build_leaves_nothing_the_next_build_keeps(tmp_path, child_env):
    """SIGKILL mid-build: no partial entry, and the next build sweeps the dead builder's tmp dir."""
    final = tmp_path / "zoo" / "entry"
    proc = subprocess.Popen([sys.executable, "-c", _SLOW_BUILD, str(final)], stdout=subprocess.PIPE, text=True,
                            env=child_env)
    assert proc.stdout.readline().strip() == "building"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    left = [p.name for p in final.parent.iterdir() if p.name != LOCK_DIR]  # the build locks' folder stays
    assert len(left) == 1 and left[0].startswith(".tmp-entry.") and not final.exists()

    # A live builder's directory (this process) must survive the sweep.
    live = final.parent / f".tmp-entry.{cache._HOST}.{os.getpid()}-x"
    live.mkdir()
    cache.atomic_dir(final, lambda tmp: (tmp / "weights").write_text("whole"))
    assert sorted(p.name for p in final.parent.iterdir() if p.name != LOCK_DIR) == sorted(["entry", live.name])
    assert (final / "weights").read_text() == "whole"


_COUNTED_BUILD = """
import os, sys, time
from pathlib import Path
from bench.sources.cache import atomic_dir

final, log = Path(sys.argv[1]), Path(sys.argv[2])

def build(tmp):
    with open(log, "a") as fh:
        fh.write(f"{os.getpid()}\\n")
    time.sleep(1.5)  # long enough for the other process to be waiting on the lock
    (tmp / "weights").write_text(str(os.getpid()))

atomic_dir(final, build, ready=lambda d: (d / "weights").is_file())
print((final / "weights").read_text(), flush=True)
"""


def test_concurrent_builders_build_an_entry_once(tmp_path, child_env):
    """Two processes (e.g. xdist workers) asking for one missing entry: one builds, the other waits
    for the entry lock, finds the entry ready and uses it (issue 9)."""
    final, log = tmp_path / "zoo" / "entry", tmp_path / "builds.log"
    procs = [subprocess.Popen([sys.executable, "-c", _COUNTED_BUILD, str(final), str(log)],
                              stdout=subprocess.PIPE, text=True, env=child_env) for _ in range(2)]
    outs = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    builders = log.read_text().split()
    assert len(builders) == 1  # built once
    assert outs == [builders[0], builders[0]]  # both use the one build


ORPHAN_PARENT = r"""
import os, sys, time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

from bench.children import die_with_parent


def pid_then_sleep(_):
    return os.getpid()


if __name__ == "__main__":
    ctx = get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=ctx, initializer=die_with_parent,
                             initargs=(os.getpid(),)) as pool:
        print(pool.submit(pid_then_sleep, 0).result(), flush=True)
        time.sleep(600)  # killed here; its worker would idle on for as long
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's")
def test_a_killed_parent_takes_its_spawned_workers_with_it(tmp_path, child_env):
    """A parent killed on its own (SIGKILL: no handler runs, no pool shutdown) must not leave its
    spawned workers running: the zoo's builders and the distributed ranks ask for SIGTERM on
    their parent's death (`bench.children.die_with_parent`). Without it this worker idles on."""
    import time

    script = tmp_path / "parent.py"
    script.write_text(ORPHAN_PARENT)
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True, env=child_env,
                              cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    try:
        worker = int(parent.stdout.readline())
        os.kill(worker, 0)  # alive
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=30)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                os.kill(worker, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        else:
            os.kill(worker, signal.SIGKILL)
            pytest.fail(f"worker {worker} outlived its killed parent by 30 s")
    finally:
        parent.kill()
