"""The `Law` interface and the registry that holds every law form.

A law form is one small module in this package (or in a separate package, through the entry
point group ``prunebench.laws``) that subclasses `Law` and decorates it with `@register`.
`register` validates what it is given at import time (so a malformed law fails loudly when the
package loads, not in the middle of a fit) and adds it to `LAWS`, a `fitting.registry.Registry`:
a name registered twice is refused naming both modules, and an unknown name is answered with
the list of known ones and a "did you mean".

Every law predicts **log L** and its Jacobian for a whole batch of parameter vectors at once,
because the multi-start fit screens thousands of starts in one vectorised pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Mapping

import numpy as np

from fitting.errors import FitError
from fitting.registry import Registry

#: The input name that always means "the run's token axis" (post-training or training tokens).
TOKENS = "D"


@dataclass(frozen=True)
class Unit:
    """The unit an input is measured in when the law's constants are applied.

    Data always arrive in raw counts (parameters, tokens); the fit divides them by `scale`
    first. Constants depend on this choice (the paper uses billions of parameters and millions
    of tokens), which is why every fit stores its units.
    """

    quantity: str  # what a raw value counts: "parameters", "tokens", "fraction", "nats"
    scale: float = 1.0

    def __post_init__(self):
        if not (np.isfinite(self.scale) and self.scale > 0):
            raise FitError(f"unit scale must be a positive number, got {self.scale!r}")

    def label(self) -> str:
        """Readable form, e.g. '1e9 parameters' or 'tokens'."""
        return self.quantity if self.scale == 1.0 else f"{self.scale:g} {self.quantity}"

    def to_dict(self) -> dict:
        return {"quantity": self.quantity, "scale": self.scale, "label": self.label()}


@dataclass(frozen=True)
class Asymptote:
    """The law along the token axis at fixed other inputs: L(D) = limit + coef * D**(-beta).

    D is in the law's token unit. All forms here have this shape, which gives closed forms for
    the optimal amount of post-training data (see `fitting.optimal`).
    """

    limit: np.ndarray
    coef: np.ndarray
    beta: float


def logsumexp_terms(terms: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
    """Stable log(sum(exp(t))) over a list of same-shaped arrays, plus the softmax weights.

    The weights are d(lse)/d(t_k), which is all the Jacobians of the LSE-shaped laws need.
    """
    m = terms[0]
    for t in terms[1:]:
        m = np.maximum(m, t)
    exps = [np.exp(t - m) for t in terms]
    total = exps[0]
    for e in exps[1:]:
        total = total + e
    inv = 1.0 / total
    return m + np.log(total), [e * inv for e in exps]


class Law:
    """Base class of a scaling-law form.

    Subclasses set the class attributes below, give the formula in their docstring, and
    implement `log_predict`, `constants` and (for the token optimum) `asymptote`.

    Attributes:
        name: registry key (set by `register`).
        params: names of the fitted parameters, in the order of the parameter vector `theta`.
            Positive amplitudes are fitted as their logs (`a = log A`), exponents as they are.
        inputs: names of the input columns, in the order `--columns` maps them. `D` is always
            the run's token axis.
        units: the default `Unit` of every input.
        grid: initial values per parameter; the fit starts from their Cartesian product.
        coarse_grid: a smaller grid (2 values per parameter) for searches repeated many
            times, e.g. the study's main fit and every one of its bootstrap replicates; empty
            means the form has none and `grid` serves. Both searches of a study use the same.
        axes: which input each fitted parameter shapes, for identifiability: a parameter
            fitted as a log amplitude maps to "log"; an exponent maps to the input it is the
            power of (alpha -> "N0"). A parameter not listed is judged on its raw interval.
        axis_params: input -> the parameters that shape the law along that input (the size
            parameters n_c, alpha, delta along N0). A fit with no more distinct values of
            the input than such parameters interpolates along it and cannot test the form.
        candidate: what distinguishes the form among the candidate forms every study group is
            fitted with (`fitting.forms`); empty: not a candidate. Not inherited: a subclass
            is a candidate only if it says so itself.
        candidate_rank: the form's place in the candidate-forms table.
    """

    name: ClassVar[str] = ""
    params: ClassVar[tuple[str, ...]] = ()
    inputs: ClassVar[tuple[str, ...]] = ()
    units: ClassVar[Mapping[str, Unit]] = {}
    grid: ClassVar[Mapping[str, tuple[float, ...]]] = {}
    coarse_grid: ClassVar[Mapping[str, tuple[float, ...]]] = {}
    axes: ClassVar[Mapping[str, str]] = {}
    axis_params: ClassVar[Mapping[str, tuple[str, ...]]] = {}
    candidate: ClassVar[str] = ""
    candidate_rank: ClassVar[int] = 0

    # -- what a form implements -------------------------------------------------------------

    def log_predict(self, theta: np.ndarray, x: Mapping[str, np.ndarray], jac: bool = False):
        """Predicted log L for S parameter vectors at n points.

        Args:
            theta: (S, P) parameter vectors, columns in `params` order.
            x: input name -> (n,) array, already divided by the unit scale.
            jac: also return d(log L)/d(theta).

        Returns:
            (S, n) log L, and with `jac` the Jacobian d(log L)/d(theta) as a second value, laid
            out (S, P, n) so the Gauss-Newton products are contiguous matrix multiplies.
        """
        raise NotImplementedError

    def constants(self, params: Mapping[str, float]) -> dict[str, float]:
        """The constants in the natural form of the formula (A = exp(a), ...), unrounded."""
        raise NotImplementedError

    def asymptote(self, params: Mapping[str, float], x: Mapping[str, np.ndarray]) -> Asymptote:
        """Decompose the law along D at the given (scaled) non-token inputs."""
        raise FitError(f"law {self.name!r} has no closed form along the token axis")

    def check_inputs(self, x: Mapping[str, np.ndarray]) -> None:
        """Raise FitError for inputs outside the law's domain. Inputs are raw (unscaled).

        The default demands every input be finite and positive, since all forms take logs.
        """
        for name in self.inputs:
            v = np.asarray(x[name], dtype=float)
            bad = ~np.isfinite(v) | (v <= 0)
            if bad.any():
                raise FitError(
                    f"law {self.name!r} needs input {name!r} finite and > 0; "
                    f"{int(bad.sum())} point(s) have {name}={v[bad][0]!r}"
                )

    def check_units(self, units: Mapping[str, Unit]) -> None:
        """Raise FitError for a unit choice the formula cannot take (default: any is fine)."""

    # -- shared helpers -----------------------------------------------------------------------

    def initial_grid(self, grid: Mapping[str, tuple[float, ...]] | None = None) -> np.ndarray:
        """The Cartesian product of the initial values as a (S, P) array."""
        grid = dict(self.grid if grid is None else grid)
        missing = [p for p in self.params if p not in grid]
        extra = [p for p in grid if p not in self.params]
        if missing or extra:
            raise FitError(
                f"grid for law {self.name!r} must give exactly {list(self.params)}; "
                f"missing {missing}, unknown {extra}"
            )
        axes = [np.asarray(grid[p], dtype=float).ravel() for p in self.params]
        if any(a.size == 0 for a in axes):
            raise FitError(f"grid for law {self.name!r} has an empty axis")
        mesh = np.meshgrid(*axes, indexing="ij")
        return np.stack([m.ravel() for m in mesh], axis=1)

    def search_grid(self, kind: str = "full") -> np.ndarray:
        """Starts of a named search: "full" (`grid`) or "coarse" (`coarse_grid`, else `grid`)."""
        if kind not in ("full", "coarse"):
            raise FitError(f"search grid must be 'full' or 'coarse', got {kind!r}")
        return self.initial_grid(self.coarse_grid if kind == "coarse" and self.coarse_grid else None)

    def describe(self) -> str:
        """First paragraph of the docstring: the formula, for --help and reports."""
        return (self.__doc__ or "").strip().split("\n\n")[0]


#: The entry-point group through which a separate package adds a law form.
ENTRY_POINT_GROUP = "prunebench.laws"


class LawError(FitError, TypeError):
    """A law that cannot be registered under its name because another law holds it: a
    definition error (a `TypeError`, like a malformed law) reported in one line (a `FitError`),
    e.g. a plugin's law clashing with a built-in."""


