"""The cycle model of the generated accelerator: when every instruction of a program issues
and finishes, and the cycles of the whole run, equal to the RTL's (:mod:`hw.rtl.accel`).

Cycles are numbered from 0, the first cycle the command port offers the program's first word.
"In cycle c" means between rising edges; registers written in cycle c hold the value from
c + 1. Instruction n sits in the dispatcher from cycle ``D[n-1] + 1`` (``D[-1] = 0``) and
*issues* in the first cycle ``D[n]`` its unit can take it and no hazard holds it::

    config   execution unit idle (no queued or computing tile, no result write pending)
    compute  no queued tile; no unfinished move writing its A or B rows (mvin) or its C
             rows (mvin acc=1), or reading its C rows (mvout)
    mvin     a free DMA slot; no queued or streaming tile reading its scratchpad rows, no
             unfinished scratchpad mvin writing them
    mvin     acc=1: the mvout rule without its mvin wait (the DMA writes accumulator rows in
             order, through one port, after every earlier move's reads)
    mvout    a free DMA slot; no queued or computing tile writing its accumulator rows, no
             result write pending (the two cycles after a tile's last streamed row, one
             after an output-stationary drain), no unfinished mvin acc=1 writing its rows
    fence    everything idle
    unit     everything idle (a workload-unit command runs alone)
    any      no unit command running

**Execution unit** (one class per configured dataflow, :mod:`hw.front.accel_params`): a tile
of extents (i, j, k) streams ``n_x`` rows (its time-only extent), one per cycle; classes
"i" and "j" first load their stationary operand (``n_s`` rows: B's k rows, A's i rows) into
the array's other weight bank while the previous tile streams. With ``E = D + 1`` the cycle
the tile is queued, it starts streaming at ``S = X + 1``, where it is promoted in cycle
``X = max(E + n_s - 1, F_prev)`` (``n_s = 0`` for class "k"), and frees the array in cycle
``F = S + n_x - 1`` (class "k": ``S + k + i``, after one idle cycle and ``i`` drained rows).
A streamed row reaches the accumulator two cycles after its read.

**DMA** (moves in order, :data:`~hw.front.accel_params.DMA_QUEUE` in flight): a move queued
in cycle ``D + 1`` starts requesting at ``R = max(D + 1, R_end of the previous move)``; one
DRAM beat per cycle, read data ``L`` cycles after its request, registered, written to the
scratchpad (acc=1: the accumulator) a cycle later::

    mvin   plain       rows beats                              done R + rows + L
           transposed  per block of up to E memory rows (rb): cols beats, then idle up to
                       rb cycles; its rows are written in the rb cycles after its last line
                       is registered (done: the last block's last row); a move starts no
                       earlier than its first block's last line follows the previous
                       transposed block's by that block's rb (one drain at a time)
           acc=1       n = rows x ceil(cols C bytes / W) beats done R + n + L
                       (transposed: n = rows x cols, one element a beat); col=C: no change
    mvout  plain       1 + rows x beats per row                done at its last beat
           transposed  per block: rb reads, 1, cols x beats per line

A move leaves the queue in cycle ``P = max(done + 1, P_prev + 1)``; its slot is free from
``P + 1``.

**Workload units** (:mod:`hw.rtl.accel_units`): a unit command issued in cycle ``D`` takes
:meth:`~hw.front.accel_params.AccelParams.unit_steps` steps (``rows`` accumulator rows, ``B``
cycles each: the row's elements over the unit's lanes; the softmax twice over a row's key
blocks, the quantizer twice over each group's blocks: ``rows x 2 ceil(cols / Ea)`` rows in
all), and the next instruction issues no earlier than ``D + 3 + steps``; unit modes the RTL
does not execute (:data:`~hw.front.accel_params.RTL_UNIT_MODES`) are a :class:`ProgramError`.

The run ends (``busy`` low) in the first cycle after the last issue in which the array, the
DMA and the units are idle: that is :attr:`AccelTiming.cycles`.

The model is a recurrence over instructions (no per-cycle loop): a mapper's call.

Layer: hw.front, the planning layer (plain Python, no Amaranth).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from .accel_params import RTL_UNIT_MODES, AccelParams
from .isa import UNIT_MODES, UNIT_NAMES, Instruction, ProgramError

__all__ = ["AccelTiming", "accel_timing", "compute_rows", "move_cycles", "tile_period"]


@dataclass(frozen=True)
class AccelTiming:
    """Per instruction its issue cycle; the run's cycles; busy cycles of each unit."""

    issue: tuple[int, ...]
    cycles: int
    stream_cycles: int          #: cycles the array streams rows (MAC cycles, any fill)
    dma_cycles: int             #: cycles the DMA requests DRAM beats or idles inside a move
    stalls: dict[str, int] = field(default_factory=dict)   #: issue cycles lost, by cause
    unit_cycles: int = 0        #: cycles the workload units stream rows


