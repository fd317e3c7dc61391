"""The group-dequantization unit of the accelerator's unit engine (:mod:`hw.rtl.accel_units`
sequences it): :func:`hw.ir.units.dequant.dequant_graph` with its state in a memory.

The unit holds, for each of its ``rows`` output rows (``units.dequant.rows``) and each
element of a row, the largest exponent ``emax`` of the live terms so far and the aligned
accumulator ``acc``, and per row its exponent offset (a memory row: ``Ea`` exponents,
``Ea`` accumulators, the offset). A command streams its rows (a row ``B`` beats): the state row
is read with the command's accumulator rows and written back after the row's last beat::

    clear     emax = least, acc = 0; the offset = element 0 of accumulator row arg + r with
              shift bit 0, else 0
    exponent  emax = emax_next of the term (port X: the row scale, element ``count`` of row
              src + r; Y: the dots, row arg + r; Z: the column scales, row dst, read once)
    term      acc = acc_next of the term (the same operands)
    output    y (float32 bits of acc 2**(emax - guard)) into accumulator row dst + r

(the exponent is offset with ``shift`` bit 0, a zero dot is dead with bit 1: the ``dequant``
commands of :mod:`hw.front.isa_units`).

Layer: hw.rtl, the Amaranth layer.
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib.memory import Memory

from ..front.accel_params import AccelParams
from ..front.isa import UNIT_MODES, UNIT_NAMES
from ..ir.units.dequant import DequantShape, dequant_graph
from .accel_exec import elements
from .accel_lanes import collect, lanes_of
from .graph_rtl import emit_graph

__all__ = ["DequantEngine"]

_DEQUANT = UNIT_NAMES.index("dequant")
_CLEAR, _EXPONENT, _TERM, _OUTPUT = (UNIT_MODES["dequant"].index(m)
                                     for m in ("clear", "exponent", "term", "output"))
_EXP = 12               # the graph's exponent width
_OFFSET = 8             # the graph's row offset width


class DequantEngine:
    """The dequantizer's datapath, state memory and column-scale port (module docstring)."""

    def __init__(self, p: AccelParams) -> None:
        self.p = p
        spec = p.arch.units.dequant
        self.lanes, self.rows = spec.lanes, spec.rows
        self.shape = DequantShape(spec.lanes, spec.golden_spec(), external_state=True)

    def elaborate_into(self, m: Module, cmd: dict, s, x_row: list, y_data, acc_z,
                       out_acc: list) -> None:
        """Wire the unit: ``s`` the engine's step counters, ``x_row`` / ``y_data`` what ports
        X and Y read, ``acc_z`` the column-scale read port, ``out_acc`` the row being built
        for the accumulator (the outputs)."""
        p, ea, acc_bits = self.p, self.p.acc_elems, self.shape.spec.acc_bits
        is_dq = cmd["unit"] == _DEQUANT
        mode = cmd["mode"]
        state = Memory(shape=unsigned(ea * (_EXP + acc_bits) + _OFFSET), depth=self.rows,
                       init=[])
        m.submodules.dequant_state = state
        rd, wr = state.read_port(), state.write_port()
        m.d.comb += [rd.en.eq(s.read & is_dq), rd.addr.eq(s.read_row),
                     acc_z.en.eq(s.active & s.reading & is_dq), acc_z.addr.eq(cmd["dst"])]
        emax_in = [rd.data[e * _EXP:(e + 1) * _EXP].as_signed() for e in range(ea)]
        base = ea * _EXP
        acc_in = [rd.data[base + e * acc_bits:base + (e + 1) * acc_bits].as_signed()
                  for e in range(ea)]
        offset = rd.data[base + ea * acc_bits:].as_signed()
        y_row = elements(y_data, ea, p.c_bits, True)
        inputs = {"acc_en": mode == _TERM, "zero_dead": cmd["shift"][1],
                  "offset": Mux(cmd["shift"][0], offset, 0)}
        scale = Array(x.as_unsigned() for x in x_row)[cmd["count"]]
        beat = s.beat
        lanes = self.lanes
        for name, values in (("sw", elements(acc_z.data, ea, p.c_bits, False)),
                             ("dot", y_row), ("emax_in", emax_in), ("acc_in", acc_in)):
            for lane, v in enumerate(lanes_of(beat, lanes, values, cmd["cols"])):
                inputs[f"{name}{lane}"] = v
        for lane in range(lanes):
            inputs[f"sx{lane}"] = scale
        outs = emit_graph(m, dequant_graph(self.shape), inputs, prefix="dq_")
        running = s.in_beat & is_dq
        new_emax = [Signal(_EXP, name=f"dq_emax{e}") for e in range(ea)]
        new_acc = [Signal(acc_bits, name=f"dq_acc{e}") for e in range(ea)]
        least = Const(-(1 << (_EXP - 1)), _EXP)
        keep_emax = [Mux(mode == _EXPONENT, outs[f"emax_next{lane}"], v) for lane, v in
                     enumerate(lanes_of(beat, lanes, emax_in, ea))]
        keep_acc = [Mux(mode == _TERM, outs[f"acc_next{lane}"], v) for lane, v in
                    enumerate(lanes_of(beat, lanes, acc_in, ea))]
        collect(m, beat, running, lanes,
                [Mux(mode == _CLEAR, least, v) for v in keep_emax], new_emax)
        collect(m, beat, running, lanes, [Mux(mode == _CLEAR, 0, v) for v in keep_acc],
                new_acc)
        collect(m, beat, running & (mode == _OUTPUT), lanes,
                [outs[f"y{lane}"] for lane in range(lanes)], out_acc)
        new_offset = Signal(_OFFSET, name="dq_offset")
        valid, row = Signal(name="dq_w_valid"), Signal(range(max(self.rows, 2)))
        with m.If(s.row_end):
            m.d.sync += new_offset.eq(Mux(mode == _CLEAR,
                                          Mux(cmd["shift"][0], y_row[0], 0), offset))
        m.d.sync += [valid.eq(s.row_end & is_dq & (mode != _OUTPUT)), row.eq(s.row)]
        m.d.comb += [wr.addr.eq(row), wr.en.eq(valid),
                     wr.data.eq(Cat(*new_emax, *new_acc, new_offset))]
