"""SVDQuant layers costed by the kernel's program: from short programs of 2 and 3 blocks and
tiles, equal to the whole program's cycles and counts (partial last blocks and tiles, rank
0, the branch), and through cost_op on the fused architecture."""

import pytest

from hw.front.accel_params import accel_params
from hw.front.accel_timing import accel_timing
from hw.front.arch import load_arch
from hw.front.kernel_svdquant import svdquant_operands, svdquant_program
from hw.front.program_cost import program_cost
from mapping.accel_cost import cost_op
from mapping.accel_svdquant import svdquant_cost
from mapping.ir import Linear

FUSED = load_arch("examples/arch/lego_fused.yaml")


@pytest.mark.parametrize("m,k,n,r", [(300, 256, 40, 16), (257, 128, 20, 0), (450, 192, 133, 32),
                                     (256, 64, 70, 8), (30, 128, 100, 32)])
def test_costed_from_short_programs_equals_the_whole(m, k, n, r):
    """More than three blocks of 64 rows, more than three tiles of 16 outputs, or both (the
    last block and tile partial or not)."""
    program = svdquant_program(FUSED, svdquant_operands(FUSED, m, k, n, r))
    cycles, ins, counts, whole = svdquant_cost(FUSED, m, k, n, r)
    assert not whole
    assert cycles == accel_timing(program, accel_params(FUSED)).cycles
    assert (ins, counts) == (len(program), program_cost(program, FUSED))


def test_cost_op_takes_svdquant_linears_to_the_kernel():
    """Grouped int4 with a rank-32 branch: the SVDQuant kernel (its dequantizer applies the
    group scales), costed exactly; the branch costs more than rank 0; uint4 activations."""
    op = Linear("qkv", 96, 128, 48, "int4_g64", "int4_g64", "bf16", rank=32)
    c = cost_op(FUSED, op)
    assert c.schedule["lowering"] == "svdquant" and c.exact
    program = svdquant_program(FUSED, svdquant_operands(FUSED, 96, 128, 48, 32))
    assert c.cycles == accel_timing(program, accel_params(FUSED)).cycles
    assert c.macs == op.macs
    plain = cost_op(FUSED, Linear("qkv", 96, 128, 48, "uint4_g64", "int4_g64", "bf16"))
    assert plain.schedule["lowering"] == "svdquant" and plain.cycles < c.cycles
