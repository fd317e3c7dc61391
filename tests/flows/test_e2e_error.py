"""``flows.e2e_error.worst``: the record's (error, bound) pair is taken at the element of the
largest error / bound, so comparing the pair decides the whole array."""

from __future__ import annotations

import numpy as np
import pytest

from flows.e2e_error import worst


def test_the_pair_is_at_the_largest_ratio_not_the_largest_error():
    # the largest error (0.9) is well within its bound (10); the worst element is 0.5 vs 0.6
    err, bound = np.array([0.9, 0.5, 0.0]), np.array([10.0, 0.6, 0.0])
    assert worst(err, bound) == (0.5, 0.6)
    # the old pair (max error, bound at the worst ratio) would claim 0.9 > 0.6: a violation
    assert err.max() > 0.6


@pytest.mark.parametrize("err, bound, want", [
    (np.array([[1.0, 3.0], [2.0, 0.5]]), 2.0, (3.0, 2.0)),            # bound broadcast
    (np.array([1.0, np.nan]), np.array([5.0, 5.0]), (np.inf, 5.0)),    # NaN is a failure
    (np.array([0.0, 1e-9]), np.array([0.0, 1.0]), (1e-9, 1.0)),        # 0 / 0 is within
    (np.zeros((0, 3)), np.zeros((0, 3)), (0.0, 0.0)),
])
def test_cases(err, bound, want):
    assert worst(err, bound) == want


def test_decides_the_whole_array():
    rng = np.random.default_rng(0)
    for _ in range(200):
        err = rng.random(7) * rng.choice([0.5, 1.0, 2.0])
        bound = rng.random(7) + 0.1
        e, b = worst(err, bound)
        assert (e <= b) == bool((err <= bound).all())
