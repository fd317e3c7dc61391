"""The kernel library: any GEMM ``C = A B`` tiled onto an architecture as a program.

:func:`gemm_program` covers ``C (M x N) = A (M x K) B (K x N)`` for any extents, with A or B
stored transposed in DRAM, under any dataflow of the architecture. Tiles: the dims the
dataflow maps to the array take up to the array's size; the dim it maps to time only runs as
long as the scratchpad's half and the accumulator allow (the other half is for the next
tile's operands: double buffering). Per output tile, the reduction dim k is split into chunks
(the first computes, the others accumulate), then C leaves the accumulator. An operand whose
DRAM rows run along its memory rows moves as plain rows; otherwise through the DMA's
transposer, one array edge of rows at a time. Edge tiles are smaller (an architecture's
``pad_to`` is a cost, not a change of result: it is accounted by the cost model).

Every program passes :func:`hw.front.isa.check_program` and, on the reference machine
(:mod:`hw.front.isa_machine`), computes golden's GEMM (a property test).

Layer: hw.front, the planning layer (plain Python, no Amaranth).
"""

from __future__ import annotations

from dataclasses import dataclass

from .arch import ArchSpec
from .isa import TENSOR_DIMS, Instruction, tile_layout
from .spec_model import SpecError

__all__ = ["GemmOperands", "gemm_program", "gemm_tile"]

_MAX_ROWS = (1 << 12) - 1       # the rows field of a move