#: Every law form by name: a `fitting.registry.Registry` whose discovery imports every module of
#: this package (dropping a module in registers its form) and the entry points of group
#: ``prunebench.laws`` (how a separate package adds one).
LAWS: Registry[Law] = Registry(
    "law", error=FitError, duplicate_error=LawError, unknown="known laws: {known}",
    packages=("fitting.laws",), skip=("base",), group=ENTRY_POINT_GROUP,
    ident=lambda law: (type(law).__module__, type(law).__qualname__))


def register(name: str):
    """Class decorator that validates a `Law` subclass and registers one instance under `name`
    in `LAWS` (a name another law holds is refused)."""

    def deco(cls: type[Law]) -> type[Law]:
        problems = []
        if not (cls.__doc__ or "").strip():
            problems.append("no docstring giving the formula")
        if not cls.params or len(set(cls.params)) != len(cls.params):
            problems.append(f"params must be unique and non-empty: {cls.params}")
        if not cls.inputs or len(set(cls.inputs)) != len(cls.inputs):
            problems.append(f"inputs must be unique and non-empty: {cls.inputs}")
        if TOKENS not in cls.inputs:
            problems.append(f"inputs must include the token axis {TOKENS!r}")
        if set(cls.units) != set(cls.inputs):
            problems.append(f"units must cover exactly the inputs {cls.inputs}")
        if set(cls.grid) != set(cls.params):
            problems.append(f"grid must cover exactly the params {cls.params}")
        if cls.coarse_grid and set(cls.coarse_grid) != set(cls.params):
            problems.append(f"coarse_grid must cover exactly the params {cls.params}")
        if set(cls.axes) - set(cls.params) or any(a != "log" and a not in cls.inputs for a in cls.axes.values()):
            problems.append(f"axes must map params to 'log' or an input: {dict(cls.axes)}")
        if any(i not in cls.inputs or set(ps) - set(cls.params) for i, ps in cls.axis_params.items()):
            problems.append(f"axis_params must map inputs to params: {dict(cls.axis_params)}")
        if problems:
            raise TypeError(f"law {name!r} ({cls.__name__}): " + "; ".join(problems))
        cls.name = name
        law = cls()
        LAWS.add(name, law, origin=cls.__module__, help=law.describe())
        return cls

    return deco


def available_laws() -> list[str]:
    """Sorted names of every registered law form."""
    return LAWS.names()


def get_law(law: str | Law) -> Law:
    """Look a law up by name (a `Law` instance passes through).

    Raises:
        FitError: unknown name; the message lists the known ones and the closest match.
    """
    return law if isinstance(law, Law) else LAWS.lookup(law)
