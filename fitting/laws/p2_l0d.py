"""Candidate form: the P^2 law over the measured control curve L0(D) instead of a constant L0."""

from __future__ import annotations

from fitting.laws.base import Law, Unit, register
from fitting.laws.p2 import P2


@register("p2-l0d")
class P2L0D(P2):
    """L(N0, D, rho, L0D) = L0D + (1/rho)**gamma * (1/N0)**delta * (N_C / N0**alpha + D_C / D**beta + E)

    L0D = L0(D), the held-out loss of the control run (the unpruned base post-trained with
    the same recipe) after the same D tokens. A constant L0 credits the pruned model with
    every bit of improvement that is plain extra training of the base; measured against the
    control, the bracket is the part of the recovery that pruning made necessary. No
    reference study fits this form: it needs the control runs this suite records.
    """

    candidate = "the measured control curve L0(D) in place of the constant L0"
    candidate_rank = 6

    inputs = ("N0", "D", "rho", "L0D")
    units = {"N0": Unit("parameters", 1e9), "D": Unit("tokens", 1e6), "rho": Unit("fraction"), "L0D": Unit("nats")}
    baseline = "L0D"

    # The baseline moves with D, so the law has no closed-form asymptote along the token axis.
    asymptote = Law.asymptote
