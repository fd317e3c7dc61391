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

__all__ = ["normalizer_shape", "unit_graph", "unit_graphs"]

#: the graphs of each unit, in the order :func:`unit_graphs` lists them.
_GRAPHS = {"requant": ("requant",), "softmax": ("softmax",),
           "normalizer": ("normalizer", "normalizer.reciprocal"), "dequant": ("dequant",),
           "quantizer": ("quantizer",), "kv_cache": ("kv_cache",)}


def unit_graph(arch: ArchSpec, name: str) -> PrimitiveGraph:
    """The graph ``name`` (a key of :func:`unit_graphs`) of ``arch``'s unit; ``ValueError``
    for an unknown name or a unit ``arch`` does not have."""
    unit = name.split(".")[0]
    if unit not in _GRAPHS or name not in _GRAPHS[unit]:
        known = ", ".join(g for names in _GRAPHS.values() for g in names)
        raise ValueError(f"no unit graph {name!r} (graphs: {known})")
    spec = getattr(arch.units, unit)
    if spec is None:
        raise ValueError(f"architecture {arch.name!r} has no {unit} unit")
    if unit == "requant":
        return requant_graph(RequantShape(spec.lanes, spec.mult_bits, arch.types[0].bits,
                                          arch.types[2].bits))
    if unit == "softmax":
        return softmax_graph(SoftmaxShape(spec.lanes, spec.golden_config(), spec.weight_bits))
    if unit == "normalizer":
        shape = normalizer_shape(arch)
        return reciprocal_graph(shape) if name.endswith(".reciprocal") else scale_graph(shape)
    if unit == "dequant":
        return dequant_graph(DequantShape(spec.lanes, spec.golden_spec()))
    if unit == "quantizer":
        return quantizer_graph(QuantizerShape(spec.lanes, spec.group,
                                              min(max(arch.types[0].bits, 4), 16)))
    return kv_address_graph(KvAddressShape(spec.descriptors))


def normalizer_shape(arch: ArchSpec) -> NormalizerShape:
    """The normalizer datapath of ``arch``'s declared unit (``ValueError`` if it has none)."""
    n = arch.units.normalizer
    if n is None:
        raise ValueError(f"architecture {arch.name!r} has no normalizer unit")
    return NormalizerShape(n.lanes, n.den_bits, n.recip_frac_bits, n.out_frac_bits,
                           n.NUM_BITS, n.DEN_IN_BITS)


def unit_graphs(arch: ArchSpec) -> dict[str, PrimitiveGraph]:
    """Per present datapath unit of ``arch`` (requant, softmax, normalizer, dequant,
    quantizer, kv_cache, in that order), its graph at the declared widths and lanes; the
    normalizer as two, its lanes (``normalizer``) and its per-row reciprocal
    (``normalizer.reciprocal``), which the unit computes ahead of the row. The
    ``kv_cache`` unit is one address generator holding its ``descriptors`` in the graph (a
    count / write-slot register pair and step each, ``desc`` selecting), at
    :class:`~hw.ir.units.kv_address.KvAddressShape`'s default widths; a descriptor's sink,
    recent and mode are registered outside per command. The quantizer's wide codes take the
    operand type's bits (limited to 4..16). ``ValueError`` for a quantizer whose ``group`` is
    not a multiple of its ``lanes``."""
    return {name: unit_graph(arch, name) for unit, names in _GRAPHS.items()
            if getattr(arch.units, unit) is not None for name in names}
