"""A primitive graph as a component: the RTL of a workload unit's datapath.

:class:`GraphUnit` gives every ``input`` node of a graph an ``In`` port and every ``output``
node an ``Out`` port of its width (signed inputs as signed ports), and elaborates the graph with
:func:`hw.rtl.graph_rtl.emit_graph` in its parent's ``sync`` domain. The unit's controller
(which rows stream through it, and when) belongs to the accelerator; this is the datapath the
back end pipelined.

Layer: hw.rtl, the Amaranth layer.
"""

from __future__ import annotations

from amaranth.hdl import Module, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..ir.primitive import PrimitiveGraph
from .graph_rtl import emit_graph

__all__ = ["GraphUnit"]


class GraphUnit(wiring.Component):
    """The datapath of ``graph`` (see the module docstring); port names are node names."""

    def __init__(self, graph: PrimitiveGraph) -> None:
        members = {}
        for node in graph:
            if node.kind == "input":
                members[node.name] = In(signed(node.width) if node.signed
                                        else unsigned(node.width))
            elif node.kind == "output":
                members[node.name] = Out(node.width)
        bad = [n for n in members if not n.isidentifier()]
        problem = (f"node names {bad[:3]} are not identifiers" if bad else
                   "the graph has no output node" if not any(
                       node.kind == "output" for node in graph) else None)
        if problem:
            self._MustUse__silence = True       # never elaborated: no unused warning
            raise ValueError(f"GraphUnit: {problem}")
        self._graph = graph
        super().__init__(members)

    def elaborate(self, platform) -> Module:
        m = Module()
        ins = {n.name: getattr(self, n.name) for n in self._graph if n.kind == "input"}
        outs = emit_graph(m, self._graph, ins, prefix="u_")
        for name, value in outs.items():
            m.d.comb += getattr(self, name).eq(value)
        return m
