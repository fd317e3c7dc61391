"""The default schedule of a GEMM problem on an architecture: candidates estimated, the fast
ones compared by DRAM traffic.

Candidates (:func:`choose_schedule`): each operand resident; compute tiles the array's extents
(or the given tile), time-only dims chosen with the blocks (a whole block or k step per
compute); k steps of 16 .. 4096 and all of k; one or two resident buffers; then either k in one
block (the largest resident block along its free dim that fits the scratchpad next to the
streamed slots) or k split (C blocks as large as half the accumulator holds, k blocks as long
as the scratchpad holds). Prefetch: the steps whose compute covers the DRAM latency and a
piece's transfer (:meth:`_Space.prefetch`), fewer when the scratchpad is short. Each candidate
is estimated (:func:`estimate`); of those within ``CYCLE_SLACK`` of the fastest and then within
``BYTE_SLACK`` of the fewest DRAM bytes, the fewest instructions win.

Layer: hw.front, the planning layer (plain Python, no Amaranth).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache

from .arch import ArchSpec
from .kernel_schedule import (
    MAX_PREFETCH,
    MAX_TIME,
    GemmProblem,
    GemmSchedule,
    SchedulePlan,
    ceil_div,
    classes,
    layouts,
    normalize,
    region_rows,
    round_up,
    tile_cycles,
)
from .spec_model import SpecError

__all__ = ["BYTE_SLACK", "CYCLE_SLACK", "choose_schedule", "estimate", "schedule_candidates"]


#: schedules whose estimated cycles are within this fraction of the fastest count as fast; of
#: those, the ones within ``BYTE_SLACK`` of the fewest DRAM bytes; of those, the one with the
#: fewest instructions
CYCLE_SLACK = 0.03
BYTE_SLACK = 0.02
_K_STEPS = (16, 64, 256, 512, 1024, 2048, 4096)
_TIME_TILES = (16, 32, 64, 128, 256, 512, 1024)


@dataclass(frozen=True)
class _Space:
    """What the candidates of one problem on one architecture share."""

    arch: ArchSpec
    dataflow: str
    problem: GemmProblem
    lay: dict[str, tuple[int, int]]
    sp_rows: int
    acc_half: int
    known: dict[tuple[int, int, int], int] = field(default_factory=dict)

    def cycles(self, tile: tuple[int, int, int]) -> int:
        """:func:`tile_cycles` of ``tile``, its extents padded to the architecture's
        ``pad_to`` (what a padding design spends)."""
        if tile not in self.known:
            pad = self.arch.pad_to
            self.known[tile] = tile_cycles(self.arch, self.dataflow,
                                           (round_up(tile[0], pad), round_up(tile[1], pad),
                                            round_up(tile[2], pad)))
        return self.known[tile]

    def place(self, x: str, fx_val: int, fy_val: int, k_val: int) -> tuple[int, int, int]:
        """(i, j, k) of values along resident ``x``'s free dim, the other's and k."""
        out = [k_val, k_val, k_val]
        out[0 if x == "A" else 1], out[1 if x == "A" else 0] = fx_val, fy_val
        return out[0], out[1], out[2]

    def sp_need(self, x: str, tile: tuple[int, int, int], bx: int, bk: int, ks: int,
                slots: int, d: int) -> int:
        """Scratchpad rows of ``slots`` resident blocks and ``d + 1`` streamed pieces."""
        e = self.problem.extents
        xe = self.place(x, min(bx, e[0 if x == "A" else 1]), 1, min(bk, e[2]))
        ye = self.place(x, 1, tile[1 if x == "A" else 0], min(ks, e[2]))
        y = "B" if x == "A" else "A"
        return (slots * self.problem.pairs * region_rows(self.lay[x], xe, tile)[1]
                + (d + 1) * region_rows(self.lay[y], ye, tile)[1])

    def c_need(self, x: str, tile: tuple[int, int, int], bx: int, by: int) -> int:
        """Accumulator rows of one C block."""
        e = self.problem.extents
        fx, fy = (0, 1) if x == "A" else (1, 0)
        return region_rows(self.lay["C"], self.place(x, min(bx, e[fx]), min(by, e[fy]), 1),
                           tile)[1]

    def prefetch(self, x: str, tile: tuple[int, int, int], bx: int, by: int, ks: int) -> int:
        """Steps ahead that hide the DRAM latency: a piece's move waits for its slot's last
        step, then for the DMA's queue (at worst a C block moving out) and the latency, while
        the d steps before it compute (or the DMA moves theirs); at most ``MAX_PREFETCH``
        moves in flight."""
        p, arch = self.problem, self.arch
        e = p.extents
        fx, fy = (0, 1) if x == "A" else (1, 0)
        per_step = ceil_div(min(bx, e[fx]), tile[fx]) * ceil_div(min(ks, e[2]), tile[2])
        compute = per_step * self.cycles(tile)
        piece = self.place(x, 1, tile[fy], min(ks, e[2]))
        y = "B" if x == "A" else "A"
        pitch, rows = region_rows(self.lay[y], piece, tile)
        bw = arch.dram.bytes_per_cycle
        y_dma = tile[fy] * piece[2] * arch.types[0].bits / 8 / bw
        c_dma = min(bx, e[fx]) * min(by, e[fy]) * arch.types[2].bits / 8 / bw
        per_block = p.pairs * ceil_div(e[2], ks) * ceil_div(min(by, e[fy]), tile[fy])
        d = ceil_div(int(arch.dram.latency_cycles + y_dma + c_dma),
                     max(1, compute, int(y_dma + c_dma / per_block)))
        moves = rows // pitch * ceil_div(pitch, 4095)
        return max(1, min(d, MAX_PREFETCH // moves if moves < MAX_PREFETCH else 1))


def _splits(extent: int, unit: int) -> list[int]:
    """Block extents (multiples of ``unit``), largest first: those splitting ``extent`` into
    1 .. 64 even blocks and 1 .. 64 units."""
    most = min(ceil_div(extent, unit), 64)
    values = {round_up(ceil_div(extent, n), unit) for n in range(1, most + 1)}
    values |= {unit * m for m in range(1, most + 1)}
    return sorted((v for v in values if v <= MAX_TIME), reverse=True)


def _k_steps(k: int, unit: int, pad: int) -> list[tuple[int, int]]:
    """(tile k, k step) pairs: k steps of 16 .. 4096 and all of k; a time-only k (``unit``
    0) computes a whole step at once (a multiple of ``pad`` but for the edge)."""
    if unit:
        return sorted({(unit, round_up(min(k, v), unit)) for v in (*_K_STEPS, k)})
    steps = {min(k, round_up(v, pad)) for v in (*_K_STEPS, k)}
    return sorted((v, v) for v in steps if v <= MAX_TIME)


def _first(values: list[int], ok: Callable[[int], bool]) -> int:
    """The index of the first of ``values`` (largest first) for which ``ok`` holds (it holds
    for all smaller ones too); ``len(values)`` when none."""
    lo, hi = 0, len(values)
    while lo < hi:
        mid = (lo + hi) // 2
        if ok(values[mid]):
            hi = mid
        else:
            lo = mid + 1
    return lo


def _candidates(space: _Space, tile: tuple[int, int, int] | None) -> Iterator[GemmSchedule]:
    """Schedules worth estimating: each operand resident, k steps, one or two resident
    buffers; k in one block (the largest resident block that fits) or split (C blocks as large
    as half the accumulator holds, k blocks as long as the scratchpad holds)."""
    e = space.problem.extents
    spatial = space.arch.spatial_extents(space.dataflow)
    pad = space.arch.pad_to
    unit = [min(tile[d], e[d]) if tile else (min(spatial[d], e[d]) if spatial[d] else 0)
            for d in range(3)]
    for x in "AB":
        fx, fy = (0, 1) if x == "A" else (1, 0)
        tys = [unit[fy]] if unit[fy] else sorted({min(e[fy], round_up(v, pad))
                                                  for v in _TIME_TILES})
        for ty in tys:
            blocks = _c_blocks(space, x, unit, ty, _splits(e[fx], unit[fx] or pad))
            for tk, ks in _k_steps(e[2], unit[2], pad):
                for slots in (1, 2):
                    yield from _whole_k(space, x, unit, ty, tk, ks, slots, blocks)
                    if ks < e[2]:
                        yield from _split_k(space, x, unit, ty, tk, ks, slots, blocks)


def _tile_of(space: _Space, x: str, unit: list[int], bx: int, ty: int, tk: int
             ) -> tuple[int, int, int]:
    fx = 0 if x == "A" else 1
    return space.place(x, unit[fx] or bx, ty, tk)


def _c_blocks(space: _Space, x: str, unit: list[int], ty: int, bxs: list[int]
              ) -> list[tuple[int, int]]:
    """(X's block along its free dim, the longest C block along Y's free dim) pairs whose C
    block of one Y tile fits half the accumulator, largest first."""
    fy = 1 if x == "A" else 0
    bys = _splits(space.problem.extents[fy], ty)

    def fits(bx: int, by: int) -> bool:
        return space.c_need(x, _tile_of(space, x, unit, bx, ty, 1), bx, by) <= space.acc_half

    first = _first(bxs, lambda bx: fits(bx, ty))
    return [(bx, bys[_first(bys, lambda by, bx=bx: fits(bx, by))]) for bx in bxs[first:]]


def _whole_k(space: _Space, x: str, unit: list[int], ty: int, tk: int, ks: int, slots: int,
             blocks: list[tuple[int, int]]) -> Iterator[GemmSchedule]:
    """k in one block: the largest resident block that fits with one step of prefetch, and
    the largest with the prefetch its steps want."""
    bk = round_up(space.problem.extents[2], ks)
    bxs = [bx for bx, _ in blocks]

    def fits(d: int) -> Callable[[int], bool]:
        return lambda bx: space.sp_need(x, _tile_of(space, x, unit, bx, ty, tk), bx, bk, ks,
                                        slots, d) <= space.sp_rows

    n = _first(bxs, fits(1))
    if n == len(bxs):
        return
    yield _schedule(space, x, unit, bxs[n], ty, tk, ty, bk, ks, 1, slots)
    d = space.prefetch(x, _tile_of(space, x, unit, bxs[n], ty, tk), bxs[n], ty, ks)
    if d > 1 and (n := _first(bxs, fits(d))) < len(bxs):
        yield _schedule(space, x, unit, bxs[n], ty, tk, ty, bk, ks, d, slots)


def _split_k(space: _Space, x: str, unit: list[int], ty: int, tk: int, ks: int, slots: int,
             blocks: list[tuple[int, int]]) -> Iterator[GemmSchedule]:
    """Twelve resident block extents spread over ``blocks``, each with the longest k block
    that fits the scratchpad (k in more than one block)."""
    steps = list(range(ceil_div(space.problem.extents[2], ks) - 1, 0, -1))
    for bx, by in blocks[::max(1, len(blocks) // 12)]:
        tile = _tile_of(space, x, unit, bx, ty, tk)
        for d in sorted({space.prefetch(x, tile, bx, by, ks), 1}, reverse=True):
            n = _first(steps, lambda m, t=tile, b=bx, d=d:
                       space.sp_need(x, t, b, m * ks, ks, slots, d) <= space.sp_rows)
            if n < len(steps):
                yield _schedule(space, x, unit, bx, ty, tk, by, steps[n] * ks, ks, d, slots)
                break


def _schedule(space: _Space, x: str, unit: list[int], bx: int, ty: int, tk: int, by: int,
              bk: int, ks: int, d: int, slots: int) -> GemmSchedule:
    tile = _tile_of(space, x, unit, bx, ty, tk)
    return GemmSchedule(tile, space.place(x, bx, by, bk), ks, x, d, slots)


def estimate(arch: ArchSpec, dataflow: str, plan: SchedulePlan) -> tuple[float, int, int]:
    """(cycles, DRAM bytes, instructions) of a plan's program, estimated. Cycles: per step the
    longest of its compute (:func:`tile_cycles`, extents padded to ``pad_to``), its
    instructions (one dispatched a cycle), the prefetch's reach (the latency, a piece and a C
    block moving out, over the prefetch distance) and its share of the DMA's work (a resident
    block moves in during its first pass over Y's tiles with one buffer, during the block
    before with two); plus, per resident block moving in with nothing to overlap (each with
    one buffer, the first with two), the latency and its first step's share; plus the latency
    and C's last block at the ends. Bytes and instructions as the program has them (bytes up
    to sub-byte rounding)."""
    schedule = GemmSchedule(plan.tile, plan.block, plan.k_step, plan.x, plan.prefetch,
                            plan.x_slots)
    return _estimate(_space(arch, dataflow, plan.problem), schedule)


def _space(arch: ArchSpec, dataflow: str, problem: GemmProblem) -> _Space:
    return _Space(arch, dataflow, problem, layouts(arch, dataflow),
                  arch.scratchpad.banks * arch.scratchpad.rows_per_bank,
                  arch.accumulator.banks * arch.accumulator.rows_per_bank // 2)


def _moves(space: _Space, tensor: str, ext: tuple[int, int, int], tile: tuple[int, int, int],
           chunk: int = 0) -> int:
    """Moves of a block of extents ``ext`` (per panel, per ``chunk`` rows over k, per 4095)."""
    pitch, rows = region_rows(space.lay[tensor], ext, tile)
    pieces = ceil_div(pitch, chunk) if chunk and space.lay[tensor][0] == 2 else 1
    return rows // pitch * pieces * ceil_div(min(pitch, chunk or pitch), 4095)


def _estimate(space: _Space, s: GemmSchedule) -> tuple[float, int, int]:
    """:func:`estimate` of a fitting schedule."""
    arch, p, e = space.arch, space.problem, space.problem.extents
    t, b, k_step = normalize(e, s)
    x, y = s.resident, "B" if s.resident == "A" else "A"
    fx, fy = (0, 1) if x == "A" else (1, 0)
    nxb, nyb, nkb = (ceil_div(e[fx], b[fx]), ceil_div(e[fy], b[fy]), ceil_div(e[2], b[2]))
    varies = not (x == "A" and p.a_shared)
    reloads = (p.batches if varies or nkb > 1 else 1) * (nyb if nkb > 1 else 1)
    x_loads = nxb * nkb * reloads
    steps = p.batches * nxb * p.pairs * ceil_div(e[fy], t[fy]) * ceil_div(e[2], k_step)
    a_bytes, c_bytes = arch.types[0].bits / 8, arch.types[2].bits / 8
    x_bytes = e[fx] * e[2] * p.pairs * reloads * a_bytes
    y_bytes = e[fy] * e[2] * p.pairs * p.batches * nxb * a_bytes
    out_bytes = e[0] * e[1] * p.batches * c_bytes
    compute = p.batches * p.pairs * sum(
        i[1] * j[1] * k[1] * space.cycles((i[0], j[0], k[0])) for i in classes(e[0], t[0])
        for j in classes(e[1], t[1]) for k in classes(e[2], t[2]))
    c_blocks = p.batches * nxb * nyb
    ins = (p.batches * p.pairs * ceil_div(e[0], t[0]) * ceil_div(e[1], t[1])
           * ceil_div(e[2], t[2]) + steps * _moves(space, y, space.place(x, 1, t[fy], k_step), t)
           + x_loads * p.pairs * _moves(space, x, space.place(x, b[fx], 1, b[2]), t, k_step)
           + c_blocks * _moves(space, "C", space.place(x, b[fx], b[fy], 1), t))
    bw, lat = arch.dram.bytes_per_cycle, arch.dram.latency_cycles
    # a resident block moves in during its first pass over Y's tiles (with two buffers only
    # the first: the others during the block before)
    per_pass = p.pairs * ceil_div(min(b[2], e[2]), k_step)
    alone = x_loads if s.resident_buffers == 1 else 1
    heavy = min(steps, alone * per_pass)
    x_alone = x_bytes / x_loads * alone / bw
    base = max(compute / steps, ins / steps,
               (lat + y_bytes / bw / steps + out_bytes / bw / c_blocks) / s.prefetch)
    dma = (y_bytes + out_bytes + x_bytes) / bw / steps - x_alone / steps
    cycles = (heavy * max(base, dma + x_alone / heavy) + (steps - heavy) * max(base, dma)
              + (x_alone / alone / per_pass + lat) * alone + lat + out_bytes / c_blocks / bw)
    return cycles, round(x_bytes + y_bytes + out_bytes), ins


def schedule_candidates(arch: ArchSpec, dataflow: str, problem: GemmProblem,
                        tile: tuple[int, int, int] | None = None) -> list[GemmSchedule]:
    """The schedules :func:`choose_schedule` estimates (each fits the memories): a mapper's
    search space to start from."""
    _check_array(arch, dataflow, problem, tile)
    return list(_candidates(_space(arch, dataflow, problem), tile))


@lru_cache(maxsize=512)
def choose_schedule(arch: ArchSpec, dataflow: str, problem: GemmProblem,
                    tile: tuple[int, int, int] | None = None) -> GemmSchedule:
    """The default schedule of ``problem`` (compute tiles ``tile`` when given, else the array's
    extents and time-only tiles chosen with the blocks): of the candidates whose estimated
    cycles (:func:`estimate`) are within ``CYCLE_SLACK`` of the fastest, and of those the ones
    within ``BYTE_SLACK`` of the fewest DRAM bytes, the one with the fewest instructions.
    SpecError when none fits."""
    _check_array(arch, dataflow, problem, tile)
    space = _space(arch, dataflow, problem)
    scored = [(_estimate(space, s), s) for s in _candidates(space, tile)]
    if not scored:
        raise SpecError(f"no schedule of a {'x'.join(map(str, problem.extents))} GEMM "
                        f"({problem.pairs} products, tile {tile}) under {dataflow!r} fits the "
                        f"memories of {arch.name!r}")
    fastest = min(e[0] for e, _ in scored)
    fast = [(e, s) for e, s in scored if e[0] <= fastest * (1 + CYCLE_SLACK)]
    least = min(e[1] for e, _ in fast)
    lean = [(e, s) for e, s in fast if e[1] <= least * (1 + BYTE_SLACK)]
    return min(lean, key=lambda es: (es[0][2], es[0][0], es[0][1]))[1]


def _check_array(arch: ArchSpec, dataflow: str, problem: GemmProblem,
                 tile: tuple[int, int, int] | None) -> None:
    """ValueError for a tile that is not three positive integers, SpecError for one past the
    array under ``dataflow``."""
    if tile is None:
        return
    if not isinstance(tile, tuple) or len(tile) != 3 or any(
            isinstance(t, bool) or not isinstance(t, int) or t < 1 for t in tile):
        raise ValueError(f"tile must be a tuple (i, j, k) of positive integers, got {tile!r}")
    for d, t, s, e in zip("ijk", tile, arch.spatial_extents(dataflow), problem.extents,
                          strict=True):
        if s and min(t, e) > s:
            raise SpecError(f"tile {d}={t} exceeds the array ({s}) under dataflow {dataflow!r}")