def compute_rows(cls: str, i: int, j: int, k: int) -> dict[str, int]:
    """Rows of a tile of class ``cls``: A's, B's and C's memory rows, the streamed ``x`` and
    the loaded stationary ``s`` (0 for class "k")."""
    if cls == "k":
        return {"A": k, "B": k, "C": i, "x": k, "s": 0}
    if cls == "i":
        return {"A": i, "B": k, "C": i, "x": i, "s": k}
    return {"A": i, "B": j, "C": j, "x": j, "s": i}


def tile_period(cls: str, i: int, j: int, k: int) -> int:
    """Cycles between the stream starts of back-to-back equal tiles (the steady state of
    the recurrence above when nothing else holds them): class "k" streams, idles one cycle
    and drains; classes "i"/"j" stream while the next tile loads, which starts the cycle
    after its queue slot frees (one after this tile's start)."""
    rows = compute_rows(cls, i, j, k)
    if cls == "k":
        return k + 1 + i
    return max(rows["x"], rows["s"] + 1)


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


def move_cycles(p: AccelParams, ins: Instruction) -> tuple[int, int]:
    """(request cycles, done offset) of a move starting to request in cycle R: it occupies
    the request side for the first figure of cycles and is done in cycle R + the second."""
    f = dict(ins.fields)
    return _move_cycles(p, ins.op, f["rows"], f["cols"], f["transpose"],
                        ins.op == "mvin" and bool(f["acc"]))


def _move_cycles(p: AccelParams, op: str, rows: int, cols: int, transpose: int,
                 to_acc: bool = False) -> tuple[int, int]:
    e = p.edge
    full = (rows - 1) // e                  # blocks of E rows before the last
    last = rows - full * e
    back = p.latency + 1                # read data is registered on arrival
    if op == "mvin" and to_acc:         # rows in their beats, or one element a beat
        beats = rows * (cols if transpose else _ceil(_ceil(cols * p.c_bits, 8), p.bus_bytes))
        return beats, beats - 1 + back
    if op == "mvin":
        if not transpose:
            return rows, rows - 1 + back
        before = full * max(cols, e)
        return before + max(cols, last), before + cols + back + last - 1
    cbytes = p.c_bits // 8
    if not transpose:
        dur = 1 + rows * _ceil(cols * cbytes, p.bus_bytes)
    else:
        dur = sum(n * (rb + 1 + cols * _ceil(rb * cbytes, p.bus_bytes))
                  for rb, n in ((e, full), (last, 1)))
    return dur, dur - 1


#: relative times at or below this are alike to every rule of the model
_PAST = -4
#: the model's name of an ``mvin acc=1`` (a move on accumulator rows), and the unfinished
#: moves on its rows each kind of move waits for
_ACC = "mvin_acc"
_WAITS_FOR = {"mvin": "mvin", "mvout": _ACC}


def _overlap(s1: int, n1: int, s2: int, n2: int) -> bool:
    return s1 < s2 + n2 and s2 < s1 + n1


@dataclass
class _Tile:
    a: tuple[int, int]
    b: tuple[int, int]
    c: tuple[int, int]
    reads_until: int        #: first cycle it no longer reads the scratchpad
    free: int               #: F: last cycle it holds the array
    promoted: int           #: X
    pending: int            #: result-write cycles after F


@dataclass
class _Move:
    op: str
    rows: tuple[int, int]
    done: int
    popped: int


