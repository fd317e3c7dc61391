"""The datapaths of the accelerator's workload units as primitive graphs.

One module per unit, each a pure function from the unit's shape to a
:class:`~hw.ir.primitive.PrimitiveGraph` whose arithmetic is exactly the golden model's
(:mod:`golden.group_dequant`, :mod:`golden.softmax_fixed` / :mod:`golden.attention_fixed`,
:mod:`golden.linear_attention_fixed`'s normalizer, the requantization steps of the on-chip
chains, :func:`golden.svdquant_ops.quantize_int4`, :func:`golden.kv_cache.ring_buffer_address`),
so the back end (LP pipelining, constant folding, area counts) and the RTL emission
(:func:`hw.rtl.graph_rtl.emit_graph`) apply to them as to the array:

* :mod:`~hw.ir.units.requant`: int32 values to operands (shift, multiplier, saturation,
  7-bit slices, a max-magnitude reduction giving a power-of-two shift);
* :mod:`~hw.ir.units.softmax`: attention weights (row max, exp2 table with interpolation,
  weight quantization, row sum);
* :mod:`~hw.ir.units.normalizer`: a row divided by one denominator (leading-one shift,
  reciprocal, rounding, saturation);
* :mod:`~hw.ir.units.dequant`: W4A4 group dequantization (scale products, aligned
  accumulation, one float32 rounding: :mod:`~hw.ir.units.float32`);
* :mod:`~hw.ir.units.quantizer`: W4A4 activation quantization (group absmax, a float32 scale
  and per-element codes through :mod:`~hw.ir.units.float32`'s correctly rounded division);
* :mod:`~hw.ir.units.kv_address`: the streaming KV cache's ring-buffer addresses (write-slot
  and token-count registers per descriptor, no divider).

Layer: hw.ir, the primitive-graph layer (plain Python, no Amaranth).
"""

from .dequant import DequantShape, dequant_graph
from .kv_address import KvAddressShape, kv_address_graph
from .normalizer import NormalizerShape, normalizer_graph, reciprocal_graph, scale_graph
from .quantizer import QuantizerShape, quantizer_graph
from .requant import RequantShape, requant_graph
from .softmax import SoftmaxShape, softmax_graph

__all__ = ["DequantShape", "KvAddressShape", "NormalizerShape", "QuantizerShape",
           "RequantShape", "SoftmaxShape", "dequant_graph", "kv_address_graph",
           "normalizer_graph", "quantizer_graph", "reciprocal_graph", "requant_graph",
           "scale_graph", "softmax_graph"]
