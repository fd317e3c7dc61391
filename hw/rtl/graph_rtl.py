"""Emit a :class:`~hw.primitive.PrimitiveGraph` as Amaranth statements (graph -> RTL).

Every node becomes one ``Signal`` of its width (signed when the node is): registers are
synchronous assignments in the given (reset-less) domain starting at the node's ``value``,
everything else a combinational assignment. The semantics are the ones
:mod:`hw.ir.kinds` states and :func:`hw.graph_sim.simulate_graph` executes: operands are the
low ``edge.width`` bits of their source, read signed when the source is signed; every result is
truncated to its node's width by the assignment.

Variable shifts cap their amount, which changes no result: ``shl_var`` shifts by
``min(max(b, 0), width)`` (``width``: the node's; any shift by ``width`` or more leaves 0 in
the result), ``shr_var`` by ``min(max(b, 0), len(a))`` (any shift by ``len(a)`` or more
leaves ``a``'s sign fill, 0 or -1), so the shifter's amount is ``cap.bit_length()`` bits
whatever the width of ``b``. ``recip`` divides the exact (unsigned, wide enough)
``2**value + (a >> 1)`` by ``a`` and gives 0 unless ``a > 0``; ``rom`` is an ``Array`` of the
table's entries behind a ``0 <= a < len(table)`` guard; ``lod`` a priority encoder on ``|a|``.

Layer: hw.rtl, the Amaranth layer.
"""

from __future__ import annotations

from collections.abc import Mapping

from amaranth.hdl import Array, Const, Module, Mux, Signal, Value, signed, unsigned

from ..ir.kinds import clamp_bounds
from ..ir.primitive import Node, PrimitiveGraph

__all__ = ["emit_graph"]

_SOURCES = ("input", "mem_read")
_SINKS = ("output", "mem_write")


def _shape(node: Node):
    return signed(node.width) if node.signed else unsigned(node.width)


def emit_graph(m: Module, graph: PrimitiveGraph, inputs: Mapping[str, Value], *,
               domain: str = "sync", prefix: str = "") -> dict[str, Value]:
    """Add ``graph`` to ``m``; return the value of every ``output``/``mem_write`` node.

    ``inputs`` drives every ``input`` and ``mem_read`` node (``ValueError`` naming a missing
    one or an unknown name). Signal names are ``prefix`` + node name.
    """
    nodes = graph.nodes
    wanted = {n for n, node in nodes.items() if node.kind in _SOURCES}
    if missing := sorted(wanted - set(inputs)):
        raise ValueError(f"emit_graph: no driver for input node(s) {', '.join(missing[:5])}")
    if unknown := sorted(set(inputs) - wanted):
        raise ValueError(f"emit_graph: {', '.join(unknown[:5])} is not an input of the graph")
    sig = {n: Signal(_shape(node), name=prefix + n, init=node.value if node.kind == "register"
                     else 0)
           for n, node in nodes.items() if node.kind not in _SINKS}

    def operand(edge) -> Value:
        src = nodes[edge.src]
        v = sig[edge.src].as_unsigned()[:edge.width]
        return v.as_signed() if src.signed else v

    outputs: dict[str, Value] = {}
    for name, node in nodes.items():
        ops = [operand(e) for e in graph.in_edges(name)]
        kind = node.kind
        if kind in _SOURCES:
            m.d.comb += sig[name].eq(inputs[name])
        elif kind == "const":
            m.d.comb += sig[name].eq(Const(node.value, _shape(node)))
        elif kind == "register":
            m.d[domain] += sig[name].eq(ops[0])
        elif kind in _SINKS:
            outputs[name] = ops[0] if node.width >= len(ops[0]) else ops[0][:node.width]
        else:
            m.d.comb += sig[name].eq(_operator(name, node, ops))
    return outputs


def _operator(name: str, node: Node, ops: list[Value]) -> Value:
    kind = node.kind
    if kind == "mul":
        return ops[0] * ops[1]
    if kind == "add":
        total = ops[0]
        for v in ops[1:]:
            total = total + v
        return total
    if kind == "sub":
        return ops[0] - ops[1]
    if kind == "mux":
        return Mux(ops[0].bool(), ops[1], ops[2])
    if kind == "shift":
        return ops[0] << node.value if node.value >= 0 else ops[0] >> -node.value
    if kind == "compare":
        return ops[0] < ops[1]
    if kind == "relu":
        return Mux(ops[0] < 0, 0, ops[0])
    if kind == "max":
        return Mux(ops[0] > ops[1], ops[0], ops[1])
    if kind == "min":
        return Mux(ops[0] < ops[1], ops[0], ops[1])
    if kind == "clamp":
        lo, hi = clamp_bounds(node.value, node.signed)
        return Mux(ops[0] < lo, lo, Mux(ops[0] > hi, hi, ops[0]))
    if kind == "shl_var":                   # a shift by >= the node's width gives 0 anyway
        return ops[0] << _shift_amount(ops[1], node.width)
    if kind == "shr_var":                   # by >= a's width: its sign fill (0 or -1) anyway
        return ops[0] >> _shift_amount(ops[1], len(ops[0]))
    if kind == "lod":                       # priority encoder: the highest set bit wins
        magnitude = abs(ops[0]) if ops[0].shape().signed else ops[0]
        position: Value = Const(0, len(magnitude).bit_length())
        for i in range(len(magnitude)):
            position = Mux(magnitude[i], i + 1, position)
        return position
    if kind == "rom":
        return _rom(node, ops[0])
    if kind == "recip":                     # divisor = a whenever a > 0, the only case used
        divisor = ops[0].as_unsigned()
        dividend = Const(1 << node.value, node.value + 1) + (divisor >> 1)   # exact width
        return Mux(ops[0] > 0, dividend // divisor, 0)
    if kind == "buf":
        return ops[0]
    raise ValueError(f"emit_graph: node {name} has kind {kind!r}, which has no RTL form")


def _shift_amount(b: Value, cap: int) -> Value:
    """``max(b, 0)`` as an unsigned value, capped at ``cap`` (when ``b`` can exceed it): the
    caller's cap is a shift after which every larger one gives the same result, so the shifter
    stays ``cap.bit_length()`` bits of amount wide whatever the width of ``b``."""
    top = (1 << (len(b) - 1)) - 1 if b.shape().signed else (1 << len(b)) - 1
    amount = Mux(b < 0, 0, b) if b.shape().signed else b
    if top > cap:
        amount, top = Mux(amount > cap, cap, amount), cap
    return amount.as_unsigned()[:max(top.bit_length(), 1)]


def _rom(node: Node, a: Value) -> Value:
    """``table[a]`` for ``0 <= a < len(table)``, else 0: an ``Array`` of the entries (as
    patterns of the node's width) behind a range guard."""
    n, mask = len(node.table), (1 << node.width) - 1
    entries = Array(Const(entry & mask, node.width) for entry in node.table)
    signed_a = a.shape().signed
    top = (1 << (len(a) - 1)) - 1 if signed_a else (1 << len(a)) - 1   # largest a
    index = a.as_unsigned()[:max((min(top, n - 1)).bit_length(), 1)]    # exact when in range
    if not signed_a and top < n:            # every pattern of a indexes the table
        return entries[index]
    in_range = (a < n) & (a >= 0) if signed_a else a < n
    return Mux(in_range, entries[index], 0)
