"""The Triton int8 GEMM (interpreted on a CPU) against golden, bit-exact."""

import os

import numpy as np
import pytest
import torch

import sw
from golden.int_gemm import int_gemm, random_operands
from sw.int8_gemm import int8_gemm


def _t(x):
    return torch.tensor(x, dtype=torch.int8)


class TestPackage:
    def test_interpreter_selected_without_gpu(self):
        if torch.cuda.is_available():
            assert sw.INTERPRETED == (os.environ.get("TRITON_INTERPRET", "0") != "0")
        else:
            assert sw.INTERPRETED and os.environ["TRITON_INTERPRET"] == "1"


class TestInt8Gemm:
    @pytest.mark.parametrize("m,k,n", [(64, 64, 64), (100, 130, 70), (1, 7, 3), (65, 200, 129)])
    @pytest.mark.parametrize("backend", ["triton", "torch"])
    def test_matches_golden(self, m, k, n, backend):
        a, b = random_operands(m, k, n, seed=m + k + n)
        c = int8_gemm(_t(a), _t(b), backend=backend)
        assert c.dtype == torch.int32 and tuple(c.shape) == (m, n)
        np.testing.assert_array_equal(c.numpy(), int_gemm(a, b))

    def test_all_extremes(self):
        a = np.full((64, 128), -128)
        b = np.full((128, 64), -128)
        c = int8_gemm(_t(a), _t(b))
        assert (c == 128 * 16384).all()

    def test_block_sizes(self):
        a, b = random_operands(40, 50, 30, seed=9)
        c = int8_gemm(_t(a), _t(b), block_m=32, block_n=16, block_k=16)
        np.testing.assert_array_equal(c.numpy(), int_gemm(a, b))

    def test_strided_input(self):
        a, b = random_operands(64, 64, 64, seed=4)
        at = _t(a.T.copy()).t()                   # non-contiguous view
        np.testing.assert_array_equal(int8_gemm(at, _t(b)).numpy(), int_gemm(a, b))

    def test_bad_inputs(self):
        a = torch.zeros(4, 8, dtype=torch.int8)
        with pytest.raises(ValueError, match="a must be int8, got torch.float32"):
            int8_gemm(a.float(), a.t())
        with pytest.raises(ValueError, match="inner dimensions differ"):
            int8_gemm(a, a)
        with pytest.raises(ValueError, match="must be 2-D"):
            int8_gemm(a[0], a.t())
        with pytest.raises(ValueError, match="backend must be one of"):
            int8_gemm(a, a.t(), backend="cuda")
        with pytest.raises(ValueError, match="block_k must be a power of two >= 16, got 24"):
            int8_gemm(a, a.t(), block_k=24)
        with pytest.raises(TypeError, match="a must be a numpy array or a torch tensor, got list"):
            int8_gemm([[1, 2]], a)
