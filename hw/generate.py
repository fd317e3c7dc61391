"""Amaranth RTL of one or several :class:`~hw.plan.ArrayPlan` s: FUs, interconnect, banks.

One flat, reset-free module (registers start at their initial values; ``start`` re-arms the
controller). Host protocol: ``host_addr = bank << word_bits | word``; ``host_we`` writes
``host_wdata`` while idle; ``host_rdata`` is the word addressed in the previous cycle;
``start`` runs the whole problem; ``busy`` is high for :attr:`ArrayPlan.run_cycles` cycles,
then ``done`` stays high until the next start.

Fusion: given several plans (dataflows) over the same array and FU arithmetic, one array
serves them all; the ``mode`` port (latched at ``start``) selects the dataflow. The k-th bank
of each tensor role is one physical memory (deepest wins); an FU input with different sources
in different modes gets a mux; forwarding registers with the same source and delay are one.
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
from amaranth.lib.wiring import In, Out

from .controller import TileController
from .images import HostMap, host_map
from .mac import MacSpec, MacUnit
from .plan import ArrayPlan
from .spec import SpecError

__all__ = ["FusionError", "GeneratedArray"]


class FusionError(SpecError):
    """Dataflows that cannot share one array (the message names the difference)."""


def _shape(dtype):
    return signed(dtype.bits) if dtype.signed else unsigned(dtype.bits)


def _name(prefix: str, coord) -> str:
    return prefix + "_" + "_".join(map(str, coord))


def _roles(plan: ArrayPlan):
    """(input 0, input 1, output) tensors of a plan: fusion matches tensors by role."""
    return plan.inputs[0].tensor, plan.inputs[1].tensor, plan.output.tensor


def _check_fusable(plans: list[ArrayPlan]) -> None:
    first = plans[0]
    for p in plans[1:]:
        a, b = first.spec, p.spec
        if a.array != b.array:
            raise FusionError(f"dataflows {a.dataflow.name!r} and {b.dataflow.name!r} cannot "
                              f"share an array: arrays {a.array} and {b.array}")
        for r, (x, y) in enumerate(zip(_roles(first), _roles(p), strict=True)):
            if x.dtype != y.dtype:
                raise FusionError(f"dataflows {a.dataflow.name!r} and {b.dataflow.name!r} "
                                  f"cannot share FUs: role {r} is {x.dtype} vs {y.dtype}")


class GeneratedArray(wiring.Component):
    """The generated accelerator for ``plan`` (or fused ``plans``; see the module docstring)."""

    #: How FUs are built: "instance" (one Verilog module, instantiated per FU: fast emission,
    #: see :meth:`verilog_dependencies`) or "inline" (Amaranth submodules: Amaranth's
    #: simulator can run it).
    FU_STYLES = ("instance", "inline")

    def __init__(self, plan: ArrayPlan | Sequence[ArrayPlan], fu_style: str = "instance"
                 ) -> None:
        plans = [plan] if isinstance(plan, ArrayPlan) else list(plan)
        if fu_style not in self.FU_STYLES or not plans:
            self._MustUse__silence = True   # never elaborated: no UnusedElaboratable warning
            if not plans:
                raise ValueError("GeneratedArray needs at least one plan")
            raise ValueError(f"fu_style must be one of {self.FU_STYLES}, got {fu_style!r}")
        try:
            _check_fusable(plans)
        except FusionError:
            self._MustUse__silence = True
            raise
        self.plans, self.plan, self.fu_style = plans, plans[0], fu_style
        a_in, b_in, out = _roles(self.plan)
        self.mac = MacSpec(a_in.dtype, b_in.dtype, out.dtype.bits)
        kinds = {p.output.vector.kind if p.output.vector else "none" for p in plans}
        # A single stationary dataflow keeps its accumulator inside the FU module; fused or
        # chained dataflows use the combinational FU and, if needed, an accumulator beside it.
        self.stationary = kinds == {"stationary"} and len(plans) == 1
        self._layout()
        bank_bits = max(1, (len(self.banks) - 1).bit_length())
        self.addr_bits = bank_bits + self.word_bits
        #: register bits by purpose, filled in by elaborate() (the report's numbers).
        self.register_bits: Counter[str] = Counter()
        self.domain = ClockDomain("sync", reset_less=True)
        ports = {
            "host_addr": In(self.addr_bits), "host_wdata": In(self.host.data_bits),
            "host_we": In(1), "host_rdata": Out(self.host.data_bits),
            "start": In(1), "busy": Out(1), "done": Out(1),
        }
        if len(plans) > 1:
            ports["mode"] = In(range(len(plans)))
        super().__init__(ports)

    def _layout(self) -> None:
        """Physical banks: the k-th bank of each tensor role across all plans."""
        per_role: list[list[int]] = [[], [], []]      # depth of each physical bank per role
        remaps = []
        for plan in self.plans:
            names = [t.name for t in _roles(plan)]
            seen = [0, 0, 0]
            remap = {}
            for b, bank in enumerate(plan.banks):
                r = names.index(bank.tensor)
                k = seen[r]
                seen[r] += 1
                if k == len(per_role[r]):
                    per_role[r].append(0)
                per_role[r][k] = max(per_role[r][k], bank.depth)
                remap[b] = (r, k)
            remaps.append(remap)
        offsets = [0, len(per_role[0]), len(per_role[0]) + len(per_role[1])]
        #: physical banks: (role, depth)
        self.banks = [(r, d) for r in range(3) for d in per_role[r]]
        self.word_bits = max(1, (max(d for _, d in self.banks) - 1).bit_length())
        self.bank_of = [{b: offsets[r] + k for b, (r, k) in remap.items()} for remap in remaps]
        self.hosts: list[HostMap] = [host_map(p, self.bank_of[i], self.word_bits)
                                     for i, p in enumerate(self.plans)]
        self.host = self.hosts[0]

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

    def _delayed(self, m, value, cycles, name, purpose, cache=None):
        key = (id(value), cycles)
        if cache is not None and key in cache:
            return cache[key]
        out = value
        for k in range(cycles):
            reg = self._reg(m, out.shape(), f"{name}_d{k}", purpose)
            m.d.sync += reg.eq(out)
            out = reg
        if cache is not None:
            cache[key] = out
        return out

    def elaborate(self, platform) -> Module:
        m = Module()
        m.domains.sync = self.domain
        self.register_bits.clear()
        ctls, mode = self._controllers(m)
        ports = self._memories(m)
        operands = self._operands(m, ctls, mode, ports)
        sums = self._fus(m, ctls, mode, operands)
        self._write_back(m, ctls, ports, sums)
        return m

    def _controllers(self, m):
        go_any = self.start & ~self.busy
        if len(self.plans) == 1:
            self.register_bits["control"] += 2      # busy, done
            return [TileController(self, m, self.plan, busy=self.busy, done=self.done,
                                   go=go_any, clear=go_any)], None
        mode = self._reg(m, range(len(self.plans)), "mode_q", "control")
        with m.If(go_any):
            m.d.sync += mode.eq(self.mode)
        self.register_bits["control"] += 1          # done
        ctls, busy_any = [], Const(0, 1)
        for i, plan in enumerate(self.plans):
            busy = self._reg(m, 1, f"m{i}_busy", "control")
            ctls.append(TileController(self, m, plan, busy=busy, done=self.done,
                                       go=go_any & (self.mode == i), clear=go_any,
                                       tag=f"m{i}_"))
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
        sel_q = self._reg(m, len(sel), "host_sel", "host port")
        m.d.sync += sel_q.eq(sel)
        with m.Switch(sel_q):
            for b, (rp, _) in enumerate(ports):
                with m.Case(b):
                    m.d.comb += self.host_rdata.eq(rp.data)
            with m.Default():
                m.d.comb += self.host_rdata.eq(0)
        return ports

    def _operands(self, m, ctls, mode, ports):
        """Per input role and FU: the operand (roots read banks, children forward)."""
        operands = []
        for role in range(2):
            x = _roles(self.plan)[role]
            fus = sorted({f for p in self.plans for f in p.fus})
            value = {f: Signal(_shape(x.dtype), name=_name(x.name, f)) for f in fus}
            cache: dict = {}
            for i, (plan, ctl) in enumerate(zip(self.plans, ctls, strict=True)):
                tree = plan.inputs[role]
                src = {}
                for stream in plan.streams:
                    if stream.tensor == tree.tensor.name:
                        rp = ports[self.bank_of[i][stream.bank]][0]
                        active, addr = ctl.address(stream)
                        with m.If(active):      # the streams sharing a bank take turns
                            m.d.comb += rp.addr.eq(addr)
                        src[stream.root] = rp.data
                for f, (parent, delay) in tree.parent.items():
                    if f not in src:
                        src[f] = self._delayed(m, value[parent], delay, _name(x.name, f),
                                               "operand forwarding", cache)
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
        fus = sorted({f for p in self.plans for f in p.fus})
        units = {f: self._fu(m, _name("fu", f)) for f in fus}
        sums = {f: u.sum for f, u in units.items()}
        cache: dict = {}
        for f, fu in units.items():
            m.d.comb += [fu.a.eq(operands[0][f]), fu.b.eq(operands[1][f])]
            first, enable, sources = Const(0, 1), Const(0, 1), []
            for i, (plan, ctl) in enumerate(zip(self.plans, ctls, strict=True)):
                if f not in plan.fus:
                    continue
                out = plan.output
                if out.vector is None:          # no reduction inside a tile: products are final
                    first = first | ctl.busy
                    continue
                first = first | ctl.any_active(out.first[f])
                if out.vector.kind == "stationary":
                    enable = enable | ctl.active(plan.fus[f])
                    sources.append((i, "acc"))
                else:
                    up = tuple(a - b for a, b in zip(f, out.vector.d_space, strict=True))
                    if up in plan.fus:
                        sources.append((i, self._delayed(m, sums[up], out.vector.d_time,
                                                         _name("psum", up),
                                                         "partial-sum forwarding", cache)))
            m.d.comb += fu.first.eq(first)
            if self.stationary:
                m.d.comb += fu.en.eq(enable)
                self.register_bits["accumulators"] += self.mac.acc_bits
                continue
            acc = None
            if any(isinstance(s, str) for _, s in sources):      # some mode accumulates here
                acc = self._reg(m, c_shape, _name("acc", f), "accumulators")
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

    def _write_back(self, m, ctls, ports, sums):
        """One registered stage per output bank (its streams take turns); a reduction that
        spans tiles reads, adds and writes back (the first tile overwrites)."""
        c_shape = signed(self.mac.acc_bits)
        rmw = any(p.accumulates_across_tiles for p in self.plans)
        for b, (role, depth) in enumerate(self.banks):
            if role != 2:
                continue
            rp, wp = ports[b]
            en_q = self._reg(m, 1, f"wb{b}_en", "write-back")
            addr_q = self._reg(m, range(max(depth, 2)), f"wb{b}_addr", "write-back")
            val_q = self._reg(m, c_shape, f"wb{b}_val", "write-back")
            fresh_q = self._reg(m, 1, f"wb{b}_fresh", "write-back") if rmw else None
            any_write = Const(0, 1)
            for i, (plan, ctl) in enumerate(zip(self.plans, ctls, strict=True)):
                for stream in plan.streams:
                    if stream.tensor != plan.output.tensor.name or \
                            self.bank_of[i][stream.bank] != b:
                        continue
                    _, addr = ctl.address(stream)
                    write = ctl.any_active(plan.output.write[stream.root])
                    any_write = any_write | write
                    with m.If(write):
                        m.d.sync += [addr_q.eq(addr), val_q.eq(sums[stream.root])]
                        if rmw:
                            fresh = (ctl.history_bit(stream.window)
                                     if plan.accumulates_across_tiles else 1)
                            m.d.sync += fresh_q.eq(fresh)
                            m.d.comb += rp.addr.eq(addr)
            m.d.sync += en_q.eq(self.busy & any_write)
            with m.If(self.busy):
                m.d.comb += [wp.addr.eq(addr_q), wp.en.eq(en_q),
                             wp.data.eq(Mux(fresh_q, 0, rp.data) + val_q if rmw else val_q)]