class _Model:
    def __init__(self, p: AccelParams) -> None:
        self.p = p
        self.cls = None
        self.tiles: deque[_Tile] = deque(maxlen=4)
        self.moves: deque[_Move] = deque(maxlen=p.dma_queue)
        self.req_end = 0
        self.stream = 0
        self.dma = 0
        self.stalls: dict[str, int] = {}
        self.move_cycles: dict[tuple, tuple[int, int]] = {}
        self.drain_end = 0      #: last transposed block's last line + its rows (request time)
        self.unit_free = 0      #: first cycle after the running unit command
        self.units = 0

    def state_key(self, d: int) -> tuple:
        """The state relative to cycle ``d``; times so far past that no rule can see them
        again (every rule compares them, plus at most 2, with ``d`` or later) collapse."""
        def rel(t: int) -> int:
            return max(t - d, _PAST)

        return (self.cls,
                tuple((t.a, t.b, t.c, rel(t.reads_until), rel(t.free), rel(t.promoted),
                       t.pending) for t in self.tiles),
                tuple((m.op, m.rows, rel(m.done), rel(m.popped)) for m in self.moves),
                rel(self.req_end), rel(self.drain_end), rel(self.unit_free))

    def shift(self, delta: int) -> None:
        """Every time of the state ``delta`` cycles later."""
        for t in self.tiles:
            t.reads_until += delta
            t.free += delta
            t.promoted += delta
        for m in self.moves:
            m.done += delta
            m.popped += delta
        self.req_end += delta
        self.drain_end += delta
        self.unit_free += delta

    def _stall(self, cause: str, base: int, at: int) -> int:
        if at > base:
            self.stalls[cause] = self.stalls.get(cause, 0) + at - base
        return max(base, at)

    def exec_idle(self) -> int:
        t = self.tiles[-1] if self.tiles else None
        return 0 if t is None else max(t.free + t.pending + 1, t.promoted + 1)

    def dma_idle(self) -> int:
        return self.moves[-1].popped + 1 if self.moves else 0

    def _slot(self, d: int) -> int:
        if len(self.moves) == self.p.dma_queue:
            d = self._stall("dma_queue", d, self.moves[0].popped + 1)
        return d

    def _pending_window(self, d: int) -> int:
        for t in self.tiles:
            if t.free + 1 <= d <= t.free + t.pending:
                d = t.free + t.pending + 1
        return d

    def issue(self, ins: Instruction, d: int) -> int:
        op = ins.op
        d = self._stall("waits_unit", d, self.unit_free)
        if op == "config":
            d = self._stall("config", d, self.exec_idle())
            self.cls = self.p.dataflow_class(ins["dataflow"])
        elif op == "fence":
            d = self._stall("fence", d, max(self.exec_idle(), self.dma_idle()))
        elif op == "compute":
            d = self._compute(ins, d)
        elif op in ("mvin", "mvout"):
            d = self._move(ins, d)
        elif op == "unit":
            d = self._unit(ins, d)
        else:
            raise ProgramError(f"the cycle model has no timing for {op!r} instructions")
        return d

    def _unit(self, ins: Instruction, d: int) -> int:
        unit = UNIT_NAMES[ins["unit"]]
        mode = UNIT_MODES[unit][ins["mode"]]
        if mode not in RTL_UNIT_MODES.get(unit, ()):
            raise ProgramError(f"the generated accelerator does not execute {unit} {mode} "
                               "commands yet, so the cycle model has no timing for them "
                               f"(executed: {_executed()})")
        d = self._stall("unit_waits", d, max(self.exec_idle(), self.dma_idle()))
        steps = self.p.unit_steps(unit, mode, ins["rows"], ins["cols"], ins["count"])
        self.unit_free = d + 3 + steps
        self.units += steps
        return d

    def _compute(self, ins: Instruction, d: int) -> int:
        f = dict(ins.fields)
        i, j, k = f["i"], f["j"], f["k"]
        rows = compute_rows(self.cls, i, j, k)
        a, b, c = (f["a"], rows["A"]), (f["b"], rows["B"]), (f["c"], rows["C"])
        if self.tiles:
            d = self._stall("exec_queue", d, self.tiles[-1].promoted + 1)
        for m in self.moves:
            if m.done < d:
                continue                    # finished: no hazard
            hit = (m.op == "mvin" and (_overlap(*m.rows, *a) or _overlap(*m.rows, *b))) or \
                  (m.op in ("mvout", _ACC) and _overlap(*m.rows, *c))
            if hit:
                d = self._stall("compute_waits_move", d, m.done + 1)
        queued = d + 1
        prev_free = self.tiles[-1].free if self.tiles else -1
        x = max(queued + max(rows["s"] - 1, 0), prev_free)
        s = x + 1
        if self.cls == "k":
            free, reads_until, pending = s + k + i, s + k, 1
        else:
            free = s + rows["x"] - 1
            reads_until, pending = free + 1, 2
        self.stream += rows["x"]
        self.tiles.append(_Tile(a, b, c, reads_until, free, x, pending))
        return d

    def _move(self, ins: Instruction, d: int) -> int:
        d = self._slot(d)
        f = dict(ins.fields)
        op = _ACC if ins.op == "mvin" and f["acc"] else ins.op
        rows = (f["acc"] if op == "mvout" else f["sp"], f["rows"])
        for m in self.moves:    # scratchpad rows written in order; an mvout reads written rows
            if m.op == _WAITS_FOR.get(op) and m.done >= d and _overlap(*rows, *m.rows):
                d = self._stall(f"{ins.op}_waits_mvin", d, m.done + 1)
        if op == "mvin":
            for t in self.tiles:
                if t.reads_until > d and (_overlap(*rows, *t.a) or _overlap(*rows, *t.b)):
                    d = self._stall("mvin_waits_compute", d, t.reads_until)
        else:                               # accumulator rows: mvout, mvin acc=1
            for t in self.tiles:
                if t.free + t.pending >= d and _overlap(*rows, *t.c):
                    d = self._stall(f"{ins.op}_waits_compute", d, t.free + t.pending + 1)
            d = self._stall(f"{ins.op}_waits_write", d, self._pending_window(d))
        start = max(d + 1, self.req_end)
        key = (ins.op, f["rows"], f["cols"], f["transpose"], op == _ACC)
        if key not in self.move_cycles:
            self.move_cycles[key] = _move_cycles(self.p, *key)
        dur, done = self.move_cycles[key]
        if op == "mvin" and f["transpose"]:
            # the transposer drains one block at a time: the first block's last line comes
            # no earlier than the previous transposed block's drain has ended
            start = max(start, self.drain_end - f["cols"] + 1)
            self.drain_end = start + done - (self.p.latency + 1)
        self.req_end = start + dur
        self.dma += dur
        popped = max(start + done + 1, self.moves[-1].popped + 1 if self.moves else 0)
        self.moves.append(_Move(op, rows, start + done, popped))
        return d


