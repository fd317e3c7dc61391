"""Amaranth RTL of an :class:`~hw.plan.ArrayPlan`: FUs, interconnect, banks, controller.

One flat, reset-free module (registers start at their initial values; ``start`` re-arms the
controller). Host protocol: ``host_addr = bank << word_bits | word``; ``host_we`` writes
``host_wdata`` while idle; ``host_rdata`` is the word addressed in the previous cycle;
``start`` runs the whole problem; ``busy`` is high for :attr:`ArrayPlan.run_cycles` cycles,
then ``done`` stays high until the next start.

Per-tile activities are :class:`~hw.plan.Window` s: at cycle ``c`` with phase
``phi = c mod period`` and newest tile ``N = c div period``, a window at offset
``q * period + o`` covers tile ``N - q`` (``phi >= o``) or ``N - q - 1`` (``phi < o``).
"""

from __future__ import annotations

from collections import Counter

from amaranth.hdl import (
    ClockDomain,
    ClockSignal,
    Const,
    Instance,
    Module,
    Mux,
    Signal,
    signed,
    unsigned,
)
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .images import HostMap, host_map
from .mac import MacSpec, MacUnit
from .plan import ArrayPlan, Stream, Window

__all__ = ["GeneratedArray"]


def _shape(dtype):
    return signed(dtype.bits) if dtype.signed else unsigned(dtype.bits)


def _name(prefix: str, coord) -> str:
    return prefix + "_" + "_".join(map(str, coord))


