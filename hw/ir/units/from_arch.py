"""The datapath graphs of an architecture's declared units (``units:`` of the arch spec).

Layer: hw.ir, the primitive-graph layer (plain Python, no Amaranth).
"""

from __future__ import annotations

from ...front.arch import ArchSpec
from ..primitive import PrimitiveGraph
from .dequant import DequantShape, dequant_graph
from .normalizer import NormalizerShape, normalizer_graph
from .requant import RequantShape, requant_graph
from .softmax import SoftmaxShape, softmax_graph

__all__ = ["unit_graphs"]


def unit_graphs(arch: ArchSpec) -> dict[str, PrimitiveGraph]:
    """Per present datapath unit of ``arch`` (requant, softmax, normalizer, dequant, in that
    order), its graph at the declared widths and lanes. The ``quantizer`` and ``kv_cache``
    units have no graph here (not generated yet: see the README's workload-unit status)."""
    units, graphs = arch.units, {}
    if units.requant is not None:
        graphs["requant"] = requant_graph(RequantShape(
            units.requant.lanes, units.requant.mult_bits, arch.types[0].bits))
    if units.softmax is not None:
        graphs["softmax"] = softmax_graph(SoftmaxShape(
            units.softmax.lanes, units.softmax.golden_config(), units.softmax.weight_bits))
    if units.normalizer is not None:
        n = units.normalizer
        graphs["normalizer"] = normalizer_graph(NormalizerShape(
            n.lanes, n.den_bits, n.recip_frac_bits, n.out_frac_bits))
    if units.dequant is not None:
        graphs["dequant"] = dequant_graph(DequantShape(units.dequant.lanes,
                                                       units.dequant.golden_spec()))
    return graphs
