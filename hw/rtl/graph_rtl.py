"""Emit a :class:`~hw.primitive.PrimitiveGraph` as Amaranth statements (graph -> RTL).

Every node becomes one ``Signal`` of its width (signed when the node is): registers are
synchronous assignments in the given (reset-less) domain starting at the node's ``value``,
everything else a combinational assignment. The semantics are the ones
:mod:`hw.primitive` states and :func:`hw.graph_sim.simulate_graph` executes: operands are the
low ``edge.width`` bits of their source, read signed when the source is signed; every result is
truncated to its node's width by the assignment.

Layer: hw.rtl, the Amaranth layer.
"""

from __future__ import annotations

from collections.abc import Mapping

from amaranth.hdl import Const, Module, Mux, Signal, Value, signed, unsigned

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
    if kind == "buf":
        return ops[0]
    raise ValueError(f"emit_graph: node {name} has kind {kind!r}, which has no RTL form")
