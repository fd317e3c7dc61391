import numpy as np
import pytest

from golden.int_gemm import AccumulatorOverflowError, int_gemm, random_operands
from golden.loop_nest import affine_mac, conv2d

GEMM = {"a": (((1, 0, 0), (0, 0, 1)), (0, 0)), "b": (((0, 0, 1), (0, 1, 0)), (0, 0)),
        "c": (((1, 0, 0), (0, 1, 0)), (0, 0))}


class TestAffineMac:
    def test_gemm_equals_int_gemm(self):
        a, b = random_operands(5, 7, 3, seed=4)
        c = affine_mac((5, 3, 7), a, GEMM["a"], b, GEMM["b"], (5, 3), GEMM["c"])
        np.testing.assert_array_equal(c, int_gemm(a, b))

    def test_chunking_is_invisible(self):
        a, b = random_operands(6, 9, 4, seed=5)
        ref = affine_mac((6, 4, 9), a, GEMM["a"], b, GEMM["b"], (6, 4), GEMM["c"])
        small = affine_mac((6, 4, 9), a, GEMM["a"], b, GEMM["b"], (6, 4), GEMM["c"], chunk=7)
        np.testing.assert_array_equal(ref, small)

    def test_conv2d_against_direct_loops(self):
        rng = np.random.default_rng(0)
        m, y, x, c, r, s = 2, 3, 4, 3, 2, 2
        inp = rng.integers(-128, 128, size=(c, y + r - 1, x + s - 1))
        w = rng.integers(-128, 128, size=(m, c, r, s))
        ident = np.eye(6, dtype=int)
        acc_i = ((ident[3], ident[1] + ident[4], ident[2] + ident[5]), (0, 0, 0))
        acc_w = ((ident[0], ident[3], ident[4], ident[5]), (0, 0, 0, 0))
        acc_o = ((ident[0], ident[1], ident[2]), (0, 0, 0))
        got = affine_mac((m, y, x, c, r, s), inp, acc_i, w, acc_w, (m, y, x), acc_o)
        ref = np.zeros((m, y, x), dtype=np.int64)
        for mm in range(m):
            for yy in range(y):
                for xx in range(x):
                    ref[mm, yy, xx] = np.sum(inp[:, yy:yy + r, xx:xx + s] * w[mm])
        np.testing.assert_array_equal(got, ref)

    def test_errors(self):
        a, b = random_operands(2, 2, 2, seed=0)
        with pytest.raises(ValueError, match="a index on axis 1 reaches 2, outside its extent 2"):
            affine_mac((2, 2, 3), a, GEMM["a"], b, GEMM["b"], (2, 2), GEMM["c"])
        with pytest.raises(ValueError, match="extents must be positive"):
            affine_mac((2, 0, 2), a, GEMM["a"], b, GEMM["b"], (2, 2), GEMM["c"])
        big = np.full((1, 4), 127)
        with pytest.raises(AccumulatorOverflowError, match="does not fit a signed 16-bit"):
            affine_mac((1, 1, 4), big, GEMM["a"], big.T, GEMM["b"], (1, 1), GEMM["c"],
                       acc_bits=16)


class TestConv2d:
    def test_1x1_kernel_is_a_gemm(self):
        rng = np.random.default_rng(3)
        image, weights = rng.integers(-128, 128, (5, 4, 3)), rng.integers(-128, 128, (6, 5, 1, 1))
        out = conv2d(image, weights)
        gemm = int_gemm(weights[:, :, 0, 0], image.reshape(5, 12))
        np.testing.assert_array_equal(out.reshape(6, 12), gemm)

    def test_taps_shift_the_image(self):
        image = np.arange(2 * 4 * 5).reshape(2, 4, 5)
        weights = np.zeros((1, 2, 2, 3), dtype=np.int64)
        weights[0, 1, 1, 2] = 1                     # picks I[1, y + 1, x + 2]
        np.testing.assert_array_equal(conv2d(image, weights)[0], image[1, 1:4, 2:5])

    def test_errors(self):
        with pytest.raises(ValueError, match="a 3x3 kernel does not fit a 2x2 image"):
            conv2d(np.zeros((1, 2, 2), int), np.zeros((1, 1, 3, 3), int))
        with pytest.raises(ValueError, match="same C"):
            conv2d(np.zeros((2, 4, 4), int), np.zeros((1, 3, 1, 1), int))
