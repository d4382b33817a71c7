"""Profiles: named sets of benchmark cases (DESIGN.md section 2).

Each profile is a function registered with `@profile(name)` that returns its cases. Window
caps and calibration sizes are part of a profile because they are what keeps it inside its
time budget; ``--full-eval`` lifts the window caps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from bench.cases import Case, EvalSpec, opts
from bench.zeroshot import ZeroShotSpec
from bench.errors import UsageError, did_you_mean

DEFAULT_PROFILE = "nano"


@dataclass(frozen=True)
class ProfileOptions:
    """Run-wide switches that change which cases a profile yields."""

    full_eval: bool = False


_PROFILES: dict[str, tuple[Callable[[ProfileOptions], list[Case]], str]] = {}


def profile(name: str, help: str):
    def deco(fn):
        _PROFILES[name] = (fn, help)
        return fn

    return deco


def profile_names() -> list[str]:
    return sorted(_PROFILES)


def profile_help() -> str:
    return "; ".join(f"{n}: {h}" for n, (_, h) in sorted(_PROFILES.items()))


def get_cases(name: str, options: ProfileOptions | None = None) -> list[Case]:
    if name not in _PROFILES:
        raise UsageError(
            f"unknown profile {name!r}{did_you_mean(name, _PROFILES)}; choose one of {', '.join(profile_names())}")
    cases = _PROFILES[name][0](options or ProfileOptions())
    ids = [c.id for c in cases]
    dupes = {i for i in ids if ids.count(i) > 1}
    if dupes:  # a programming error in a profile, not a user error
        raise RuntimeError(f"profile {name} defines duplicate case ids: {sorted(dupes)}")
    return cases


def _cap(options: ProfileOptions, cap: int | None) -> int | None:
    return None if options.full_eval else cap


# ----------------------------------------------------------------------------- smol

# Window caps that keep the whole smol profile inside ~30 minutes on 2 CPU cores:
# 32 windows x 128 tokens and 2 windows x 2048 tokens per measurement.
SMOL_CAPS = {128: 32, 2048: 2}
SMOL_EVALS = [(d, s) for s in (2048, 128) for d in ("wikitext2", "ptb")]
# Calibration for Wanda/SparseGPT and the activation-based methods, scaled down from the
# reference's 128 x seq_len so one pruning stays within a few minutes on 2 cores.
SMOL_CALIB = dict(calibration="c4", samples=32, calib_seq_len=256, seed=0)


def _smol_rows() -> list[tuple[str, str, float, tuple]]:
    """(method, label, ratio, options) for each row of the smol table."""
    block = dict(layers=(4, 28))
    return [
        ("dense", "dense", 0.0, ()),
        ("blockwise", "blockwise-l2", 0.25, opts(importance="l2", **block)),
        ("blockwise", "blockwise-taylor", 0.25,
         opts(importance="taylor", taylor="param_first", calibration="wikitext2", samples=10,
              calib_seq_len=64, seed=0, **block)),
        ("depth", "depth", 0.25, opts(**SMOL_CALIB)),
        ("width", "width", 0.25, opts(**SMOL_CALIB)),
        ("nm", "2of4-magnitude", 0.5, opts(n=2, m=4, nm_method="magnitude")),
        ("nm", "2of4-wanda", 0.5, opts(n=2, m=4, nm_method="wanda", **SMOL_CALIB)),
        ("nm", "2of4-sparsegpt", 0.5, opts(n=2, m=4, nm_method="sparsegpt", **SMOL_CALIB)),
    ]


# Offline zero-shot rows (`bench.zeroshot`): the shipped lm-eval tasks, capped per task so the
# eight rows add about 5 minutes on 2 CPU cores (--full-eval: every document). One WikiText
# article (1,407 SmolLM2 tokens) and 24 last-word passages (~4,100 tokens) per row.
SMOL_ZEROSHOT_TASKS = ("wikitext", "wikitext_lastword")
SMOL_ZEROSHOT_CAPS = {"wikitext": 1, "wikitext_lastword": 24}


def smol_zeroshot(options: ProfileOptions) -> ZeroShotSpec:
    caps = tuple((t, _cap(options, k)) for t, k in SMOL_ZEROSHOT_CAPS.items() if _cap(options, k) is not None)
    return ZeroShotSpec(SMOL_ZEROSHOT_TASKS, task_limits=caps)


@profile("smol", "SmolLM2-135M-Instruct: dense and pruned perplexity on WikiText2/PTB at 128 and 2048, "
                 "offline zero-shot rows")
def _smol(options: ProfileOptions) -> list[Case]:
    cases = []
    for method, label, ratio, prune in _smol_rows():
        for dataset, seq_len in SMOL_EVALS:
            cases.append(Case(
                profile="smol", model="smollm2-135m", model_key="", method=method, ratio=ratio,
                label=label, prune=prune, family="smollm2",
                evals=(EvalSpec(dataset, seq_len, _cap(options, SMOL_CAPS[seq_len])),),
                id_suffix=f"{dataset}-{seq_len}"))
        # After the method's perplexity cases, so the pruned model is reused, not pruned again.
        cases.append(Case(
            profile="smol", model="smollm2-135m", model_key="", method=method, ratio=ratio,
            label=label, prune=prune, family="smollm2", zeroshot=smol_zeroshot(options), id_suffix="zeroshot"))
    return cases


# ----------------------------------------------------------------------------- tiny


@profile("tiny", "tiny random Llama and Qwen2 models, dense perplexity only (seconds; plugin tests)")
def _tiny(options: ProfileOptions) -> list[Case]:
    cases = []
    for arch in ("llama", "qwen2"):
        for dataset in ("wikitext2", "ptb"):
            cases.append(Case(
                profile="tiny", model=f"tiny-{arch}", model_key=arch, method="dense",
                label="dense", family=f"tiny-{arch}",
                evals=(EvalSpec(dataset, 128, _cap(options, 16)),), id_suffix=f"{dataset}-128"))
    return cases


# ----------------------------------------------------------------------------- nano

# The nano study (DESIGN.md section 2): every base of the zoo x {depth, width at 3 ratios,
# 2:4 SparseGPT} plus the control (the unpruned base, post-trained the same way), each
# post-trained with its loss trajectory recorded. Budgets are set for 2 CPU cores.
NANO_RATIOS = (0.15, 0.25, 0.35)
NANO_EVALS = ("wikitext2", "ptb")
NANO_EVAL_CAP = 64  # windows of 128 tokens per perplexity measurement (--full-eval: all)
NANO_CALIB = dict(calibration="wikitext2", samples=32, calib_seq_len=128, seed=0)
# Post-training recipe: constant lr 5e-4, where the bases' cosine schedules end (zoo.Family
# .final_lr), after a one-checkpoint warm-up of the fresh AdamW state; 4k-token batches on
# documents no base saw; a checkpoint every 16k tokens (the law's D axis) with the held-out
# loss on 64 fixed windows.
NANO_POSTTRAIN = dict(tokens=131_072, checkpoint_every=16_384, batch_tokens=4096, micro_batch_tokens=4096,
                      seq_len=128, lr=5e-4, schedule="constant", warmup_tokens=16_384, eval_windows=64, seed=0)
SMOKE_POSTTRAIN = dict(NANO_POSTTRAIN, tokens=32_768, checkpoint_every=4096, warmup_tokens=4096, eval_windows=16,
                       lr=1e-3)


# LoRA recovery (LLM-Pruner's recipe: r 8, alpha 16, dropout 0.05 on q/k/v/o/gate/up/down),
# with the learning rate adapters need; 2:4 is left out because a dense low-rank update cannot
# keep the mask.
NANO_LORA_POSTTRAIN = dict(NANO_POSTTRAIN, lora=True, lr=5e-3)


def nano_methods(ratios=NANO_RATIOS, calib: dict | None = None, nm: bool = True) -> list[tuple[str, str, float, tuple]]:
    """(method, label, ratio, options) of one base: control, depth and width at each ratio, 2:4."""
    calib = NANO_CALIB if calib is None else calib
    rows = [("control", "control", 0.0, ())]
    rows += [("depth", "depth", r, opts(**calib)) for r in ratios]
    rows += [("width", "width", r, opts(**calib)) for r in ratios]
    if nm:
        rows.append(("nm", "2of4-sparsegpt", 0.5, opts(n=2, m=4, nm_method="sparsegpt", **calib)))
    return rows


def nano_cases(profile_name: str, family: str, options: ProfileOptions, *, recipe: dict,
               ratios=NANO_RATIOS, cap: int | None = NANO_EVAL_CAP, calib: dict | None = None,
               nm: bool = True) -> list[Case]:
    """Every size of a zoo family x `nano_methods`, post-trained with `recipe`."""
    from bench.zoo import FAMILIES

    fam = FAMILIES[family]
    evals = tuple(EvalSpec(d, 128, _cap(options, cap)) for d in NANO_EVALS)
    cases = []
    for size in fam.sizes:
        for method, label, ratio, prune in nano_methods(ratios, calib, nm):
            cases.append(Case(
                profile=profile_name, model=fam.spec(size.key), model_key=size.key, method=method, ratio=ratio,
                label=label, prune=prune, evals=evals, posttrain=opts(**recipe), family=family))
    return cases


@profile("nano", "the nano zoo (4 small Llama models trained by the suite): prune, post-train, trajectories; CPU")
def _nano(options: ProfileOptions) -> list[Case]:
    return nano_cases("nano", "nano-llama", options, recipe=NANO_POSTTRAIN)


@profile("nano-qwen2", "the nano study on a Qwen2-architecture zoo family")
def _nano_qwen2(options: ProfileOptions) -> list[Case]:
    return nano_cases("nano-qwen2", "nano-qwen2", options, recipe=NANO_POSTTRAIN)


@profile("nano-lora", "the nano study with LoRA recovery instead of full post-training (no 2:4)")
def _nano_lora(options: ProfileOptions) -> list[Case]:
    return nano_cases("nano-lora", "nano-llama", options, recipe=NANO_LORA_POSTTRAIN, nm=False)


# ----------------------------------------------------------------------------- smoke


@profile("smoke", "the nano pipeline on 2 tiny zoo models with few tokens; for CI (minutes)")
def _smoke(options: ProfileOptions) -> list[Case]:
    return nano_cases("smoke", "nano-smoke", options, recipe=SMOKE_POSTTRAIN, ratios=(0.25,), cap=16,
                      calib=dict(NANO_CALIB, samples=8))
