"""Model specs: tiny models, the SmolLM2 GGUF alias, and the errors around them."""

from __future__ import annotations

from bench.sources.cache import _HOST, atomic_dir, resolve_cache_dir
from bench.sources.tiny import BYTE_VOCAB, byte_tokenizer, tiny_model
from pruners.report import count_params

from bench.env import RunEnv

import os
import stat

import pytest
import torch

from bench.sources import models
from bench.sources.locks import LOCK_DIR
from bench.errors import USER_ERRORS, UsageError


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_tiny_models_are_deterministic_per_seed(arch):
    a, b, c = tiny_model(arch, seed=3), tiny_model(arch, seed=3), tiny_model(arch, seed=4)
    ids = torch.randint(0, 256, (2, 16), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        la, lb, lc = (m(ids).logits for m in (a, b, c))
    assert torch.equal(la, lb) and not torch.equal(la, lc)
    assert a.config.model_type == arch


def test_qwen2_tiny_has_qkv_biases():
    attn = tiny_model("qwen2").model.layers[0].self_attn
    assert attn.q_proj.bias is not None and attn.o_proj.bias is None


def test_byte_tokenizer_round_trips_and_adds_one_bos():
    tok = byte_tokenizer()
    text = "Café = Robert <unk> =\n\n"
    ids = tok(text)["input_ids"]
    assert ids[0] == tok.bos_token_id and tok.bos_token_id not in ids[1:]
    assert tok.decode(ids, skip_special_tokens=True) == text
    assert len(tok) == BYTE_VOCAB


@pytest.fixture(scope="session")
def smollm2(tmp_path_factory):
    pytest.importorskip("gguf")
    cache = tmp_path_factory.mktemp("cache")
    first = models.load_model("smollm2-135m", RunEnv.make(cache_dir=cache))
    return first, cache


def test_smollm2_alias_loads_from_gguf(smollm2):
    loaded, cache = smollm2
    cfg = loaded.model.config
    assert (cfg.model_type, cfg.num_hidden_layers, cfg.hidden_size) == ("llama", 30, 576)
    assert (cfg.num_attention_heads, cfg.num_key_value_heads, cfg.intermediate_size) == (9, 3, 1536)
    assert count_params(loaded.model) == 134_515_008  # tied embeddings counted once
    assert loaded.kind == "alias" and loaded.info["dtype"] == "float32"
    assert loaded.tokenizer.decode(loaded.tokenizer("The cat sat.")["input_ids"]) == "The cat sat."
    converted = loaded.info["converted"]
    assert converted.startswith(str(cache)) and os.path.isfile(os.path.join(converted, "model.safetensors"))


def test_smollm2_cached_copy_is_reused_and_identical(smollm2):
    loaded, cache = smollm2
    again = models.load_model("smollm2-135m", RunEnv.make(cache_dir=cache))
    assert again.info["converted"] == loaded.info["converted"]
    ids = loaded.tokenizer("Pruning large language models", return_tensors="pt").input_ids
    with torch.no_grad():
        assert torch.equal(loaded.model(ids).logits, again.model(ids).logits)


def test_not_a_gguf_is_refused(tmp_path):
    fake = tmp_path / "model.gguf"
    fake.write_bytes(b"PK\x03\x04 definitely a zip")
    with pytest.raises(UsageError, match="is not a GGUF file"):
        models.load_model(str(fake), RunEnv.make(cache_dir=tmp_path / "c"))


def test_unknown_alias_suggests_a_known_one():
    with pytest.raises(UsageError, match="unknown model 'smollm2-135' .*did you mean 'smollm2-135m'"):
        models.load_model("smollm2-135")


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_cache_dir(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(stat.S_IRUSR | stat.S_IXUSR)
    with pytest.raises(UsageError, match="not writable"):
        resolve_cache_dir(ro / "sub")


def test_cache_dir_that_is_a_file(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(UsageError, match="cache directory .* is not writable"):
        resolve_cache_dir(f)


def test_save_pretrained_directory_round_trip(tmp_path):
    model = tiny_model("qwen2", seed=5)
    model.save_pretrained(tmp_path / "m")
    loaded = models.load_model(str(tmp_path / "m"))
    ids = torch.arange(20)[None]
    with torch.no_grad():
        assert torch.equal(model(ids).logits, loaded.model(ids).logits)
    assert loaded.kind == "local"


def test_local_dirs_go_through_the_pruned_loader(tmp_path):
    """A per-layer-width block-wise model loads by path, and a tampered 2:4 model is refused."""
    from bench.registry import make_config
    from pruners.registry import prune
    from pruners.saving import save_pruned

    ids = torch.arange(24)[None]
    block = tiny_model("llama", seed=2)
    prune(block, None, make_config("blockwise", ratio=0.5, importance="l2", layers=(1, 3)))
    save_pruned(block, tmp_path / "block")
    loaded = models.load_model(str(tmp_path / "block"))
    with torch.no_grad():
        assert torch.equal(block(ids).logits, loaded.model(ids).logits)

    sparse = tiny_model("qwen2", seed=2)
    prune(sparse, None, make_config("nm", n=2, m=4, nm_method="magnitude"))
    save_pruned(sparse, tmp_path / "nm")
    assert models.load_model(str(tmp_path / "nm")).kind == "local"
    from safetensors.torch import load_file, save_file

    weights = load_file(tmp_path / "nm" / "model.safetensors")
    weights["model.layers.0.mlp.up_proj.weight"] = torch.ones_like(weights["model.layers.0.mlp.up_proj.weight"])
    save_file(weights, tmp_path / "nm" / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(USER_ERRORS, match="break the saved 2:4 pattern"):
        models.load_model(str(tmp_path / "nm"))


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


def test_a_killed_build_leaves_nothing_the_next_build_keeps(tmp_path):
    """SIGKILL mid-build: no partial entry, and the next build sweeps the dead builder's tmp dir."""
    import signal
    import subprocess
    import sys

    final = tmp_path / "zoo" / "entry"
    proc = subprocess.Popen([sys.executable, "-c", _SLOW_BUILD, str(final)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "building"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    left = [p.name for p in final.parent.iterdir() if p.name != LOCK_DIR]  # the build locks' folder stays
    assert len(left) == 1 and left[0].startswith(".tmp-entry.") and not final.exists()

    # A live builder's directory (this process) must survive the sweep.
    live = final.parent / f".tmp-entry.{_HOST}.{os.getpid()}-x"
    live.mkdir()
    atomic_dir(final, lambda tmp: (tmp / "weights").write_text("whole"))
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


def test_concurrent_builders_build_an_entry_once(tmp_path):
    """Two processes (e.g. xdist workers) asking for one missing entry: one builds, the other waits
    for the entry lock, finds the entry ready and uses it (issue 9)."""
    import subprocess
    import sys

    final, log = tmp_path / "zoo" / "entry", tmp_path / "builds.log"
    procs = [subprocess.Popen([sys.executable, "-c", _COUNTED_BUILD, str(final), str(log)],
                              stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    builders = log.read_text().split()
    assert len(builders) == 1  # built once
    assert outs == [builders[0], builders[0]]  # both use the one build
