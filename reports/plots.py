"""PNG plots of post-training curves with the fitted law (in the spirit of the paper's Figs 9-11).

* `loss_curves`: one figure per (family, method) group, one panel per base size; every run's
  held-out loss at each checkpoint as points, the fitted law over them as a line. Held-out
  sizes are titled as such: their lines are predictions, not fits.
* `predicted_vs_actual`: held-out checkpoints, predicted against measured loss, with y = x.

The Agg backend is forced: reports are rendered on headless CI machines.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-." else "_" for c in text)


def loss_curves(group, out_dir: Path) -> Path | None:
    """Loss against tokens for every run of a `bench.study.GroupStudy`, with the fitted law."""
    if not group.runs:
        return None
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
        role = "held out (predicted)" if size in group.heldout_sizes else "fitted"
        ax.set_title(f"{size}: N0={runs[0].inputs['N0']:,.0f}\n{role}", fontsize=9)
        ax.set_xscale("log")
        ax.set_xlabel("post-training tokens")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("held-out loss (nats)")
    axes[0][-1].legend(fontsize=7)
    fig.suptitle(f"{group.family} / {group.method}: law {group.law}", fontsize=10)
    fig.tight_layout()
    path = Path(out_dir) / f"loss_{_slug(group.family)}_{_slug(group.method)}.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def predicted_vs_actual(group, out_dir: Path) -> Path | None:
    """Scatter of predicted against measured loss on the held-out sizes' checkpoints."""
    held = [r for r in group.runs if r.group in group.heldout_sizes]
    if group.fit is None or not held:
        return None
    fig, ax = plt.subplots(figsize=(4, 4))
    lo, hi = np.inf, -np.inf
    for r in held:
        pred = group.fit.predict_run(r)
        ax.plot(r.loss, pred, "o", ms=3, label=f"{r.group} ρ={r.inputs['rho']:.3f}")
        lo, hi = min(lo, r.loss.min(), pred.min()), max(hi, r.loss.max(), pred.max())
    ax.plot([lo, hi], [lo, hi], "k--", lw=1, label="y = x")
    ax.set_xlabel("measured held-out loss")
    ax.set_ylabel("predicted by the law")
    ax.set_title(f"{group.family} / {group.method}: extrapolation", fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = Path(out_dir) / f"heldout_{_slug(group.family)}_{_slug(group.method)}.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
