"""The datapath of a generated array emitted from its optimized primitive graph.

:class:`~hw.rtl.generate.GeneratedArray` with a ``backend`` lowers its datapath description
(:func:`hw.ir.lower.lower`), optimizes it (:func:`hw.ir.backend.optimize_datapath`) and emits
the result here: the graph's control inputs are driven exactly as the direct generator drives its
FUs and write-back (mode compares, write windows, each FU's first/enable), its bank-read inputs
by the banks' read data. The registers it emits are counted by purpose for the report.

Layer: hw.rtl, the Amaranth layer.
"""

from __future__ import annotations

from amaranth.hdl import Const, Module

from ..cost import register_purpose
from ..ir.datapath import DatapathDescription
from ..ir.lower import LoweredDatapath
from ..ir.primitive import PrimitiveGraph
from .controller import fu_control
from .graph_rtl import emit_graph
from .registers import RegisterCounter

__all__ = ["graph_datapath"]


def graph_datapath(m: Module, desc: DatapathDescription, lowered: LoweredDatapath,
                   graph: PrimitiveGraph, ctls, mode, ports,
                   registers: RegisterCounter) -> dict:
    """Emit ``graph`` (``lowered``'s graph after the back end) into ``m``; return each output
    bank's write-back value.

    ``desc``: the datapath described; ``ctls``: the tile controllers, one per mode; ``mode``:
    the latched mode register (``None`` unfused); ``ports``: per bank its ``(read port, write
    port)``. The emitted registers are added to ``registers`` by purpose."""
    drive, control = {}, {}
    for name, what in lowered.controls.items():
        if name not in graph:
            continue                            # folded away by the back end
        kind = what[0]
        if kind == "mode":
            drive[name] = mode == what[1]
        elif kind == "write":
            any_write = Const(0, 1)
            for w in what[2]:
                any_write = any_write | ctls[w.mode].any_active(w.windows)
            drive[name] = any_write
        else:
            f = what[1]
            if f not in control:
                control[f] = fu_control(ctls, desc.fus[f])
            drive[name] = control[f][0 if kind == "first" else 1]
    for name, bank in lowered.reads.items():
        if name in graph:
            drive[name] = ports[bank][0].data
    out = emit_graph(m, graph, drive, prefix="dp_")
    for name, node in graph.nodes.items():
        if node.kind == "register":
            registers.bits[register_purpose(name, lowered)] += node.width
    return {bank: out[name] for bank, name in lowered.outputs.items()}
