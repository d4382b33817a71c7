"""The nano zoo: small Llama (or Qwen2) base models the suite trains itself, cached.

A *family* is a tokenizer plus a list of base sizes with their pre-training recipes:

* the tokenizer is a byte-level BPE trained with `tokenizers` on the pre-training slice of the
  corpus (`bench.corpus`: WikiText-2 train, the held-out and post-training documents excluded);
* each base is trained from scratch on that slice with `bench.posttrain.train` (AdamW, warm-up
  and cosine schedule, about one pass), annealed down to the post-training learning rate so
  that further training barely moves its held-out loss (the control case of the nano profile
  measures this: under 1% over the post-training budget).

Independent bases build in parallel subprocesses (`ensure_all`), one CPU thread each.

Model specs are ``<family>-<size>``, e.g. ``nano-llama-l2`` (`load` builds on first use).

Cache: ``<cache>/zoo/<spec>-<key>/``, a ``save_pretrained`` directory with the tokenizer and
a ``manifest.json``. The key hashes every input that changes the weights: the zoo format
version, the architecture and its config, the pre-training recipe, the init seed, the tokenizer
(vocabulary size and its own corpus) and the digest of the corpus text. The manifest lists the
sha256 of every file; an entry whose manifest is missing, unreadable, for another key, or
whose files do not match is stale or corrupted: it is rebuilt (with a warning), never used.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from bench import corpus as corpus_mod
from bench.errors import UsageError, did_you_mean
from bench.models import LoadedModel, atomic_dir, register_alias, resolve_cache_dir
from bench.posttrain import Recipe, heldout_windows, train, training_windows

ZOO_FORMAT = "prunebench.zoo/1"
ZOO_VERSION = 1  # bump when the training code changes what a given key produces
MANIFEST = "manifest.json"
SPECIALS = ("<bos>", "<eos>", "<pad>")


@dataclass(frozen=True)
class BaseSize:
    """One base model's shape and pre-training budget."""

    key: str  # size label used in ids: l1, l2, ...
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    intermediate_size: int
    pretrain_tokens: int
    lr: float  # peak pre-training learning rate


