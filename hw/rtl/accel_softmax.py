"""The softmax unit and the KV-cache descriptors of the accelerator's unit engine
(:mod:`hw.rtl.accel_units` sequences them).

**KV-cache descriptors** (:func:`hw.ir.units.kv_address.kv_address_graph`): the graph holds
each descriptor's token count ``L`` and write slot ``w`` (:func:`golden.kv_cache.
ring_buffer_address` of ``L``); ``sink`` and ``recent`` are registers here, one pair per
descriptor. ``kv_cache reset`` takes one step (the graph's ``reset``, the new sink and
recent), ``advance`` one step per token (the graph's ``advance``).

**Softmax** (:func:`hw.ir.units.softmax.softmax_graph`): a ``weights`` command streams each
query row's key blocks twice: the first pass finds the row max, the second writes the
weights (every beat, into the scratchpad) and, at its end, the row sum (accumulator element
0). Each lane's key ``j`` (block ``b``, beat ``t``: ``j = b Ea + t lanes + l``) gets its
position: a cache slot ``s = j < P`` (``P``: the slots rounded up to whole rows) holds ``s``
while the ring has not wrapped (``L <= sink + recent``, sinks and retrieval caches always,
``-1`` from ``L`` on), else ``L - recent + (s - w) mod recent``; a chunk key ``L + j - P``.
The query of row ``i`` is at ``L + i mod C`` (``C = cols - P``), and a key is visible as
:func:`golden.attention_fixed.position_mask` says: ``0 <= pos <= q`` and, streaming,
``pos < sink`` or ``q - pos < recent``. ``max`` and ``scaled`` see every key ``j < cols``, or,
causal (``shift`` bit 1), those with ``j <= i mod cols``.

Layer: hw.rtl, the Amaranth layer.
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed

from ..front.accel_params import AccelParams
from ..front.isa import UNIT_MODES, UNIT_NAMES
from ..front.spec_model import SpecError
from ..ir.units.from_arch import unit_graph
from .accel_lanes import log2_exact
from .graph_rtl import emit_graph

__all__ = ["SoftmaxUnit"]

_SOFTMAX, _KV = UNIT_NAMES.index("softmax"), UNIT_NAMES.index("kv_cache")
_WEIGHTS, _MAX, _SCALED = (UNIT_MODES["softmax"].index(m) for m in ("weights", "max", "scaled"))
_RESET, _ADVANCE = UNIT_MODES["kv_cache"].index("reset"), UNIT_MODES["kv_cache"].index("advance")
_POS = 34               # signed positions: -1 .. 2**32 - 1 plus a chunk


class SoftmaxUnit:
    """The softmax datapath, its key positions and the KV descriptors (module docstring)."""

    def __init__(self, p: AccelParams) -> None:
        self.p = p
        units = p.arch.units
        self.lanes = units.softmax.lanes if units.softmax is not None else 1
        self.ea_log = log2_exact(p.acc_elems, "an accumulator row's elements")
        self.es_log = log2_exact(p.sp_elems, "a scratchpad row's elements")
        if units.softmax is not None and p.sp_elems % self.lanes:
            raise SpecError(f"the softmax unit's {self.lanes} lanes must divide a scratchpad "
                            f"row's {p.sp_elems} elements")

    def blocks(self, cols):
        """Accumulator rows per query row: ``ceil(cols / Ea)``."""
        return (cols + self.p.acc_elems - 1) >> self.ea_log

    def steps_rows(self, cmd: dict):
        """The rows a command steps: 1 for ``kv_cache reset``, else ``rows``."""
        return Mux((cmd["unit"] == _KV) & (cmd["mode"] == _RESET), 1, cmd["rows"])

    def elaborate_into(self, m: Module, cmd: dict, s, xs: list, y0, sp_w, acc_w) -> None:
        """Wire the descriptors and the datapath: ``cmd`` the latched command, ``s`` the
        engine's step counters, ``xs`` the lanes of the row on port X in this beat, ``y0``
        element 0 of the row on port Y (``arg + row``: a held row max)."""
        kv = self._descriptors(m, cmd, s)
        if self.p.arch.units.softmax is not None:
            self._softmax(m, cmd, s, xs, y0, sp_w, acc_w, kv)

    def _descriptors(self, m: Module, cmd: dict, s):
        """The KV descriptors; returns the selected one's (L, w, sink, recent)."""
        kv = self.p.arch.units.kv_cache
        count = kv.descriptors if kv is not None else 1
        sinks = Array(Signal(16, name=f"kv{d}_sink") for d in range(count))
        recents = Array(Signal(16, name=f"kv{d}_recent") for d in range(count))
        sel = cmd["kv"] if count > 1 else 0
        sink, recent = sinks[sel], recents[sel]
        is_kv = s.in_beat & (cmd["unit"] == _KV)
        if kv is None:
            return Const(0, 32), Const(0, 16), sink, recent
        inputs = {"sink": sink, "recent": recent, "retrieval": recent == 0,
                  "reset": is_kv & (cmd["mode"] == _RESET),
                  "advance": is_kv & (cmd["mode"] == _ADVANCE)}
        graph = unit_graph(self.p.arch, "kv_cache")
        if count > 1:
            inputs["desc"] = cmd["kv"]
        outs = emit_graph(m, graph, inputs, prefix="kv_")
        with m.If(inputs["reset"]):
            m.d.sync += [sink.eq(cmd["src"]), recent.eq(cmd["dst"])]
        return outs["count"], outs["slot"], sink, recent

    def _positions(self, m: Module, cmd: dict, s, kv) -> tuple[list, Signal, Signal]:
        """Per lane its key's index and position (``-1``: none); the query's position and its
        row's index in the chunk (``weights``), or ``row mod cols`` (``max``, ``scaled``)."""
        p, lanes = self.p, self.lanes
        length, slot, sink, recent = kv
        n = Signal(signed(_POS), name="sm_len")
        m.d.comb += n.eq(length)
        retrieval = recent == 0
        slots = Mux(retrieval, n, sink + recent)
        padded = Signal(signed(_POS), name="sm_padded")
        m.d.comb += padded.eq(((slots + p.acc_elems - 1) >> self.ea_log) << self.ea_log)
        qi = Signal(12, name="sm_query")            # row i mod C
        chunk = Mux(cmd["mode"] == _WEIGHTS, cmd["cols"] - padded, cmd["cols"])
        with m.If(s.active & s.reading):
            m.d.sync += qi.eq(0)
        with m.Elif(s.row_end):
            m.d.sync += qi.eq(Mux(qi + 1 == chunk, 0, qi + 1))
        query = Signal(signed(_POS), name="sm_qpos")
        m.d.comb += query.eq(n + qi)
        wrapped = ~retrieval & (n > slots)
        j0 = (s.block << self.ea_log) + s.beat * lanes
        positions = []
        for lane in range(lanes):
            j = Signal(signed(_POS), name=f"sm_key{lane}")
            m.d.comb += j.eq(j0 + lane)
            ring = n - recent + Mux(j >= slot, j - slot, j - slot + recent)
            cached = Mux(j >= slots, -1,
                         Mux(wrapped & (j >= sink), ring, Mux(j < n, j, -1)))
            pos = Signal(signed(_POS), name=f"sm_pos{lane}")
            m.d.comb += pos.eq(Mux(j < padded, cached, n + j - padded))
            positions.append((j, pos))
        return positions, query, qi

    def _softmax(self, m: Module, cmd: dict, s, xs: list, y0, sp_w, acc_w, kv) -> None:
        p = self.p
        _, _, sink, recent = kv
        positions, query, qi = self._positions(m, cmd, s, kv)
        is_sm = s.in_beat & (cmd["unit"] == _SOFTMAX)
        cached = cmd["mode"] == _WEIGHTS            # else all keys < cols visible, or causal
        causal = ~cached & cmd["shift"][1]
        pass_start = is_sm & (s.block == 0) & (s.beat == 0)
        inputs = {"first": pass_start}
        for lane, ((j, pos), x) in enumerate(zip(positions, xs, strict=True)):
            visible = (pos >= 0) & (pos <= query) & \
                ((recent == 0) | (pos < sink) | (query - pos < recent))
            inputs[f"x{lane}"] = x
            inputs[f"valid{lane}"] = is_sm & (j < cmd["cols"]) & \
                Mux(cached, visible, ~causal | (j <= qi))
        rowmax, held = Signal(signed(32), name="sm_rowmax_in"), Signal(signed(32),
                                                                        name="sm_rowmax")
        inputs["rowmax"] = rowmax
        outs = emit_graph(m, unit_graph(p.arch, "softmax"), inputs, prefix="sm_")
        second = pass_start & (s.pass_ == 1)
        m.d.comb += rowmax.eq(Mux(cmd["mode"] == _SCALED, y0,
                                  Mux(second, outs["max"], held)))
        with m.If(second):
            m.d.sync += held.eq(outs["max"])
        weighing = is_sm & (Mux(cached, s.pass_ == 1, cmd["mode"] == _SCALED))
        self._writes(m, cmd, s, weighing, outs, positions, sp_w, acc_w)
        self._fold_max(m, cmd, s, is_sm & (cmd["mode"] == _MAX), y0, outs["max"], acc_w)

    def _fold_max(self, m: Module, cmd: dict, s, folding, y0, top, acc_w) -> None:
        """``softmax max``: after a row, element 0 of accumulator row ``arg + row`` becomes
        the row's largest key, or the larger of it and the value there (``shift`` bit 0
        clear); that value is latched in the row's last beat (port Y reads on after it)."""
        valid, row = Signal(name="sm_max_valid"), Signal(20, name="sm_max_row")
        old = Signal(signed(32), name="sm_max_old")
        m.d.sync += [valid.eq(folding & s.row_end), row.eq(cmd["arg"] + s.row), old.eq(y0)]
        new = Mux(cmd["shift"][0] | (top > old), top, old)
        with m.If(valid):
            m.d.comb += [acc_w.addr.eq(row), acc_w.data.eq(new), acc_w.en.eq(1)]

    def _writes(self, m: Module, cmd: dict, s, weighing, outs: dict, positions, sp_w,
                acc_w) -> None:
        """Register each second-pass beat's weights into its scratchpad row; the row sum
        into accumulator element 0 after the row."""
        p, lanes = self.p, self.lanes
        j0 = positions[0][0]
        offset = j0[:self.es_log] if self.es_log else Const(0, 1)
        w_valid, w_row = Signal(name="sm_w_valid"), Signal(20, name="sm_w_row")
        w_data = Signal(p.sp_elems * p.a_bits, name="sm_w_data")
        w_en = Signal(p.sp_elems, name="sm_w_en")
        sum_valid, sum_row = Signal(name="sm_sum_valid"), Signal(20, name="sm_sum_row")
        weights = Cat(*[outs[f"w{lane}"].as_unsigned()[:p.a_bits] if
                        len(outs[f"w{lane}"]) >= p.a_bits else
                        Cat(outs[f"w{lane}"], Const(0, p.a_bits - len(outs[f"w{lane}"])))
                        for lane in range(lanes)])
        named = Cat(*[j < cmd["cols"] for j, _ in positions])
        m.d.sync += [w_valid.eq(weighing), sum_valid.eq(weighing & s.row_end),
                     sum_row.eq(cmd["arg"] + s.row),
                     w_row.eq(cmd["dst"] + (j0 >> self.es_log) * cmd["rows"] + s.row),
                     w_data.eq(weights << (offset * p.a_bits)),
                     w_en.eq(named << offset)]
        with m.If(w_valid):
            m.d.comb += [sp_w.addr.eq(w_row), sp_w.data.eq(w_data), sp_w.en.eq(w_en)]
        scaled = cmd["mode"] == _SCALED            # the sum to element 1, else 0
        with m.If(sum_valid):
            m.d.comb += [acc_w.addr.eq(sum_row),
                         acc_w.data.eq(Mux(scaled, Cat(Const(0, p.c_bits), outs["sum"]),
                                           outs["sum"])),
                         acc_w.en.eq(Mux(scaled, 2, 1))]
