"""The datapath graphs of an architecture's declared units (``units:`` of the arch spec).

Layer: hw.ir, the primitive-graph layer (plain Python, no Amaranth).
"""

from __future__ import annotations

from ...front.arch import ArchSpec
from ..primitive import PrimitiveGraph
from .dequant import DequantShape, dequant_graph
from .kv_address import KvAddressShape, kv_address_graph
from .normalizer import NormalizerShape, reciprocal_graph, scale_graph
from .quantizer import QuantizerShape, quantizer_graph
from .requant import RequantShape, requant_graph
from .softmax import SoftmaxShape, softmax_graph

__all__ = ["unit_graphs"]


def unit_graphs(arch: ArchSpec) -> dict[str, PrimitiveGraph]:
    """Per present datapath unit of ``arch`` (requant, softmax, normalizer, dequant,
    quantizer, kv_cache, in that order), its graph at the declared widths and lanes; the
    normalizer as two, its lanes (``normalizer``) and its per-row reciprocal
    (``normalizer.reciprocal``), which the unit computes ahead of the row. The
    ``kv_cache`` unit is one address generator holding its ``descriptors`` in the graph (a
    count / write-slot register pair and step each, ``desc`` selecting), at
    :class:`~hw.ir.units.kv_address.KvAddressShape`'s default widths; a descriptor's sink,
    recent and mode are registered outside per command. ``ValueError`` for a quantizer whose
    ``group`` is not a multiple of its ``lanes``."""
    units, graphs = arch.units, {}
    if units.requant is not None:
        graphs["requant"] = requant_graph(RequantShape(
            units.requant.lanes, units.requant.mult_bits, arch.types[0].bits))
    if units.softmax is not None:
        graphs["softmax"] = softmax_graph(SoftmaxShape(
            units.softmax.lanes, units.softmax.golden_config(), units.softmax.weight_bits))
    if units.normalizer is not None:
        n = units.normalizer
        shape = NormalizerShape(n.lanes, n.den_bits, n.recip_frac_bits, n.out_frac_bits)
        graphs["normalizer"] = scale_graph(shape)
        graphs["normalizer.reciprocal"] = reciprocal_graph(shape)
    if units.dequant is not None:
        graphs["dequant"] = dequant_graph(DequantShape(units.dequant.lanes,
                                                       units.dequant.golden_spec()))
    if units.quantizer is not None:
        graphs["quantizer"] = quantizer_graph(QuantizerShape(units.quantizer.lanes,
                                                             units.quantizer.group))
    if units.kv_cache is not None:
        graphs["kv_cache"] = kv_address_graph(KvAddressShape(units.kv_cache.descriptors))
    return graphs
