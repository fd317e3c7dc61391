"""The accelerator's workload units: the datapaths of :mod:`hw.ir.units` behind one controller
that streams accumulator rows through them.

A unit command (:mod:`hw.front.isa_units` has its semantics) runs alone: the dispatcher issues
it when the array and the DMA are idle and holds every later instruction until it is done.
The unit executes the modes of :data:`hw.front.accel_params.RTL_UNIT_MODES`. With ``B``
(:meth:`~hw.front.accel_params.AccelParams.unit_beats`) cycles per row and a command issued in
cycle ``D``::

    D + 1                  read row 0 (ports X: src rows, Y: arg rows)
    D + 2 + t B + b        beat b of row t: lanes b*lanes .. through the datapath; in the
                           row's last beat, read row t + 1
    D + 2 + (t + 1) B      write row t's result (registered) to dst + t
    D + 3 + rows B         the next instruction may issue

Requant (:func:`hw.ir.units.requant.requant_graph`): ``absmax`` folds the rows into the
graph's running maximum (restarted by the first beat when ``arg = 0``; idle cycles feed 0,
which leaves it), whose ``pow2`` is the register ``shift = 255`` names; ``operand`` writes
the lanes' ``op`` to the scratchpad, ``wide`` their ``wide`` (saturated to C) to the
accumulator; ``slices`` writes the constant bit slices of a row's first element. The
normalizer takes each row's denominator from port Y (``sum_b part_b << (A - 1) b``), computes
its shift and reciprocal (:func:`~hw.ir.units.normalizer.reciprocal_graph`) in the row's
beats and scales the lanes (:func:`~hw.ir.units.normalizer.scale_graph`). The datapaths are
the graphs as the front end built them (unpipelined: one beat each).

Layer: hw.rtl, the Amaranth layer.
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal

from ..front.accel_params import AccelParams
from ..front.isa import FIELDS, SHIFT_FROM_REGISTER, UNIT_MODES, UNIT_NAMES
from ..ir.units.from_arch import normalizer_shape, unit_graph
from .accel_exec import elements
from .graph_rtl import emit_graph

__all__ = ["UnitEngine"]

_REQUANT, _NORMALIZER = UNIT_NAMES.index("requant"), UNIT_NAMES.index("normalizer")
_ABSMAX, _OPERAND, _WIDE, _SLICES = (UNIT_MODES["requant"].index(m)
                                     for m in ("absmax", "operand", "wide", "slices"))


def _saturate(value, bits: int):
    """``golden.fixed_point.saturate`` of a signed value to ``bits``."""
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return Mux(value > hi, hi, Mux(value < lo, lo, value))


def _lanes(beat, lanes: int, x_row: list, cols) -> list:
    """The ``lanes`` elements of ``x_row`` in ``beat`` (element ``beat * lanes + l``), 0 from
    element ``cols`` on (what the command does not name reaches no reduction)."""
    per = len(x_row) // lanes
    picked = list(x_row[:lanes]) if per == 1 else \
        [Array([x_row[b * lanes + lane] for b in range(per)])[beat] for lane in range(lanes)]
    return [Mux(cols > beat * lanes + lane, x, 0) for lane, x in enumerate(picked)]


def _collect(m: Module, beat, valid, lanes: int, values: list, row: list) -> None:
    """Register ``values`` (one per lane) into elements ``beat * lanes + l`` of ``row`` (sign
    or zero extended, as each value is, or truncated)."""
    for b in range(-(-len(row) // lanes)):
        with m.If(valid & (beat == b)):
            m.d.sync += [row[b * lanes + lane].eq(values[lane]) for lane in range(lanes)
                         if b * lanes + lane < len(row)]


class UnitEngine:
    """Signals the dispatcher drives (``issue``, ``inp``: the unit command's fields by name)
    and reads (``busy``); :meth:`elaborate_into` wires it to its memory ports."""

    def __init__(self, p: AccelParams) -> None:
        self.p = p
        self.issue = Signal()
        self.inp = {name: Signal(width, name=f"unit_in_{name}")
                    for name, width in FIELDS["unit"]}
        self.busy = Signal()

    def elaborate_into(self, m: Module, acc_x, acc_y, acc_w, sp_w) -> None:
        """``acc_x``, ``acc_y``: accumulator read ports (src rows, arg rows); ``acc_w``,
        ``sp_w``: write ports for results into the accumulator and the scratchpad."""
        p, units = self.p, self.p.arch.units
        cmd = {name: Signal(len(sig), name=f"unit_{name}") for name, sig in self.inp.items()}
        active, reading = Signal(name="unit_active"), Signal(name="unit_reading")
        row, beat = Signal(12, name="unit_row"), Signal(8, name="unit_beat")
        w_valid, w_row = Signal(name="unit_w_valid"), Signal(20, name="unit_w_row")
        beats = 1
        for name in ("requant", "normalizer"):
            if getattr(units, name) is not None:
                beats = Mux(cmd["unit"] == UNIT_NAMES.index(name), p.unit_beats(name), beats)
        m.d.comb += [acc_x.en.eq(0), acc_y.en.eq(0), self.busy.eq(active | w_valid)]
        with m.If(self.issue):
            m.d.sync += [cmd[n].eq(self.inp[n]) for n in cmd]
            m.d.sync += [active.eq(1), reading.eq(1), row.eq(0), beat.eq(0)]
        in_beat = active & ~reading
        last_beat = beat == beats - 1
        with m.If(active & reading):                 # row 0
            m.d.comb += [acc_x.en.eq(1), acc_x.addr.eq(cmd["src"]),
                         acc_y.en.eq(1), acc_y.addr.eq(cmd["arg"])]
            m.d.sync += reading.eq(0)
        with m.If(in_beat):
            m.d.sync += beat.eq(beat + 1)
            with m.If(last_beat):
                m.d.sync += [beat.eq(0), row.eq(row + 1), w_row.eq(cmd["dst"] + row)]
                with m.If(row == cmd["rows"] - 1):
                    m.d.sync += active.eq(0)
                with m.Else():
                    m.d.comb += [acc_x.en.eq(1), acc_x.addr.eq(cmd["src"] + row + 1),
                                 acc_y.en.eq(1), acc_y.addr.eq(cmd["arg"] + row + 1)]
        m.d.sync += w_valid.eq(in_beat & last_beat)
        # the datapaths; every output is registered into the row being built
        x_row = elements(acc_x.data, p.acc_elems, p.c_bits, p.arch.types[2].signed)
        n_sp = min(p.sp_elems, p.acc_elems)
        out_sp = [Signal(p.a_bits, name=f"unit_sp{e}") for e in range(n_sp)]
        out_acc = [Signal(p.c_bits, name=f"unit_acc{e}") for e in range(p.acc_elems)]
        writes = []             # (unit, mode or None, target "sp" / "acc")
        pow2 = Const(0, 6)
        if units.requant is not None:
            pow2 = self._requant(m, cmd, x_row, in_beat & (row == 0) & (beat == 0), in_beat,
                                 beat, out_sp, out_acc)
            writes += [(_REQUANT, _OPERAND, "sp"), (_REQUANT, _SLICES, "sp"),
                       (_REQUANT, _WIDE, "acc")]
        if units.normalizer is not None:
            self._normalizer(m, cmd, x_row, acc_y.data, pow2, in_beat, beat, out_acc)
            writes.append((_NORMALIZER, None, "acc"))
        col_mask = Cat(*[cmd["cols"] > e for e in range(p.acc_elems)])
        pad = p.sp_elems - n_sp
        m.d.comb += [sp_w.addr.eq(w_row), acc_w.addr.eq(w_row), acc_w.data.eq(Cat(*out_acc)),
                     sp_w.data.eq(Cat(*out_sp, Const(0, pad * p.a_bits))),
                     sp_w.en.eq(0), acc_w.en.eq(0)]
        for unit, mode, target in writes:
            hit = w_valid & (cmd["unit"] == unit)
            if mode is not None:
                hit &= cmd["mode"] == mode
            with m.If(hit):
                if target == "sp":
                    m.d.comb += sp_w.en.eq(Cat(col_mask[:n_sp], Const(0, pad)))
                else:
                    m.d.comb += acc_w.en.eq(col_mask)

    def _requant(self, m: Module, cmd: dict, x_row: list, first, in_beat, beat, out_sp,
                 out_acc):
        """The requant datapath and its writes; returns its ``pow2`` register (the shift
        ``shift = 255`` names)."""
        p, lanes = self.p, self.p.arch.units.requant.lanes
        is_rq = cmd["unit"] == _REQUANT
        absmax = in_beat & is_rq & (cmd["mode"] == _ABSMAX)
        shift = Signal(6, name="rq_shift_in")
        inputs = {"mult": cmd["arg"][:p.arch.units.requant.mult_bits], "shift": shift,
                  "fold": absmax, "first": absmax & first & (cmd["arg"] == 0)}
        for lane, x in enumerate(_lanes(beat, lanes, x_row, cmd["cols"])):
            inputs[f"x{lane}"] = x
        outs = emit_graph(m, unit_graph(p.arch, "requant"), inputs, prefix="rq_")
        pow2 = outs["pow2"]
        field = cmd["shift"]
        m.d.comb += shift.eq(Mux(field == SHIFT_FROM_REGISTER, pow2,
                                 Mux(field > 63, 63, field)))
        ops = [outs[f"op{lane}"] for lane in range(lanes)]
        wide = [_saturate(outs[f"wide{lane}"], p.c_bits) for lane in range(lanes)]
        running = in_beat & is_rq
        _collect(m, beat, running & (cmd["mode"] == _OPERAND), lanes, ops, out_sp)
        _collect(m, beat, running & (cmd["mode"] == _WIDE), lanes, wide, out_acc)
        step = p.a_bits - 1
        x0 = x_row[0].as_signed()
        x0_wide = Cat(x0, x0[-1].replicate(step * len(out_sp)))
        with m.If(running & (cmd["mode"] == _SLICES)):
            m.d.sync += [out_sp[b].eq(x0_wide[step * b:step * (b + 1)])
                         for b in range(len(out_sp))]
        return pow2

    def _normalizer(self, m: Module, cmd: dict, x_row: list, y_data, pow2, in_beat, beat,
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
        for lane, x in enumerate(_lanes(beat, shape.lanes, x_row, cmd["cols"])):
            inputs[f"num{lane}"] = (x.as_signed() << capped)[:shape.num_bits].as_signed()
        outs = emit_graph(m, unit_graph(p.arch, "normalizer"), inputs, prefix="nm_")
        values = [outs[f"out{lane}"] for lane in range(shape.lanes)]
        _collect(m, beat, in_beat & (cmd["unit"] == _NORMALIZER), shape.lanes, values,
                 out_acc)
