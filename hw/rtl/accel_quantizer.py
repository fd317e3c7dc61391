"""The activation quantizer of the accelerator's unit engine (:mod:`hw.rtl.accel_units`
sequences it): :func:`hw.ir.units.quantizer.quantizer_graph`, its codes into the scratchpad and
its scales into the accumulator.

A command streams, per row ``i``, per group ``g`` (``rows`` mode: one group, the whole row),
two passes over the group's accumulator-row blocks (``group / Ea`` of them; ``rows`` mode
``ceil(cols / Ea)``), ``Ea / lanes`` beats a block. The engine reads block ``b`` of group
``g`` from accumulator row ``src + (g group / Ea + b) rows + i``; lane ``l`` of a beat holds
element ``j = g group + b Ea + beat lanes + l`` of the row (0 from ``cols`` on). The graph's
running absmax restarts at each group's first beat (``first``); ``signed`` is ``shift`` bit
0, ``wide`` the ``rows`` mode (codes of the operand type's ``A`` bits)::

    pass 1, every beat     the lanes' codes (sign-extended to A bits) registered into
                           scratchpad row dst + (j // Es) rows + i at element j mod Es
                           (written the next cycle, element write enables for j < cols)
    pass 1, group's end    the scale registered into accumulator row arg + off + i with one
                           element's write enable: element e (off, e start at 0 and count
                           from count for groups; e wraps at Ea, adding rows to off)

(the ``quantizer`` commands of :mod:`hw.front.isa_units`). The graph sits in a submodule of its
own (``quantizer``) whose inputs are held at 0 while no quantizer command runs: a simulator
then re-evaluates its dividers only when the unit works. The RTL needs power-of-two rows
``Ea`` and ``Es`` and lanes dividing ``Es`` (a beat's codes in one scratchpad row), else a
:class:`~hw.front.spec_model.SpecError`.

Layer: hw.rtl, the Amaranth layer.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal

from ..front.accel_params import AccelParams
from ..front.isa import UNIT_MODES, UNIT_NAMES
from ..front.spec_model import SpecError
from ..ir.units.from_arch import unit_graph
from .accel_lanes import lanes_of, log2_exact
from .graph_rtl import emit_graph

__all__ = ["QuantizerEngine"]

_QUANTIZER = UNIT_NAMES.index("quantizer")
_ROWS = UNIT_MODES["quantizer"].index("rows")


class QuantizerEngine:
    """The quantizer's datapath and writes (module docstring)."""

    def __init__(self, p: AccelParams) -> None:
        self.p = p
        spec = p.arch.units.quantizer
        self.lanes, self.group = spec.lanes, spec.group
        self.ea_log = log2_exact(p.acc_elems, "an accumulator row's elements")
        self.es_log = log2_exact(p.sp_elems, "a scratchpad row's elements")
        if p.sp_elems % self.lanes:
            raise SpecError(f"the quantizer unit's {self.lanes} lanes must divide a scratchpad "
                            f"row's {p.sp_elems} elements")

    def blocks(self, cmd: dict):
        """Accumulator rows a pass streams: a group's ``group / Ea`` (``rows``: the row's
        ``ceil(cols / Ea)``)."""
        return Mux(cmd["mode"] == _ROWS, (cmd["cols"] + self.p.acc_elems - 1) >> self.ea_log,
                   max(self.group >> self.ea_log, 1))

    def last_group(self, cmd: dict, group):
        """Whether ``group`` (the engine's group counter) is its row's last: always, but for
        a ``groups`` command whose row goes on past it."""
        return (cmd["unit"] != _QUANTIZER) | (cmd["mode"] == _ROWS) | \
            ((group + 1) * self.group >= cmd["cols"])

    def elaborate_into(self, m: Module, cmd: dict, s, x_row: list, sp_w, acc_w) -> None:
        """Wire the unit: ``s`` the engine's step counters (``group`` among them),
        ``x_row`` the elements port X reads, ``sp_w`` / ``acc_w`` the write ports."""
        p, lanes = self.p, self.lanes
        running = s.in_beat & (cmd["unit"] == _QUANTIZER)
        j0 = Signal(13, name="qz_j0")               # the row element of lane 0
        m.d.comb += j0.eq(s.group * self.group + (s.block << self.ea_log) + s.beat * lanes)
        named = [j0 + lane < cmd["cols"] for lane in range(lanes)]
        values = {"first": (s.pass_ == 0) & (s.block == 0) & (s.beat == 0),
                  "signed": cmd["shift"][0], "wide": cmd["mode"] == _ROWS}
        for lane, x in enumerate(lanes_of(s.beat, lanes, x_row, p.acc_elems)):
            values[f"x{lane}"] = Mux(named[lane], x.as_unsigned(), 0)
        # the datapath in a module of its own, its inputs held at 0 while other commands
        # run: a simulator re-evaluates it only when the quantizer works
        inputs = {name: Signal(len(v), name=f"qz_in_{name}") for name, v in values.items()}
        m.d.comb += [inputs[name].eq(Mux(running, v, 0)) for name, v in values.items()]
        datapath = Module()
        m.submodules.quantizer = datapath
        outs = emit_graph(datapath, unit_graph(p.arch, "quantizer"), inputs, prefix="qz_")
        coding = running & (s.pass_ == 1)
        self._codes(m, cmd, s, j0, Cat(*named), coding, outs, sp_w)
        self._scale(m, cmd, s, coding & s.last_block & s.last_beat, outs["scale"], acc_w)

    def _codes(self, m: Module, cmd: dict, s, j0, named, coding, outs: dict, sp_w) -> None:
        """Each pass-1 beat's codes into their scratchpad row (module docstring)."""
        p, lanes = self.p, self.lanes
        codes = []
        for lane in range(lanes):
            q = outs[f"q{lane}"]
            codes.append(q[:p.a_bits] if len(q) >= p.a_bits else
                         Cat(q, q[-1].replicate(p.a_bits - len(q))))
        offset = j0[:self.es_log] if self.es_log else Const(0, 1)
        valid, row = Signal(name="qz_w_valid"), Signal(20, name="qz_w_row")
        data = Signal(p.sp_elems * p.a_bits, name="qz_w_data")
        en = Signal(p.sp_elems, name="qz_w_en")
        m.d.sync += [valid.eq(coding),
                     row.eq(cmd["dst"] + (j0 >> self.es_log) * cmd["rows"] + s.row),
                     data.eq(Cat(*codes) << (offset * p.a_bits)), en.eq(named << offset)]
        with m.If(valid):
            m.d.comb += [sp_w.addr.eq(row), sp_w.data.eq(data), sp_w.en.eq(en)]

    def _scale(self, m: Module, cmd: dict, s, group_end, scale, acc_w) -> None:
        """At each group's last step, its scale into one element of its accumulator row
        (module docstring)."""
        p = self.p
        elem = Signal(max(self.ea_log, 1), name="qz_scale_elem")
        off = Signal(20, name="qz_scale_off")
        wrap = elem == p.acc_elems - 1
        with m.If(s.active & s.reading):
            m.d.sync += [elem.eq(Mux(cmd["mode"] == _ROWS, 0, cmd["count"])), off.eq(0)]
        with m.Elif(group_end):
            with m.If(s.last_group):
                m.d.sync += [elem.eq(Mux(cmd["mode"] == _ROWS, 0, cmd["count"])), off.eq(0)]
            with m.Else():
                m.d.sync += [elem.eq(Mux(wrap, 0, elem + 1)),
                             off.eq(Mux(wrap, off + cmd["rows"], off))]
        valid, row = Signal(name="qz_scale_valid"), Signal(20, name="qz_scale_row")
        held, en = Signal(32, name="qz_scale"), Signal(p.acc_elems, name="qz_scale_en")
        m.d.sync += [valid.eq(group_end), row.eq(cmd["arg"] + off + s.row), held.eq(scale),
                     en.eq(Const(1, p.acc_elems) << (elem if self.ea_log else 0))]
        with m.If(valid):
            m.d.comb += [acc_w.addr.eq(row), acc_w.data.eq(Cat(*[held] * p.acc_elems)),
                         acc_w.en.eq(en)]