@dataclass(frozen=True)
class GemmOperands:
    """Where ``C = A B`` lives in DRAM: A row-major ``M x K`` (``K x M`` when
    ``a_transposed``), B ``K x N`` (``N x K`` when ``b_transposed``), C ``M x N`` row-major in
    C's type, at byte addresses ``a_addr``, ``b_addr``, ``c_addr``."""

    m: int
    n: int
    k: int
    a_addr: int
    b_addr: int
    c_addr: int
    a_transposed: bool = False
    b_transposed: bool = False

    def __post_init__(self) -> None:
        for name in ("m", "n", "k"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"GEMM extent {name} must be a positive integer, got {value!r}")
        for name in ("a_addr", "b_addr", "c_addr"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a byte address >= 0, got {value!r}")

    def extents(self) -> tuple[int, int, int]:
        """(i, j, k) = (M, N, K)."""
        return self.m, self.n, self.k


def gemm_tile(arch: ArchSpec, dataflow: str, extents: tuple[int, int, int]
              ) -> tuple[int, int, int]:
    """Tile extents (i, j, k) for a GEMM of ``extents`` under ``dataflow``: array dims up to
    the array, the time-only dim as long as A's and B's rows fit half the scratchpad and C's
    rows the accumulator."""
    spatial = arch.spatial_extents(dataflow)
    tile = [min(s, e) if s else e for s, e in zip(spatial, extents, strict=True)]
    half = arch.scratchpad.banks * arch.scratchpad.rows_per_bank // 2
    acc_rows = arch.accumulator.banks * arch.accumulator.rows_per_bank
    for d, s in enumerate(spatial):
        if s:
            continue
        while tile[d] > 1 and not _fits(arch, dataflow, tile, half, acc_rows):
            tile[d] = (tile[d] + 1) // 2
    if not _fits(arch, dataflow, tile, half, acc_rows):
        raise SpecError(f"a {tuple(tile)} tile under {dataflow!r} does not fit the memories "
                        f"of {arch.name!r}")
    return tile[0], tile[1], tile[2]


def _fits(arch: ArchSpec, dataflow: str, tile: list[int], half: int, acc_rows: int) -> bool:
    rows = {t: tile[tile_layout(arch, dataflow, t)[0]] for t in "ABC"}
    return rows["A"] + rows["B"] <= half and rows["C"] <= acc_rows


def _move(arch: ArchSpec, op: str, tensor: str, dataflow: str, base: int, row_len: int,
          transposed: bool, origin: tuple[int, int, int], tile: tuple[int, int, int],
          mem_row: int, bits: int) -> list[Instruction]:
    """The moves of ``tensor``'s tile at ``origin`` between DRAM (a row-major matrix of
    ``row_len`` elements per row, its axes swapped when ``transposed``) and memory rows from
    ``mem_row`` in the tile layout."""
    row_dim, col_dim = tile_layout(arch, dataflow, tensor)
    p, q = TENSOR_DIMS[tensor]
    dram_row_dim = q if transposed else p            # the dim indexing DRAM rows
    plain = dram_row_dim == row_dim
    step = _MAX_ROWS if plain else max(arch.array)
    field = "sp" if op == "mvin" else "acc"
    out = []
    for r0 in range(0, tile[row_dim], step):
        rows = min(step, tile[row_dim] - r0)
        first = list(origin)
        first[row_dim] += r0
        line, elem = (first[row_dim], first[col_dim]) if plain else \
            (first[col_dim], first[row_dim])
        offset = elem * bits
        if offset % 8:
            raise SpecError(f"{tensor}: element {elem} of a {bits}-bit DRAM row is not at a "
                            f"byte boundary (tile origins must be even for 4-bit operands)")
        out.append(Instruction(op, (("dram", base + line * row_len * bits // 8 + offset // 8),
                                    ("stride", row_len * bits // 8), (field, mem_row + r0),
                                    ("rows", rows), ("cols", tile[col_dim]),
                                    ("transpose", int(not plain)))))
    return out


def gemm_program(arch: ArchSpec, dataflow: str, ops: GemmOperands,
                 tile: tuple[int, int, int] | None = None) -> list[Instruction]:
    """The program computing ``C = A B`` of ``ops`` under ``dataflow`` (tiles from
    :func:`gemm_tile` unless given); operands alternate between the scratchpad's halves."""
    ext = ops.extents()
    tile = gemm_tile(arch, dataflow, ext) if tile is None else tile
    a_bits, _, c_bits = (t.bits for t in arch.types)
    if any((row_len * bits) % 8 for row_len, bits in (
            (ops.m if ops.a_transposed else ops.k, a_bits),
            (ops.k if ops.b_transposed else ops.n, a_bits), (ops.n, c_bits))):
        raise SpecError("DRAM rows must be whole bytes (an even row length for 4-bit data)")
    half = arch.scratchpad.banks * arch.scratchpad.rows_per_bank // 2
    a_rows = tile[tile_layout(arch, dataflow, "A")[0]]
    index = [d.name for d in arch.dataflows].index(arch.dataflow(dataflow).name)
    program, buffer = [Instruction("config", (("dataflow", index),))], 0
    for i0 in range(0, ops.m, tile[0]):
        for j0 in range(0, ops.n, tile[1]):
            for k0 in range(0, ops.k, tile[2]):
                here = tuple(min(t, e - o) for t, e, o in
                             zip(tile, ext, (i0, j0, k0), strict=True))
                origin = (i0, j0, k0)
                sp_a = buffer * half
                sp_b = sp_a + a_rows
                program += _move(arch, "mvin", "A", dataflow, ops.a_addr,
                                 ops.m if ops.a_transposed else ops.k, ops.a_transposed,
                                 origin, here, sp_a, a_bits)
                program += _move(arch, "mvin", "B", dataflow, ops.b_addr,
                                 ops.k if ops.b_transposed else ops.n, ops.b_transposed,
                                 origin, here, sp_b, a_bits)
                program.append(Instruction("compute", (
                    ("a", sp_a), ("b", sp_b), ("c", 0), ("i", here[0]), ("j", here[1]),
                    ("k", here[2]), ("accumulate", int(k0 > 0)))))
                buffer ^= 1
            c_tile = (min(tile[0], ops.m - i0), min(tile[1], ops.n - j0), 1)
            program += _move(arch, "mvout", "C", dataflow, ops.c_addr, ops.n, False,
                             (i0, j0, 0), c_tile, 0, c_bits)
    return program