def _executed() -> str:
    return "; ".join(f"{u} {', '.join(modes)}" for u, modes in RTL_UNIT_MODES.items())


def accel_timing(program: Sequence[Instruction], params: AccelParams, *,
                 skip_periods: bool = True) -> AccelTiming:
    """The cycles of ``program`` (already checked: :func:`hw.front.isa.check_program`) on the
    accelerator of ``params`` (see the module docstring).

    Exact, and fast on the kernel library's long programs: when the model's state, relative
    to the current cycle, and the instructions after it (DRAM addresses aside: they never
    change timing) repeat those of an earlier point, every following repetition of the same
    instructions takes the same cycles, so whole periods are added at once. The search
    stops once it has compared a quarter of the program more than it skipped;
    ``skip_periods=False`` walks every instruction (the same result, what tests compare)."""
    model = _Model(params)
    issue: list[int] = []
    seen: dict[tuple, tuple] = {}
    d = n = 0
    budget = len(program) // 4 if skip_periods else -1    # comparisons beyond the skipped
    while n < len(program):
        ins = program[n]
        d = model.issue(ins, d + 1)
        issue.append(d)
        n += 1
        if ins.op != "compute" or n == len(program) or budget < 0:
            continue
        key = (model.state_key(d), _timing_sig(program[n]))
        here = (n, d, model.stream, model.dma, dict(model.stalls), model.units)
        before = seen.setdefault(key, here)
        if before is here:
            continue
        periods, compared = _repeats(program, before[0], n)
        budget += periods * (n - before[0]) - compared
        if periods:
            d, n = _skip(model, issue, before, here, periods)
            seen.clear()
    end = max(d + 1, model.exec_idle(), model.dma_idle(), model.unit_free) if program else 0
    return AccelTiming(tuple(issue), end, model.stream, model.dma, dict(model.stalls),
                       model.units)


def _timing_sig(ins: Instruction) -> tuple:
    """``ins`` without its DRAM address (which never changes timing)."""
    f = ins.fields
    if ins.op == "mvin":
        return ins.op, f[1:]
    if ins.op == "mvout":
        return ins.op, f[0], f[2:]
    return ins.op, f


def _repeats(program: Sequence[Instruction], start: int, n: int) -> tuple[int, int]:
    """How many times instructions ``start .. n-1`` repeat from ``n`` on (timing signatures),
    and how many instructions that took comparing."""
    p, k, compared = n - start, 0, 0
    while n + (k + 1) * p <= len(program):
        for j in range(p):
            compared += 1
            if _timing_sig(program[n + k * p + j]) != _timing_sig(program[start + j]):
                return k, compared
        k += 1
    return k, compared


def _skip(model: _Model, issue: list[int], before: tuple, here: tuple, periods: int
          ) -> tuple[int, int]:
    """Advance ``model`` over ``periods`` repetitions of the instructions between the points
    ``before`` and ``here`` (each ``(n, d, stream, dma, stalls, units)``); the new (d, n)."""
    (n1, d1, stream1, dma1, stalls1, units1), (n2, d2, stream2, dma2, stalls2, units2) = \
        before, here
    delta = d2 - d1
    base = issue[n1:n2]
    for r in range(1, periods + 1):
        issue.extend(x + r * delta for x in base)
    model.shift(periods * delta)
    model.stream += periods * (stream2 - stream1)
    model.dma += periods * (dma2 - dma1)
    model.units += periods * (units2 - units1)
    for cause, value in stalls2.items():
        model.stalls[cause] = value + periods * (value - stalls1.get(cause, 0))
    return d2 + periods * delta, n2 + periods * (n2 - n1)
