"""The nano zoo's families: base sizes, their shapes and pre-training recipes (no training here).

`bench.training.zoo` trains and caches the bases these describe; this module only says what they are,
so the size tables can be read (and counted, `family_table`) without building anything.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field, replace

import torch

from bench.training import corpus as corpus_mod
from bench.errors import UsageError, did_you_mean
from bench.training.recipe import Recipe
from pruners.report import count_params
from fitting.registry import Registry

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

# Five sizes, all 8 layers deep (so depth ratios 0.15/0.25/0.35 as fractions of layers remove
# 1/2/3 layers at every size), intermediate 3 x hidden, 16-wide heads (two heads below hidden
# 32), hidden 16 to 64: 43,280 to 492,608 parameters, 11.4x in N0 (the law's size axis). The
# tied embedding is 1024 x hidden: a 1,024-token vocabulary keeps it at 38% of the smallest
# base and 13% of the largest (2,048 tokens would make it 55% of the smallest).
# Every base sees the same 3M pre-training tokens at peak lr 1e-2 with a 10% warm-up, as the
# earlier 4-6-layer zoo did (there 2e-2 was unstable at hidden 32, 5e-3 and 6e-3 ended worse
# at hidden 64, and a 2% warm-up left 8-layer models stuck longer on the unigram plateau);
# the cosine schedule ends at the post-training learning rate, so the control run continues
# each base where it stopped. The largest base is what the cold run's time is made of: an
# 8 x 96 base took 85 s for 328k tokens on one thread (about 13 min for 3M), so hidden 64 is
# the largest that keeps the cold default run within 30 minutes on 2 cores.
NANO_SIZES = (
    BaseSize("l1", 16, 8, 2, 2, 48, pretrain_tokens=3_000_000, lr=1e-2),
    BaseSize("l2", 24, 8, 2, 2, 72, pretrain_tokens=3_000_000, lr=1e-2),
    BaseSize("l3", 32, 8, 2, 2, 96, pretrain_tokens=3_000_000, lr=1e-2),
    BaseSize("l4", 48, 8, 3, 3, 144, pretrain_tokens=3_000_000, lr=1e-2),
    BaseSize("l5", 64, 8, 4, 4, 192, pretrain_tokens=3_000_000, lr=1e-2),
)
NANO_VOCAB = 1024

# Two very small sizes and few tokens (a few passes over 128 documents): the CI smoke profile
# builds them in well under a minute.
SMOKE_SIZES = (
    BaseSize("s1", 32, 2, 2, 2, 64, pretrain_tokens=786_432, lr=1e-2),
    BaseSize("s2", 32, 4, 2, 2, 96, pretrain_tokens=786_432, lr=1e-2),
)


def _family_help(family: Family) -> str:
    return f"{family.arch}, sizes {', '.join(s.key for s in family.sizes)}"


# The families by name: a `fitting.registry.Registry`, so a family registered twice is refused.
FAMILIES: Registry[Family] = Registry("zoo family", error=UsageError)


def register_family(family: Family, origin: str | None = None) -> Family:
    """Add a family, e.g. a custom one in a test or a profile; a name already registered by
    another family is refused. `origin` defaults to the caller's module."""
    origin = origin or sys._getframe(1).f_globals.get("__name__", "?")
    return FAMILIES.add(family.name, family, origin=origin, help=_family_help(family))


for _family in (
    Family("nano-llama", "llama", NANO_SIZES, vocab_size=NANO_VOCAB),
    Family("nano-qwen2", "qwen2", NANO_SIZES, vocab_size=NANO_VOCAB),
    Family("nano-smoke", "llama", SMOKE_SIZES, vocab_size=512, tokenizer_docs=64, pretrain_docs=128, final_lr=1e-3),
):
    register_family(_family, origin=__name__)


def seeded(name: str, seed: int) -> Family:
    """Family `name` drawn again under study seed `seed`: another initialisation and another
    pre-training data order (its `Family.seed` offset by `seed`), the same tokenizer and sizes.

    Seed 0 is the family itself; another seed is the family ``<name>-seed<seed>``, registered
    here on first use (again: the same family, so every process of a run that expands the
    study, an xdist worker's too, gets the same one), whose bases are cached under their own
    keys like any zoo base.
    """
    family = FAMILIES[name]
    if seed == 0:
        return family
    derived = replace(family, name=f"{name}-seed{seed}", seed=family.seed + seed)
    if derived.name not in FAMILIES:
        register_family(derived, origin=f"{__name__} (seed {seed} of {name})")
    return FAMILIES[derived.name]


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


def non_embedding_params(model) -> int:
    """Parameters outside the input embedding and the LM head (tied or not)."""
    skip = {id(model.get_input_embeddings().weight), id(model.get_output_embeddings().weight)}
    return sum(p.numel() for p in model.parameters() if id(p) not in skip)


def family_table(family: Family) -> list[dict]:
    """Shapes and exact parameter counts of a family's sizes (no training)."""
    from transformers import AutoModelForCausalLM

    rows = []
    for size in family.sizes:
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(family.model_config(size))
        rows.append({"key": size.key, "hidden": size.hidden_size, "layers": size.num_hidden_layers,
                     "params": count_params(model),
                     "non_embedding_params": non_embedding_params(model),
                     "pretrain_tokens": size.pretrain_tokens})
    return rows
