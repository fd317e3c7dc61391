import numpy as np
import pytest

from golden.fixed_point import reciprocal, round_shift_right, saturate, to_fixed


class TestRoundShiftRight:
    def test_matches_python_rounding(self):
        xs = np.arange(-200, 201)
        for s in range(0, 6):
            expected = [(int(x) + ((1 << s) >> 1)) >> s for x in xs]
            np.testing.assert_array_equal(round_shift_right(xs, s), expected)

    def test_shifts_past_the_int64_width_are_exact(self):
        """numpy's int64 shifts wrap their count from 64 on; the rounding must not."""
        xs = np.array([-(1 << 63), -(1 << 62) - 1, -(1 << 40), -5, -1, 0, 1, 7, 1 << 62,
                       (1 << 63) - 1])
        for s in (40, 61, 62, 63, 64, 65, 100, 200, 254):
            expected = [(int(x) + ((1 << s) >> 1)) >> s for x in xs]
            np.testing.assert_array_equal(round_shift_right(xs, s), expected)

    def test_negative_shift(self):
        with pytest.raises(ValueError, match="shift must be >= 0, got -1"):
            round_shift_right(3, -1)


class TestReciprocal:
    def test_exact_rounding(self):
        d = np.arange(1, 1000)
        r = reciprocal(d, 16)
        err = np.abs(r - 65536 / d)
        assert err.max() <= 0.5

    def test_nonpositive(self):
        with pytest.raises(ValueError, match="positive divisors"):
            reciprocal(np.array([3, 0]), 8)


class TestSaturateToFixed:
    def test_saturate(self):
        np.testing.assert_array_equal(saturate(np.array([-300, 5, 300]), 8), [-128, 5, 127])
        np.testing.assert_array_equal(saturate(np.array([-3, 300]), 8, signed=False), [0, 255])

    def test_to_fixed(self):
        np.testing.assert_array_equal(to_fixed(np.array([0.5, -0.5, 0.25, 1.0]), 1), [1, -1, 1, 2])
        with pytest.raises(ValueError, match="NaN or Inf"):
            to_fixed(np.array([np.nan]), 4)
