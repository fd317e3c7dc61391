"""Programs of scheduled GEMMs: a plan's loop nest unrolled into moves and computes, put in
the order the accelerator overlaps them in, and counted in closed form.

:func:`build_program` unrolls a :class:`~hw.front.kernel_schedule.SchedulePlan`'s loop nest
(its module docstring) over ``batches`` (per output: the A/B views of its products and C's
view) and orders it for an accelerator that dispatches in order to a DMA and an execution
unit and stalls an instruction while it conflicts with an in-flight one of the other unit:

* the piece of step t moves in during step t - prefetch, spread over that step's computes
  after the first (its slot's last reader, step t - prefetch - 1, is then the only one in
  flight; spreading keeps the dispatch from stalling behind a run of moves at the DMA's limit
  of moves in flight);
* a resident block moves in a move per panel and k step, each like a piece for the first step
  reading it, but not before the previous block's last compute (one buffer); with two buffers
  spread over the previous block's computes;
* C's block moves out two computes after its last (so the computes it waits for are done),
  before the next block in its accumulator slot.

An operand whose DRAM rows run along its memory rows moves as plain rows; otherwise through
the DMA's transposer. :func:`program_counts` counts the same program without building it:
each class of tile, piece and block extents once, times how many there are.

Layer: hw.front, the planning layer (plain Python, no Amaranth).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from .arch import ArchSpec
from .isa import TENSOR_DIMS, Instruction, tile_layout
from .kernel_schedule import SchedulePlan, ceil_div, classes
from .program_cost import instruction_counts
from .spec_model import SpecError

__all__ = ["Batch", "MatrixView", "build_program", "program_counts"]

_MAX_ROWS = (1 << 12) - 1       # the rows field of a move
_MVOUT_LAG = 2                  # computes after C's block's last before it moves out


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


def _region(arch: ArchSpec, dataflow: str, plan: SchedulePlan, op: str, tensor: str,
            role: str, view: MatrixView, origin: tuple[int, int, int],
            ext: tuple[int, int, int], base: int, bits: int, chunk: int = 0
            ) -> list[tuple[int, Instruction]]:
    """The moves of ``tensor``'s block of extents ``ext`` at ``origin`` between DRAM and its
    region from memory row ``base`` (``role``: "X", "Y" or "C" of ``plan``): per panel, and
    per ``chunk`` rows when its rows run over k (the resident block: a move per k step, so a
    compute waits only for the rows it reads); each with the k of its first element."""
    row, col = plan.layout[tensor]
    width = plan.tile[col]
    rows = chunk if chunk and row == 2 else ext[row]
    out = []
    for c0 in range(0, ext[col], width):
        for r0 in range(0, ext[row], rows):
            first, here = list(origin), list(ext)
            first[col] += c0
            first[row] += r0
            here[col] = min(width, ext[col] - c0)
            here[row] = min(rows, ext[row] - r0)
            out += [(first[2], ins) for ins in _move(
                arch, op, tensor, dataflow, view, (first[0], first[1], first[2]),
                (here[0], here[1], here[2]), base + c0 // width * plan.pitch[role] + r0, bits)]
    return out


Batch = tuple[list[tuple[MatrixView, MatrixView]], MatrixView]   #: (A/B views per pair, C)


@dataclass
class _Trace:
    """A program's loop nest unrolled: the computes in order, the first compute of each
    step, each step's streamed piece, each resident block (its first step; each move with the
    first step reading it) and each C block (its first and last compute) with their moves."""

    computes: list[Instruction] = field(default_factory=list)
    steps: list[int] = field(default_factory=list)
    y_loads: list[list[Instruction]] = field(default_factory=list)
    x_loads: list[tuple[int, list[tuple[int, Instruction]]]] = field(default_factory=list)
    c_outs: list[tuple[int, int, list[Instruction]]] = field(default_factory=list)


def _walk(arch: ArchSpec, dataflow: str, plan: SchedulePlan, batches: list[Batch]) -> _Trace:
    """Unroll the schedule's loop nest (the module docstring of kernel_schedule)."""
    p, e, trace = plan, plan.problem.extents, _Trace()
    fx, fy, b = plan.fx, plan.fy, plan.block
    c_bits = arch.types[2].bits
    order = [(n, x0) for x0 in range(0, e[fx], b[fx]) for n in range(len(batches))]
    if p.x_varies:
        order.sort()
    loaded = None
    for n, x0 in order:
        pairs, c_view = batches[n]
        xs = (x0, min(x0 + b[fx], e[fx]))
        for y0 in range(0, e[fy], b[fy]):
            ys = (y0, min(y0 + b[fy], e[fy]))
            first = len(trace.computes)
            for k0 in range(0, e[2], b[2]):
                ks = (k0, min(k0 + b[2], e[2]))
                if (n if p.x_varies else None, x0, k0) != loaded:
                    loaded = (n if p.x_varies else None, x0, k0)
                    trace.x_loads.append((len(trace.steps), _x_moves(
                        arch, dataflow, p, len(trace.x_loads) % p.x_slots, pairs, xs, ks)))
                _steps(arch, dataflow, p, trace, pairs, xs, ys, ks)
            trace.c_outs.append((first, len(trace.computes) - 1, [ins for _, ins in _region(
                arch, dataflow, p, "mvout", "C", "C", c_view, p.ijk(x0, y0, 0),
                p.ijk(xs[1] - x0, ys[1] - y0, 1), p.c_base(len(trace.c_outs)), c_bits)]))
    return trace


