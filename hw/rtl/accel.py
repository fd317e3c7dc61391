"""The accelerator of an architecture: generated once, then run by programs.

:class:`Accelerator` holds the scratchpad (one :class:`~amaranth.lib.memory.Memory`, two read
ports for the array, one write port for the DMA), the accumulator (a read-modify-write port
pair for the array, a read port and a write port for the DMA: ``mvout``, ``mvin acc=1``), the
execution unit (:mod:`hw.rtl.accel_exec`),
the DMA (:mod:`hw.rtl.accel_dma`; two scratchpad write ports: rows as they arrive, rows out
of the transposer), the workload units of :mod:`hw.rtl.accel_units` when the architecture
declares any the RTL executes (two more accumulator read ports, an accumulator and a scratchpad
write port; a unit command runs alone) and the dispatcher: a one-instruction head register behind
the command port that issues in program order to the two units, holding an instruction while
its unit is full or an in-flight instruction of the other unit touches its rows (the rules:
:mod:`hw.front.accel_timing`). The problem (extents, addresses, strides) arrives in the
instructions; the Verilog depends on the architecture only. Its ports:
:mod:`hw.rtl.accel_ports`. Unknown opcodes issue as no-ops (programs are checked by
:func:`hw.front.isa.check_program` before they reach the hardware).

Layer: hw.rtl, the Amaranth layer.
"""

from __future__ import annotations

from amaranth.back import verilog
from amaranth.hdl import ClockDomain, Const, Module, Mux, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory

from ..front.accel_params import CLASSES, RTL_UNIT_MODES, AccelParams, accel_params
from ..front.arch import ArchSpec
from ..front.isa import FIELDS, OPCODES
from .accel_dma import DmaUnit
from .accel_exec import ExecUnit
from .accel_ports import accel_signature
from .accel_units import UnitEngine
from .emit import strip_memory_init

__all__ = ["Accelerator", "accelerator_verilog", "top_name"]


def top_name(arch: ArchSpec) -> str:
    """The Verilog module name of ``arch``'s accelerator."""
    return f"{arch.name}_accel"


def _overlap(s1, n1, s2, n2):
    return (s1 < s2 + n2) & (s2 < s1 + n1)


def _field(word: Signal, op: str, name: str):
    pos = 4
    for f, width in FIELDS[op]:
        if f == name:
            return word[pos:pos + width]
        pos += width
    raise KeyError(f"{op} has no field {name!r}")


