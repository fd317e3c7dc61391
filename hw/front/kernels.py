"""The kernel library: GEMMs and 2-D convolutions scheduled onto an architecture as programs.

:func:`gemm_program` covers ``C (M x N) = A (M x K) B (K x N)`` for any extents, with A or B
stored transposed in DRAM, under any dataflow of the architecture; :func:`conv2d_program` runs
a convolution as, per output row, a sum over the kernel taps of GEMMs whose input rows are
strided views of the image (no im2col copy in DRAM; the weights are shared by every row). Both
run the blocked loop nest of a :class:`~hw.front.kernel_schedule.GemmSchedule` (one operand's
block resident in the scratchpad while the other streams past it in prefetched pieces, C in
rotating accumulator slots), chosen by :func:`~hw.front.kernel_choice.choose_schedule` unless
given, and ordered for the accelerator by :mod:`hw.front.kernel_program`. Edge tiles are
smaller (an architecture's ``pad_to`` is a cost, not a change of result: it is accounted by
the cost model).

:func:`gemm_cost` and :func:`conv2d_cost` count a program's costs in closed form (classes of
tile and block extents, not instructions), equal to :func:`~hw.front.program_cost.
program_cost` of the built program; :func:`gemm_instructions` and
:func:`conv2d_instructions` its length. Every program passes
:func:`hw.front.isa.check_program` and, on the reference machine (:mod:`hw.front.isa_machine`),
computes golden's GEMM (a property test).

Layer: hw.front, the planning layer (plain Python, no Amaranth).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from .arch import ArchSpec
from .isa import Instruction
from .kernel_choice import choose_schedule
from .kernel_program import MatrixView, build_program, program_counts
from .kernel_schedule import GemmProblem, GemmSchedule, SchedulePlan, plan_schedule
from .program_cost import ProgramCost, cost_from_counts
from .spec_model import SpecError

__all__ = ["ConvOperands", "GemmOperands", "GemmSchedule", "MatrixView", "conv2d_cost",
           "conv2d_instructions", "conv2d_program", "conv2d_schedule", "gemm_cost",
           "gemm_instructions", "gemm_program", "gemm_schedule", "gemm_tile"]

#: a schedule, the compute tile (i, j, k) to choose blocks around, or None: the default
Schedule = GemmSchedule | tuple[int, int, int] | None


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


def _plan(arch: ArchSpec, dataflow: str, problem: GemmProblem, tile: Schedule
          ) -> SchedulePlan:
    """The plan of ``tile`` (a schedule, a compute tile to choose around, or None)."""
    if tile is None or isinstance(tile, tuple):
        schedule = choose_schedule(arch, dataflow, problem, tile)
    elif isinstance(tile, GemmSchedule):
        schedule = tile
    else:
        raise TypeError(f"tile must be a GemmSchedule, a tile (i, j, k) or None, got "
                        f"{tile!r}")
    return plan_schedule(arch, dataflow, problem, schedule)


def gemm_schedule(arch: ArchSpec, dataflow: str, extents: tuple[int, int, int],
                  tile: tuple[int, int, int] | None = None) -> GemmSchedule:
    """The default schedule of an ``M x N x K`` GEMM (around compute tile ``tile`` if given):
    :func:`~hw.front.kernel_choice.choose_schedule`."""
    return choose_schedule(arch, dataflow, GemmProblem(tuple(extents)),
                           None if tile is None else tuple(tile))


def gemm_tile(arch: ArchSpec, dataflow: str, extents: tuple[int, int, int]
              ) -> tuple[int, int, int]:
    """The compute tile (i, j, k) of the default schedule, clipped to ``extents``: the
    array's dims up to the array; its C rows fit half the accumulator."""
    problem = GemmProblem(tuple(extents))
    return plan_schedule(arch, dataflow, problem,
                         choose_schedule(arch, dataflow, problem)).tile


def _gemm_views(ops: GemmOperands) -> tuple[MatrixView, MatrixView, MatrixView]:
    return (MatrixView(ops.a_addr, ops.m if ops.a_transposed else ops.k, ops.a_transposed),
            MatrixView(ops.b_addr, ops.k if ops.b_transposed else ops.n, ops.b_transposed),
            MatrixView(ops.c_addr, ops.n))


