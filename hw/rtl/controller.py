"""The controller of one dataflow: counters, per-tile windows, address generators.

At cycle ``c`` of a run (phase ``phi = c mod period``, newest tile ``N = c div period``) a
window at offset ``q * period + o`` covers tile ``N - q`` (``phi >= o``) or ``N - q - 1``
(``phi < o``); it is active while that tile exists. Address bases per tensor are kept for the
last few tiles and stepped by constant deltas when a tile counter advances (no multipliers).

Layer: hw.rtl, the Amaranth layer.
"""

from __future__ import annotations

from amaranth.hdl import Const, Module, Mux, Signal

from ..cost import controller_shape
from ..front.plan import ArrayPlan, Stream, Window
from ..ir.datapath import FuDatapath
from .registers import RegisterCounter

__all__ = ["TileController", "fu_control"]


def _name(prefix: str, coord) -> str:
    return prefix + "_" + "_".join(map(str, coord))


class TileController:
    """Cycle, phase and tile counters of one plan; window conditions; address bases.

    It owns ``busy`` (high for ``plan.run_cycles + tail`` cycles after ``go``; ``tail``: the
    latency of a pipelined datapath, whose last results arrive that much later) and raises
    ``done`` at the end; ``clear`` drops ``done`` (any start). Window activity includes
    ``busy``, so the controllers of a fused array's idle dataflows drive nothing.
    """

    def __init__(self, registers: RegisterCounter, m: Module, plan: ArrayPlan, *, busy: Signal,
                 done: Signal, go, clear, tag: str = "", tail: int = 0,
                 write_shift: int = 0) -> None:
        self.registers, self.m, self.plan, self.tag = registers, m, plan, tag
        self.busy, self.done = busy, done
        self.period = plan.period
        self.shape = shape = controller_shape(plan, tail, write_shift)
        run = plan.run_cycles + tail
        self.cycle = registers.reg(range(shape.cycle_range), f"{tag}cycle", "control")
        self.phase = registers.reg(range(shape.phase_range), f"{tag}phase", "control")
        self.tile = registers.reg(range(shape.tile_range), f"{tag}tile", "control")
        self._cache = {}
        last = run - 1
        with m.If(clear):
            m.d.sync += done.eq(0)
        with m.If(go):
            m.d.sync += [self.cycle.eq(0), self.phase.eq(0), self.tile.eq(0), busy.eq(1)]
        with m.Elif(busy):
            m.d.sync += self.cycle.eq(self.cycle + 1)
            with m.If(self.phase == plan.period - 1):
                m.d.sync += [self.phase.eq(0), self.tile.eq(self.tile + 1)]
            with m.Else():
                m.d.sync += self.phase.eq(self.phase + 1)
            with m.If(self.cycle == last):
                m.d.sync += [busy.eq(0), done.eq(1)]
        self.advance = (self.phase == plan.period - 1) & busy
        self.restart = go
        self._tile_counters()
        self._bases = {}
        for stream in plan.streams:
            if stream.tensor not in self._bases:
                self._bases[stream.tensor] = self._base_history(stream)
        self._fresh = self._fresh_history()

    def _memo(self, key, make):
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    def _tile_counters(self):
        plan, m = self.plan, self.m
        dims = plan.spec.op.dims
        self.counters = {d: self.registers.reg(range(n), f"{self.tag}tile_{dims[d]}", "control")
                         for d, n in self.shape.counters}
        self.carry, self.wrap = {}, {}
        inner_done = Const(1, 1)
        with m.If(self.restart):
            m.d.sync += [c.eq(0) for c in self.counters.values()]
        for d in reversed(list(self.counters)):
            c = self.counters[d]
            wraps = c == plan.n_tiles_per_dim[d] - 1
            self.carry[d] = Signal(name=f"step_{dims[d]}")
            self.wrap[d] = Signal(name=f"wrap_{dims[d]}")
            self.m.d.comb += [self.carry[d].eq(self.advance & inner_done & ~wraps),
                              self.wrap[d].eq(self.advance & inner_done & wraps)]
            with m.If(self.advance & inner_done):
                m.d.sync += c.eq(Mux(wraps, 0, c + 1))
            inner_done = inner_done & wraps

    def _base_history(self, stream: Stream):
        """Word base of the stream's tensor for tiles N, N-1, ...: a delta per stepping dim."""
        plan, m, registers = self.plan, self.m, self.registers
        width = dict(self.shape.base_bits).get(stream.tensor)
        if width is None:                   # one entry: the base is always 0
            return None
        hist = [registers.reg(width, f"{self.tag}base_{stream.tensor}_{k}", "address generators")
                for k in range(self.shape.history)]
        order = list(self.counters)
        with m.If(self.restart):
            m.d.sync += [h.eq(0) for h in hist]
        for pos, d in enumerate(order):
            inner = order[pos + 1:]
            delta = stream.strides[d] - sum(stream.strides[e] * (plan.n_tiles_per_dim[e] - 1)
                                            for e in inner)
            with m.If(self.carry[d]):
                m.d.sync += hist[0].eq(hist[0] + delta * stream.words_per_tile)
        with m.If(self.advance):
            m.d.sync += [hist[k].eq(hist[k - 1]) for k in range(1, len(hist))]
        return hist

    def _fresh_history(self):
        """Per tile: is it the first tile of every reduction dim (so outputs overwrite)?"""
        plan, m, registers = self.plan, self.m, self.registers
        out = plan.output.tensor
        red = [d for d in self.counters if not any(row[d] for row in out.access)]
        hist = [registers.reg(1, f"{self.tag}fresh_{k}", "control", init=1)
                for k in range(self.shape.history)]
        nxt = Const(1, 1)
        for d in red:   # the next tile's coordinate of d is 0: d wraps, or stays at 0
            nxt = nxt & ~self.carry[d] & ((self.counters[d] == 0) | self.wrap[d])
        with m.If(self.restart):
            m.d.sync += [h.eq(1) for h in hist]
        with m.Elif(self.advance):
            m.d.sync += [hist[0].eq(nxt)] + [hist[k].eq(hist[k - 1]) for k in range(1, len(hist))]
        return hist

    def _phase_ge(self, o):
        if o == 0:
            return Const(1, 1)
        return self._memo(("ge", o), lambda: self._sig(self.phase >= o, f"ph_ge_{o}"))

    def _exists(self, lag):
        n = self.plan.n_tiles
        lower = (self.tile >= lag) if lag else Const(1, 1)
        return self._memo(("ex", lag), lambda: self._sig(
            lower & (self.tile < n + lag), f"tile_live_{lag}"))

    def _sig(self, expr, name):
        s = Signal(name=name)
        self.m.d.comb += s.eq(expr)
        return s

    def window(self, w: Window):
        """(active, position in window, lag-selector) for window ``w``."""
        def make():
            q, o = divmod(w.start, self.period)
            ge = self._phase_ge(o)
            pos = Signal(range(self.period * 2), name=f"pos_{w.start}")
            self.m.d.comb += pos.eq(Mux(ge, self.phase - o, self.phase + (self.period - o)))
            act = Signal(name=f"win_{w.start}_{w.length}")
            self.m.d.comb += act.eq(self.busy & self._in_window(o, w.length, q))
            return act, pos, ge, q
        return self._memo(("win", w), make)

    def _in_window(self, o: int, length: int, q: int):
        """``pos < length`` and the tile exists, from phase compares alone (no subtraction):
        the window is ``[o, o + length)`` of the phase, tile ``N - q``, wrapping into the next
        period (tile ``N - q - 1``) when ``o + length > period``."""
        ge, period = self._phase_ge(o), self.period
        if length >= period:                # pos < period <= length: always inside
            return Mux(ge, self._exists(q), self._exists(q + 1))
        if o + length <= period:            # no wrap: phase in [o, o + length)
            below_end = (Const(1, 1) if o + length == period
                         else ~self._phase_ge(o + length))
            return ge & below_end & self._exists(q)
        # wraps: [o, period) of tile N-q, then [0, o + length - period) of tile N-q-1
        return Mux(ge, self._exists(q), ~self._phase_ge(o + length - period)
                   & self._exists(q + 1))

    def active(self, w: Window):
        return self.window(w)[0]

    def any_active(self, ws):
        if not ws:
            return Const(0, 1)
        key = ("any", tuple(ws))
        def make():
            s = Signal(name=f"any_{ws[0].start}_{len(ws)}")
            expr = Const(0, 1)
            for w in ws:
                expr = expr | self.active(w)
            self.m.d.comb += s.eq(expr)
            return s
        return self._memo(key, make)

    @staticmethod
    def shifted(w: Window, cycles: int) -> Window:
        """``w``, ``cycles`` later in every tile."""
        return Window(w.start + cycles, w.length) if cycles else w

    def address(self, stream: Stream, shift: int = 0):
        """(window active, address in the stream's bank) of ``stream``; ``shift``: the same,
        ``shift`` cycles later."""
        def make():
            act, pos, ge, q = self.window(self.shifted(stream.window, shift))
            hist = self._bases[stream.tensor]
            base = 0 if hist is None else Mux(ge, hist[q], hist[q + 1])
            depth = self.plan.banks[stream.bank].depth
            addr = Signal(range(max(depth, 2)), name=_name(f"addr_{stream.tensor}", stream.root))
            self.m.d.comb += addr.eq(stream.offset + (base + pos if stream.stream else base))
            return act, addr
        return self._memo(("addr", stream.tensor, stream.root, shift), make)

    def history_bit(self, w: Window):
        _, _, ge, q = self.window(w)
        return Mux(ge, self._fresh[q], self._fresh[q + 1])


def fu_control(ctls: list[TileController], fu: FuDatapath):
    """(first, enable) of an FU: restart its partial sum / load its accumulator, in whichever
    mode runs (``ctls[i]``: mode ``i``'s controller; an idle controller drives nothing)."""
    first, enable = Const(0, 1), Const(0, 1)
    firsts, enables = dict(fu.first), dict(fu.enable)
    for i in sorted(firsts.keys() | enables.keys()):
        ctl = ctls[i]
        if i in firsts:
            ws = firsts[i]
            first = first | (ctl.busy if ws is None else ctl.any_active(ws))
        if i in enables:
            enable = enable | ctl.active(enables[i])
    return first, enable