class Accelerator(wiring.Component):
    """The generated accelerator of ``arch`` (see the module docstring)."""

    def __init__(self, arch: ArchSpec) -> None:
        self.params: AccelParams = accel_params(arch)
        super().__init__(accel_signature(self.params.bus_bytes))

    def elaborate(self, platform) -> Module:
        p = self.params
        m = Module()
        sp = Memory(shape=unsigned(p.sp_elems * p.a_bits), depth=p.sp_rows, init=[])
        acc = Memory(shape=unsigned(p.acc_elems * p.c_bits), depth=p.acc_rows, init=[])
        m.submodules.scratchpad, m.submodules.accumulator = sp, acc
        sp_w = sp.write_port(granularity=p.a_bits)      # DMA rows as they arrive
        sp_t = sp.write_port(granularity=p.a_bits)      # DMA rows out of the transposer
        sp_x, sp_y = sp.read_port(), sp.read_port()
        acc_w = acc.write_port(granularity=p.c_bits)
        acc_r = acc.read_port(transparent_for=(acc_w,))
        acc_d = acc.read_port()
        acc_m = acc.write_port(granularity=p.c_bits)    # DMA: mvin acc=1
        exe, dma = ExecUnit(p), DmaUnit(p)
        exe.elaborate_into(m, sp_x, sp_y, acc_r, acc_w)
        dma.elaborate_into(m, self, sp_w, sp_t, acc_d, acc_m)
        units = None
        if any(getattr(p.arch.units, u) is not None for u in RTL_UNIT_MODES):
            units = UnitEngine(p)
            units.elaborate_into(m, acc.read_port(), acc.read_port(),
                                 acc.read_port() if p.arch.units.dequant else None,
                                 acc.write_port(granularity=p.c_bits),
                                 sp.write_port(granularity=p.a_bits))
        self._dispatch(m, exe, dma, units)
        return m

    def _dispatch(self, m: Module, exe: ExecUnit, dma: DmaUnit,
                  units: UnitEngine | None) -> None:
        p = self.params
        head_valid = Signal()
        word = Signal(128)
        issue = Signal()
        m.d.comb += self.cmd_ready.eq(~head_valid | issue)
        with m.If(self.cmd_valid & self.cmd_ready):
            m.d.sync += [head_valid.eq(1), word.eq(self.cmd_data)]
        with m.Elif(issue):
            m.d.sync += head_valid.eq(0)
        op = word[:4]

        def f(name: str, which: str):
            return _field(word, which, name)

        # compute: its rows under the configured class
        i, j, k = f("i", "compute"), f("j", "compute"), f("k", "compute")
        cls = exe.cls
        by = {"k": (k, k, i, k, 0), "i": (i, k, i, i, k), "j": (i, j, j, j, i)}
        names = ("na", "nb", "nc", "nx", "ns")
        inp = exe.inp
        for n, name in enumerate(names):
            value = by["j"][n]
            for c in ("i", "k"):
                value = Mux(cls == CLASSES.index(c), by[c][n], value)
            m.d.comb += getattr(inp, name).eq(value)
        m.d.comb += [inp.a.eq(f("a", "compute")), inp.b.eq(f("b", "compute")),
                     inp.c.eq(f("c", "compute")), inp.i.eq(i), inp.j.eq(j), inp.k.eq(k),
                     inp.acc.eq(f("accumulate", "compute"))]
        compute_ok, mvin_ok, mvout_ok = self._moves(m, f, op, exe, dma)

        unit_busy = units.busy if units is not None else Const(0)
        with m.If(head_valid & ~unit_busy):
            with m.Switch(op):
                with m.Case(OPCODES["config"]):
                    with m.If(exe.idle):
                        m.d.comb += issue.eq(1)
                        flow = f("dataflow", "config")
                        for n, c in enumerate(p.classes):
                            with m.If(flow == n):
                                m.d.sync += cls.eq(CLASSES.index(c))
                with m.Case(OPCODES["compute"]):
                    m.d.comb += [issue.eq(compute_ok), exe.issue.eq(compute_ok)]
                with m.Case(OPCODES["mvin"]):
                    m.d.comb += [issue.eq(mvin_ok), dma.push.eq(mvin_ok)]
                with m.Case(OPCODES["mvout"]):
                    m.d.comb += [issue.eq(mvout_ok), dma.push.eq(mvout_ok)]
                with m.Case(OPCODES["fence"]):
                    m.d.comb += issue.eq(exe.idle & dma.empty)
                if units is not None:
                    with m.Case(OPCODES["unit"]):
                        unit_ok = exe.idle & dma.empty
                        m.d.comb += [issue.eq(unit_ok), units.issue.eq(unit_ok)]
                        m.d.comb += [sig.eq(f(name, "unit")) for name, sig in units.inp.items()]
                with m.Default():
                    m.d.comb += issue.eq(1)
        m.d.comb += self.busy.eq(head_valid | ~dma.empty | ~exe.idle | unit_busy)

    @staticmethod
    def _moves(m: Module, f, op, exe: ExecUnit, dma: DmaUnit) -> tuple:
        """The head instruction's move fields into ``dma.inp``, and the hazards that hold
        (compute_ok, mvin_ok, mvout_ok): a tile against unfinished moves on its rows; an
        mvin against tiles reading its scratchpad rows and unfinished scratchpad mvins
        writing them; a move on accumulator rows (mvout, mvin acc=1) against tiles writing
        them (queued, computing, results pending); an mvout against unfinished acc=1 mvins
        writing its rows (:mod:`hw.front.accel_timing` has the rules)."""
        inp = exe.inp
        is_out = op == OPCODES["mvout"]
        to_acc = ~is_out & f("acc", "mvin")
        row = Mux(is_out, f("acc", "mvout"), f("sp", "mvin"))
        rows = Mux(is_out, f("rows", "mvout"), f("rows", "mvin"))
        d = dma.inp
        m.d.comb += [d.mvout.eq(is_out), d.row.eq(row), d.rows.eq(rows),
                     d.dram.eq(Mux(is_out, f("dram", "mvout"), f("dram", "mvin"))),
                     d.stride.eq(Mux(is_out, f("stride", "mvout"), f("stride", "mvin"))),
                     d.cols.eq(Mux(is_out, f("cols", "mvout"), f("cols", "mvin"))),
                     d.transpose.eq(Mux(is_out, f("transpose", "mvout"),
                                        f("transpose", "mvin"))),
                     d.relu.eq(~is_out & f("relu", "mvin")),
                     d.col.eq(Mux(is_out, 0, f("col", "mvin"))), d.acc.eq(to_acc)]
        waits_move, waits_mvin, waits_acc = Signal(), Signal(), Signal()
        for e, flying in zip(dma.entries, dma.in_flight, strict=True):
            here = flying & _overlap(e.row, e.rows, row, rows)
            with m.If(here & ~e.mvout & ~e.acc):
                m.d.comb += waits_mvin.eq(1)          # scratchpad rows written in order
            with m.If(here & e.acc):
                m.d.comb += waits_acc.eq(1)           # accumulator rows written, then read
            hit = Mux(e.mvout | e.acc, _overlap(e.row, e.rows, inp.c, inp.nc),
                      _overlap(e.row, e.rows, inp.a, inp.na)
                      | _overlap(e.row, e.rows, inp.b, inp.nb))
            with m.If(flying & hit):
                m.d.comb += waits_move.eq(1)

        nxt, cur = exe.nxt, exe.cur
        mvin_ok = ~dma.full & ~waits_mvin \
            & ~(nxt.valid & (_overlap(row, rows, nxt.a, nxt.na)
                             | _overlap(row, rows, nxt.b, nxt.nb))) \
            & ~(exe.streaming & (_overlap(row, rows, cur.a, cur.na)
                                 | _overlap(row, rows, cur.b, cur.nb)))
        acc_ok = ~dma.full & (exe.pending == 0) \
            & ~(nxt.valid & _overlap(row, rows, nxt.c, nxt.nc)) \
            & ~(cur.valid & _overlap(row, rows, cur.c, cur.nc))
        mvin_ok = Mux(to_acc, acc_ok, mvin_ok)
        mvout_ok = acc_ok & ~waits_acc
        return ~exe.nxt.valid & ~waits_move, mvin_ok, mvout_ok


def accelerator_verilog(arch: ArchSpec) -> str:
    """The Verilog of ``arch``'s accelerator (module :func:`top_name`, ports ``clk``, ``rst``
    (asynchronous, active high) and :mod:`hw.rtl.accel_ports`'), memories without initial
    contents; the same architecture gives the same text."""
    top = Accelerator(arch)
    text = verilog.convert(top, name=top_name(arch), emit_src=False,
                           missing_domain=_async_reset)
    return strip_memory_init(text)


def _async_reset(name: str) -> ClockDomain:
    """The emitted top's clock domain: reset asynchronous, so that it is an event of the
    registers, not an input of every next-state function (a simulator then evaluates no
    logic for the reset input each cycle)."""
    return ClockDomain(name, async_reset=True)
