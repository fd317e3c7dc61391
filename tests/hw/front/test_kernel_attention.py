"""The linear-attention head as one program on the reference machine: bit-exact against
golden.linear_attention_chain on random heads and extremes, on the shipped fused architecture
and a tiny one (several query blocks), with clear errors where it cannot run."""

import numpy as np
import pytest

from golden.linear_attention_chain import linear_attention_chain_int
from hw.front.arch import load_arch
from hw.front.kernel_attention import (
    linear_attention_operands,
    linear_attention_program,
    run_linear_attention,
)
from hw.front.spec_model import SpecError
from tests.hw.accel_cases import tiny_arch

FUSED = load_arch("examples/arch/lego_fused.yaml")


def _check(arch, q, k, v, dataflow=None):
    run = run_linear_attention(arch, q, k, v, dataflow)
    n = arch.units.normalizer
    want = linear_attention_chain_int(q, k, v, n.out_frac_bits, n.den_bits, n.recip_frac_bits)
    np.testing.assert_array_equal(run.output, want.out)
    return run, want


@pytest.mark.parametrize("n,d,dv", [(40, 32, 32), (17, 8, 20), (1, 32, 32), (130, 16, 48)])
def test_random_heads_bit_exact_on_the_fused_architecture(n, d, dv):
    rng = np.random.default_rng(n + d)
    q, k, v = (rng.integers(-128, 128, s) for s in ((n, d), (n, d), (n, dv)))
    run, want = _check(FUSED, q, k, v)
    assert int(want.shift.max()) > 0 or n == 1      # the requantization is exercised
    assert run.machine.unit_rows["normalizer"] > 0


def test_extremes():
    """All-zero keys (den = 0 -> out 0), all-negative queries, max-magnitude codes (VK
    saturating at the +127.5 edge), one token."""
    rng = np.random.default_rng(5)
    n, d, dv = 24, 8, 8
    v = rng.integers(-128, 128, (n, dv))
    q = rng.integers(-128, 128, (n, d))
    run, _ = _check(FUSED, q, np.zeros((n, d), np.int64), v)
    assert not run.output.any()
    run, _ = _check(FUSED, -(np.abs(q) % 128) - 1, rng.integers(-128, 128, (n, d)), v)
    assert not run.output.any()
    big = np.full((n, d), 127)
    _check(FUSED, big, big, np.full((n, dv), -128))
    _check(FUSED, big, big, np.full((n, dv), 127))


@pytest.mark.parametrize("dataflow", ["ws", "sr"])
def test_tiny_architecture_several_query_blocks(dataflow):
    arch = tiny_arch("units")
    rng = np.random.default_rng(2)
    n, d, dv = 20, 8, 8
    q, k, v = (rng.integers(-128, 128, s) for s in ((n, d), (n, d), (n, dv)))
    run, _ = _check(arch, q, k, v, dataflow)
    assert sum(ins.op == "mvout" for ins in run.program) > 2       # more than one block


def test_errors_name_the_problem():
    ops = linear_attention_operands(FUSED, 16, 8, 8)
    with pytest.raises(SpecError, match="no requant unit"):
        linear_attention_program(load_arch("examples/arch/gemmini_like.yaml"), ops)
    with pytest.raises(SpecError, match="does not keep i in time only"):
        linear_attention_program(FUSED, ops, "output_stationary")
    with pytest.raises(SpecError, match="no dataflow"):
        linear_attention_program(FUSED, ops, "nope")
    with pytest.raises(SpecError, match="does not fit"):
        linear_attention_program(tiny_arch("units"),
                                 linear_attention_operands(FUSED, 400, 64, 64))
    with pytest.raises(SpecError, match="takes int8 codes"):
        linear_attention_operands(tiny_arch("int4"), 16, 8, 8)
    with pytest.raises(ValueError, match="expected"):
        run_linear_attention(FUSED, np.zeros((4, 8)), np.zeros((4, 9)), np.zeros((4, 8)))
