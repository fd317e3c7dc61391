"""Schedules of the kernel library's GEMMs: how a program is blocked, ordered and laid out in
the memories, checked against an architecture (:func:`plan_schedule`).

A problem (:class:`GemmProblem`) is ``batches`` outputs ``C (M x N)``, each the sum over
``pairs`` products ``A_p (M x K) B_p (K x N)`` (a GEMM: one of each; a convolution: its output
rows and kernel taps). A schedule (:class:`GemmSchedule`) names one operand *resident* (X) and
streams the other (Y) past it; with ``fx``/``fy`` the free (non-k) dims of X/Y, the program
runs the loop nest ::

    for each block of X's free dim fx (for every batch; batches outside when X differs per batch)
      for each block of C along fy
        for each k block
          X's block (every pair) moves in, unless it is there (k in one block)
          for each Y tile along fy, each pair, each k step:        # one *step*
            Y's piece (tile x k step) moves in
            every compute tile of X's block against it, accumulating over the pairs and k
        C's block moves out

X's block moves in a move per panel and k step, so the first steps compute while the rest
arrives. X's block serves every Y piece of its C blocks and a Y piece every tile of X's block:
DRAM traffic is ``|X| x (C blocks along fy when k is split, else 1) + |Y| x (X blocks along
fx) + |C|``.

Memories: the scratchpad holds ``resident_buffers`` slots of X's block (with two, the next
block moves in while this one computes) and ``prefetch + 1`` rotating slots of Y's pieces (the
piece of step s + prefetch moves in while step s computes); C blocks rotate through as many
accumulator slots as fit (at least two, at most ``MAX_C_SLOTS``: a block moves out while the
next ones compute; a C block takes at most half the accumulator). In a slot a block lies in
its tile layout (:func:`hw.front.isa.tile_layout`): one memory row per index of its row dim,
in panels one tile wide along its column dim (row pitch: the block's row extent).

Extents are clipped to the problem: a tile or block past an extent is the extent; the last
block or tile along a dim is the remainder (an edge).

Layer: hw.front, the planning layer (plain Python, no Amaranth).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from .accel_timing import tile_period
from .arch import GEMM_DIMS, ArchSpec
from .isa import tile_layout
from .spec_model import SpecError

__all__ = ["MAX_C_SLOTS", "MAX_PREFETCH", "MAX_TIME", "GemmProblem", "GemmSchedule",
           "SchedulePlan", "ceil_div", "classes", "layouts", "normalize", "plan_schedule",
           "region_rows", "round_up", "tile_cycles"]

MAX_TIME = (1 << 16) - 1         #: most a compute's i, j or k field holds
MAX_PREFETCH = 8                 #: moves the DMA keeps in flight: no point prefetching more
MAX_C_SLOTS = 8                  #: most accumulator slots C blocks rotate through


def _positive(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{what} must be a positive integer, got {value!r}")
    return value


def _triple(value: object, what: str) -> tuple[int, int, int]:
    if not isinstance(value, tuple) or len(value) != 3:
        raise ValueError(f"{what} must be a tuple (i, j, k) of positive integers, got {value!r}")
    for d, v in zip("ijk", value, strict=True):
        _positive(v, f"{what} {d}")
    return value


def ceil_div(a: int, b: int) -> int:
    """``ceil(a / b)`` for positive integers."""
    return -(-a // b)


def round_up(a: int, b: int) -> int:
    """``a`` rounded up to a multiple of ``b``."""
    return ceil_div(a, b) * b


@dataclass(frozen=True)
class GemmProblem:
    """``batches`` outputs ``C (M x N) = sum over pairs of A_p (M x K) B_p (K x N)``;
    ``a_shared``: every batch has the same A matrices (a convolution's weights)."""

    extents: tuple[int, int, int]
    pairs: int = 1
    batches: int = 1
    a_shared: bool = False

    def __post_init__(self) -> None:
        _triple(self.extents, "GEMM extents")
        _positive(self.pairs, "pairs")
        _positive(self.batches, "batches")


@dataclass(frozen=True)
class GemmSchedule:
    """A GEMM program's blocking (see the module docstring), all extents over (i, j, k):

    ``tile``: one compute's extents (the array's dims at most the array); ``k_step``: the k
    extent of a streamed piece (a multiple of the tile's k); ``block``: the resident operand's
    block along its free dim and k, and C's block along the streamed operand's free dim (each
    a multiple of the tile, k of ``k_step``); ``resident``: "A" or "B"; ``prefetch``: how many
    steps ahead the streamed pieces move in (>= 1); ``resident_buffers``: slots of the resident
    block (1 or 2)."""

    tile: tuple[int, int, int]
    block: tuple[int, int, int]
    k_step: int
    resident: str = "A"
    prefetch: int = 1
    resident_buffers: int = 1

    def __post_init__(self) -> None:
        _triple(self.tile, "schedule tile")
        _triple(self.block, "schedule block")
        _positive(self.k_step, "k_step")
        for d, t, b in zip("ijk", self.tile, self.block, strict=True):
            if b % t:
                raise ValueError(f"block {d}={b} is not a multiple of tile {d}={t}")
        if self.k_step % self.tile[2] or self.block[2] % self.k_step:
            raise ValueError(f"k_step={self.k_step} must be a multiple of tile k="
                             f"{self.tile[2]} and divide block k={self.block[2]}")
        if self.resident not in ("A", "B"):
            raise ValueError(f"resident must be 'A' or 'B', got {self.resident!r}")
        if _positive(self.prefetch, "prefetch") > MAX_PREFETCH:
            raise ValueError(f"prefetch must be at most {MAX_PREFETCH} (the DMA's moves in "
                             f"flight), got {self.prefetch}")
        if self.resident_buffers not in (1, 2):
            raise ValueError(f"resident_buffers must be 1 or 2, got {self.resident_buffers!r}")


@lru_cache(maxsize=64)
def layouts(arch: ArchSpec, dataflow: str) -> dict[str, tuple[int, int]]:
    """(row dim, column dim) of A, B and C under ``dataflow`` (:func:`tile_layout`)."""
    return {t: tile_layout(arch, dataflow, t) for t in "ABC"}


def region_rows(layout: tuple[int, int], ext: tuple[int, ...], tile: tuple[int, ...]
                ) -> tuple[int, int]:
    """(row pitch, rows) of a block of extents ``ext`` laid out in panels of ``tile``."""
    row, col = layout
    return ext[row], ceil_div(ext[col], tile[col]) * ext[row]


def normalize(extents: tuple[int, int, int], s: GemmSchedule
              ) -> tuple[tuple[int, int, int], tuple[int, int, int], int]:
    """Tile, block and k step clipped to the problem (still multiples of each other)."""
    tile = tuple(min(t, e) for t, e in zip(s.tile, extents, strict=True))
    block = [min(b, round_up(e, t)) for b, e, t in zip(s.block, extents, tile, strict=True)]
    k_step = min(s.k_step, round_up(extents[2], tile[2]))
    block[2] = min(s.block[2], round_up(extents[2], k_step))
    return tile, (block[0], block[1], block[2]), k_step


@dataclass(frozen=True)
class SchedulePlan:
    """A schedule fitted to a problem on an architecture: extents clipped
    (``tile``/``block``/``k_step``), the resident operand ``x`` with free dim ``fx`` (the
    streamed one ``y``, ``fy``), and the memory layout: per role ("X": one pair's resident
    block, "Y": a streamed piece, "C": a C block) the row pitch and rows, and the slots they
    rotate through."""

    problem: GemmProblem
    tile: tuple[int, int, int]
    block: tuple[int, int, int]
    k_step: int
    x: str
    prefetch: int
    x_slots: int
    layout: dict[str, tuple[int, int]]
    pitch: dict[str, int]
    rows: dict[str, int]
    c_slots: int

    @property
    def y(self) -> str:
        return "B" if self.x == "A" else "A"

    @property
    def fx(self) -> int:
        return 0 if self.x == "A" else 1

    @property
    def fy(self) -> int:
        return 1 if self.x == "A" else 0

    @property
    def y_slots(self) -> int:
        return self.prefetch + 1

    @property
    def x_varies(self) -> bool:
        """X differs per batch (the loop over batches is then outermost)."""
        return not (self.x == "A" and self.problem.a_shared)

    def ijk(self, fx_val: int, fy_val: int, k_val: int) -> tuple[int, int, int]:
        """(i, j, k) of values along X's free dim, Y's free dim and k."""
        return (fx_val, fy_val, k_val) if self.x == "A" else (fy_val, fx_val, k_val)

    def x_base(self, slot: int, pair: int) -> int:
        """First scratchpad row of pair ``pair``'s resident block in slot ``slot``."""
        return (slot * self.problem.pairs + pair) * self.rows["X"]

    def y_base(self, slot: int) -> int:
        """First scratchpad row of streamed slot ``slot`` (after the resident slots)."""
        return self.x_slots * self.problem.pairs * self.rows["X"] + slot * self.rows["Y"]

    def c_base(self, block: int) -> int:
        """First accumulator row of the ``block``-th C block (slots in rotation)."""
        return block % self.c_slots * self.rows["C"]

    def at(self, tensor: str, role: str, rel: tuple[int, int, int]) -> int:
        """Row of a tile at ``rel`` (from its region's origin) in ``tensor``'s region
        (``role``: "X", "Y" or "C")."""
        row, col = self.layout[tensor]
        return rel[row] + rel[col] // self.tile[col] * self.pitch[role]

    @property
    def scratchpad_rows(self) -> int:
        """Scratchpad rows the plan uses."""
        return self.y_base(self.y_slots)


def _extents_of(plan_tile, block, k_step, problem, fx, fy) -> dict[str, tuple[int, int, int]]:
    """GEMM extents of one X block, Y piece and C block (clipped)."""
    e = problem.extents
    x, y, c = [1, 1, 1], [1, 1, 1], [1, 1, 1]
    x[fx], x[2] = min(block[fx], e[fx]), min(block[2], e[2])
    y[fy], y[2] = plan_tile[fy], k_step
    y[2] = min(y[2], e[2])
    c[fx], c[fy] = x[fx], min(block[fy], e[fy])
    return {"X": tuple(x), "Y": tuple(y), "C": tuple(c)}


def plan_schedule(arch: ArchSpec, dataflow: str, problem: GemmProblem, schedule: GemmSchedule
                  ) -> SchedulePlan:
    """The plan of ``schedule`` for ``problem`` on ``arch``; SpecError (naming the numbers)
    when a tile exceeds the array or a compute's fields, or the blocks do not fit the
    scratchpad or half the accumulator."""
    spatial = arch.spatial_extents(dataflow)
    tile, block, k_step = normalize(problem.extents, schedule)
    for d, t, s in zip("ijk", tile, spatial, strict=True):
        if (s and t > s) or t > MAX_TIME:
            raise SpecError(f"tile {d}={t} exceeds {f'the array ({s})' if s else MAX_TIME} "
                            f"under dataflow {dataflow!r}")
    lay = layouts(arch, dataflow)
    x = schedule.resident
    y = "B" if x == "A" else "A"
    fx, fy = (0, 1) if x == "A" else (1, 0)
    ext = _extents_of(tile, block, k_step, problem, fx, fy)
    pitch, rows = {}, {}
    for role, tensor in (("X", x), ("Y", y), ("C", "C")):
        pitch[role], rows[role] = region_rows(lay[tensor], ext[role], tile)
    acc_rows = arch.accumulator.banks * arch.accumulator.rows_per_bank
    plan = SchedulePlan(problem, tile, block, k_step, x, schedule.prefetch,
                        schedule.resident_buffers, lay, pitch, rows,
                        min(MAX_C_SLOTS, acc_rows // max(1, rows["C"])))
    sp_rows = arch.scratchpad.banks * arch.scratchpad.rows_per_bank
    if plan.scratchpad_rows > sp_rows:
        raise SpecError(f"{schedule}: {plan.x_slots} x {problem.pairs} resident blocks of "
                        f"{rows['X']} rows and {plan.y_slots} streamed pieces of {rows['Y']} "
                        f"rows need {plan.scratchpad_rows} scratchpad rows; {arch.name!r} has "
                        f"{sp_rows}")
    if 2 * rows["C"] > acc_rows:
        raise SpecError(f"{schedule}: a C block of {rows['C']} rows does not fit half the "
                        f"accumulator ({acc_rows // 2} of {acc_rows} rows)")
    return plan


def tile_cycles(arch: ArchSpec, dataflow: str, tile: tuple[int, int, int]) -> int:
    """The execution unit's cycles per compute tile in a run of them, as the generated
    accelerator runs it (:mod:`hw.front.accel_timing`): the time-only dims stream one memory
    row a cycle; a stationary C (no time-only dim) then drains its rows after an idle cycle;
    a stationary operand loads its rows while the previous tile streams, from the cycle after
    that one started."""
    spatial = arch.spatial_extents(dataflow)
    cls = GEMM_DIMS[spatial.index(0)]
    return tile_period(cls, *tile)


def classes(extent: int, tile: int) -> list[tuple[int, int]]:
    """``(tile extent, how many tiles)``: the full tiles of ``extent`` and its edge tile."""
    full, edge = divmod(extent, tile)
    return [(e, n) for e, n in ((tile, full), (edge, 1)) if e and n]
