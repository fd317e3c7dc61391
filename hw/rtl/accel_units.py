"""The accelerator's workload units: the datapaths of :mod:`hw.ir.units` behind one controller
that streams accumulator rows through them.

A unit command (:mod:`hw.front.isa_units` has its semantics) runs alone: the dispatcher issues
it when the array and the DMA are idle and holds every later instruction until it is done.
The unit executes the modes of :data:`hw.front.accel_params.RTL_UNIT_MODES`. A command is a
stream of *steps*: per output row ``i < rows``, per group (the quantizer's; one for every
other command), per pass, per key block, ``B`` beats
(:meth:`~hw.front.accel_params.AccelParams.unit_steps` counts them). Issued in cycle ``D``::

    D + 1                  read the first block (port X: src rows, Y: arg rows)
    D + 2 + s              step s: one beat of lanes through the datapath; in a block's last
                           beat, read the next block
    D + 2 + s + 1          results of step s written (registered): a row's at its last step,
                           the softmax weights and quantizer codes of every beat of its
                           second pass, a quantizer scale at its group's last step
    D + 3 + steps          the next instruction may issue

Requant (:func:`hw.ir.units.requant.requant_graph`): ``absmax`` folds the rows into the
graph's running maximum (restarted by the first beat when ``arg = 0``), whose ``pow2`` is the
register ``shift = 255`` names; ``operand`` writes the lanes' ``op`` to the scratchpad,
``wide`` their ``wide`` (saturated to C) to the accumulator; ``slices`` writes the constant
bit slices of a row's first element. The normalizer takes each row's denominator from port Y
(``sum_b part_b << (A - 1) b``), its shift and reciprocal
(:func:`~hw.ir.units.normalizer.reciprocal_graph`) and scales the lanes
(:func:`~hw.ir.units.normalizer.scale_graph`). Softmax and the KV-cache descriptors:
:mod:`hw.rtl.accel_softmax`; the dequantizer :mod:`hw.rtl.accel_dequant`; the quantizer
:mod:`hw.rtl.accel_quantizer` (a block of a group read from ``src + goff + boff + row``,
``goff`` the group's first block times ``rows``). The datapaths are the graphs as the front
end built them (unpipelined: one beat each).

Layer: hw.rtl, the Amaranth layer.
"""

from __future__ import annotations

from types import SimpleNamespace

from amaranth.hdl import Cat, Const, Module, Mux, Signal

from ..front.accel_params import AccelParams
from ..front.isa import FIELDS, SHIFT_FROM_REGISTER, UNIT_MODES, UNIT_NAMES
from ..ir.units.from_arch import normalizer_shape, unit_graph
from .accel_dequant import DequantEngine
from .accel_exec import elements
from .accel_lanes import collect, lanes_of
from .accel_quantizer import QuantizerEngine
from .accel_softmax import SoftmaxUnit
from .graph_rtl import emit_graph

__all__ = ["UnitEngine"]

_REQUANT, _NORMALIZER, _SOFTMAX, _DEQUANT, _QUANTIZER = (
    UNIT_NAMES.index(u) for u in ("requant", "normalizer", "softmax", "dequant", "quantizer"))
_OUTPUT = UNIT_MODES["dequant"].index("output")
_ABSMAX, _OPERAND, _WIDE, _SLICES, _ROWS = (
    UNIT_MODES["requant"].index(m) for m in ("absmax", "operand", "wide", "slices", "rows"))


