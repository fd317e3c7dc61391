"""The vector (non-MAC) work of an IR operator in FP32-op equivalents: the one account that
both the GPU roofline (:mod:`mapping.gpu_cost`) and the accelerator's host
(:mod:`mapping.host_cost`) charge, each at its own throughput.

An FMA counts 2 ops; a transcendental (exp, tanh, reciprocal) is counted apart, since each
target prices it differently (a GPU's special-function slot, a host's polynomial).

Pure Python.
"""

from __future__ import annotations

from .ir import Attention, Elementwise, LinearAttention, Norm, Op

__all__ = ["ELEMENTWISE_VECTOR_OPS", "GROUP_RESCALE_OPS", "SOFTMAX_OPS", "vector_work"]

ELEMENTWISE_VECTOR_OPS: dict[str, tuple[int, int]] = {
    "copy": (0, 0), "relu": (1, 0), "add": (1, 0), "mul": (1, 0), "residual": (2, 0),
    "modulate": (2, 0), "cfg": (3, 0), "rope": (3, 0), "quantize": (6, 0), "silu": (3, 2),
    "gate": (4, 2), "gelu": (8, 1), "softmax": (4, 1)}
"""Element-wise op -> (FP32 ops, transcendentals) per output element. ``residual`` and
``modulate``: one FMA; ``cfg``: a subtract and an FMA; ``rope``: a multiply and an FMA (cos, sin
from a table); ``quantize``: abs, group max, scale, round, clamp (2); ``silu``: x / (1 + exp(-x))
(exp, reciprocal); ``gate``: silu and a multiply; ``gelu``: the tanh approximation (FLUX, Sana);
``softmax``: max, subtract, exp, sum, normalize."""

GROUP_RESCALE_OPS = 4
"""FP32 ops per (output element, group) of a grouped integer GEMM: convert the int32 partial sum,
multiply the two group scales, one FMA into the fp32 accumulator."""

SOFTMAX_OPS = ELEMENTWISE_VECTOR_OPS["softmax"]
"""(FP32 ops, transcendentals) per attention score: scale and subtract the max, the running max,
exp, the row sum."""


def vector_work(op: Op) -> tuple[int, int]:
    """(FP32 ops, transcendentals) of ``op``'s vector work: ``op.vector_elements`` times the
    per-element cost of its kind (:data:`ELEMENTWISE_VECTOR_OPS`; ``Norm`` 5 (layer) or 3 (rms)
    plus 2 / 1 for the affine; ``Attention`` :data:`SOFTMAX_OPS` a visible score;
    ``LinearAttention`` 3 an output: ReLU of q and k, the multiply by the reciprocal)."""
    n = op.vector_elements
    if isinstance(op, Elementwise):
        ops, sfu = ELEMENTWISE_VECTOR_OPS[op.op]
    elif isinstance(op, Norm):
        ops, sfu = (5 + 2 * op.affine, 0) if op.norm == "layer" else (3 + op.affine, 0)
    elif isinstance(op, Attention):
        ops, sfu = SOFTMAX_OPS
    elif isinstance(op, LinearAttention):
        ops, sfu = 3, 0
    else:
        ops, sfu = 0, 0
    return n * ops, n * sfu
