"""PNG plots of post-training curves with the fitted law (in the spirit of the paper's Figs 9-11).

Drawn from a fit.json group alone (its curves, fitted constants, held-out sizes and verdicts,
read back by `PlotGroup.from_dict`), so the plugin and `prunebench report` draw the same figures.

* `loss_curves`: one figure per (family, method) group, one panel per base size; every run's
  held-out loss at each checkpoint as points, the fitted law over them as a line. Held-out
  sizes are titled as such: their lines are predictions, not fits.
* `predicted_vs_actual`: held-out checkpoints, predicted against measured loss, with y = x.

Each panel shades the D range the fit saw and a held-out panel says how far its N0 lies
outside the fitted sizes, so no line reads as data where it is an extrapolation. Axes are set
by the measured losses, never by the law: a fit that ran away (a prediction of
8e6 nats for a loss of 4) is drawn off the axes and named in the title as run-away, and a
fit that is not identified says so in the title, so no figure passes off either as a result.

The Agg backend is forced: reports are rendered on headless CI machines.
"""

from __future__ import annotations

from pathlib import Path

from dataclasses import dataclass, field

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


@dataclass
class PlotGroup:
    """What the plots need of one fitted group, read from its fit.json entry."""

    family: str
    method: str
    recipe: str
    law: str
    runs: list = field(default_factory=list)  # fitting.Run
    heldout_sizes: list = field(default_factory=list)
    fit: object = None  # fitting.FitResult, or None when the fit failed
    identifiability: dict | None = None
    extrapolation: dict = field(default_factory=dict)
    data_range: dict = field(default_factory=dict)  # [min, max] of N0, D, rho the fit saw
    seed: int | None = None  # the study seed of the group's records (None: one seed)

    @classmethod
    def from_dict(cls, g: dict) -> "PlotGroup":
        from fitting import FitResult
        from fitting.data import Run

        return cls(g["family"], g["method"], g.get("recipe", "unrecorded"), g["law"],
                   [Run.from_dict(c) for c in g.get("curves") or []], list(g.get("heldout_sizes") or []),
                   FitResult.from_dict(g["fit"]) if g.get("fit") else None, g.get("identifiability"),
                   dict(g.get("extrapolation") or {}), dict(g.get("data_range") or {}), g.get("seed"))


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-." else "_" for c in text)



def _verdict(group) -> str:
    ident = group.identifiability or {}
    return "identified" if ident.get("identified") else "fit NOT identified"


def _ylim(runs, fit=None, pad: float = 0.15) -> tuple[float, float]:
    """Limits covering the measured losses, L0, and the law's predictions where they stay
    within a factor 2 of the measurements (farther than that, a line is run-away)."""
    vals = [v for r in runs for v in (float(r.loss.min()), float(r.loss.max()), float(r.inputs["L0"]))]
    data_lo, data_hi = min(vals), max(vals)
    if fit is not None:
        for r in runs:
            with np.errstate(all="ignore"):
                pred = np.asarray(fit.predict_run(r), dtype=float)
            ok = np.isfinite(pred) & (pred > 0.5 * data_lo) & (pred < 2 * data_hi)
            vals += [float(v) for v in pred[ok]]
    lo, hi = min(vals), max(vals)
    span = max(hi - lo, 1e-3)
    return lo - pad * span, hi + pad * span


