"""A whole SVDQuant layer (W4A4 groups + the low-rank branch, one dequantizer) as one program
on the reference machine: float32 outputs bit-identical to golden.svdquant_fixed, on random
layers and extremes, in blocks of rows and n-tiles, on the fused architecture and a tiny one;
the program's static cost equal to what the machine counts; clear errors."""

import numpy as np
import pytest

from golden.group_dequant import group_dequant_gemm
from golden.svdquant_fixed import SVDQuantFixedSpec, quantize_branch, svdquant_fixed_int
from golden.svdquant_ops import quantize_int4
from hw.front.arch import load_arch
from hw.front.isa import UNIT_MODES, UNIT_NAMES
from hw.front.kernel_svdquant import run_svdquant_linear, svdquant_operands, svdquant_program
from hw.front.program_cost import program_cost
from hw.front.spec_model import SpecError
from tests.hw.accel_cases import tiny_arch

FUSED = load_arch("examples/arch/lego_fused.yaml")


def _operands(rng, m, k, n, r, group=64, branch=0.1):
    x = rng.standard_normal((m, k)).astype(np.float32)
    w = (rng.standard_normal((n, k)) * 0.1).astype(np.float32)
    down = (rng.standard_normal((r, k)) * branch).astype(np.float32)
    up = (rng.standard_normal((n, r)) * branch).astype(np.float32)
    qx, sx = quantize_int4(x, group)
    qw, sw = quantize_int4(w, group)
    b = quantize_branch(x, down, up, 8)
    return [qx, sx, qw, sw, b.xl, b.sxl, b.l1q, b.l2q, b.sl2]


def _check(arch, ops):
    spec = SVDQuantFixedSpec(group_size=arch.units.dequant.group, branch_bits=8,
                             dequant=arch.units.dequant.golden_spec())
    want = np.asarray(svdquant_fixed_int(*ops, spec).y, np.float32)
    run = run_svdquant_linear(arch, *ops)
    np.testing.assert_array_equal(run.output.view(np.int32), want.view(np.int32))
    return run, want


@pytest.mark.parametrize("m,k,n,r", [(8, 128, 16, 8), (5, 192, 40, 32), (3, 64, 7, 4),
                                     (1, 64, 1, 1)])
def test_random_layers_bit_exact(m, k, n, r):
    run, want = _check(FUSED, _operands(np.random.default_rng(m + n), m, k, n, r))
    assert np.abs(want).max() > 0
    assert run.machine.unit_rows["dequant"] > 0


def test_extremes():
    """int4 -8 everywhere (the largest group dots), a group of all-zero codes, an all-zero
    input row (dead low-rank term), a zero branch (then exactly group_dequant_gemm), zero and
    tiny scales."""
    rng = np.random.default_rng(4)
    ops = _operands(rng, 4, 128, 16, 8)
    ops[0][:] = -8
    ops[2][:] = -8
    ops[0][1, 64:] = 0                          # a group of zeros in row 1
    ops[4][2] = 0                               # row 2's branch input is zero
    ops[1][3, 0] = 0.0                          # a zero scale
    ops[3][5, 1] = np.float32(1e-40)            # a subnormal weight scale
    _check(FUSED, ops)
    zero = _operands(rng, 3, 128, 9, 4)
    zero[6][:] = 0                              # L1 = 0: u = 0, every low-rank dot 0
    run, want = _check(FUSED, zero)
    np.testing.assert_array_equal(want, group_dequant_gemm(zero[0], zero[1], zero[2], zero[3],
                                                           64, FUSED.units.dequant.golden_spec()))


def test_tiny_architecture():
    arch = tiny_arch("units")                   # group 16, array edge 4, 4 lanes
    _check(arch, _operands(np.random.default_rng(2), 3, 32, 6, 4, group=16))


def _clears(program) -> int:
    clear = (UNIT_NAMES.index("dequant"), UNIT_MODES["dequant"].index("clear"))
    return sum(ins.op == "unit" and (ins["unit"], ins["mode"]) == clear for ins in program)