class GeneratedArray(wiring.Component):
    """The generated accelerator for ``plan`` (see the module docstring for the protocol)."""

    #: How FUs are built: "instance" (one Verilog module, instantiated per FU: fast emission,
    #: see :meth:`verilog_dependencies`) or "inline" (Amaranth submodules: Amaranth's
    #: simulator can run it).
    FU_STYLES = ("instance", "inline")

    def __init__(self, plan: ArrayPlan, fu_style: str = "instance") -> None:
        if fu_style not in self.FU_STYLES:
            self._MustUse__silence = True   # never elaborated: no UnusedElaboratable warning
            raise ValueError(f"fu_style must be one of {self.FU_STYLES}, got {fu_style!r}")
        self.plan = plan
        self.fu_style = fu_style
        out = plan.output
        a_in, b_in = (t.tensor for t in plan.inputs)
        self.mac = MacSpec(a_in.dtype, b_in.dtype, out.tensor.dtype.bits)
        self.stationary = out.vector is not None and out.vector.kind == "stationary"
        self.host: HostMap = host_map(plan)
        bank_bits = max(1, (len(plan.banks) - 1).bit_length())
        self.addr_bits = bank_bits + self.host.word_bits
        #: register bits by purpose, filled in by elaborate() (the report's numbers).
        self.register_bits: Counter[str] = Counter()
        self.domain = ClockDomain("sync", reset_less=True)
        super().__init__({
            "host_addr": In(self.addr_bits), "host_wdata": In(self.host.data_bits),
            "host_we": In(1), "host_rdata": Out(self.host.data_bits),
            "start": In(1), "busy": Out(1), "done": Out(1),
        })

    @property
    def fu_module(self) -> str:
        return f"{self.plan.spec.name}_fu"

    def verilog_dependencies(self) -> list[str]:
        """Verilog of the modules that the emitted top instantiates (the FU, once)."""
        if self.fu_style != "instance":
            return []
        from amaranth.back import verilog

        text = verilog.convert(MacUnit(self.mac, self.stationary), name=self.fu_module,
                               emit_src=False,
                               missing_domain=lambda n: ClockDomain(n, reset_less=True))
        return [text]

    def _fu(self, m, name):
        """An FU: a MacUnit submodule, or an Instance of the FU module with MacUnit's ports."""
        if self.fu_style == "inline":
            m.submodules[name] = unit = MacUnit(self.mac, self.stationary)
            return unit
        sig = MacUnit.fu_signature(self.mac, self.stationary)
        nets = sig.flip().create(path=(name,))      # the instance's nets, as unit.<port>
        ports = {("i_" if member.flow == In else "o_") + pname: getattr(nets, pname)
                 for pname, member in sig.members.items()}
        if self.stationary:         # only the accumulating FU has state (and a clock)
            ports["i_clk"] = ClockSignal("sync")
        m.submodules[name] = Instance(self.fu_module, **ports)
        return nets

    # -- registers, counted by purpose -------------------------------------------------------
    def _reg(self, m, shape, name, purpose, init=0):
        sig = Signal(shape, name=name, init=init)
        self.register_bits[purpose] += len(sig)
        return sig

    def _delayed(self, m, value, cycles, name, purpose):
        for k in range(cycles):
            reg = self._reg(m, value.shape(), f"{name}_d{k}", purpose)
            m.d.sync += reg.eq(value)
            value = reg
        return value

    def elaborate(self, platform) -> Module:
        m = Module()
        m.domains.sync = self.domain
        self.register_bits.clear()
        plan, op = self.plan, self.plan.spec.op
        ctl = _Controller(self, m)

        # Banks with one read and one write port each, shared by host (idle) and datapath.
        word = self.host_addr[:self.host.word_bits]
        sel = self.host_addr[self.host.word_bits:]
        ports = []
        for b, bank in enumerate(plan.banks):
            dtype = next(t for t in op.tensors if t.name == bank.tensor).dtype
            mem = Memory(shape=unsigned(dtype.bits), depth=bank.depth, init=[])
            m.submodules[f"bank{b}_{bank.tensor}"] = mem
            wp = mem.write_port()
            rp = mem.read_port(transparent_for=(wp,))
            # Yosys maps a synchronous read port to a registered read address.
            self.register_bits["memory read addresses"] += (bank.depth - 1).bit_length()
            ports.append((rp, wp))
            m.d.comb += [rp.addr.eq(word), wp.addr.eq(word), wp.data.eq(self.host_wdata),
                         wp.en.eq(~self.busy & self.host_we & (sel == b))]
        sel_q = self._reg(m, len(sel), "host_sel", "host port")
        m.d.sync += sel_q.eq(sel)
        with m.Switch(sel_q):
            for b, (rp, _) in enumerate(ports):
                with m.Case(b):
                    m.d.comb += self.host_rdata.eq(rp.data)
            with m.Default():
                m.d.comb += self.host_rdata.eq(0)

        # Input operands: memory roots, then children through their delay lines.
        operands = {}
        for tree in plan.inputs:
            x = tree.tensor
            vals = {}
            for stream in plan.streams:
                if stream.tensor == x.name:
                    rp = ports[stream.bank][0]
                    active, addr = ctl.address(stream)
                    with m.If(active):      # the streams sharing a bank take turns
                        m.d.comb += rp.addr.eq(addr)
                    v = Signal(_shape(x.dtype), name=_name(x.name, stream.root))
                    m.d.comb += v.eq(rp.data)
                    vals[stream.root] = v
            for f in _topological(tree.parent):
                if f not in vals:
                    p, delay = tree.parent[f]
                    vals[f] = self._delayed(m, vals[p], delay, _name(x.name, f),
                                            "operand forwarding")
            operands[x.name] = vals

        # FUs: one MacUnit each; partial sums stay in the FU or travel a chain.
        out = plan.output
        c_shape = signed(out.tensor.dtype.bits)
        a_in, b_in = (t.tensor for t in plan.inputs)
        mac, stationary = self.mac, self.stationary
        finals = {}
        order = list(plan.fus)
        if out.vector is not None:      # upstream FUs of a chain first
            order.sort(key=lambda f: sum(a * b for a, b in zip(f, out.vector.d_space,
                                                               strict=True)))
        for f in order:
            win = plan.fus[f]
            fu = self._fu(m, _name("fu", f))
            m.d.comb += [fu.a.eq(operands[a_in.name][f]), fu.b.eq(operands[b_in.name][f])]
            if out.vector is None:          # no reduction inside a tile: every product is final
                m.d.comb += fu.first.eq(1)
            else:
                m.d.comb += fu.first.eq(ctl.any_active(out.first[f]))
            if stationary:
                m.d.comb += fu.en.eq(ctl.active(win))
                self.register_bits["accumulators"] += mac.acc_bits
            elif out.vector is not None:
                up = tuple(a - b for a, b in zip(f, out.vector.d_space, strict=True))
                psum_in = Const(0, c_shape)     # a chain's first FU starts from zero
                if up in finals:
                    psum_in = self._delayed(m, finals[up], out.vector.d_time, _name("psum", up),
                                            "partial-sum forwarding")
                m.d.comb += fu.psum_in.eq(psum_in)
            else:
                m.d.comb += fu.psum_in.eq(0)
            finals[f] = fu.sum

        # Output write-back, one registered stage per bank (its streams take turns); when a
        # reduction spans tiles it reads, adds and writes back (the first tile overwrites).
        rmw = plan.accumulates_across_tiles
        for b, bank in enumerate(plan.banks):
            if bank.tensor != out.tensor.name:
                continue
            rp, wp = ports[b]
            depth_shape = range(max(bank.depth, 2))
            en_q = self._reg(m, 1, f"wb{b}_en", "write-back")
            addr_q = self._reg(m, depth_shape, f"wb{b}_addr", "write-back")
            val_q = self._reg(m, c_shape, f"wb{b}_val", "write-back")
            fresh_q = self._reg(m, 1, f"wb{b}_fresh", "write-back") if rmw else None
            any_write = Const(0, 1)
            for k in bank.members:
                stream = plan.streams[k]
                _, addr = ctl.address(stream)
                write = ctl.any_active(out.write[stream.root])
                any_write = any_write | write
                with m.If(write):
                    m.d.sync += [addr_q.eq(addr), val_q.eq(finals[stream.root])]
                    if rmw:
                        m.d.sync += fresh_q.eq(ctl.history_bit(stream.window))
                        m.d.comb += rp.addr.eq(addr)
            m.d.sync += en_q.eq(self.busy & any_write)
            with m.If(self.busy):
                m.d.comb += [wp.addr.eq(addr_q), wp.en.eq(en_q),
                             wp.data.eq(Mux(fresh_q, 0, rp.data) + val_q if rmw else val_q)]
        return m