class UnitEngine:
    """Signals the dispatcher drives (``issue``, ``inp``: the unit command's fields by name)
    and reads (``busy``); :meth:`elaborate_into` wires it to its memory ports."""

    def __init__(self, p: AccelParams) -> None:
        self.p = p
        self.issue = Signal()
        self.inp = {name: Signal(width, name=f"unit_in_{name}")
                    for name, width in FIELDS["unit"]}
        self.busy = Signal()
        self.softmax = SoftmaxUnit(p) if p.arch.units.softmax or p.arch.units.kv_cache \
            else None
        self.dequant = DequantEngine(p) if p.arch.units.dequant else None
        self.quantizer = QuantizerEngine(p) if p.arch.units.quantizer else None

    def _shape(self, cmd: dict):
        """(beats, blocks, passes) of the latched command, as values."""
        p, units = self.p, self.p.arch.units
        beats, blocks, passes = Const(1, 8), Const(1, 12), Const(1, 2)
        for name in ("requant", "normalizer", "softmax", "dequant", "quantizer"):
            if getattr(units, name) is not None:
                beats = Mux(cmd["unit"] == UNIT_NAMES.index(name), p.unit_beats(name), beats)
        if units.softmax is not None:
            is_sm = cmd["unit"] == _SOFTMAX
            blocks = Mux(is_sm, self.softmax.blocks(cmd["cols"]), blocks)
            passes = Mux(is_sm & (cmd["mode"] == UNIT_MODES["softmax"].index("weights")), 2,
                         passes)
        if units.requant is not None:
            by_rows = (cmd["unit"] == _REQUANT) & (cmd["mode"] == _ROWS)
            blocks = Mux(by_rows, cmd["count"], blocks)
            passes = Mux(by_rows, 2, passes)
        if units.quantizer is not None:
            is_qz = cmd["unit"] == _QUANTIZER
            blocks = Mux(is_qz, self.quantizer.blocks(cmd), blocks)
            passes = Mux(is_qz, 2, passes)
        return beats, blocks, passes

    def elaborate_into(self, m: Module, acc_x, acc_y, acc_z, acc_w, sp_w) -> None:
        """``acc_x``, ``acc_y``: accumulator read ports (src rows, arg rows), ``acc_z`` one
        for the dequantizer's column scales (None without it); ``acc_w``, ``sp_w``: write
        ports for results into the accumulator and the scratchpad."""
        p, units = self.p, self.p.arch.units
        cmd = {name: Signal(len(sig), name=f"unit_{name}") for name, sig in self.inp.items()}
        s = self._counters(cmd)
        w_valid, w_row = Signal(name="unit_w_valid"), Signal(20, name="unit_w_row")
        m.d.comb += self.busy.eq(s.active | w_valid)
        with m.If(self.issue):
            m.d.sync += [cmd[n].eq(self.inp[n]) for n in cmd]
            m.d.sync += [s.active.eq(1), s.reading.eq(1), s.row.eq(0), s.group.eq(0),
                         s.goff.eq(0), s.pass_.eq(0), s.block.eq(0), s.boff.eq(0),
                         s.beat.eq(0)]
        self._sequence(m, cmd, s, acc_x, acc_y)
        m.d.sync += [w_valid.eq(s.row_end), w_row.eq(cmd["dst"] + s.row)]
        # the datapaths; every output is registered into the row being built, written at the
        # row's end (defaults here, the units' own writes after them)
        x_row = elements(acc_x.data, p.acc_elems, p.c_bits, p.arch.types[2].signed)
        n_sp = min(p.sp_elems, p.acc_elems)
        out_sp = [Signal(p.a_bits, name=f"unit_sp{e}") for e in range(n_sp)]
        out_acc = [Signal(p.c_bits, name=f"unit_acc{e}") for e in range(p.acc_elems)]
        pad = p.sp_elems - n_sp
        m.d.comb += [sp_w.addr.eq(w_row), acc_w.addr.eq(w_row), acc_w.data.eq(Cat(*out_acc)),
                     sp_w.data.eq(Cat(*out_sp, Const(0, pad * p.a_bits))),
                     sp_w.en.eq(0), acc_w.en.eq(0)]
        writes = []             # (unit, mode or None, target "sp" / "acc")
        pow2 = Const(0, 6)
        if units.requant is not None:
            pow2 = self._requant(m, cmd, s, x_row, out_sp, out_acc, sp_w, acc_w)
            writes += [(_REQUANT, _OPERAND, "sp"), (_REQUANT, _SLICES, "sp"),
                       (_REQUANT, _WIDE, "acc")]
        if units.normalizer is not None:
            self._normalizer(m, cmd, s, x_row, acc_y.data, pow2, out_acc)
            writes.append((_NORMALIZER, None, "acc"))
        if self.dequant is not None:
            self.dequant.elaborate_into(m, cmd, s, x_row, acc_y.data, acc_z, out_acc)
            writes.append((_DEQUANT, _OUTPUT, "acc"))
        col_mask = Cat(*[cmd["cols"] > e for e in range(p.acc_elems)])
        for unit, mode, target in writes:
            hit = w_valid & (cmd["unit"] == unit)
            if mode is not None:
                hit &= cmd["mode"] == mode
            with m.If(hit):
                if target == "sp":
                    m.d.comb += sp_w.en.eq(Cat(col_mask[:n_sp], Const(0, pad)))
                else:
                    m.d.comb += acc_w.en.eq(col_mask)
        if self.softmax is not None:
            xs = lanes_of(s.beat, self.softmax.lanes, x_row, p.acc_elems)
            y0 = elements(acc_y.data, p.acc_elems, p.c_bits, True)[0]
            self.softmax.elaborate_into(m, cmd, s, xs, y0, sp_w, acc_w)
        if self.quantizer is not None:
            self.quantizer.elaborate_into(m, cmd, s, x_row, sp_w, acc_w)

    def _counters(self, cmd: dict) -> SimpleNamespace:
        """The step counters and the conditions on them."""
        s = SimpleNamespace(
            active=Signal(name="unit_active"), reading=Signal(name="unit_reading"),
            row=Signal(12, name="unit_row"), group=Signal(12, name="unit_group"),
            goff=Signal(20, name="unit_goff"), pass_=Signal(name="unit_pass"),
            block=Signal(12, name="unit_block"), boff=Signal(20, name="unit_boff"),
            beat=Signal(8, name="unit_beat"))
        beats, blocks, passes = self._shape(cmd)
        s.first_step = ~s.reading & (s.row == 0) & (s.group == 0) & (s.pass_ == 0) & \
            (s.block == 0) & (s.beat == 0)
        s.in_beat = s.active & ~s.reading
        s.last_beat = s.beat == beats - 1
        s.last_block = s.block == blocks - 1
        s.last_pass = s.pass_ == passes - 1
        s.last_group = self.quantizer.last_group(cmd, s.group) if self.quantizer is not None \
            else Const(1)
        s.row_end = s.in_beat & s.last_beat & s.last_block & s.last_pass & s.last_group
        return s

    def _sequence(self, m: Module, cmd: dict, s, acc_x, acc_y) -> None:
        """The step counters (row, group, pass, block, beat) and the block reads (``s.read``
        with the block's ``s.read_row`` and ``s.read_boff``: port X reads ``src + boff +
        row``, Y ``arg + row``; ``read_boff`` counts the group's ``goff`` in)."""
        rows = self.softmax.steps_rows(cmd) if self.softmax is not None else cmd["rows"]
        s.read, s.read_row, s.read_boff = Signal(name="unit_read"), Signal(12), Signal(20)
        m.d.comb += [acc_x.en.eq(s.read), acc_x.addr.eq(cmd["src"] + s.read_boff + s.read_row),
                     acc_y.en.eq(s.read), acc_y.addr.eq(cmd["arg"] + s.read_row)]
        with m.If(s.active & s.reading):                 # the first block
            m.d.comb += s.read.eq(1)
            m.d.sync += s.reading.eq(0)
        with m.If(s.in_beat):
            m.d.sync += s.beat.eq(s.beat + 1)
            with m.If(s.last_beat):
                group_end = s.last_block & s.last_pass
                next_row = s.row + (group_end & s.last_group)
                next_boff = Mux(s.last_block, 0, s.boff + cmd["rows"])
                next_goff = Mux(group_end, Mux(s.last_group, 0, s.goff + s.boff + cmd["rows"]),
                                s.goff)
                m.d.sync += [s.beat.eq(0), s.block.eq(Mux(s.last_block, 0, s.block + 1)),
                             s.boff.eq(next_boff), s.goff.eq(next_goff)]
                with m.If(s.last_block):
                    m.d.sync += s.pass_.eq(Mux(s.last_pass, 0, s.pass_ + 1))
                    with m.If(s.last_pass):
                        m.d.sync += s.group.eq(Mux(s.last_group, 0, s.group + 1))
                        with m.If(s.last_group):
                            m.d.sync += s.row.eq(s.row + 1)
                with m.If(s.row_end & (s.row == rows - 1)):
                    m.d.sync += s.active.eq(0)
                with m.Else():
                    m.d.comb += [s.read.eq(1), s.read_row.eq(next_row),
                                 s.read_boff.eq(next_goff + next_boff)]

    def _requant(self, m: Module, cmd: dict, s, x_row: list, out_sp, out_acc, sp_w, acc_w):
        """The requant datapath and its writes; returns its ``pow2`` register (the shift
        ``shift = 255`` names)."""
        p, lanes = self.p, self.p.arch.units.requant.lanes
        is_rq = cmd["unit"] == _REQUANT
        by_rows = is_rq & (cmd["mode"] == _ROWS)        # pass 0: the row's max; 1: operands
        absmax = s.in_beat & is_rq & (cmd["mode"] == _ABSMAX)
        row_max = s.in_beat & by_rows & (s.pass_ == 0)
        shift = Signal(6, name="rq_shift_in")
        inputs = {"mult": Mux(by_rows, 1, cmd["arg"][:p.arch.units.requant.mult_bits]),
                  "shift": shift, "fold": absmax | row_max,
                  "first": (absmax & s.first_step & (cmd["arg"] == 0)) |
                           (row_max & (s.block == 0) & (s.beat == 0))}
        for lane, x in enumerate(lanes_of(s.beat, lanes, x_row, cmd["cols"])):
            inputs[f"x{lane}"] = x
        outs = emit_graph(m, unit_graph(p.arch, "requant"), inputs, prefix="rq_")
        pow2 = outs["pow2"]
        field = cmd["shift"]
        m.d.comb += shift.eq(Mux((field == SHIFT_FROM_REGISTER) | by_rows, pow2,
                                 Mux(field > 63, 63, field)))
        ops = [outs[f"op{lane}"] for lane in range(lanes)]
        wide = [outs[f"wide{lane}"] for lane in range(lanes)]
        running = s.in_beat & is_rq
        collect(m, s.beat, running & ((cmd["mode"] == _OPERAND) | (by_rows & s.pass_)),
                 lanes, ops, out_sp)
        collect(m, s.beat, running & (cmd["mode"] == _WIDE), lanes, wide, out_acc)
        step = p.a_bits - 1
        x0 = x_row[0].as_signed()
        x0_wide = Cat(x0, x0[-1].replicate(step * len(out_sp)))
        with m.If(running & (cmd["mode"] == _SLICES)):
            m.d.sync += [out_sp[b].eq(x0_wide[step * b:step * (b + 1)])
                         for b in range(len(out_sp))]
        self._rows_writes(m, cmd, s, by_rows, pow2, out_sp, sp_w, acc_w)
        return pow2

    def _rows_writes(self, m: Module, cmd: dict, s, by_rows, pow2, out_sp, sp_w,
                     acc_w) -> None:
        """``requant rows``: each second-pass block's operands to scratchpad row ``dst +
        block rows + row``, the row's shift to accumulator row ``arg + row``, element 0."""
        p = self.p
        blk, blk_row = Signal(name="rq_blk_valid"), Signal(20, name="rq_blk_row")
        shift, shift_row = Signal(name="rq_shift_valid"), Signal(20, name="rq_shift_row")
        end = s.in_beat & by_rows & s.pass_ & s.last_beat
        m.d.sync += [blk.eq(end), blk_row.eq(cmd["dst"] + s.boff + s.row),
                     shift.eq(end & s.last_block), shift_row.eq(cmd["arg"] + s.row)]
        pad = p.sp_elems - len(out_sp)
        with m.If(blk):
            m.d.comb += [sp_w.addr.eq(blk_row),
                         sp_w.en.eq(Cat(*[cmd["cols"] > e for e in range(len(out_sp))],
                                        Const(0, pad)))]
        with m.If(shift):
            m.d.comb += [acc_w.addr.eq(shift_row), acc_w.data.eq(pow2), acc_w.en.eq(1)]

    def _normalizer(self, m: Module, cmd: dict, s, x_row: list, y_data, pow2,
                    out_acc) -> None:
        """The normalizer datapath: the row's denominator from its partial sums, the shift
        and reciprocal, the lanes."""
        p, shape = self.p, normalizer_shape(self.p.arch)
        step = p.a_bits - 1
        parts = elements(y_data, p.acc_elems, p.c_bits, p.arch.types[2].signed)
        den = sum((Mux(cmd["count"] > b, part, 0) << (step * b)
                   for b, part in enumerate(parts[:-(-p.c_bits // step)])), Const(0, 1))
        rec = emit_graph(m, unit_graph(p.arch, "normalizer.reciprocal"),
                         {"den": den[:shape.den_in_bits]}, prefix="nr_")
        shift = Mux(cmd["shift"] == SHIFT_FROM_REGISTER, pow2, cmd["shift"])
        capped = Mux(shift > shape.num_bits, shape.num_bits, shift)[:7]
        inputs = {"shift": rec["shift"], "rcp": rec["rcp"]}
        for lane, x in enumerate(lanes_of(s.beat, shape.lanes, x_row, cmd["cols"])):
            inputs[f"num{lane}"] = (x.as_signed() << capped)[:shape.num_bits].as_signed()
        outs = emit_graph(m, unit_graph(p.arch, "normalizer"), inputs, prefix="nm_")
        values = [outs[f"out{lane}"] for lane in range(shape.lanes)]
        collect(m, s.beat, s.in_beat & (cmd["unit"] == _NORMALIZER), shape.lanes, values,
                 out_acc)
