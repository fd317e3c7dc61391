"""The generated MAC array in Verilator, bit-exact against golden on random operands."""

import numpy as np
import pytest

from golden.int_gemm import random_operands
from hw.mac import MacSpec
from hw.mac_array import MacArraySpec
from sim.mac_array import simulate_gemm

INT8_4x4 = MacArraySpec(rows=4, cols=4, depth=64)          # the CLI's default design
INT4_3x5 = MacArraySpec(rows=3, cols=5, mac=MacSpec("int4", "int4", acc_bits=32), depth=16)
MIXED_2x3 = MacArraySpec(rows=2, cols=3, mac=MacSpec("uint8", "int8", acc_bits=24), depth=8)


def _check(spec, k, seed, mode="bulk"):
    mac = spec.mac
    a, b = random_operands(spec.rows, k, spec.cols, mac.a_type, mac.b_type, seed=seed)
    run = simulate_gemm(spec, a, b, mode=mode, seed=seed)
    np.testing.assert_array_equal(run.c, run.expected)
    assert run.cycles == run.expected_cycles == spec.run_cycles(k)
    return run, a, b


class TestMacArrayRTL:
    @pytest.mark.parametrize("seed,k", [(0, 64), (1, 1), (2, 37)])
    def test_int8_signed(self, seed, k):
        run, a, _ = _check(INT8_4x4, k, seed)
        assert {-128, 127} <= set(a[0].tolist()) or k == 1

    @pytest.mark.parametrize("seed,k", [(0, 16), (5, 9)])
    def test_int4_signed(self, seed, k):
        _, a, b = _check(INT4_3x5, k, seed)
        assert a.min() == -8 and a.max() == 7 and b.min() == -8 and b.max() == 7

    def test_mixed_signedness(self):
        _check(MIXED_2x3, 8, seed=3)

    def test_all_extremes(self):
        """Every operand at the corner that maximises the magnitude of the sum."""
        a = np.full((4, 64), -128)
        b = np.full((64, 4), -128)
        run = simulate_gemm(INT8_4x4, a, b)
        assert (run.c == 64 * 16384).all() and run.bit_exact

    def test_per_cycle_mode_agrees(self):
        run, _, _ = _check(INT8_4x4, 20, seed=7, mode="per_cycle")
        assert run.bit_exact

    def test_operand_errors(self):
        a, b = random_operands(4, 65, 4, seed=0)
        with pytest.raises(ValueError, match="K must be in 1..64"):
            simulate_gemm(INT8_4x4, a, b)
        with pytest.raises(ValueError, match="do not fit the 4x4 array"):
            simulate_gemm(INT8_4x4, a[:3, :8], b[:8])
        with pytest.raises(ValueError, match="outside int4"):
            simulate_gemm(INT4_3x5, *random_operands(3, 4, 5, seed=0))
        with pytest.raises(ValueError, match="mode must be one of"):
            simulate_gemm(INT8_4x4, a[:, :4], b[:4], mode="fast")


class TestWaves:
    def test_vcd_written(self):
        spec = MacArraySpec(rows=2, cols=2, depth=4)
        a, b = random_operands(2, 4, 2, seed=0)
        run = simulate_gemm(spec, a, b, waves=True)
        assert run.bit_exact
        assert run.waves is not None and run.waves.stat().st_size > 1000
        assert "$var" in run.waves.read_text()[:20000]
