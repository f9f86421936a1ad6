from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgeagents.sim.metrics import jain, jain_rescaled


def test_jain_of_equal_values_is_one():
    assert jain([3.0, 3.0, 3.0, 3.0]) == pytest.approx(1.0)


def test_jain_of_one_nonzero_of_k_is_one_over_k():
    assert jain([0.0, 0.0, 5.0, 0.0]) == pytest.approx(0.25)
    assert jain_rescaled(0.25, 4) == pytest.approx(0.0)
    assert jain_rescaled(1.0, 4) == pytest.approx(1.0)


def test_jain_known_value():
    # (1+2+3)^2 / (3 * (1+4+9)) = 36/42
    assert jain([1.0, 2.0, 3.0]) == pytest.approx(36 / 42)


@given(st.lists(st.floats(min_value=0.001, max_value=1e6), min_size=1, max_size=8))
def test_jain_is_bounded(xs):
    j = jain(xs)
    assert 1 / len(xs) - 1e-9 <= j <= 1 + 1e-9


def test_jain_rejects_bad_input():
    with pytest.raises(ValueError):
        jain([])
    with pytest.raises(ValueError):
        jain([1.0, -1.0])
