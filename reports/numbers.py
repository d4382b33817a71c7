"""Number formats of every table prunebench prints: plain numbers, percentages, tokens.

Fixed formats, so a report or a gate's message reads the same on every run: `fmt_num` with
thousands separators, `fmt_pct` for fractions, `fmt_sci` for fitted constants, `fmt_tokens`
for token counts (131k, 2.5B). Anything absurdly large (a run-away fit) is printed as mantissa
and exponent. Pure functions of the standard library, for the renderers and the harness alike.
"""

from __future__ import annotations

import math

HUGE = 1e9  # beyond this a number is printed as mantissa and exponent


def fmt_num(x, digits: int = 2) -> str:
    if x is None:
        return "–"
    if isinstance(x, str):
        return x
    if not math.isfinite(x):
        return "inf" if x > 0 else ("-inf" if x < 0 else "nan")
    if abs(x) >= HUGE:
        return f"{x:.3g}"  # a run-away fit: 36 digits of it say nothing more than the exponent
    return f"{x:,.{digits}f}"


def fmt_sci(x) -> str:
    if x is None:
        return "–"
    if isinstance(x, str) or not math.isfinite(x):
        return str(x)
    return f"{x:.4g}"


def fmt_pct(x, digits: int = 2) -> str:
    """A fraction as a percentage (0.0123 -> '1.23%'); absurd values in scientific notation."""
    if x is None:
        return "–"
    pct = 100 * x
    if math.isfinite(pct) and abs(pct) >= HUGE:
        return f"{pct:.3g}%"
    return f"{pct:.{digits}f}%"


def fmt_tokens(x) -> str:
    if x is None:
        return "–"
    for unit, scale in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:.3g}{unit}"
    return f"{x:.3g}"
