"""Chinchilla's final-loss points (Besiroglu et al.'s reconstruction) and the published estimates.

The data set is the 245-point reconstruction of Hoffmann et al.'s Figure 4 that Besiroglu et al.
(2024) extracted (`chinchilla/svg_extracted_data.csv` in the shared data directory; see its
README). It is the external check of our fit: on the same points and exclusions it must do at
least as well as the published fits.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fitting.errors import FitError
from fitting.data import Run, runs_from_table
from fitting.table import column, exclude_top_loss, read_csv

CSV_NAME = "svg_extracted_data.csv"

#: Besiroglu et al.'s excluded rows: the 5 largest losses (keep loss < 5th-largest loss).
EXCLUDE_TOP = 5

#: Published estimates in the natural form (raw parameter and token counts).
PUBLISHED = {
    # Besiroglu et al. (2024), headline estimate.
    "besiroglu": {"A": 482.01, "B": 2085.43, "E": 1.8172, "alpha": 0.3478, "beta": 0.3658},
    # Hoffmann et al. (2022), unrounded values from the paper's TeX source.
    "hoffmann": {"A": float(np.exp(6.0073404)), "B": float(np.exp(6.0179186)), "E": float(np.exp(0.5267228)),
                 "alpha": 0.33917, "beta": 0.28491},
}


def to_params(constants: dict[str, float]) -> dict[str, float]:
    """Natural constants -> the chinchilla law's fit parameters (a = log A, ...)."""
    return {"a": float(np.log(constants["A"])), "b": float(np.log(constants["B"])),
            "e": float(np.log(constants["E"])), "alpha": constants["alpha"], "beta": constants["beta"]}


def load_runs(path: str | Path, exclude_top: int = EXCLUDE_TOP) -> list[Run]:
    """One run per point, with N = Model Size, D = Training FLOP / (6 N), L = loss.

    Args:
        path: the CSV, or a data directory holding `chinchilla/svg_extracted_data.csv`.
        exclude_top: drop rows whose loss is >= the k-th largest (0 keeps all 245).
    """
    path = Path(path)
    if path.is_dir():
        path = path / "chinchilla" / CSV_NAME
    if not path.is_file():
        raise FitError(f"Chinchilla points not found at {str(path)!r}")
    table = read_csv(path)
    cols = {
        "N": column(table, "Model Size"),
        "D": column(table, "[Training FLOP]/(6*[Model Size])"),
        "L": column(table, "loss"),
    }
    keep = exclude_top_loss(cols["L"], exclude_top)
    return runs_from_table({k: v[keep] for k, v in cols.items()}, {"N": "N", "D": "D"}, "L")
