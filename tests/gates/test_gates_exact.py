"""Boundary exactness: decimal arithmetic on the shortest repr, and MLflow's failing cases."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlreg.gates.exact import add, dec, ge, le, scaled, sub


def test_dec_is_the_shortest_repr() -> None:
    assert dec(0.805) == Decimal("0.805")
    assert dec(0.1) == Decimal("0.1")
    assert dec(3) == Decimal(3)
    with pytest.raises(ValueError):
        dec(float("nan"))


@pytest.mark.parametrize(("candidate", "baseline", "margin"), [
    (0.805, 0.800, 0.005),   # MLflow: Decimal(base + delta) fails this boundary
    (0.805, 0.7, 0.105),     # 0.7 + 0.105 == 0.8049999999999999 in float
    (0.8, 0.7, 0.1),         # 0.8 - 0.7 == 0.10000000000000009 in float
    (0.3, 0.1, 0.2),         # 0.1 + 0.2 == 0.30000000000000004
    (0.9, 0.0, 0.9),
    (1.0, 0.995, 0.005),
])
def test_boundary_passes_exactly(candidate: float, baseline: float, margin: float) -> None:
    # The float arithmetic MLflow does gets at least one direction wrong on these.
    assert ge(sub(candidate, baseline), margin)
    assert le(sub(candidate, baseline), margin)
    assert ge(candidate, add(baseline, margin)) and le(candidate, add(baseline, margin))


@pytest.mark.parametrize(("candidate", "baseline", "margin"), [
    (0.805, 0.800, 0.005), (0.805, 0.7, 0.105), (0.8, 0.7, 0.1), (0.3, 0.1, 0.2),
    (1.0, 0.995, 0.005),
])
def test_float_arithmetic_gets_these_wrong(candidate: float, baseline: float,
                                           margin: float) -> None:
    """The cases above are not vacuous: plain floats fail the boundary in one direction."""
    float_min_ok = candidate - baseline >= margin and candidate >= baseline + margin
    float_max_ok = candidate - baseline <= margin and candidate <= baseline + margin
    assert not (float_min_ok and float_max_ok)


def test_just_below_the_boundary_fails() -> None:
    assert not ge(sub(0.8049999999, 0.800), 0.005)
    assert not ge(sub(0.805, 0.80000000001), 0.005)


def test_relative_margin_against_absolute_baseline() -> None:
    # 2% of |-0.5| is 0.01: -0.49 - (-0.5) == 0.01 passes exactly.
    assert ge(sub(-0.49, -0.5), scaled(0.02, -0.5))
    assert scaled(0.0, 0.7) == 0  # MLflow crashes on min_relative_change=0.0


decimals = st.decimals(min_value=Decimal("-10"), max_value=Decimal("10"), places=4,
                       allow_nan=False, allow_infinity=False)


@given(decimals, decimals)
def test_typed_boundaries_always_pass(b: Decimal, m: Decimal) -> None:
    """For numbers as people write them, candidate == baseline + margin always passes."""
    c = b + m
    candidate, baseline, margin = float(c), float(b), float(m)
    assert ge(sub(candidate, baseline), margin)
    assert le(sub(candidate, baseline), margin)
