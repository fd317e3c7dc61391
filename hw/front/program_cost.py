"""What a program costs on an architecture, counted without running it: MACs, DRAM bytes,
memory row accesses, and the roofline bound on its cycles.

Counts per instruction (a move of ``rows x cols`` elements; a tile ``i x j x k``)::

    mvin     DRAM read    lines x ceil(per_line x bits / 8) bytes   scratchpad rows written
    mvout    DRAM written lines x ceil(per_line x bits / 8) bytes   accumulator rows read
    compute  i x j x k MACs; scratchpad rows read: A's and B's tile rows; accumulator rows
             written: C's tile rows (also read when accumulating)

(``lines``: DRAM rows touched, ``rows`` or ``cols`` when transposed.) ``padded_macs`` counts
every compute at its extents rounded up to the architecture's ``pad_to`` (what a design that
pads operands, like Gemmini's ``tiled_matmul_auto``, spends). ``roofline_cycles`` =
max(ceil(padded MACs / PEs), ceil(DRAM bytes / bytes per cycle)): no schedule of the program
on the architecture is faster. The reference machine (:mod:`hw.front.isa_machine`) counts the
same figures as it executes; a test holds them equal.

Layer: hw.front, the planning layer (plain Python, no Amaranth).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from .arch import GEMM_DIMS, ArchSpec
from .isa import Instruction, check_program, layout_from_extents

__all__ = ["ProgramCost", "cost_from_counts", "instruction_counts", "program_cost"]


@dataclass(frozen=True)
class ProgramCost:
    """The counts of a program (see the module docstring)."""

    macs: int
    padded_macs: int
    dram_read_bytes: int
    dram_written_bytes: int
    scratchpad_row_reads: int
    scratchpad_row_writes: int
    accumulator_row_reads: int
    accumulator_row_writes: int
    roofline_cycles: int

    @property
    def dram_bytes(self) -> int:
        return self.dram_read_bytes + self.dram_written_bytes


def _round_up(x: int, step: int) -> int:
    return -(-x // step) * step


def instruction_counts(ins: Instruction, arch: ArchSpec, dataflow: str | None) -> Counter:
    """The counts of one instruction (``dataflow``: the one configured, for a compute)."""
    counts: Counter[str] = Counter()
    if ins.op in ("mvin", "mvout"):
        into_acc = ins.op == "mvin" and ins["acc"]
        bits = arch.types[2 if ins.op == "mvout" or into_acc else 0].bits
        lines, per_line = ((ins["cols"], ins["rows"]) if ins["transpose"]
                           else (ins["rows"], ins["cols"]))
        nbytes = lines * ((per_line * bits + 7) // 8)
        if ins.op == "mvin":
            counts["dram_read_bytes"] = nbytes
            counts["accumulator_row_writes" if into_acc else "scratchpad_row_writes"] = \
                ins["rows"]
        else:
            counts.update(dram_written_bytes=nbytes, accumulator_row_reads=ins["rows"])
    elif ins.op == "compute":
        tile = tuple(ins[d] for d in GEMM_DIMS)
        spatial = arch.spatial_extents(dataflow)
        rows = {t: tile[layout_from_extents(spatial, t)[0]] for t in "ABC"}
        padded = 1
        for e in tile:
            padded *= _round_up(e, arch.pad_to)
        counts.update(macs=tile[0] * tile[1] * tile[2], padded_macs=padded,
                      scratchpad_row_reads=rows["A"] + rows["B"],
                      accumulator_row_writes=rows["C"],
                      accumulator_row_reads=rows["C"] * ins["accumulate"])
    return counts


def program_cost(program: Sequence[Instruction], arch: ArchSpec) -> ProgramCost:
    """The counts of ``program`` (checked first) on ``arch``."""
    check_program(list(program), arch)
    total: Counter[str] = Counter()
    dataflow = None
    for ins in program:
        if ins.op == "config":
            dataflow = arch.dataflows[ins["dataflow"]].name
        total.update(instruction_counts(ins, arch, dataflow))
    return cost_from_counts(total, arch)


def cost_from_counts(total: Counter, arch: ArchSpec) -> ProgramCost:
    """The :class:`ProgramCost` of summed :func:`instruction_counts` on ``arch``."""
    dram = total["dram_read_bytes"] + total["dram_written_bytes"]
    roofline = max(-(-total["padded_macs"] // arch.pes),
                   -(-dram // arch.dram.bytes_per_cycle))
    return ProgramCost(total["macs"], total["padded_macs"], total["dram_read_bytes"],
                       total["dram_written_bytes"], total["scratchpad_row_reads"],
                       total["scratchpad_row_writes"], total["accumulator_row_reads"],
                       total["accumulator_row_writes"], roofline)
