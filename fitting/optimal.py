"""The optimal amount of post-training data, in closed form from a fitted law.

Along the token axis every law here reads L(D) = limit + coef * D**(-beta) (see
`Law.asymptote`), with D in the fit's token unit. So:

* within a relative margin m of the D -> infinity limit:
      coef * D**(-beta) <= m * limit   <=>   D >= (coef / (m * limit)) ** (1 / beta)
* marginal gain per raw token below a threshold t (s = token unit scale):
      coef * beta * D**(-(beta + 1)) / s <= t   <=>   D >= (coef * beta / (s * t)) ** (1 / (beta + 1))

Both are only reachable when the loss actually falls towards a finite limit (beta > 0); the
other cases are reported explicitly rather than as NaN or infinity.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

from fitting.errors import FitError
from fitting.fitter import FitResult
from fitting.laws.base import TOKENS, get_law

#: A prediction farther than this factor beyond the tokens a law was fitted on, or beyond its
#: fitted N0 range, is an extrapolation: every table and `prunebench predict` show it as one,
#: with its factor (or refuse it, for N0, without --force).
EXTRAPOLATION_FACTOR = 10.0


def outside_factor(value: float, lo: float | None, hi: float | None) -> float:
    """How far `value` lies outside [lo, hi]: value / hi above, lo / value below, 1 inside
    (or with no range)."""
    if lo is None or hi is None:
        return 1.0
    return value / hi if value > hi else (lo / value if value < lo else 1.0)


@dataclass(frozen=True)
class TokenTarget:
    """Answer of a token question.

    Attributes:
        tokens: raw tokens needed (0 when already satisfied); None when never satisfied.
        reachable: the condition holds at `tokens`, within `max_tokens` if one was given.
        reason: why, in words (always set, so a report can print it).
        limit: predicted loss as D -> infinity, or None if the loss has no finite limit.
        loss: predicted loss at `tokens` (None when tokens is None or 0).
    """

    tokens: float | None
    reachable: bool
    reason: str
    limit: float | None
    loss: float | None

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def _pow(base: float, exponent: float) -> float:
    try:
        return base**exponent
    except OverflowError:
        return math.inf


def _decompose(result: FitResult, point: Mapping[str, float]):
    law = get_law(result.law)
    need = [k for k in law.inputs if k != TOKENS]
    missing = [k for k in need if k not in point]
    if missing:
        raise FitError(f"law {result.law!r} needs {need} to place the point; missing {missing}")
    raw = {k: float(point[k]) for k in need}
    law.check_inputs({**raw, TOKENS: 1.0})
    x = {k: v / result.units[k].scale for k, v in raw.items()}
    a = law.asymptote(result.params, x)
    return float(a.limit), float(a.coef), float(a.beta), result.units[TOKENS].scale, raw


def _target(result, raw, d_unit, scale, limit, max_tokens, what) -> TokenTarget:
    tokens = d_unit * scale
    if not math.isfinite(tokens):
        return TokenTarget(None, False, f"{what} needs more tokens than a float can hold", limit, None)
    loss = float(result.predict({**raw, TOKENS: [tokens]})[0]) if tokens > 0 else None
    if max_tokens is not None and tokens > max_tokens:
        return TokenTarget(tokens, False, f"{what} only after {tokens:.6g} tokens, beyond max_tokens={max_tokens:.6g}",
                           limit, loss)
    return TokenTarget(tokens, True, f"{what} from {tokens:.6g} tokens on", limit, loss)


def tokens_to_margin(
    result: FitResult, point: Mapping[str, float], margin: float = 0.01, max_tokens: float | None = None
) -> TokenTarget:
    """Tokens after which the predicted loss stays within `margin` (relative) of its limit.

    Args:
        result: a fitted law.
        point: its non-token inputs in raw units, e.g. {"N0": 1.2e9, "rho": 0.25, "L0": 2.3}.
        margin: relative margin, e.g. 0.01 for "within 1% of the asymptote".
        max_tokens: a budget; a requirement beyond it is reported as not reachable.
    """
    if not margin > 0:
        raise FitError(f"margin must be > 0 (relative, e.g. 0.01), got {margin}")
    limit, coef, beta, scale, raw = _decompose(result, point)
    if beta <= 0:
        return TokenTarget(None, False, f"beta={beta:.6g} <= 0: the predicted loss does not fall towards a finite limit",
                           None, None)
    if limit <= 0:
        return TokenTarget(None, False, f"the predicted limit {limit:.6g} is not positive, so a relative margin is undefined",
                           limit, None)
    if coef <= 0:
        return TokenTarget(0.0, True, "the predicted loss is at or below its limit for every D", limit, None)
    d_unit = _pow(coef / (margin * limit), 1.0 / beta)
    return _target(result, raw, d_unit, scale, limit, max_tokens, f"within {margin:.3g} of the limit")


def tokens_to_slope(
    result: FitResult, point: Mapping[str, float], threshold: float, max_tokens: float | None = None
) -> TokenTarget:
    """Tokens after which the marginal gain |dL/dD| falls below `threshold` (loss per raw token).

    Args:
        result: a fitted law.
        point: its non-token inputs in raw units.
        threshold: loss per token, e.g. 1e-10 (0.1 nats per billion tokens).
        max_tokens: a budget; a requirement beyond it is reported as not reachable.
    """
    if not threshold > 0:
        raise FitError(f"threshold must be > 0 (loss per token), got {threshold}")
    limit, coef, beta, scale, raw = _decompose(result, point)
    lim = limit if beta > 0 else None
    if beta == 0 or coef == 0:
        return TokenTarget(0.0, True, "the predicted loss is flat in D", lim, None)
    if beta <= -1:
        return TokenTarget(None, False, f"beta={beta:.6g} <= -1: the slope grows with D and never falls below the threshold",
                           None, None)
    d_unit = _pow(abs(coef * beta) / (scale * threshold), 1.0 / (beta + 1.0))
    return _target(result, raw, d_unit, scale, lim, max_tokens, f"|dL/dD| <= {threshold:.3g} per token")