def loss_curves(group, out_dir: Path, tag: str = "") -> Path | None:
    """Loss against tokens for every run of a `PlotGroup`, with the fitted law.

    `tag` is appended to the file name (the recipe, when one family and method has several)."""
    if not group.runs:
        return None
    ylim = _ylim(group.runs, group.fit)
    sizes = sorted({r.group for r in group.runs}, key=lambda s: min(r.inputs["N0"] for r in group.runs if r.group == s))
    fig, axes = plt.subplots(1, len(sizes), figsize=(4 * len(sizes), 3.4), squeeze=False, sharey=True)
    cmap = plt.get_cmap("viridis")
    for ax, size in zip(axes[0], sizes):
        runs = sorted((r for r in group.runs if r.group == size), key=lambda r: r.inputs["rho"])
        for i, run in enumerate(runs):
            color = cmap(i / max(1, len(runs) - 1))
            label = f"ρ={run.inputs['rho']:.3f}"
            ax.plot(run.tokens, run.loss, "o", ms=3, color=color, label=label)
            if group.fit is not None:
                dense = np.geomspace(run.tokens[0], run.tokens[-1], 100)
                x = {k: (dense if k == "D" else run.inputs[k]) for k in ("N0", "N", "rho", "L0", "D")}
                ax.plot(dense, group.fit.predict(x), "-", color=color, lw=1.2)
        ax.axhline(runs[0].inputs["L0"], color="grey", ls=":", lw=1, label="L0 (unpruned)")
        if group.data_range.get("D"):
            ax.axvspan(*group.data_range["D"], color="0.93", zorder=0, label="D range the fit saw")
        role = "held out (predicted)" if size in group.heldout_sizes else "fitted"
        n0_range = group.data_range.get("N0")
        n0 = runs[0].inputs["N0"]
        if n0_range and size in group.heldout_sizes and not n0_range[0] <= n0 <= n0_range[1]:
            factor = n0 / n0_range[1] if n0 > n0_range[1] else n0_range[0] / n0
            role += f", N0 {factor:.2g}x outside the fitted sizes"
        runaway = (group.extrapolation.get(size) or {}).get("runaway") if size in group.heldout_sizes else None
        if runaway:
            role += ": run-away, off the axes"
        ax.set_title(f"{size}: N0={runs[0].inputs['N0']:,.0f}\n{role}", fontsize=9)
        ax.set_ylim(*ylim)
        ax.set_xscale("log")
        ax.set_xlabel("post-training tokens")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("held-out loss (nats)")
    axes[0][-1].legend(fontsize=7)
    seed = "" if group.seed is None else f", seed {group.seed}"
    fig.suptitle(f"{group.family} / {group.method} ({group.recipe}{seed}): law {group.law}, {_verdict(group)}",
                 fontsize=10)
    fig.tight_layout()
    path = Path(out_dir) / f"loss_{_slug(group.family)}_{_slug(group.method)}{_slug(tag)}.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def predicted_vs_actual(group, out_dir: Path, tag: str = "") -> Path | None:
    """Scatter of predicted against measured loss on the held-out sizes' checkpoints."""
    held = [r for r in group.runs if r.group in group.heldout_sizes]
    if group.fit is None or not held:
        return None
    fig, ax = plt.subplots(figsize=(4, 4))
    lo, hi = _ylim(held, group.fit, pad=0.1)
    off = 0
    for r in held:
        with np.errstate(all="ignore"):
            pred = group.fit.predict_run(r)
        off += int(np.sum(~np.isfinite(pred) | (pred < lo) | (pred > hi)))
        ax.plot(r.loss, pred, "o", ms=3, label=f"{r.group} ρ={r.inputs['rho']:.3f}")
    ax.plot([lo, hi], [lo, hi], "k--", lw=1, label="y = x")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel("measured held-out loss")
    ax.set_ylabel("predicted by the law")
    note = f"\n{off} prediction(s) off the axes (run-away)" if off else ""
    ax.set_title(f"{group.family} / {group.method}: extrapolation, {_verdict(group)}{note}", fontsize=8)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = Path(out_dir) / f"heldout_{_slug(group.family)}_{_slug(group.method)}{_slug(tag)}.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def recipe_curves(cases: list[dict], out_dir: Path) -> list[Path]:
    """The recipes compared (fit.json's ``recipes.cases``): per (family, method, other recipe,
    seed), one panel per size, each ratio's CE curve (solid) and the other recipe's (dashed),
    with L0 and the CE run's final loss, so the token multiplier can be read off the figure."""
    by_figure: dict[tuple, list[dict]] = {}
    for c in cases:
        by_figure.setdefault((c["family"], c["method"], c["recipe"], c.get("seed")), []).append(c)
    paths = []
    for (family, method, recipe, seed), rows in sorted(by_figure.items(), key=lambda kv: str(kv[0])):
        sizes = sorted({r["size"] for r in rows}, key=lambda s: (len(s), s))  # l1 ... l9, l10
        fig, axes = plt.subplots(1, len(sizes), figsize=(4 * len(sizes), 3.4), squeeze=False, sharey=False)
        cmap = plt.get_cmap("viridis")
        for ax, size in zip(axes[0], sizes):
            mine = sorted((r for r in rows if r["size"] == size), key=lambda r: float(r["ratio"] or 0))
            for i, r in enumerate(mine):
                color = cmap(i / max(1, len(mine) - 1))
                (t_ce, l_ce), (t_o, l_o) = r["curves"]["ce"], r["curves"]["other"]
                ax.plot(t_ce, l_ce, "o-", ms=3, lw=1, color=color, label=f"ρ={float(r['ratio']):.3g} CE")
                ax.plot(t_o, l_o, "s--", ms=3, lw=1, color=color, label=f"ρ={float(r['ratio']):.3g} {recipe}")
            ax.axhline(mine[0]["curves"]["L0"], color="grey", ls=":", lw=1, label="L0 (unpruned)")
            ax.set_xscale("log")
            ax.set_title(f"{size}", fontsize=9)
            ax.set_xlabel("post-training tokens")
            ax.grid(alpha=0.3)
        axes[0][0].set_ylabel("held-out loss (nats, next-token CE)")
        axes[0][-1].legend(fontsize=6)
        tag = "" if seed is None else f", seed {seed}"
        fig.suptitle(f"{family} / {method}: CE (solid) against {recipe} (dashed){tag}", fontsize=10)
        fig.tight_layout()
        name = f"recipes_{_slug(family)}_{_slug(method)}_{_slug(recipe)}" + ("" if seed is None else f"_s{seed}")
        path = Path(out_dir) / f"{name}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths
