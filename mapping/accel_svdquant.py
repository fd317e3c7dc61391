"""What an SVDQuant W4A4 linear layer (and a plain grouped-int4 one, rank 0) costs on an
accelerator with the group dequantizer: the program of :mod:`hw.front.kernel_svdquant`
timed by the cycle model and counted by :func:`~hw.front.program_cost.program_cost`.

The kernel works through the layer in blocks of ``Mb`` rows and, per block, n-tiles of ``E``
outputs (the array edge), every block and every tile the same instructions but for
addresses: a FLUX.1 layer of 4096 tokens is 64 blocks of 192 tiles, 4.3M instructions
(minutes to build and time). So a layer of more than three blocks or tiles is costed from
programs of the same layer with 2 and 3 of them (the last one partial as in the layer)::

    cost(nb) = f(2) + (nb - 2) (f(3) - f(2))          (blocks; the same for tiles, and
                                                      bilinearly when both exceed three)

(the first block or tile, ``nb - 2`` middle ones that each receive and prefetch weights, the
last one). Counts (MACs, DRAM bytes, row accesses, instructions) are exactly linear in the
blocks and tiles; cycles are as long as each middle block or tile finds the cycle model in
the same state, which the tests check against the whole program's cycles (equal, to the
cycle, at every shape tried, FLUX.1's 4096 x 3072 x 3072 included).

Layer: mapping (plain Python, no Amaranth).
"""

from __future__ import annotations

from functools import lru_cache

from hw.front.arch import ArchSpec
from hw.front.kernel_chain import chain_dataflow
from hw.front.kernel_svdquant import svdquant_block_rows, svdquant_operands, svdquant_program
from hw.front.program_cost import ProgramCost

from .op_cost import combine, timed

__all__ = ["svdquant_cost"]


@lru_cache(maxsize=256)
def _run(arch: ArchSpec, m: int, k: int, n: int, r: int) -> tuple[int, int, ProgramCost]:
    """(cycles, instructions, counts) of the whole program of an ``m``-row layer."""
    return timed(arch, svdquant_program(arch, svdquant_operands(arch, m, k, n, r)))


def _points(count: int) -> list[tuple[int, int]]:
    """(points, coefficient) of a count of blocks or tiles: itself, or ``f(2) + (count - 2)
    (f(3) - f(2))`` past three."""
    return [(count, 1)] if count <= 3 else [(2, 3 - count), (3, count - 2)]


def svdquant_cost(arch: ArchSpec, m: int, k: int, n: int, r: int
                  ) -> tuple[int, int, ProgramCost, bool]:
    """(cycles, instructions, counts, whole): the layer's program costed whole (``whole``)
    or from up to four shorter programs (module docstring). ``SpecError`` / ``ValueError`` as
    :func:`~hw.front.kernel_svdquant.svdquant_operands` and ``svdquant_program`` raise them."""
    ops = svdquant_operands(arch, m, k, n, r)
    mb, edge = svdquant_block_rows(arch, ops), chain_dataflow(arch, None, "SVDQuant")[1]
    nb, nt = -(-m // mb), -(-n // edge)
    if nb <= 3 and nt <= 3:
        return (*_run(arch, m, k, n, r), True)
    last_rows, last_cols = m - (nb - 1) * mb, n - (nt - 1) * edge
    runs = [(cb * ct, _run(arch, (b - 1) * mb + last_rows, k, (t - 1) * edge + last_cols, r))
            for b, cb in _points(nb) for t, ct in _points(nt)]
    return (*combine(arch, runs), False)
