"""The kernel library: GEMMs and 2-D convolutions tiled onto an architecture as programs.

:func:`gemm_program` covers ``C (M x N) = A (M x K) B (K x N)`` for any extents, with A or B
stored transposed in DRAM, under any dataflow of the architecture. Tiles: the dims the
dataflow maps to the array take up to the array's size; the dim it maps to time only runs as
long as the scratchpad's half and the accumulator allow (the other half is for the next
tile's operands: double buffering). Per output tile, the reduction dim k is split into chunks
(the first computes, the others accumulate), then C leaves the accumulator. An operand whose
DRAM rows run along its memory rows moves as plain rows; otherwise through the DMA's
transposer. Edge tiles are smaller (an architecture's
``pad_to`` is a cost, not a change of result: it is accounted by the cost model).

:func:`conv2d_program` runs a convolution as, per output row, a sum over the kernel taps of
GEMMs whose input rows are strided views of the image (no im2col copy in DRAM).

Every program passes :func:`hw.front.isa.check_program` and, on the reference machine
(:mod:`hw.front.isa_machine`), computes golden's GEMM (a property test).

Layer: hw.front, the planning layer (plain Python, no Amaranth).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from .arch import ArchSpec
from .isa import TENSOR_DIMS, Instruction, tile_layout
from .program_cost import ProgramCost, cost_from_counts, instruction_counts
from .spec_model import SpecError

__all__ = ["ConvOperands", "GemmOperands", "MatrixView", "conv2d_cost", "conv2d_program",
           "gemm_cost", "gemm_program", "gemm_tile"]

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


@dataclass(frozen=True)
class MatrixView:
    """A matrix in DRAM: element (p, q) at byte ``base + (p * row_len + q) * bits / 8``, or
    ``base + (q * row_len + p) * bits / 8`` when ``transposed`` (rows of the stored matrix
    are its columns)."""

    base: int
    row_len: int
    transposed: bool = False


def _move(arch: ArchSpec, op: str, tensor: str, dataflow: str, view: MatrixView,
          origin: tuple[int, int, int], tile: tuple[int, int, int], mem_row: int,
          bits: int) -> list[Instruction]:
    """The moves of ``tensor``'s tile at ``origin`` between DRAM (``view``) and memory rows
    from ``mem_row`` in the tile layout: plain rows when the stored rows run along the memory
    rows, else through the transposer (a move covers at most the rows field's 4095 rows)."""
    row_dim, col_dim = tile_layout(arch, dataflow, tensor)
    p, q = TENSOR_DIMS[tensor]
    plain = (q if view.transposed else p) == row_dim      # stored rows = memory rows
    field = "sp" if op == "mvin" else "acc"
    out = []
    for r0 in range(0, tile[row_dim], _MAX_ROWS):
        rows = min(_MAX_ROWS, tile[row_dim] - r0)
        first = list(origin)
        first[row_dim] += r0
        line, elem = (first[row_dim], first[col_dim]) if plain else \
            (first[col_dim], first[row_dim])
        bit = (line * view.row_len + elem) * bits
        if bit % 8 or (view.row_len * bits) % 8:
            raise SpecError(f"{tensor}: element {elem} of DRAM row {line} ({bits}-bit "
                            f"elements, {view.row_len} per row) is not at a byte boundary")
        out.append(Instruction(op, (("dram", view.base + bit // 8),
                                    ("stride", view.row_len * bits // 8),
                                    (field, mem_row + r0), ("rows", rows),
                                    ("cols", tile[col_dim]), ("transpose", int(not plain)))))
    return out


def _config(arch: ArchSpec, dataflow: str) -> Instruction:
    index = [d.name for d in arch.dataflows].index(arch.dataflow(dataflow).name)
    return Instruction("config", (("dataflow", index),))


def _sum_of_products(arch: ArchSpec, dataflow: str, extents: tuple[int, int, int],
                     pairs: list[tuple[MatrixView, MatrixView]], c_view: MatrixView,
                     tile: tuple[int, int, int]) -> list[Instruction]:
    """``C (M x N) = sum over pairs of A_p (M x K) B_p (K x N)``: per output tile, every
    pair's k chunks accumulate into the accumulator, then C moves out once."""
    a_bits, _, c_bits = (t.bits for t in arch.types)
    half = arch.scratchpad.banks * arch.scratchpad.rows_per_bank // 2
    a_rows = tile[tile_layout(arch, dataflow, "A")[0]]
    program, buffer = [], 0
    m, n, k = extents
    for i0 in range(0, m, tile[0]):
        for j0 in range(0, n, tile[1]):
            first = True
            for a_view, b_view in pairs:
                for k0 in range(0, k, tile[2]):
                    origin = (i0, j0, k0)
                    here = tuple(min(t, e - o) for t, e, o in
                                 zip(tile, extents, origin, strict=True))
                    sp_a = buffer * half
                    program += _move(arch, "mvin", "A", dataflow, a_view, origin, here, sp_a,
                                     a_bits)
                    program += _move(arch, "mvin", "B", dataflow, b_view, origin, here,
                                     sp_a + a_rows, a_bits)
                    program.append(Instruction("compute", (
                        ("a", sp_a), ("b", sp_a + a_rows), ("c", 0), ("i", here[0]),
                        ("j", here[1]), ("k", here[2]), ("accumulate", int(not first)))))
                    first, buffer = False, buffer ^ 1
            c_tile = (min(tile[0], m - i0), min(tile[1], n - j0), 1)
            program += _move(arch, "mvout", "C", dataflow, c_view, (i0, j0, 0), c_tile, 0,
                             c_bits)
    return program


def _classes(extent: int, tile: int) -> list[tuple[int, int]]:
    """``(tile extent, how many tiles)``: the full tiles of ``extent`` and its edge tile."""
    full, edge = divmod(extent, tile)
    return [(e, n) for e, n in ((tile, full), (edge, 1)) if e and n]


def _sum_of_products_counts(arch: ArchSpec, dataflow: str, extents: tuple[int, int, int],
                            pairs: list[tuple[MatrixView, MatrixView]], c_view: MatrixView,
                            tile: tuple[int, int, int]) -> Counter:
    """The counts of :func:`_sum_of_products`' program without building it: each class of
    tile extents costs what one of its instructions does (``instruction_counts``), times how
    many there are. Pairs share the transposition of their first (as the kernels make them)."""
    a_bits, _, c_bits = (t.bits for t in arch.types)
    a_view, b_view = pairs[0]
    total: Counter[str] = Counter()
    for ti, ni in _classes(extents[0], tile[0]):
        for tj, nj in _classes(extents[1], tile[1]):
            outputs = ni * nj
            for tk, nk in _classes(extents[2], tile[2]):
                here = (ti, tj, tk)
                ins = [*_move(arch, "mvin", "A", dataflow, a_view, (0, 0, 0), here, 0, a_bits),
                       *_move(arch, "mvin", "B", dataflow, b_view, (0, 0, 0), here, 0, a_bits),
                       Instruction("compute", (("a", 0), ("b", 0), ("c", 0), ("i", ti),
                                               ("j", tj), ("k", tk), ("accumulate", 1)))]
                for one in ins:
                    for key, value in instruction_counts(one, arch, dataflow).items():
                        total[key] += value * outputs * nk * len(pairs)
            c_rows = (ti, tj)[tile_layout(arch, dataflow, "C")[0]]
            total["accumulator_row_reads"] -= outputs * c_rows     # first chunks overwrite
            for one in _move(arch, "mvout", "C", dataflow, c_view, (0, 0, 0), (ti, tj, 1), 0,
                             c_bits):
                for key, value in instruction_counts(one, arch, dataflow).items():
                    total[key] += value * outputs
    return total


def gemm_cost(arch: ArchSpec, dataflow: str, ops: GemmOperands,
              tile: tuple[int, int, int] | None = None) -> ProgramCost:
    """``program_cost(gemm_program(arch, dataflow, ops, tile))`` without building the
    program: a handful of tile classes instead of one instruction per tile (a mapper's
    call)."""
    ext = ops.extents()
    tile = gemm_tile(arch, dataflow, ext) if tile is None else tile
    a_view = MatrixView(ops.a_addr, ops.m if ops.a_transposed else ops.k, ops.a_transposed)
    b_view = MatrixView(ops.b_addr, ops.k if ops.b_transposed else ops.n, ops.b_transposed)
    return cost_from_counts(_sum_of_products_counts(arch, dataflow, ext, [(a_view, b_view)],
                                                    MatrixView(ops.c_addr, ops.n), tile), arch)


def gemm_program(arch: ArchSpec, dataflow: str, ops: GemmOperands,
                 tile: tuple[int, int, int] | None = None) -> list[Instruction]:
    """The program computing ``C = A B`` of ``ops`` under ``dataflow`` (tiles from
    :func:`gemm_tile` unless given); operands alternate between the scratchpad's halves."""
    ext = ops.extents()
    tile = gemm_tile(arch, dataflow, ext) if tile is None else tile
    a_view = MatrixView(ops.a_addr, ops.m if ops.a_transposed else ops.k, ops.a_transposed)
    b_view = MatrixView(ops.b_addr, ops.k if ops.b_transposed else ops.n, ops.b_transposed)
    return [_config(arch, dataflow),
            *_sum_of_products(arch, dataflow, ext, [(a_view, b_view)],
                              MatrixView(ops.c_addr, ops.n), tile)]


@dataclass(frozen=True)
class ConvOperands:
    """A valid, stride-1 2-D convolution ``O[k, y, x] = sum_{c, r, s} W[k, c, r, s]
    I[c, y + r, x + s]`` in DRAM: I ``C x H x W`` row-major at ``i_addr``; the weights laid
    out once by the host as ``R x S x K x C`` (one ``K x C`` matrix per tap) at ``w_addr``;
    O ``K x (H - R + 1) x (W - S + 1)`` in C's type at ``o_addr``."""

    channels: int
    height: int
    width: int
    kernels: int
    r: int
    s: int
    i_addr: int
    w_addr: int
    o_addr: int

    def __post_init__(self) -> None:
        for name in ("channels", "height", "width", "kernels", "r", "s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"convolution {name} must be a positive integer, got "
                                 f"{value!r}")
        if self.r > self.height or self.s > self.width:
            raise ValueError(f"a {self.r}x{self.s} kernel does not fit a {self.height}x"
                             f"{self.width} image")
        for name in ("i_addr", "w_addr", "o_addr"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a byte address >= 0, got {value!r}")

    @property
    def out_shape(self) -> tuple[int, int, int]:
        return self.kernels, self.height - self.r + 1, self.width - self.s + 1


def conv2d_program(arch: ArchSpec, dataflow: str, ops: ConvOperands,
                   tile: tuple[int, int, int] | None = None) -> list[Instruction]:
    """The program of the convolution ``ops`` under ``dataflow``: per output row y, the GEMM
    ``O[:, y, :] (K x X) = sum over taps (r, s) of W_rs (K x C) I[:, y + r, s:s + X] (C x X)``
    (each tap's input rows are a strided view of the image: no im2col in DRAM)."""
    kk, ys, xs = ops.out_shape
    ext = (kk, xs, ops.channels)
    tile = gemm_tile(arch, dataflow, ext) if tile is None else tile
    a_bits, _, c_bits = (t.bits for t in arch.types)
    program = [_config(arch, dataflow)]
    for y in range(ys):
        pairs = []
        for r in range(ops.r):
            for s in range(ops.s):
                tap = (r * ops.s + s) * kk * ops.channels
                w_view = MatrixView(ops.w_addr + tap * a_bits // 8, ops.channels)
                first = ((y + r) * ops.width + s) * a_bits
                if first % 8:
                    raise SpecError("4-bit images need even row offsets")
                pairs.append((w_view, MatrixView(ops.i_addr + first // 8,
                                                 ops.height * ops.width)))
        out = MatrixView(ops.o_addr + y * xs * c_bits // 8, ys * xs)
        program += _sum_of_products(arch, dataflow, ext, pairs, out, tile)
    return program


def conv2d_cost(arch: ArchSpec, dataflow: str, ops: ConvOperands,
                tile: tuple[int, int, int] | None = None) -> ProgramCost:
    """``program_cost(conv2d_program(arch, dataflow, ops, tile))`` without building it."""
    kk, ys, xs = ops.out_shape
    ext = (kk, xs, ops.channels)
    tile = gemm_tile(arch, dataflow, ext) if tile is None else tile
    taps = [(MatrixView(0, ops.channels), MatrixView(0, ops.height * ops.width))] * (ops.r * ops.s)
    per_row = _sum_of_products_counts(arch, dataflow, ext, taps, MatrixView(0, ys * xs), tile)
    return cost_from_counts(Counter({k: v * ys for k, v in per_row.items()}), arch)