@pytest.mark.parametrize("m,k,n,r", [(70, 128, 40, 16), (67, 64, 16, 32), (65, 128, 3, 0)])
def test_blocked_layers(m, k, n, r):
    """More rows than the dequantizer holds (blocks of 64), one or several n-tiles (the next
    tile's weights streamed in behind the groups), one group, rank 0: bit-exact; the cost
    counted from the program equals the machine's counts."""
    run, _ = _check(FUSED, _operands(np.random.default_rng(m), m, k, n, r))
    assert _clears(run.program) == -(-m // 64) * -(-n // 16)
    cost = program_cost(run.program, FUSED)
    counts = run.machine.counts
    assert (cost.macs, cost.dram_read_bytes, cost.dram_written_bytes) == (
        counts["macs"], counts["dram_read_bytes"], counts["dram_written_bytes"])


def test_blocks_shrink_to_fit_the_memories():
    """On the tiny architecture a K = 128 layer's codes fill the scratchpad at 2 rows a
    block (the dequantizer holds 4): 3 blocks of rows, still bit-exact."""
    arch = tiny_arch("units")
    run, _ = _check(arch, _operands(np.random.default_rng(5), 5, 128, 6, 4, group=16))
    assert _clears(run.program) == 3 * 2


def test_errors():
    with pytest.raises(SpecError, match="no requant unit"):
        svdquant_operands(load_arch("examples/arch/gemmini_like.yaml"), 4, 64, 4, 4)
    with pytest.raises(ValueError, match="K=100 is not a multiple"):
        svdquant_operands(FUSED, 4, 100, 4, 4)
    with pytest.raises(SpecError, match="rank 20 must be at most the array edge"):
        svdquant_program(FUSED, svdquant_operands(FUSED, 4, 64, 4, 20))
    with pytest.raises(SpecError, match="does not fit"):
        svdquant_program(tiny_arch("units"), svdquant_operands(tiny_arch("units"), 64, 256, 8, 4))


def test_rank_zero_is_the_plain_w4a4_layer():
    """Rank 0 builds the layer without the branch (what its cost is measured against): the
    same float32 outputs as a rank-1 branch whose low-rank dots are all 0 (dead terms), and
    fewer instructions, MACs and DRAM bytes."""
    rng = np.random.default_rng(4)
    ops = _operands(rng, 6, 128, 20, 1)
    ops[7] = np.zeros_like(ops[7])                      # l2q: every low-rank dot is 0
    with_branch, want = _check(FUSED, ops)
    plain = list(ops)
    plain[4], plain[6], plain[7], plain[8] = (np.zeros((6, 128), np.int64),
                                              np.zeros((128, 0), np.int64),
                                              np.zeros((0, 20), np.int64),
                                              np.zeros(20, np.float32))
    run = run_svdquant_linear(FUSED, *plain)
    np.testing.assert_array_equal(run.output.view(np.int32), want.view(np.int32))
    assert len(run.program) < len(with_branch.program)
    for key in ("macs", "dram_read_bytes"):
        assert run.machine.counts[key] < with_branch.machine.counts[key]


def test_unsigned_activations_after_the_gelu_shift():
    """uint4 activation codes (0..15, SVDQuant's quantization after the GELU shift) through
    the same kernel: golden's layer with ``act_signed=False``, bit for bit."""
    rng = np.random.default_rng(9)
    m, k, n, r = 5, 128, 20, 8
    x = rng.uniform(0, 3, (m, k)).astype(np.float32)
    x[1, :64] = 0                                   # an all-zero group: scale 1, codes 0
    ops = _operands(rng, m, k, n, r)
    ops[0], ops[1] = quantize_int4(x, 64, signed=False)
    assert ops[0].max() == 15 and ops[0].min() == 0
    spec = SVDQuantFixedSpec(group_size=64, branch_bits=8,
                             dequant=FUSED.units.dequant.golden_spec())
    want = np.asarray(svdquant_fixed_int(*ops, spec, act_signed=False).y, np.float32)
    run = run_svdquant_linear(FUSED, *ops)
    np.testing.assert_array_equal(run.output.view(np.int32), want.view(np.int32))
