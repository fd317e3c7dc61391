"""Amaranth RTL of one or several :class:`~hw.front.plan.ArrayPlan` s: FUs, interconnect, banks.

One flat, reset-free module in its parent's ``sync`` domain (registers start at their initial
values; ``start`` re-arms the controller; :func:`hw.rtl.emit.to_verilog` supplies a reset-less
domain to a top it emits). Its datapath is what :func:`hw.ir.datapath.describe_datapath` says
(the back end's lowering reads the same description).

Host protocol: ``host_addr = bank << word_bits | word``; ``host_we`` writes ``host_wdata``
while idle; ``host_rdata`` is the word addressed in the previous cycle;
``start`` runs the whole problem; ``busy`` is high for :meth:`GeneratedArray.run_cycles`
cycles (the plan's, plus a pipelined datapath's latency, plus one cycle where write-back reads
the FUs' accumulator registers), then ``done`` stays high until the next start.

Fusion: given several plans (dataflows) over the same array and FU arithmetic, one array
serves them all; the ``mode`` port (latched at ``start``) selects the dataflow. The k-th bank
of each tensor role is one physical memory (deepest wins); an FU input with different sources
in different modes gets a mux; forwarding registers with the same source and delay are one.

Layer: hw.rtl, the Amaranth layer.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

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
from amaranth.lib.wiring import In

from ..cost import accumulates_in_fu, accumulator_read
from ..front.fusion import FusionError
from ..front.images import HostMap, host_map
from ..front.layout import roles as _roles
from ..front.plan import ArrayPlan
from ..ir.backend import BackendOptions, optimize_datapath
from ..ir.datapath import Read, describe_datapath
from ..ir.lower import lower
from .controller import TileController, fu_control
from .graph_datapath import graph_datapath
from .mac import MacUnit
from .ports import array_signature
from .registers import RegisterCounter

__all__ = ["GeneratedArray", "accumulates_in_fu"]


def _shape(dtype):
    return signed(dtype.bits) if dtype.signed else unsigned(dtype.bits)


def _name(prefix: str, coord) -> str:
    return prefix + "_" + "_".join(map(str, coord))


class GeneratedArray(wiring.Component):
    """The generated accelerator for ``plans``: one dataflow, or several fused (mode ``i``
    runs ``plans[i]``; see the module docstring)."""

    #: How FUs are built: "instance" (one Verilog module, instantiated per FU: fast emission,
    #: see :meth:`verilog_dependencies`) or "inline" (Amaranth submodules: Amaranth's
    #: simulator can run it).
    FU_STYLES = ("instance", "inline")

    def __init__(self, plans: Sequence[ArrayPlan], fu_style: str = "instance",
                 backend: BackendOptions | None = None) -> None:
        if isinstance(plans, ArrayPlan):
            self._MustUse__silence = True   # never elaborated: no UnusedElaboratable warning
            raise TypeError("GeneratedArray takes a sequence of plans: pass [plan]")
        plans = list(plans)
        if fu_style not in self.FU_STYLES or not plans:
            self._MustUse__silence = True
            if not plans:
                raise ValueError("GeneratedArray needs at least one plan")
            raise ValueError(f"fu_style must be one of {self.FU_STYLES}, got {fu_style!r}")
        try:
            #: what feeds every FU input, partial sum and output bank (both datapaths read it)
            self.description = describe_datapath(plans)
        except FusionError:
            self._MustUse__silence = True
            raise
        self.plans, self.plan, self.fu_style = plans, plans[0], fu_style
        self.mac = self.description.mac
        self.stationary = accumulates_in_fu(plans)
        self._layout()
        #: With ``backend``, the datapath is lowered to a primitive graph, optimized
        #: (:mod:`hw.backend`) and emitted from it; ``latency``: its pipeline depth.
        self.backend, self.datapath, self.latency = backend, None, 0
        if backend is not None:
            self.lowered = lower(self.description)
            try:
                self.datapath = optimize_datapath(self.lowered, backend)
            except ValueError:
                self._MustUse__silence = True       # rejected: never elaborated
                raise
            self.latency = self.datapath.latency
        #: Cycles between a plan's write-back window and the cycle the value is taken: an
        #: accumulating FU's register holds the final sum one cycle after its last MAC, and
        #: write-back reads the register then (no combinational sum in the write-back path).
        self.write_shift = accumulator_read(plans, backend)
        bank_bits = max(1, (len(self.banks) - 1).bit_length())
        self.addr_bits = bank_bits + self.word_bits
        #: registers outside the FUs; their bits by purpose (``register_bits``, filled in by
        #: elaborate()) are the report's numbers.
        self.registers = RegisterCounter()
        self.register_bits: Counter[str] = self.registers.bits
        # No clock domain of its own: the array runs in its parent's ``sync`` (to_verilog
        # supplies a reset-less one to a top it emits).
        super().__init__(array_signature(self.addr_bits, self.host.data_bits, len(plans)))

    def _layout(self) -> None:
        """Physical banks: the k-th bank of each tensor role across all plans."""
        layout = self.description.layout
        self.banks, self.word_bits = list(layout.banks), layout.word_bits
        self.bank_of = list(layout.bank_of)
        self.hosts: list[HostMap] = [host_map(p, self.bank_of[i], self.word_bits)
                                     for i, p in enumerate(self.plans)]
        self.host = self.hosts[0]

    def run_cycles(self, mode: int = 0) -> int:
        """Cycles ``busy`` is high for a run of dataflow ``mode``: the plan's, plus the latency
        of a pipelined datapath or the cycle of an accumulator's write-back read."""
        return self.plans[mode].run_cycles + self.latency + self.write_shift

    @property
    def fu_module(self) -> str:
        """Name of the FU module: the spec's name and what the FU is, so that arrays of other
        arithmetic in one Verilog text never collide: ``<name>_fu_<a>x<b>_a<acc bits>``
        (``i8`` int8, ``u4`` uint4), ``_s`` when it accumulates in place (stationary)."""
        def t(x):
            return f"{'i' if x.signed else 'u'}{x.bits}"
        mac = self.mac
        return (f"{self.plan.spec.name}_fu_{t(mac.a_type)}x{t(mac.b_type)}_a{mac.acc_bits}"
                + ("_s" if self.stationary else ""))

    def verilog_dependencies(self) -> list[str]:
        """Verilog of the modules that the emitted top instantiates (the FU, once)."""
        if self.fu_style != "instance" or self.backend is not None:
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

    def elaborate(self, platform) -> Module:
        m = Module()
        self.register_bits.clear()
        ctls, mode = self._controllers(m)
        ports = self._memories(m)
        self._read_addresses(m, ctls, ports)
        if self.datapath is not None:
            values = graph_datapath(m, self.description, self.lowered, self.datapath.graph,
                                    ctls, mode, ports, self.registers)
            self._write_back(m, ctls, ports, values=values)
            return m
        operands = self._operands(m, mode, ports)
        sums = self._fus(m, ctls, mode, operands)
        self._write_back(m, ctls, ports, sums)
        return m

    def _controllers(self, m):
        go_any = self.start & ~self.busy
        if len(self.plans) == 1:
            self.register_bits["control"] += 2      # busy, done
            return [TileController(self.registers, m, self.plan, busy=self.busy, done=self.done,
                                   go=go_any, clear=go_any, tail=self.latency + self.write_shift,
                                   write_shift=self.write_shift)], None
        mode = self.registers.reg(range(len(self.plans)), "mode_q", "control")
        with m.If(go_any):
            m.d.sync += mode.eq(self.mode)
        self.register_bits["control"] += 1          # done
        ctls, busy_any = [], Const(0, 1)
        for i, plan in enumerate(self.plans):
            busy = self.registers.reg(1, f"m{i}_busy", "control")
            ctls.append(TileController(self.registers, m, plan, busy=busy, done=self.done,
                                       go=go_any & (self.mode == i), clear=go_any,
                                       tag=f"m{i}_", tail=self.latency))
            busy_any = busy_any | busy
        m.d.comb += self.busy.eq(busy_any)
        return ctls, mode

    def _memories(self, m):
        """Banks with one read and one write port each, shared by host (idle) and datapath."""
        word = self.host_addr[:self.word_bits]
        sel = self.host_addr[self.word_bits:]
        ports = []
        for b, (role, depth) in enumerate(self.banks):
            dtype = _roles(self.plan)[role].dtype
            mem = Memory(shape=unsigned(dtype.bits), depth=depth, init=[])
            m.submodules[f"bank{b}_{_roles(self.plan)[role].name}"] = mem
            wp = mem.write_port()
            rp = mem.read_port(transparent_for=(wp,))
            # Yosys maps a synchronous read port to a registered read address.
            self.register_bits["memory read addresses"] += (depth - 1).bit_length()
            ports.append((rp, wp))
            m.d.comb += [rp.addr.eq(word), wp.addr.eq(word), wp.data.eq(self.host_wdata),
                         wp.en.eq(~self.busy & self.host_we & (sel == b))]
        sel_q = self.registers.reg(len(sel), "host_sel", "host port")
        m.d.sync += sel_q.eq(sel)
        with m.Switch(sel_q):
            for b, (rp, _) in enumerate(ports):
                with m.Case(b):
                    m.d.comb += self.host_rdata.eq(rp.data)
            with m.Default():
                m.d.comb += self.host_rdata.eq(0)
        return ports

    def _read_addresses(self, m, ctls, ports):
        """Input banks: each stream drives its bank's read address in its window (the
        streams sharing a bank take turns)."""
        for role in range(2):
            for i, (plan, ctl) in enumerate(zip(self.plans, ctls, strict=True)):
                for stream in plan.streams:
                    if stream.tensor == plan.inputs[role].tensor.name:
                        rp = ports[self.bank_of[i][stream.bank]][0]
                        active, addr = ctl.address(stream)
                        with m.If(active):
                            m.d.comb += rp.addr.eq(addr)

    def _operands(self, m, mode, ports):
        """Per input role and FU: the operand (roots read banks, children forward)."""
        operands = []
        for x in self.description.operands:
            value = {f: Signal(_shape(x.dtype), name=_name(x.name, f)) for f in sorted(x.sources)}
            cache: dict = {}
            for i in range(len(self.plans)):
                in_mode = {f: s for f, by_mode in x.sources.items()
                           for j, s in by_mode if j == i}
                src = {f: ports[s.bank][0].data for f, s in in_mode.items()
                       if isinstance(s, Read)}
                for f, s in in_mode.items():
                    if not isinstance(s, Read):
                        src[f] = self.registers.delayed(m, value[s.parent], s.delay,
                                                        _name(x.name, f), "operand forwarding",
                                                        cache)
                if mode is None:
                    m.d.comb += [value[f].eq(s) for f, s in src.items()]
                else:
                    with m.If(mode == i):
                        m.d.comb += [value[f].eq(s) for f, s in src.items()]
            operands.append(value)
        return operands

    def _fus(self, m, ctls, mode, operands):
        """One MacUnit per FU; partial sums stay in the FU or travel a chain."""
        c_shape = signed(self.mac.acc_bits)
        fus = self.description.fus
        units = {f: self._fu(m, _name("fu", f)) for f in fus}
        # write-back reads an accumulating FU's register (write_shift), a chain's last sum
        sums = {f: u.acc if self.stationary else u.sum for f, u in units.items()}
        cache: dict = {}
        for f, fu in units.items():
            m.d.comb += [fu.a.eq(operands[0][f]), fu.b.eq(operands[1][f])]
            first, enable = fu_control(ctls, fus[f])
            sources = [(i, s if s == "acc" else
                        self.registers.delayed(m, sums[s[0]], s[1], _name("psum", s[0]),
                                               "partial-sum forwarding", cache))
                       for i, s in fus[f].psum]
            m.d.comb += fu.first.eq(first)
            if self.stationary:
                m.d.comb += fu.en.eq(enable)
                self.register_bits["accumulators"] += self.mac.acc_bits
                continue
            acc = None
            if fus[f].accumulator:                  # some mode accumulates here
                acc = self.registers.reg(c_shape, _name("acc", f), "accumulators")
                with m.If(enable):
                    m.d.sync += acc.eq(fu.sum)
            for i, s in sources:
                s = acc if isinstance(s, str) else s
                if mode is None:
                    m.d.comb += fu.psum_in.eq(s)
                else:
                    with m.If(mode == i):
                        m.d.comb += fu.psum_in.eq(s)
        return sums

    def _write_back(self, m, ctls, ports, sums=None, values=None):
        """One registered stage per output bank (its streams take turns); a reduction that
        spans tiles reads, adds and writes back (the first tile overwrites).

        ``values``: the write-back values of a graph datapath (registered there, ``latency``
        cycles late): the write address, enable and overwrite flag are delayed to match.
        Without, the plan's write windows are used ``write_shift`` cycles late."""
        c_shape = signed(self.mac.acc_bits)
        rmw = any(p.accumulates_across_tiles for p in self.plans)
        shift = 0 if values is not None else self.write_shift
        regs = self.registers
        for b, writers in self.description.writers.items():
            depth = self.banks[b][1]
            rp, wp = ports[b]
            en_q = regs.reg(1, f"wb{b}_en", "write-back")
            addr_q = regs.reg(range(max(depth, 2)), f"wb{b}_addr", "write-back")
            if values is None:
                val_q = regs.reg(c_shape, f"wb{b}_val", "write-back")
            else:
                val_q = values[b]
            fresh_q = regs.reg(1, f"wb{b}_fresh", "write-back") if rmw else None
            addr_sel = Signal(range(max(depth, 2)), name=f"wb{b}_addr_sel")
            fresh_sel = Signal(name=f"wb{b}_fresh_sel") if rmw else None
            any_write = Const(0, 1)
            for w in writers:
                ctl, plan = ctls[w.mode], self.plans[w.mode]
                _, addr = ctl.address(w.stream, shift)
                write = ctl.any_active([ctl.shifted(win, shift) for win in w.windows])
                any_write = any_write | write
                with m.If(write):
                    m.d.comb += addr_sel.eq(addr)
                    if values is None:
                        m.d.sync += val_q.eq(sums[w.root])
                    if rmw:
                        m.d.comb += fresh_sel.eq(ctl.history_bit(
                                                     ctl.shifted(w.stream.window, shift))
                                                 if plan.accumulates_across_tiles else 1)
            # a pipelined datapath delivers its values `latency` cycles late: so does this
            write, addr = (regs.delayed(m, v, self.latency, f"wb{b}_{what}", "write-back")
                           for v, what in ((any_write, "write"), (addr_sel, "addr")))
            fresh = (regs.delayed(m, fresh_sel, self.latency, f"wb{b}_fresh", "write-back")
                     if rmw else None)
            with m.If(write):
                m.d.sync += addr_q.eq(addr)
                if rmw:
                    m.d.sync += fresh_q.eq(fresh)
                    m.d.comb += rp.addr.eq(addr)
            m.d.sync += en_q.eq(self.busy & write)
            with m.If(self.busy):
                m.d.comb += [wp.addr.eq(addr_q), wp.en.eq(en_q),
                             wp.data.eq(Mux(fresh_q, 0, rp.data) + val_q if rmw else val_q)]
