"""Exact comparisons at the boundary: decimal arithmetic on the shortest repr of each float.

A policy says "AUC at least 0.005 above the baseline"; people read 0.805 vs 0.800 as exactly on
the line, and so must the gate. In binary floating point ``0.805 - 0.800`` is
``0.0050000000000000044`` and ``0.800 + 0.005`` is ``0.8050000000000002``, so whether the boundary
passes depends on how the arithmetic is arranged (MLflow's ``Decimal(base + delta)`` adds in float
first and gets it wrong). Here every number is first turned into the decimal its shortest repr
denotes (``Decimal(repr(0.805)) == Decimal("0.805")``, the number a human typed or read), and all
sums, differences and products are done in decimal with enough precision to be exact.
"""

from __future__ import annotations

import math
from decimal import Context, Decimal

__all__ = ["dec", "is_number", "sub", "add", "ge", "le", "scaled"]

# 17 significant digits per repr, exponents within float range: 80 digits keep every sum,
# difference and product of two such numbers exact.
_CTX = Context(prec=80)


def is_number(x: object) -> bool:
    """A finite real number (bool excluded)."""
    if isinstance(x, bool) or x is None:
        return False
    try:
        return math.isfinite(float(x))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


def dec(x: float | int | Decimal) -> Decimal:
    """The decimal a float's shortest repr denotes (numpy scalars included)."""
    if isinstance(x, Decimal):
        return x
    if isinstance(x, int) and not isinstance(x, bool):
        return Decimal(x)
    f = float(x)
    if not math.isfinite(f):
        raise ValueError(f"not a finite number: {x!r}")
    return Decimal(repr(f))


def sub(a: float | Decimal, b: float | Decimal) -> Decimal:
    """``a - b`` exactly."""
    return _CTX.subtract(dec(a), dec(b))


def scaled(m: float | Decimal, b: float | Decimal) -> Decimal:
    """``m * |b|`` exactly (the margin of a relative change)."""
    return _CTX.multiply(dec(m), abs(dec(b)))


def add(a: float | Decimal, b: float | Decimal) -> Decimal:
    """``a + b`` exactly."""
    return _CTX.add(dec(a), dec(b))


def ge(a: float | Decimal, b: float | Decimal) -> bool:
    """``a >= b`` (inclusive), exactly."""
    return dec(a) >= dec(b)


def le(a: float | Decimal, b: float | Decimal) -> bool:
    """``a <= b`` (inclusive), exactly."""
    return dec(a) <= dec(b)
