"""Small instances of every unit graph and random stimulus for them (shared by the graph,
pipelining and RTL tests)."""

import random

from hw.ir.primitive import PrimitiveGraph
from hw.ir.units import (
    DequantShape,
    KvAddressShape,
    NormalizerShape,
    QuantizerShape,
    RequantShape,
    SoftmaxShape,
    dequant_graph,
    kv_address_graph,
    normalizer_graph,
    quantizer_graph,
    requant_graph,
    softmax_graph,
)

#: unit name -> a builder of a small (1-2 lane) instance of its graph.
UNITS = {
    "requant": lambda: requant_graph(RequantShape(lanes=2)),
    "softmax": lambda: softmax_graph(SoftmaxShape(lanes=1)),
    "normalizer": lambda: normalizer_graph(NormalizerShape(lanes=1)),
    "dequant": lambda: dequant_graph(DequantShape(lanes=1)),
    "quantizer": lambda: quantizer_graph(QuantizerShape(lanes=1, group=2)),
    "kv_address": lambda: kv_address_graph(KvAddressShape(descriptors=3, slot_bits=3,
                                                          pos_bits=4)),
}


def random_stimulus(graph: PrimitiveGraph, cycles: int, seed: int) -> list[dict[str, int]]:
    """Per cycle a value for every input: random bit lengths, so short and long values alike
    (1-bit controls toggle at random)."""
    rng = random.Random(seed)
    return [{n.name: rng.getrandbits(n.width if n.width == 1 else rng.randint(1, n.width))
             for n in graph if n.kind == "input"} for _ in range(cycles)]