def _x_moves(arch: ArchSpec, dataflow: str, p: SchedulePlan, slot: int,
             pairs: list[tuple[MatrixView, MatrixView]], xs: tuple[int, int],
             ks: tuple[int, int]) -> list[tuple[int, Instruction]]:
    """The moves of a resident block into ``slot``, each with the step (counted from the
    block's first) that first reads it: pairs, then k steps, in the steps' order."""
    per_pair = ceil_div(ks[1] - ks[0], p.k_step)
    out = []
    for q, views in enumerate(pairs):
        for k, ins in _region(arch, dataflow, p, "mvin", p.x, "X", views[0 if p.x == "A" else 1],
                              p.ijk(xs[0], 0, ks[0]), p.ijk(xs[1] - xs[0], 1, ks[1] - ks[0]),
                              p.x_base(slot, q), arch.types[0].bits, p.k_step):
            out.append((q * per_pair + (k - ks[0]) // p.k_step, ins))
    out.sort(key=lambda m: m[0])
    return out


def _steps(arch: ArchSpec, dataflow: str, p: SchedulePlan, trace: _Trace,
           pairs: list[tuple[MatrixView, MatrixView]], xs: tuple[int, int],
           ys: tuple[int, int], ks: tuple[int, int]) -> None:
    """The steps of one k block of one C block: per Y tile, pair and k step, the piece and
    the computes of every tile of the resident block against it."""
    t, fx, fy = p.tile, p.fx, p.fy
    x_slot, c_base = (len(trace.x_loads) - 1) % p.x_slots, p.c_base(len(trace.c_outs))
    for yt in range(ys[0], ys[1], t[fy]):
        ty = min(t[fy], ys[1] - yt)
        for q, views in enumerate(pairs):
            for s0 in range(ks[0], ks[1], p.k_step):
                s1 = min(s0 + p.k_step, ks[1])
                y_base = p.y_base(len(trace.steps) % p.y_slots)
                trace.y_loads.append([ins for _, ins in _region(
                    arch, dataflow, p, "mvin", p.y, "Y", views[1 if p.x == "A" else 0],
                    p.ijk(0, yt, s0), p.ijk(1, ty, s1 - s0), y_base, arch.types[0].bits)])
                trace.steps.append(len(trace.computes))
                for xt in range(xs[0], xs[1], t[fx]):
                    for kt in range(s0, s1, t[2]):
                        here = p.ijk(min(t[fx], xs[1] - xt), ty, min(t[2], s1 - kt))
                        rows = {p.x: p.x_base(x_slot, q) + p.at(p.x, "X", p.ijk(
                                    xt - xs[0], 0, kt - ks[0])),
                                p.y: y_base + p.at(p.y, "Y", p.ijk(0, 0, kt - s0)),
                                "C": c_base + p.at("C", "C", p.ijk(xt - xs[0], yt - ys[0], 0))}
                        trace.computes.append(Instruction("compute", (
                            ("a", rows["A"]), ("b", rows["B"]), ("c", rows["C"]),
                            ("i", here[0]), ("j", here[1]), ("k", here[2]),
                            ("accumulate", int(q > 0 or kt > 0)))))


def _spread(moves: list, first: int, last: int) -> list[tuple[int, object]]:
    """``moves`` placed evenly before compute indices ``first`` .. ``last``."""
    return [(first + m * (last - first + 1) // len(moves), move) for m, move in enumerate(moves)]


def _order(trace: _Trace, plan: SchedulePlan) -> list[Instruction]:
    """The trace's instructions in program order (the module docstring): the computes in
    loop-nest order, each move placed before one of them. The moves wanted d steps ahead of
    step t move in spread over step t - d's computes after its first (many moves in a row
    would stall the dispatch of computes behind them at the DMA's limit of moves in flight)."""
    d, n, steps = plan.prefetch, len(trace.computes), [*trace.steps, len(trace.computes)]
    windows: dict[int, list] = {}       # moves for step t >= d: wanted during step t - d
    placed = []                         # (before compute, mvout, for step, kind, move)
    for blk, (s0, moves) in enumerate(trace.x_loads):
        if plan.x_slots == 2 and blk:           # spread over the previous block
            prev = trace.x_loads[blk - 1][0]
            placed += [(at, 0, s0, 0, move) for at, (_, move) in
                       _spread(moves, steps[prev] + 1, steps[s0])]
            continue
        for t, move in moves:                   # after the last compute reading the slot
            if t < d:
                placed.append((steps[s0], 0, s0 + t, 0, move))
            else:
                windows.setdefault(s0 + t - d, []).append((s0 + t, 0, move))
    for t, moves in enumerate(trace.y_loads):
        if t < d:
            placed += [(0, 0, t, 1, move) for move in moves]
        else:
            windows.setdefault(t - d, []).extend((t, 1, move) for move in moves)
    for w, moves in windows.items():
        moves.sort(key=lambda m: m[:2])
        placed += [(at, 0, t, kind, move) for at, (t, kind, move) in
                   _spread(moves, steps[w] + 1, steps[w + 1])]
    for c, (_, last, moves) in enumerate(trace.c_outs):
        due = trace.c_outs[c + plan.c_slots][0] if c + plan.c_slots < len(trace.c_outs) else n
        placed += [(min(last + 1 + _MVOUT_LAG + m, due), 1, c, 0, move)
                   for m, move in enumerate(moves)]      # before its slot's next block
    placed.sort(key=lambda ins: ins[:4])
    program, j = [], 0
    for pos in range(n + 1):
        while j < len(placed) and placed[j][0] == pos:
            program.append(placed[j][4])
            j += 1
        if pos < n:
            program.append(trace.computes[pos])
    return program


def _region_counts(arch: ArchSpec, dataflow: str, plan: SchedulePlan, op: str, tensor: str,
                   view: MatrixView, ext: tuple[int, int, int], bits: int, times: int,
                   total: Counter, chunk: int = 0) -> None:
    """Add ``times`` the counts of :func:`_region`'s moves of a block of extents ``ext``:
    one move of each class of panel width (and chunk of rows)."""
    row, col = plan.layout[tensor]
    for width, n in classes(ext[col], plan.tile[col]):
        for rows, r in classes(ext[row], chunk if chunk and row == 2 else ext[row]):
            here = list(ext)
            here[col], here[row] = width, rows
            for ins in _move(arch, op, tensor, dataflow, view, (0, 0, 0),
                             (here[0], here[1], here[2]), 0, bits):
                total["instructions"] += n * r * times
                for key, value in instruction_counts(ins, arch, dataflow).items():
                    total[key] += value * n * r * times


def program_counts(arch: ArchSpec, dataflow: str, plan: SchedulePlan,
                   views: tuple[MatrixView, MatrixView, MatrixView]) -> Counter:
    """The counts of the program of ``plan`` without building it (and ``instructions``, its
    length): each class of tile, piece and block extents counted once, times how many there
    are (the walk's loop bounds). The pairs share their first pair's transposition (as the
    kernels make them)."""
    p, e, total = plan, plan.problem.extents, Counter(instructions=1)      # the config
    fx, fy, t, b = p.fx, p.fy, p.tile, p.block
    pairs, batches = p.problem.pairs, p.problem.batches
    c_row = p.layout["C"][0]
    for ti, ni in classes(e[0], t[0]):
        for tj, nj in classes(e[1], t[1]):
            outputs = ni * nj * batches
            for tk, nk in classes(e[2], t[2]):
                ins = Instruction("compute", (("a", 0), ("b", 0), ("c", 0), ("i", ti),
                                              ("j", tj), ("k", tk), ("accumulate", 1)))
                total["instructions"] += outputs * nk * pairs
                for key, value in instruction_counts(ins, arch, dataflow).items():
                    total[key] += value * outputs * nk * pairs
            total["accumulator_row_reads"] -= outputs * (ti, tj)[c_row]   # first: overwrite
    nxb, nyb, nkb = ceil_div(e[fx], b[fx]), ceil_div(e[fy], b[fy]), ceil_div(e[2], b[2])
    reloads = (batches if p.x_varies or nkb > 1 else 1) * (nyb if nkb > 1 else 1)
    a_bits, c_bits = arch.types[0].bits, arch.types[2].bits
    x_view, y_view = views[:2] if p.x == "A" else views[1::-1]
    for ex, nx in classes(e[fx], b[fx]):
        for ek, nk in classes(e[2], b[2]):
            _region_counts(arch, dataflow, p, "mvin", p.x, x_view, p.ijk(ex, 1, ek), a_bits,
                           nx * nk * reloads * pairs, total, p.k_step)
        for ey, ny in classes(e[fy], b[fy]):
            _region_counts(arch, dataflow, p, "mvout", "C", views[2], p.ijk(ex, ey, 1),
                           c_bits, nx * ny * batches, total)
    for ey, ny in classes(e[fy], t[fy]):
        for ek, nk in classes(e[2], p.k_step):
            _region_counts(arch, dataflow, p, "mvin", p.y, y_view, p.ijk(1, ey, ek), a_bits,
                           ny * nk * pairs * batches * nxb, total)
    return total


def build_program(arch: ArchSpec, dataflow: str, plan: SchedulePlan, batches: list[Batch]
                  ) -> list[Instruction]:
    """The program of ``plan`` over ``batches`` (the module docstring), from its config."""
    return [_config(arch, dataflow), *_order(_walk(arch, dataflow, plan, batches), plan)]