def gemm_cost(arch: ArchSpec, dataflow: str, ops: GemmOperands, tile: Schedule = None
              ) -> ProgramCost:
    """``program_cost(gemm_program(arch, dataflow, ops, tile))`` without building the
    program: a handful of classes of tiles and blocks (a mapper's call)."""
    plan = _plan(arch, dataflow, GemmProblem(ops.extents()), tile)
    return cost_from_counts(program_counts(arch, dataflow, plan, _gemm_views(ops)), arch)


def gemm_instructions(arch: ArchSpec, dataflow: str, ops: GemmOperands,
                      tile: Schedule = None) -> int:
    """``len(gemm_program(arch, dataflow, ops, tile))`` without building the program."""
    plan = _plan(arch, dataflow, GemmProblem(ops.extents()), tile)
    return program_counts(arch, dataflow, plan, _gemm_views(ops))["instructions"]


def gemm_program(arch: ArchSpec, dataflow: str, ops: GemmOperands, tile: Schedule = None
                 ) -> list[Instruction]:
    """The program computing ``C = A B`` of ``ops`` under ``dataflow``: ``tile`` a
    :class:`GemmSchedule`, a compute tile to choose the blocks around, or None (the
    default schedule, :func:`gemm_schedule`)."""
    plan = _plan(arch, dataflow, GemmProblem(ops.extents()), tile)
    a_view, b_view, c_view = _gemm_views(ops)
    return build_program(arch, dataflow, plan, [([(a_view, b_view)], c_view)])


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




def _conv_problem(ops: ConvOperands) -> GemmProblem:
    kk, ys, xs = ops.out_shape
    return GemmProblem((kk, xs, ops.channels), ops.r * ops.s, ys, a_shared=True)


def conv2d_schedule(arch: ArchSpec, dataflow: str, ops: ConvOperands,
                    tile: tuple[int, int, int] | None = None) -> GemmSchedule:
    """The default schedule of the convolution ``ops`` (its GEMMs: kernels x output columns x
    channels, summed over the taps, per output row; the weights shared by every row)."""
    return choose_schedule(arch, dataflow, _conv_problem(ops),
                           None if tile is None else tuple(tile))


def conv2d_program(arch: ArchSpec, dataflow: str, ops: ConvOperands, tile: Schedule = None
                   ) -> list[Instruction]:
    """The program of the convolution ``ops`` under ``dataflow``: per output row y, the GEMM
    ``O[:, y, :] (K x X) = sum over taps (r, s) of W_rs (K x C) I[:, y + r, s:s + X] (C x X)``
    (each tap's input rows are a strided view of the image: no im2col in DRAM), scheduled as
    one problem (``tile`` as for :func:`gemm_program`)."""
    kk, ys, xs = ops.out_shape
    plan = _plan(arch, dataflow, _conv_problem(ops), tile)
    a_bits, _, c_bits = (t.bits for t in arch.types)
    batches = []
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
        batches.append((pairs, MatrixView(ops.o_addr + y * xs * c_bits // 8, ys * xs)))
    return build_program(arch, dataflow, plan, batches)


def conv2d_instructions(arch: ArchSpec, dataflow: str, ops: ConvOperands,
                        tile: Schedule = None) -> int:
    """``len(conv2d_program(arch, dataflow, ops, tile))`` without building it."""
    return _conv_counts(arch, dataflow, ops, tile)["instructions"]


def conv2d_cost(arch: ArchSpec, dataflow: str, ops: ConvOperands, tile: Schedule = None
                ) -> ProgramCost:
    """``program_cost(conv2d_program(arch, dataflow, ops, tile))`` without building it."""
    return cost_from_counts(_conv_counts(arch, dataflow, ops, tile), arch)


def _conv_counts(arch: ArchSpec, dataflow: str, ops: ConvOperands, tile: Schedule) -> Counter:
    _, ys, xs = ops.out_shape
    plan = _plan(arch, dataflow, _conv_problem(ops), tile)
    views = (MatrixView(0, ops.channels), MatrixView(0, ops.height * ops.width),
             MatrixView(0, ys * xs))
    return program_counts(arch, dataflow, plan, views)