@dataclass(frozen=True)
class Family:
    """A tokenizer and a set of base sizes trained the same way.

    Attributes:
        name: family name, the prefix of its model specs (``nano-llama``).
        arch: llama or qwen2.
        sizes: the base models, smallest first.
        vocab_size: BPE vocabulary size (including the 3 special tokens).
        seq_len: training sequence length (and the models' context).
        batch_tokens: tokens per pre-training step.
        warmup_frac: warm-up as a fraction of each model's pre-training tokens.
        final_lr: every base's cosine schedule ends at this learning rate, the one the nano
            post-training recipe continues at (as the paper's 2e-5 continues Llama's).
        weight_decay: AdamW weight decay in pre-training.
        slices: how the corpus is cut (shared with post-training).
        tokenizer_docs: train the tokenizer on at most this many pre-training documents
            (None: all); smaller makes tiny CI families fast to build.
        pretrain_docs: pre-train on at most this many documents of the slice (None: all).
        eval_windows: held-out windows measured at each pre-training checkpoint.
        seed: initialisation and data order.
    """

    name: str
    arch: str
    sizes: tuple[BaseSize, ...]
    vocab_size: int = 2048
    seq_len: int = 128
    batch_tokens: int = 4096
    warmup_frac: float = 0.1
    final_lr: float = 5e-4
    weight_decay: float = 0.1
    slices: corpus_mod.SliceSpec = field(default_factory=corpus_mod.SliceSpec)
    tokenizer_docs: int | None = None
    pretrain_docs: int | None = None
    eval_windows: int = 64
    seed: int = 0

    def __post_init__(self):
        if self.arch not in ("llama", "qwen2"):
            raise UsageError(f"unknown nano architecture {self.arch!r}{did_you_mean(self.arch, ['llama', 'qwen2'])}")
        if self.vocab_size < 256 + len(SPECIALS):
            raise UsageError(f"vocab_size must be at least {256 + len(SPECIALS)} (bytes + specials), got {self.vocab_size}")

    def size(self, key: str) -> BaseSize:
        for s in self.sizes:
            if s.key == key:
                return s
        raise UsageError(f"family {self.name!r} has no size {key!r}{did_you_mean(key, [s.key for s in self.sizes])}; "
                         f"sizes are {', '.join(s.key for s in self.sizes)}")

    def spec(self, key: str) -> str:
        return f"{self.name}-{key}"

    def recipe(self, size: BaseSize) -> Recipe:
        """The pre-training recipe of one size."""
        checkpoint = max(self.batch_tokens, size.pretrain_tokens // 16 // self.batch_tokens * self.batch_tokens)
        tokens = size.pretrain_tokens // checkpoint * checkpoint
        return Recipe(tokens=tokens, checkpoint_every=checkpoint, batch_tokens=self.batch_tokens,
                      micro_batch_tokens=self.batch_tokens, seq_len=self.seq_len, lr=size.lr,
                      schedule="cosine", warmup_tokens=int(self.warmup_frac * tokens) // self.batch_tokens * self.batch_tokens,
                      min_lr_ratio=min(1.0, self.final_lr / size.lr), weight_decay=self.weight_decay,
                      corpus=self.slices.corpus, heldout_frac=self.slices.heldout_frac,
                      posttrain_frac=self.slices.posttrain_frac, slice_seed=self.slices.seed,
                      train_slice="pretrain", max_documents=self.pretrain_docs, repeat=True,
                      eval_windows=self.eval_windows, seed=self.seed)

    def model_config(self, size: BaseSize):
        from transformers import LlamaConfig, Qwen2Config

        fields = dict(vocab_size=self.vocab_size, hidden_size=size.hidden_size,
                      intermediate_size=size.intermediate_size, num_hidden_layers=size.num_hidden_layers,
                      num_attention_heads=size.num_attention_heads, num_key_value_heads=size.num_key_value_heads,
                      head_dim=size.hidden_size // size.num_attention_heads,
                      max_position_embeddings=4 * self.seq_len, tie_word_embeddings=True,
                      bos_token_id=0, eos_token_id=1, pad_token_id=2, rope_theta=10000.0)
        if self.arch == "qwen2":
            return Qwen2Config(use_sliding_window=False, **fields)
        return LlamaConfig(**fields)


# --------------------------------------------------------------------------- the families

# Sizes span 13x in non-embedding parameters (l1 50k .. l4 665k); the embedding (tied) is
# 2048 x hidden. Every base sees the same 3M pre-training tokens (about one pass over the
# pre-training slice) at peak lr 1e-2 (2e-2 is unstable at hidden 32; 5e-3 and 6e-3 ended
# worse at hidden 64) with a 10% warm-up (2% left 8-layer models stuck longer on the unigram
# plateau), and the cosine schedule ends at the post-training learning rate, so the control
# run continues each base where it stopped. l4 is wide rather than deep: a 64 x 8 model ended
# no better than l3 (held-out loss 4.12 vs 4.12), 96 x 6 at 4.02.
NANO_SIZES = (
    BaseSize("l1", 32, 4, 2, 2, 88, pretrain_tokens=3_000_000, lr=1e-2),
    BaseSize("l2", 48, 4, 3, 3, 128, pretrain_tokens=3_000_000, lr=1e-2),
    BaseSize("l3", 64, 6, 4, 4, 176, pretrain_tokens=3_000_000, lr=1e-2),
    BaseSize("l4", 96, 6, 6, 6, 256, pretrain_tokens=3_000_000, lr=1e-2),
)

# Two very small sizes and few tokens (a few passes over 128 documents): the CI smoke profile
# builds them in well under a minute.
SMOKE_SIZES = (
    BaseSize("s1", 32, 2, 2, 2, 64, pretrain_tokens=786_432, lr=1e-2),
    BaseSize("s2", 32, 4, 2, 2, 96, pretrain_tokens=786_432, lr=1e-2),
)

FAMILIES: dict[str, Family] = {
    "nano-llama": Family("nano-llama", "llama", NANO_SIZES),
    "nano-qwen2": Family("nano-qwen2", "qwen2", NANO_SIZES),
    "nano-smoke": Family("nano-smoke", "llama", SMOKE_SIZES, vocab_size=512, tokenizer_docs=64, pretrain_docs=128,
                         final_lr=1e-3),
}


def register_family(family: Family) -> Family:
    """Add (or replace) a family, e.g. a custom one in a test or a profile."""
    FAMILIES[family.name] = family
    return family


def is_nano(spec: str) -> bool:
    """Whether `spec` names a zoo model (``<family>-<size>`` of a registered family)."""
    name, _, key = str(spec).rpartition("-")
    return name in FAMILIES and any(s.key == key for s in FAMILIES[name].sizes)


def parse_spec(spec: str) -> tuple[Family, BaseSize]:
    """``nano-llama-l2`` -> (family, size)."""
    name, _, key = spec.rpartition("-")
    if name not in FAMILIES:
        known = [f"{f}-{s.key}" for f, fam in FAMILIES.items() for s in fam.sizes]
        raise UsageError(f"unknown nano model {spec!r}{did_you_mean(spec, known)}; known: {', '.join(known)}")
    fam = FAMILIES[name]
    return fam, fam.size(key)


# --------------------------------------------------------------------------- keys and manifests


def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _file_sha(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def tokenizer_inputs(family: Family, data_dir=None) -> dict:
    return {"format": ZOO_FORMAT, "version": ZOO_VERSION, "kind": "byte-level-bpe",
            "vocab_size": family.vocab_size, "specials": list(SPECIALS), "slices": family.slices.to_dict(),
            "documents": family.tokenizer_docs, "corpus_digest": corpus_mod.corpus_hash(family.slices, data_dir)}


def model_inputs(family: Family, size: BaseSize, data_dir=None) -> dict:
    """Every input that changes a base model's weights (its cache key is their digest)."""
    config = family.model_config(size).to_dict()
    for volatile in ("transformers_version", "torch_dtype", "dtype", "_name_or_path"):
        config.pop(volatile, None)
    return {"format": ZOO_FORMAT, "version": ZOO_VERSION, "arch": family.arch, "config": config,
            "recipe": family.recipe(size).to_dict(), "seed": family.seed,
            "tokenizer": _digest(tokenizer_inputs(family, data_dir))}


def entry_dir(cache: Path, family: Family, size: BaseSize, key: str) -> Path:
    return cache / "zoo" / f"{family.spec(size.key)}-{key}"


def write_manifest(directory: Path, key: str, inputs: dict, extra: dict) -> None:
    files = {p.name: _file_sha(p) for p in sorted(directory.iterdir()) if p.is_file() and p.name != MANIFEST}
    manifest = {"format": ZOO_FORMAT, "key": key, "inputs": inputs, "files": files, **extra}
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))