def _topological(parent):
    """FUs ordered so that every parent precedes its children."""
    order, seen = [], set()
    for f in parent:
        chain = []
        while f not in seen and f is not None:
            chain.append(f)
            seen.add(f)
            f = parent[f][0]
        order.extend(reversed(chain))
    return order


class _Controller:
    """Cycle, phase and tile counters; window conditions; address bases; shared comparators."""

    def __init__(self, top: GeneratedArray, m: Module) -> None:
        self.top, self.m = top, m
        plan = top.plan
        self.period = plan.period
        self.max_lag = max(_lag(w, plan.period) for w in _all_windows(plan)) + 1
        self.cycle = top._reg(m, range(plan.run_cycles + 1), "cycle", "control")
        self.phase = top._reg(m, range(max(plan.period, 2)), "phase", "control")
        self.tile = top._reg(m, range(plan.n_tiles + self.max_lag + 2), "tile", "control")
        self._cache = {}
        top.register_bits["control"] += 2      # busy, done
        last = plan.run_cycles - 1
        with m.If(top.start & ~top.busy):
            m.d.sync += [self.cycle.eq(0), self.phase.eq(0), self.tile.eq(0), top.busy.eq(1),
                         top.done.eq(0)]
        with m.Elif(top.busy):
            m.d.sync += self.cycle.eq(self.cycle + 1)
            with m.If(self.phase == plan.period - 1):
                m.d.sync += [self.phase.eq(0), self.tile.eq(self.tile + 1)]
            with m.Else():
                m.d.sync += self.phase.eq(self.phase + 1)
            with m.If(self.cycle == last):
                m.d.sync += [top.busy.eq(0), top.done.eq(1)]
        self.advance = (self.phase == plan.period - 1) & top.busy
        self.restart = top.start & ~top.busy
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
        plan, m = self.top.plan, self.m
        dims = plan.spec.op.dims
        self.counters = {}
        for name in plan.spec.dataflow.outer_order:
            d = dims.index(name)
            if plan.n_tiles_per_dim[d] > 1:
                self.counters[d] = self.top._reg(m, range(plan.n_tiles_per_dim[d]),
                                                 f"tile_{name}", "control")
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
        plan, m, top = self.top.plan, self.m, self.top
        if stream.entries == 1:
            return None
        width = (stream.depth * 2).bit_length()
        hist = [top._reg(m, width, f"base_{stream.tensor}_{k}", "address generators")
                for k in range(self.max_lag + 1)]
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
        plan, m, top = self.top.plan, self.m, self.top
        out = plan.output.tensor
        red = [d for d in self.counters if not any(row[d] for row in out.access)]
        hist = [top._reg(m, 1, f"fresh_{k}", "control", init=1)
                for k in range(self.max_lag + 1)]
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
        n = self.top.plan.n_tiles
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
            live = Mux(ge, self._exists(q), self._exists(q + 1))
            self.m.d.comb += act.eq(self.top.busy & (pos < w.length) & live)
            return act, pos, ge, q
        return self._memo(("win", w), make)

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

    def address(self, stream: Stream):
        """(window active, address in the stream's bank) of ``stream``."""
        def make():
            act, pos, ge, q = self.window(stream.window)
            hist = self._bases[stream.tensor]
            base = 0 if hist is None else Mux(ge, hist[q], hist[q + 1])
            depth = self.top.plan.banks[stream.bank].depth
            addr = Signal(range(max(depth, 2)), name=_name(f"addr_{stream.tensor}", stream.root))
            self.m.d.comb += addr.eq(stream.offset + (base + pos if stream.stream else base))
            return act, addr
        return self._memo(("addr", stream.tensor, stream.root), make)

    def history_bit(self, w: Window):
        _, _, ge, q = self.window(w)
        return Mux(ge, self._fresh[q], self._fresh[q + 1])


def _lag(w: Window, period: int) -> int:
    return w.start // period + 1


def _all_windows(plan: ArrayPlan):
    yield from plan.fus.values()
    for stream in plan.streams:
        yield stream.window
    for ws in (*plan.output.first.values(), *plan.output.write.values()):
        yield from ws

