"""The nano zoo: small Llama (or Qwen2) base models the suite trains itself, cached.

A *family* (`bench.training.zoo_families`) is a tokenizer plus a list of base sizes with their
pre-training recipes:

* the tokenizer is a byte-level BPE trained with `tokenizers` on the pre-training slice of the
  corpus (`bench.training.corpus`: WikiText-2 train, the held-out and post-training documents excluded);
* each base is trained from scratch on that slice with `bench.training.trainer.train` (AdamW, warm-up
  and cosine schedule, about one pass), annealed down to the post-training learning rate so
  that further training barely moves its held-out loss (the control case of the nano profile
  measures this: under 1% over the post-training budget).

Independent bases build in parallel subprocesses (`ensure_all`), one CPU thread each.

Model specs are ``<family>-<size>``, e.g. ``nano-llama-l2``; each is a model alias of
`bench.sources.aliases.ALIASES`, added for every size of every registered family, so a zoo base
loads through `bench.sources.models.load_model` like every other model (`load` builds it on
first use with the run's data and cache directories, `bench.env.RunEnv`).

Cache: ``<cache>/zoo/<spec>-<key>/``, a ``save_pretrained`` directory with the tokenizer and
a ``manifest.json``. The key hashes every input that changes the weights: the zoo format
version, the architecture and its config, the pre-training recipe, the init seed, the tokenizer
(vocabulary size and its own corpus), the digest of the corpus text, and the CPU kernels'
pinned vector ISA (`bench.isa`). The manifest lists the
sha256 of every file; an entry whose manifest is missing, unreadable, for another key, or
whose files do not match is stale or corrupted: it is rebuilt (with a warning), never used.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
import warnings
from pathlib import Path

import torch

from bench import isa
from bench.children import die_with_parent
from bench.env import RunEnv
from bench.progress import QUIET, Progress, relayed
from bench.sources.aliases import ALIASES
from bench.sources.cache import atomic_dir, resolve_cache_dir
from bench.sources.loaders import LoadedModel, load_local
from bench.training import corpus as corpus_mod
from bench.training.posttrain import heldout_windows, training_windows
from bench.training.trainer import train
from bench.training.zoo_families import FAMILIES, SPECIALS, BaseSize, Family, non_embedding_params, parse_spec
from pruners.report import count_params

ZOO_FORMAT = "prunebench.zoo/1"
ZOO_VERSION = 1  # bump when the training code changes what a given key produces
MANIFEST = "manifest.json"


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
    inputs = {"format": ZOO_FORMAT, "version": ZOO_VERSION, "arch": family.arch, "config": config,
              "recipe": family.recipe(size).to_dict(), "seed": family.seed,
              "tokenizer": _digest(tokenizer_inputs(family, data_dir))}
    pinned = isa.state()
    if pinned["pinned"] is not None:
        # The CPU kernels' ISA changes the weights (`bench.isa`); unpinned keys stay as they were.
        inputs["isa"] = {"pinned": pinned["pinned"], "settings": pinned["settings"]}
    return inputs


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


def build_base(family: Family, size: BaseSize, tokenizer, env: RunEnv):
    """Train one base model from scratch (the corpus from `env`'s data directory, its token
    streams cached in `env`'s cache, the phase shown on `env.progress`); returns (model, log)."""
    from transformers import AutoModelForCausalLM

    recipe = family.recipe(size)
    config = family.model_config(size)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(family.seed)
        model = AutoModelForCausalLM.from_config(config)
    win = training_windows(tokenizer, recipe, env)
    held = heldout_windows(tokenizer, recipe, env)
    t0 = time.perf_counter()
    result = train(model, win, recipe, heldout=held, progress=env.progress, desc=f"zoo: pretrain {family.spec(size.key)}")
    if result.diverged:
        raise RuntimeError(f"pre-training {family.spec(size.key)} diverged ({result.divergence}); lower its lr in bench/training/zoo.py")
    log = {"pretrain": {**result.to_dict(), "recipe": recipe.to_dict(), "wall_s": time.perf_counter() - t0,
                        "corpus_windows": int(win.shape[0]), "epochs": result.tokens / (win.numel() or 1),
                        "final_val_loss": result.trajectory[-1]["val_loss"]},
           "params": count_params(model),
           "non_embedding_params": non_embedding_params(model)}
    return model.eval(), log


def _entry(family: Family, size: BaseSize, cache: Path, data_dir) -> tuple[Path, str, dict, str | None]:
    """(directory, key, key inputs, why it cannot be used or None)."""
    inputs = model_inputs(family, size, data_dir)
    key = _digest(inputs)
    directory = entry_dir(cache, family, size, key)
    return directory, key, inputs, check_entry(directory, key)


def _build_entry(family: Family, size: BaseSize, env: RunEnv, reason: str) -> Path:
    cache = resolve_cache_dir(env.cache_dir)
    directory, key, inputs, _ = _entry(family, size, cache, env.data_dir)
    tokenizer = load_tokenizer(family, cache, env.data_dir)

    def build(tmp: Path) -> None:
        model, log = build_base(family, size, tokenizer, env)
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        write_manifest(tmp, key, inputs, {"spec": family.spec(size.key), "rebuilt_because": reason, **log})

    atomic_dir(directory, build, ready=lambda d: check_entry(d, key) is None)
    return directory


def ensure(spec: str, env: RunEnv) -> Path:
    """The verified cache directory of `spec`, built (or rebuilt) if needed."""
    family, size = parse_spec(spec)
    cache = resolve_cache_dir(env.cache_dir)
    directory, _, _, problem = _entry(family, size, cache, env.data_dir)
    if problem is None:
        return directory
    if problem != "missing":
        warnings.warn(f"nano zoo entry {directory.name}: {problem}; rebuilding it", stacklevel=2)
    return _build_entry(family, size, env, problem)


def _cost(size: BaseSize, family: Family) -> float:
    h, f, n = size.hidden_size, size.intermediate_size, size.num_hidden_layers
    return size.pretrain_tokens * (n * h * (4 * h + 3 * f) + family.vocab_size * h)


_WORKER_PROGRESS: Progress = QUIET  # a zoo worker's relay to its parent (set by `_worker_init`)


def _worker_init(threads: int, progress: Progress, parent: int) -> None:
    global _WORKER_PROGRESS
    die_with_parent(parent)  # a killed run takes its builders with it
    torch.set_num_threads(threads)
    _WORKER_PROGRESS = progress


def _build_in_worker(family: Family, size: BaseSize, cache: str, data_dir, reason: str) -> str:
    env = RunEnv(data_dir=data_dir, cache_dir=Path(cache), progress=_WORKER_PROGRESS)
    return str(_build_entry(family, size, env, reason))


def ensure_all(specs, env: RunEnv, workers: int | None = None) -> dict[str, Path]:
    """Build every missing (or stale) entry among `specs`, several at once on a multi-core CPU.

    Small models use several cores poorly from one process (their matrices are tiny), so
    independent models train in `workers` subprocesses of one thread each (default: one per
    core, at most one per model), largest first; their progress reaches `env.progress` through
    a queue (`bench.progress.relayed`). Returns spec -> verified directory.
    """
    import os
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    cache = resolve_cache_dir(env.cache_dir)
    data_dir = env.data_dir
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
            _build_entry(family, size, env, problem)
    else:
        for family in {f.name: f for f, _, _ in todo}.values():
            load_tokenizer(family, cache, data_dir)  # shared: train it once, before the workers
        todo.sort(key=lambda t: _cost(t[1], t[0]), reverse=True)
        root = corpus_mod.data_mod.resolve_data_dir(data_dir)
        context = get_context("spawn")
        with relayed(env.progress, context) as relay, ProcessPoolExecutor(
                max_workers=workers, mp_context=context, initializer=_worker_init,
                initargs=(max(1, cores // workers), relay, os.getpid())) as pool:
            futures = [pool.submit(_build_in_worker, f, s, str(cache), None if root is None else str(root), p)
                       for f, s, p in todo]
            for fut in futures:
                fut.result()  # re-raises a worker's error here
    return {spec: ensure(spec, env) for spec in dict.fromkeys(specs)}


def load(spec: str, env: RunEnv) -> LoadedModel:
    """Load a nano base model (building it on first use), float32 on the CPU: the alias loader
    behind every zoo spec (`bench.sources.models.load_model` places it)."""
    directory = ensure(spec, env)
    loaded = load_local(directory)
    _check_tokenizer(loaded.tokenizer, load_tokenizer(parse_spec(spec)[0], env.cache_dir, env.data_dir), spec)
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


def _load_nano(spec: str, env: RunEnv) -> LoadedModel:
    return load(spec, env)


def _family_aliases(name: str, family: Family, added: bool) -> None:
    """Every size of a registered family is a model alias (``nano-llama-l2``), also of a family
    registered later (a test's); the alias registry's discovery imports this module."""
    for size in family.sizes:
        spec = family.spec(size.key)
        if added:
            ALIASES.add(spec, _load_nano, origin=f"{__name__} (zoo family {name})",
                        help=f"nano zoo base {size.key} of {name} ({family.arch})")
        elif ALIASES.get(spec) is _load_nano:
            ALIASES.remove(spec)


FAMILIES.watch(_family_aliases)


def plateau_figure(l0: float, final: float) -> float:
    """The control figure: relative held-out loss improvement of the unpruned base, (L0 - L) / L0."""
    return (l0 - final) / l0 if l0 and math.isfinite(l0) else float("nan")