def check_entry(directory: Path, key: str) -> str | None:
    """Why the cached entry cannot be used (None when it is complete and intact)."""
    if not directory.is_dir():
        return "missing"
    try:
        manifest = json.loads((directory / MANIFEST).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        return f"manifest unreadable ({type(exc).__name__})"
    if manifest.get("format") != ZOO_FORMAT or manifest.get("key") != key:
        return f"manifest is for key {manifest.get('key')!r}, not {key!r}"
    files = manifest.get("files") or {}
    if not files:
        return "manifest lists no files"
    for name, sha in files.items():
        path = directory / name
        if not path.is_file():
            return f"{name} is missing"
        if _file_sha(path) != sha:
            return f"{name} does not match its sha256 in the manifest"
    return None


def read_manifest(directory: Path) -> dict:
    return json.loads((directory / MANIFEST).read_text())


# --------------------------------------------------------------------------- building


def train_tokenizer(family: Family, data_dir=None):
    """A byte-level BPE tokenizer trained on the pre-training slice; adds one BOS per text."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    texts = corpus_mod.slice_texts(family.slices, "pretrain", data_dir)
    if family.tokenizer_docs is not None:
        texts = texts[: family.tokenizer_docs]
    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=family.vocab_size, special_tokens=list(SPECIALS),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tk.train_from_iterator(texts, trainer)
    bos = tk.token_to_id("<bos>")
    tk.post_processor = processors.TemplateProcessing(single="<bos> $A", pair="<bos> $A <bos> $B",
                                                      special_tokens=[("<bos>", bos)])
    return PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>")


def load_tokenizer(family: Family, cache_dir=None, data_dir=None):
    """The family's tokenizer, trained once and cached (verified by its manifest)."""
    from transformers import PreTrainedTokenizerFast

    cache = resolve_cache_dir(cache_dir)
    inputs = tokenizer_inputs(family, data_dir)
    key = _digest(inputs)
    directory = cache / "zoo" / f"tokenizer-{family.vocab_size}-{key}"
    problem = check_entry(directory, key)
    if problem is not None:
        if problem != "missing":
            warnings.warn(f"nano zoo tokenizer {directory.name}: {problem}; rebuilding it", stacklevel=2)

        def build(tmp: Path) -> None:
            train_tokenizer(family, data_dir).save_pretrained(tmp)
            write_manifest(tmp, key, inputs, {})

        atomic_dir(directory, build, ready=lambda d: check_entry(d, key) is None)
    return PreTrainedTokenizerFast.from_pretrained(directory)


def build_base(family: Family, size: BaseSize, tokenizer, data_dir=None, progress: bool = False):
    """Train one base model from scratch; returns (model, pre-training log)."""
    from transformers import AutoModelForCausalLM

    recipe = family.recipe(size)
    config = family.model_config(size)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(family.seed)
        model = AutoModelForCausalLM.from_config(config)
    win = training_windows(tokenizer, recipe, data_dir)
    held = heldout_windows(tokenizer, recipe, data_dir)
    t0 = time.perf_counter()
    result = train(model, win, recipe, heldout=held, progress=progress, desc=f"pretrain {family.spec(size.key)}")
    if result.diverged:
        raise RuntimeError(f"pre-training {family.spec(size.key)} diverged ({result.divergence}); lower its lr in bench/zoo.py")
    log = {"pretrain": {**result.to_dict(), "recipe": recipe.to_dict(), "wall_s": time.perf_counter() - t0,
                        "corpus_windows": int(win.shape[0]), "epochs": result.tokens / (win.numel() or 1),
                        "final_val_loss": result.trajectory[-1]["val_loss"]},
           "params": sum(p.numel() for p in model.parameters()),
           "non_embedding_params": non_embedding_params(model)}
    return model.eval(), log


def non_embedding_params(model) -> int:
    """Parameters outside the input embedding and the LM head (tied or not)."""
    skip = {id(model.get_input_embeddings().weight), id(model.get_output_embeddings().weight)}
    return sum(p.numel() for p in model.parameters() if id(p) not in skip)


def _entry(family: Family, size: BaseSize, cache: Path, data_dir) -> tuple[Path, str, dict, str | None]:
    """(directory, key, key inputs, why it cannot be used or None)."""
    inputs = model_inputs(family, size, data_dir)
    key = _digest(inputs)
    directory = entry_dir(cache, family, size, key)
    return directory, key, inputs, check_entry(directory, key)


def _build_entry(family: Family, size: BaseSize, cache: Path, data_dir, reason: str, progress: bool = False) -> Path:
    directory, key, inputs, _ = _entry(family, size, cache, data_dir)
    tokenizer = load_tokenizer(family, cache, data_dir)

    def build(tmp: Path) -> None:
        model, log = build_base(family, size, tokenizer, data_dir, progress)
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        write_manifest(tmp, key, inputs, {"spec": family.spec(size.key), "rebuilt_because": reason, **log})

    atomic_dir(directory, build, ready=lambda d: check_entry(d, key) is None)
    return directory


def ensure(spec: str, cache_dir=None, data_dir=None, progress: bool = False) -> Path:
    """The verified cache directory of `spec`, built (or rebuilt) if needed."""
    family, size = parse_spec(spec)
    cache = resolve_cache_dir(cache_dir)
    directory, _, _, problem = _entry(family, size, cache, data_dir)
    if problem is None:
        return directory
    if problem != "missing":
        warnings.warn(f"nano zoo entry {directory.name}: {problem}; rebuilding it", stacklevel=2)
    return _build_entry(family, size, cache, data_dir, problem, progress)


def _cost(size: BaseSize, family: Family) -> float:
    h, f, n = size.hidden_size, size.intermediate_size, size.num_hidden_layers
    return size.pretrain_tokens * (n * h * (4 * h + 3 * f) + family.vocab_size * h)


def _worker_init(threads: int) -> None:
    torch.set_num_threads(threads)


def _build_in_worker(family: Family, size: BaseSize, cache: str, data_dir, reason: str) -> str:
    return str(_build_entry(family, size, Path(cache), data_dir, reason))


def ensure_all(specs, cache_dir=None, data_dir=None, workers: int | None = None, progress: bool = False) -> dict[str, Path]:
    """Build every missing (or stale) entry among `specs`, several at once on a multi-core CPU.

    Small models use several cores poorly from one process (their matrices are tiny), so
    independent models train in `workers` subprocesses of one thread each (default: one per
    core, at most one per model), largest first. Returns spec -> verified directory.
    """
    import os
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    cache = resolve_cache_dir(cache_dir)
    todo = []
    for spec in dict.fromkeys(specs):
        family, size = parse_spec(spec)
        directory, _, _, problem = _entry(family, size, cache, data_dir)
        if problem is not None:
            if problem != "missing":
                warnings.warn(f"nano zoo entry {directory.name}: {problem}; rebuilding it", stacklevel=2)
            todo.append((family, size, problem))
    cores = os.cpu_count() or 1
    workers = min(len(todo), cores if workers is None else workers)
    if workers <= 1:
        for family, size, problem in todo:
            _build_entry(family, size, cache, data_dir, problem, progress)
    else:
        for family in {f.name: f for f, _, _ in todo}.values():
            load_tokenizer(family, cache, data_dir)  # shared: train it once, before the workers
        todo.sort(key=lambda t: _cost(t[1], t[0]), reverse=True)
        root = corpus_mod.data_mod.resolve_data_dir(data_dir)
        with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"),
                                 initializer=_worker_init, initargs=(max(1, cores // workers),)) as pool:
            futures = [pool.submit(_build_in_worker, f, s, str(cache), None if root is None else str(root), p)
                       for f, s, p in todo]
            for fut in futures:
                fut.result()  # re-raises a worker's error here
    return {spec: ensure(spec, cache, data_dir) for spec in dict.fromkeys(specs)}


def load(spec: str, cache_dir=None, data_dir=None, progress: bool = False) -> LoadedModel:
    """Load a nano base model (building it on first use), float32 on the CPU."""
    from bench.models import load_local

    directory = ensure(spec, cache_dir, data_dir, progress)
    loaded = load_local(directory)
    _check_tokenizer(loaded.tokenizer, load_tokenizer(parse_spec(spec)[0], cache_dir, data_dir), spec)
    manifest = read_manifest(directory)
    pre = manifest.get("pretrain", {})
    loaded.spec, loaded.kind = spec, "alias"
    loaded.info.update({"alias": spec, "zoo_key": manifest["key"], "zoo_dir": str(directory),
                        "non_embedding_params": manifest.get("non_embedding_params"),
                        "pretrain_tokens": pre.get("tokens"), "pretrain_val_loss": pre.get("final_val_loss"),
                        "pretrain_wall_s": pre.get("wall_s"), "rebuilt_because": manifest.get("rebuilt_because")})
    return loaded


# Bytes a byte-level BPE must round-trip the same way whichever class loads it: spaces,
# digits, punctuation, newlines and non-ASCII letters.
TOKENIZER_PROBE = "The  quick brown fox, 1234 jumped\n\n over the lazy dog's back. Café = naïve @-@ 3.5"


def _check_tokenizer(loaded, trained, spec: str) -> None:
    """Refuse a base whose saved tokenizer no longer tokenizes like the one it was trained with."""
    got, want = loaded(TOKENIZER_PROBE)["input_ids"], trained(TOKENIZER_PROBE)["input_ids"]
    if got != want:
        raise RuntimeError(f"nano zoo model {spec}: its saved tokenizer ({type(loaded).__name__}) tokenizes "
                           f"differently from the family tokenizer it was trained with; this is a bug in "
                           f"prunebench's tokenizer loading, please report it")


@register_alias("nano-", prefix=True)
def _load_nano(spec: str, cache_dir=None) -> LoadedModel:
    return load(spec, cache_dir=cache_dir)


def family_table(family: Family) -> list[dict]:
    """Shapes and exact parameter counts of a family's sizes (no training)."""
    from transformers import AutoModelForCausalLM

    rows = []
    for size in family.sizes:
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(family.model_config(size))
        rows.append({"key": size.key, "hidden": size.hidden_size, "layers": size.num_hidden_layers,
                     "params": sum(p.numel() for p in model.parameters()),
                     "non_embedding_params": non_embedding_params(model),
                     "pretrain_tokens": size.pretrain_tokens})
    return rows


def plateau_figure(l0: float, final: float) -> float:
    """The control figure: relative held-out loss improvement of the unpruned base, (L0 - L) / L0."""
    return (l0 - final) / l0 if l0 and math.isfinite(l0) else float("nan")
