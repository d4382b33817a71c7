"""N:M semi-structured sparsity (2:4 by default): magnitude, Wanda and SparseGPT.

In every group of M consecutive input weights of each row of every Linear inside the decoder
layers, N weights are kept and M - N set exactly to zero (paper Eq. 3-4).

* ``magnitude``: keep the N largest |W| of each group; needs no data.
* ``wanda``: keep the N largest |W_ij| * ||X_j||_2, with ||X_j|| the norm of input feature j
  over all calibration tokens.
* ``sparsegpt``: per input, H = 2 X^T X / n_tokens, damped by 1% of its mean diagonal; the
  upper Cholesky factor of H^-1 drives optimal-brain-surgeon updates over column blocks of
  128, and each group's mask is chosen when the sweep reaches it, from W^2 / diag(Hinv)^2 of
  the already-updated weights.

Calibration runs sequentially, layer by layer (the pattern of locuslab/wanda): the inputs of
layer 0 are captured once, each layer's Linear inputs are accumulated with hooks, the layer
is pruned, and the pruned layer's outputs feed the next layer. Projections that read the
same input (q/k/v; gate/up) share one statistic, one Hessian inverse and one OBS sweep over
their stacked rows.

Masks (True = kept) are returned on the report, keyed by parameter name, with
``keeps_masks`` set, so post-training holds the pattern (`pruners.masks`: `apply_masks` after
each optimizer step, or `keep_masks(optimizer, model, masks)` once to do it automatically);
`masks_from_model` recovers the masks of a saved model from its exact zeros, and
`check_pattern` verifies it.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from pruners.errors import PrunerError
from pruners.adapter import Adapter
from pruners.calibration import as_calibration, require
from pruners.common import check_choice, check_positive_int
from pruners.options import option
from pruners.registry import register
from pruners.report import PruneReport, count_params, eval_mode, measure, start_report
from pruners.speed import semi_structured_speedup

METHODS = ("magnitude", "wanda", "sparsegpt")
NM_KEY = "prunebench_nm"  # config field recording the pattern of a saved model

# Projections reading the same input, by their name inside a decoder layer.
INPUT_GROUPS = (
    ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"),
    ("self_attn.o_proj",),
    ("mlp.gate_proj", "mlp.up_proj"),
    ("mlp.down_proj",),
)


def parse_nm(text: str) -> tuple[int, int]:
    """'N:M' -> (N, M)."""
    try:
        n, m = (int(x) for x in str(text).split(":"))
    except ValueError:
        raise PrunerError(f"--nm must look like N:M (e.g. 2:4), got {text!r}") from None
    return n, m


@dataclass(frozen=True)
class NMConfig:
    """N:M sparsity options."""

    n: int = option(2, "weights kept per group", cli=False)  # the CLI sets n and m with --nm N:M
    m: int = option(4, "group size (consecutive input weights of a row)", cli=False)
    nm_method: str = option("magnitude", "which weights of a group to keep", choices=METHODS)
    ratio: float | None = option(None, "optional; must equal the pattern's sparsity 1 - N/M")
    blocksize: int = option(128, "SparseGPT column block")
    percdamp: float = option(0.01, "SparseGPT damping, fraction of the Hessian's mean diagonal")
    batch_size: int = option(8, "calibration samples per layer call")
    keep_masks: bool = option(True, "return the masks on the report (post-training keeps them)", cli=False)
    measure_speedup: bool = option(True, "on CUDA (SM80+), time 2:4 sparse vs dense Linears")

    calibration_shape: ClassVar[tuple[int, int]] = (128, 2048)  # Wanda / SparseGPT: 128 x seqlen
    cli_extra: ClassVar[dict] = {"nm": {"metavar": "N:M", "help": "pattern; default 2:4"}}

    @classmethod
    def from_cli(cls, given: dict) -> dict:
        """``--nm N:M`` sets the fields n and m."""
        if "nm" in given:
            given["n"], given["m"] = parse_nm(given.pop("nm"))
        return given

    def needs_calibration(self) -> bool:
        return self.nm_method != "magnitude"

    def __post_init__(self):
        check_choice(self.nm_method, METHODS, "N:M method")
        for name in ("n", "m", "blocksize", "batch_size"):
            check_positive_int(getattr(self, name), name)
        if not self.n < self.m:
            raise PrunerError(f"N:M needs 1 <= N < M, got {self.n}:{self.m}; e.g. --nm 2:4")
        if self.blocksize % self.m:
            raise PrunerError(f"SparseGPT blocksize {self.blocksize} must be a multiple of M={self.m}")
        if not 0 <= self.percdamp < 1:
            raise PrunerError(f"percdamp must be in [0, 1), got {self.percdamp}")
        if self.ratio is not None:
            sparsity = 1 - self.n / self.m
            if not isinstance(self.ratio, (int, float)) or not math.isclose(self.ratio, sparsity, abs_tol=1e-9):
                raise PrunerError(f"--ratio {self.ratio} contradicts {self.n}:{self.m}, whose sparsity is "
                                 f"{sparsity:g}; drop --ratio or pass --ratio {sparsity:g}")

    @property
    def sparsity(self) -> float:
        return 1 - self.n / self.m


# --------------------------------------------------------------------------- masks


def nm_mask(score: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """Keep-mask (True = kept) holding the n highest scores of every m consecutive columns.

    Args:
        score: (rows, cols) with cols % m == 0.
    """
    rows, cols = score.shape
    groups = score.reshape(rows, cols // m, m)
    drop = torch.topk(groups, m - n, dim=-1, largest=False).indices  # (rows, cols/m, m-n)
    mask = torch.ones_like(groups, dtype=torch.bool)
    mask.scatter_(-1, drop, False)
    return mask.reshape(rows, cols)


def decoder_linear_names(model: nn.Module) -> list[str]:
    """Parameter names of the weights N:M sparsity applies to."""
    ad = Adapter(model)
    return [f"{ad.layer_prefix(i)}{name}.weight" for i in range(ad.num_layers) for name in ad.layer_linears(i)]


@torch.no_grad()
def masks_from_model(model: nn.Module) -> dict[str, torch.Tensor]:
    """Keep-masks read back from the exact zeros of the decoder Linears (e.g. after loading)."""
    params = dict(model.named_parameters())
    return {name: (params[name] != 0).cpu() for name in decoder_linear_names(model)}


@torch.no_grad()
def check_pattern(model: nn.Module, n: int, m: int) -> list[str]:
    """Names of decoder Linears with a group of m holding more than n nonzeros (empty: valid)."""
    params = dict(model.named_parameters())
    bad = []
    for name in decoder_linear_names(model):
        w = params[name]
        if w.shape[1] % m or bool(((w != 0).reshape(w.shape[0], -1, m).sum(-1) > n).any()):
            bad.append(name)
    return bad


# --------------------------------------------------------------------------- SparseGPT


@torch.no_grad()
def sparsegpt_prune(weight: torch.Tensor, hessian: torch.Tensor, n: int, m: int,
                    blocksize: int = 128, percdamp: float = 0.01) -> tuple[torch.Tensor, torch.Tensor]:
    """SparseGPT's OBS sweep with an N:M mask.

    Args:
        weight: (rows, cols) weights; rows of several Linears sharing the input may be stacked.
        hessian: (cols, cols) H = 2 X^T X / n_tokens of their common input.
    Returns:
        (updated weights in float32 with exact zeros, keep-mask), both (rows, cols).
    """
    W = weight.detach().float().clone()
    H = hessian.float().clone()
    rows, cols = W.shape
    dead = torch.diag(H) == 0  # inputs that never fire: weight irrelevant, keep H invertible
    H[dead, dead] = 1
    W[:, dead] = 0
    H.diagonal().add_(percdamp * torch.mean(torch.diag(H)))
    # H^-1 from H's Cholesky factor (cholesky_solve against I: same result as cholesky_inverse,
    # whose CPU kernel was measured 70x slower), then the upper factor of H^-1.
    eye = torch.eye(cols, dtype=H.dtype, device=H.device)
    Hinv = torch.linalg.cholesky(torch.cholesky_solve(eye, torch.linalg.cholesky(H)), upper=True)
    keep = torch.ones(rows, cols, dtype=torch.bool, device=W.device)
    for i1 in range(0, cols, blocksize):
        i2 = min(i1 + blocksize, cols)
        W1 = W[:, i1:i2].clone()  # (rows, b)
        Q1 = torch.zeros_like(W1)
        Err1 = torch.zeros_like(W1)
        Hinv1 = Hinv[i1:i2, i1:i2]
        keep1 = keep[:, i1:i2]  # a view: the sweep writes the block's mask into `keep`
        with _intra_op_threads(1 if W.device.type == "cpu" else None):
            _sweep_block(W1, Q1, Err1, Hinv1, keep1, n, m)
        W[:, i1:i2] = Q1
        W[:, i2:] -= Err1 @ Hinv[i1:i2, i2:]
    return W, keep


def _sweep_block(W1, Q1, Err1, Hinv1, keep1, n: int, m: int) -> None:
    """The column-by-column OBS sweep inside one block (updates its arguments in place)."""
    d = torch.diag(Hinv1)
    for i in range(W1.shape[1]):
        if i % m == 0:
            # mask of the group starting here, from the weights updated so far
            score = W1[:, i:i + m].pow(2) / d[i:i + m].pow(2)
            drop = torch.topk(score, m - n, dim=1, largest=False).indices
            keep1[:, i:i + m].scatter_(1, drop, False)
        w = W1[:, i]
        q = w * keep1[:, i]
        Q1[:, i] = q
        err = (w - q) / d[i]  # (rows,)
        W1[:, i:] -= err[:, None] * Hinv1[i, i:][None, :]
        Err1[:, i] = err


@contextmanager
def _intra_op_threads(n: int | None):
    """Temporarily cap torch's CPU threads (None: leave them).

    The sweep is a chain of thousands of tiny dependent ops; on CPU, intra-op threads only
    add synchronisation (measured ~60x slower with 2 threads on a busy 2-core machine).
    """
    if n is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# --------------------------------------------------------------------------- surgery


class _InputStats:
    """Running statistic of one Linear input: feature sum of squares (Wanda) or X^T X (SparseGPT)."""

    def __init__(self, features: int, hessian: bool, device):
        self.tokens = 0
        self.hessian = hessian
        self.value = torch.zeros((features, features) if hessian else features, dtype=torch.float32, device=device)

    def hook(self, module, args):
        x = args[0].detach().reshape(-1, args[0].shape[-1]).float()  # (tokens, features)
        self.tokens += x.shape[0]
        if self.hessian:
            self.value.addmm_(x.t(), x)
        else:
            self.value += x.pow(2).sum(0)


def check_nm(model: nn.Module, config: NMConfig) -> None:
    ad = Adapter(model)
    for i in range(ad.num_layers):
        for name, lin in ad.layer_linears(i).items():
            if lin.in_features % config.m:
                raise PrunerError(f"layer {i} {name} has {lin.in_features} inputs, not a multiple of M={config.m}; "
                                 f"choose another --nm")


@register("nm", NMConfig, check=check_nm)
def prune_nm(model: nn.Module, calibration, config: NMConfig) -> PruneReport:
    """N:M sparsity of every decoder Linear, by magnitude, Wanda or SparseGPT."""
    check_nm(model, config)
    ad = Adapter(model)
    cal = as_calibration(calibration)
    needs_data = config.needs_calibration() and not ad.is_meta
    if needs_data:
        cal = require(cal, f"{config.nm_method} N:M pruning")
    report = start_report("nm", model, config, cal if needs_data else None)
    masks: dict[str, torch.Tensor] = {}
    zeroed: dict[int, tuple[int, int]] = {}
    with measure(report, ad.device), eval_mode(model):
        if ad.is_meta:
            for i in range(ad.num_layers):
                total = sum(lin.weight.numel() for lin in ad.layer_linears(i).values())
                zeroed[i] = (total * (config.m - config.n) // config.m, total)
            report.notes.append("dry run on the meta device: counts only")
        elif not needs_data:
            for i in range(ad.num_layers):
                zeroed[i] = _prune_layer(ad, i, None, config, masks)
        else:
            _sequential(ad, cal, config, masks, zeroed)
    removed = sum(z for z, _ in zeroed.values())
    report.params_after = count_params(model) - removed
    report.sparsity_per_layer = {i: z / t for i, (z, t) in zeroed.items()}
    report.removed = {"pattern": f"{config.n}:{config.m}", "zeroed_weights": removed,
                      "sparsity_of_pruned_linears": removed / max(1, sum(t for _, t in zeroed.values()))}
    report.layer_sizes = ad.layer_sizes()
    report.masks = masks if config.keep_masks else None
    report.keeps_masks = bool(report.masks)  # post-training must hold the zeros (paper Eq. 4)
    if config.measure_speedup and (config.n, config.m) == (2, 4) and ad.device.type == "cuda":
        report.speed = semi_structured_speedup(model)
    setattr(model.config, NM_KEY, {"n": config.n, "m": config.m, "method": config.nm_method})
    return report


@torch.no_grad()
def _sequential(ad: Adapter, cal, config: NMConfig, masks: dict, zeroed: dict) -> None:
    hidden, calls = [], []
    for ids in cal.batches(config.batch_size, ad.device):
        h, c = ad.layer_inputs(ids)
        hidden.append(h)
        calls.append(c)
    sparsegpt = config.nm_method == "sparsegpt"
    for i in range(ad.num_layers):
        linears = ad.layer_linears(i)
        stats, handles = {}, []
        try:
            for group in INPUT_GROUPS:
                lin = linears[group[0]]
                stats[group] = _InputStats(lin.in_features, sparsegpt, lin.weight.device)
                handles.append(lin.register_forward_pre_hook(stats[group].hook))
            for h, c in zip(hidden, calls):
                ad.run_layer(i, h, c[i])
        finally:
            for handle in handles:
                handle.remove()
        zeroed[i] = _prune_layer(ad, i, stats, config, masks)
        # The pruned layer's outputs are the next layer's inputs.
        hidden = [ad.run_layer(i, h, c[i]) for h, c in zip(hidden, calls)]


@torch.no_grad()
def _prune_layer(ad: Adapter, i: int, stats: dict | None, config: NMConfig, masks: dict) -> tuple[int, int]:
    """Prune layer i's Linears; returns (weights zeroed, weights considered)."""
    linears = ad.layer_linears(i)
    prefix = ad.layer_prefix(i)
    n, m = config.n, config.m
    zero = total = 0
    for group in INPUT_GROUPS:
        lins = [linears[name] for name in group]
        if config.nm_method == "sparsegpt":
            st = stats[group]
            H = st.value * (2.0 / max(st.tokens, 1))
            stacked = torch.cat([lin.weight for lin in lins], dim=0)  # (sum rows, cols)
            new_w, keep = sparsegpt_prune(stacked, H, n, m, config.blocksize, config.percdamp)
            sizes = [lin.out_features for lin in lins]
            parts = list(zip(lins, new_w.split(sizes), keep.split(sizes)))
            for lin, w, k in parts:
                lin.weight.copy_(w.to(lin.weight.dtype) * k)
        else:
            parts = []
            for lin in lins:
                w = lin.weight
                score = w.abs().float()
                if config.nm_method == "wanda":
                    score = score * stats[group].value.sqrt()[None, :]  # |W_ij| * ||X_j||_2
                k = nm_mask(score, n, m)
                w.mul_(k)
                parts.append((lin, None, k))
        for (lin, _, k), name in zip(parts, group):
            zero += int((~k).sum())
            total += k.numel()
            if config.keep_masks:
                masks[f"{prefix}{name}.weight"] = k.cpu()
    return zero, total
