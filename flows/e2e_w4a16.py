"""The e2e run's AWQ W4A16 leaves (:class:`mapping.torch_blocks.W4A16Linear`, FLUX.1's
modulation) as W4A8 GEMMs of their int4 weight codes on the accelerator.

**Which** (:func:`w4a16_on_accelerator`): a leaf whose ``in_features`` is one group (64) on an
architecture multiplying 8-bit A and B codes. The leaf stores ``w_nk = fl32((q_nk - z_ng)
s_ng)`` (:func:`mapping.torch_blocks.dequantize`: codes ``q`` in 0..15, a scale ``s`` and an
integer zero point ``z`` per output ``n`` and group ``g`` of 64 along K). With one group the
scale and zero are per output channel, so one GEMM over K of the codes is the whole product.
With several groups each group needs its own partial product (``sum_g s_ng (sum_{k in g}
...)``): one GEMM over all of K mixes the groups' scales, so those leaves stay in torch (the
mapper costs them as a batch of one GEMM per group, ``group_partials`` below; this module
does not run that batch).

**Math**, activations ``a`` (M, K) float32, bias ``b``:

* ``(qa, s_a) = quantize_symmetric(a, 8)`` per row (:func:`golden.svdquant_fixed.
  quantize_symmetric`, as :func:`flows.e2e_w8a8.w8a8_operands`), so ``a_mk ~= s_a,m qa_mk``;
* ``C = qa q^T`` (M, N) int32, ``q^T`` (K, N) the weight codes as the GEMM's B (golden's
  :func:`golden.int_gemm.int_gemm`, or the accelerator's program, which must equal it);
* ``sum_k a_mk w_nk ~= s_a,m s_n sum_k qa_mk (q_nk - z_n) = s_a,m s_n (C_mn - z_n R_m)``,
  ``R_m = sum_k qa_mk``: the zero point's term is the activation row sum times ``z_n``;
* on the host ``D = C - z R^T`` exactly in int64, then ``y = fl32(fl32(fl32(D) s_a) s_n) + b``
  (:func:`flows.e2e_w8a8.w8a8_output` of ``D`` with ``s_w = s``).

**Error** against the twin's float linear ``y* = a w^T + b`` in float64 (``w`` the leaf's
float32 dequantized weight), per element: the activation rounding ``|a - s_a qa| <= s_a / 2``
gives ``s_a / 2 sum_k |w_nk|``; the weight codes are exact, but ``w`` is ``(q - z) s`` rounded
once to float32 and ``fl32(a / s_a)`` rounds once more, which with float64's rounding of
``y*`` stays below ``3 u sum_k (|a_mk| + s_a / 2) |w_nk|``; the four float32 roundings of the
output (``fl32(D)``, two products, the bias add) give ``4 u |p| + u |b|``, ``p = s_a s_n D``
(with a ``1 + 2^-20`` factor for the second-order terms), ``u = 2^-24``. The record holds the
error and the bound at the element nearest (or furthest past) its bound, as
:func:`flows.e2e_w8a8.w8a8_error` does.

**Cycles.** The importer's op is ``Linear(name, M, K, N, fmt(x), "int4_awq_g64", fmt(x),
0, bias)`` (:meth:`W4A16Linear.ir_ops`, :func:`w4a16_ir`). The mapper's policy makes the
activations int8 codes; the weights' group of 64 with no dequantizer of that group leaves
``group_partials`` (:func:`mapping.decompose.group_partials`) its only candidate: one GEMM
per group (here one, ``M x 64 x N``, the same program the plain int8 linear of that shape
gets) on the array, then the host's ``group_rescale`` step. This run executes the array step
(its dataflow and schedule) and records its cost as ``mapper_cycles``, which the cycle model
(and the RTL with the fast engine) must equal. The host step (the rescale above, done here
in numpy) is the rest of :func:`mapping.mapper.map_op`'s cost: not in the record, but
booked by :mod:`flows.e2e_host` as a host record of the call (:func:`w4a16_host_steps`).

Layer: flows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from golden.svdquant_fixed import quantize_symmetric
from hw.front.arch import ArchSpec
from mapping.ir import Linear
from mapping.mapper import map_op

from .e2e_error import worst

if TYPE_CHECKING:
    from mapping.torch_blocks import W4A16Linear

    from .e2e import _Gemms

__all__ = ["w4a16_error", "w4a16_host_steps", "w4a16_ir", "w4a16_linear",
           "w4a16_on_accelerator"]

_U = 2.0 ** -24                 #: float32 unit roundoff
_SECOND_ORDER = 1 + 2.0 ** -20  #: covers the O(u^2) terms of the output's roundings


def w4a16_on_accelerator(module: object, arch: ArchSpec) -> bool:
    """Whether the e2e run puts ``module`` on ``arch``'s array: a ``W4A16Linear`` of one
    weight group along K (``in_features`` = the group, 64) on an architecture whose A and B
    types are 8-bit (module docstring: Which)."""
    from mapping.torch_blocks import W4A16Linear

    if not isinstance(module, W4A16Linear):
        return False
    group = module.qweight.shape[-1]
    return (module.in_features == group and arch.types[0].bits == 8
            and arch.types[1].bits == 8)


def w4a16_ir(name: str, mod: W4A16Linear, x) -> Linear:
    """The importer's IR op of leaf ``mod`` on activations ``x`` (..., K)
    (:meth:`W4A16Linear.ir_ops`: the output in ``x``'s format), named ``name`` with dots as
    underscores."""
    from mapping.fx_trace import format_of

    fmt, k = format_of(x.dtype), mod.in_features
    return Linear(name.replace(".", "_"), x.numel() // k, k, mod.out_features, fmt,
                  "int4_awq_g64", fmt, 0, mod.bias is not None)


def w4a16_host_steps(arch: ArchSpec, op: Linear) -> list:
    """The host steps (:class:`mapping.op_cost.OpCost`, target "host") of the mapper's choice
    for the importer's op ``op`` of an accelerator W4A16 leaf: the group rescale this module
    does in numpy after the array's GEMM (module docstring: Cycles);
    :mod:`flows.e2e_host` books them."""
    return [s for s in map_op(arch, op).steps if s.target == "host"]


def _operands(torch, mod: W4A16Linear, x) -> tuple[np.ndarray, ...]:
    """``(a (M, K) float32, w (N, K) float32 the twin's weight, q (N, K) int64 codes, s (N,)
    float32, z (N,) int64, b (N,) float32 or None)``; ``ValueError`` for a zero point that is
    not an integer."""
    from mapping.torch_blocks import dequantize

    k, n = mod.in_features, mod.out_features
    a = x.detach().reshape(-1, k).to(torch.float32).cpu().numpy()
    w = dequantize(mod.qweight, mod.scales, mod.zeros).detach().cpu().numpy()
    q = mod.qweight.detach().cpu().numpy().reshape(n, k).astype(np.int64)
    s = mod.scales.detach().float().cpu().numpy().reshape(n)
    zf = mod.zeros.detach().double().cpu().numpy().reshape(n)
    if not np.array_equal(zf, np.round(zf)):
        raise ValueError(f"W4A16 zero points must be integers, got {zf[zf != np.round(zf)][:4]}")
    b = None if mod.bias is None else mod.bias.detach().float().cpu().numpy()
    return a, w, q, s, zf.astype(np.int64), b


def w4a16_error(a: np.ndarray, w: np.ndarray, bias: np.ndarray | None, sa: np.ndarray,
                s: np.ndarray, d: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(``|y - y*|`` and the bound at the element nearest (or furthest past) its bound)
    of output ``y`` (M, N) from ``D = d`` against ``y* = a w^T + b`` in float64 (module
    docstring: Error)."""
    a64, w64 = a.astype(np.float64), np.abs(w.astype(np.float64))
    exact = a64 @ w.astype(np.float64).T + (0 if bias is None else bias.astype(np.float64))
    sa64 = sa.astype(np.float64)[:, None]
    p = np.abs(d.astype(np.float64) * sa64 * s.astype(np.float64)[None, :])
    bound = (sa64 / 2 * w64.sum(1)[None, :]
             + 3 * _U * (np.abs(a64) + sa64 / 2) @ w64.T
             + _SECOND_ORDER * (4 * _U * p + _U * (0 if bias is None else np.abs(bias))))
    err = np.abs(y.astype(np.float64) - exact)
    return worst(err, bound)


def w4a16_linear(torch, mod: W4A16Linear, x, gemms: _Gemms, name: str):
    """``mod(x)`` of activations ``x`` (..., K) as a W4A8 GEMM of the leaf's int4 codes on the
    accelerator (``gemms``: a :class:`flows.e2e._Gemms`; golden's product when its engine is
    None), the zero points and scales applied on the host (module docstring: Math); a
    :class:`flows.e2e.OpRecord` appended to ``gemms.records`` for an accelerator call. Returns
    a tensor shaped ``(..., N)`` in ``x``'s dtype. ``ValueError`` for a leaf
    :func:`w4a16_on_accelerator` rejects on ``gemms.arch``."""
    from .e2e import OpRecord
    from .e2e_w8a8 import w8a8_output

    if not w4a16_on_accelerator(mod, gemms.arch):
        k = getattr(mod, "in_features", None)
        raise ValueError(f"{name}: W4A16 leaf {type(mod).__name__} with in_features {k!r} "
                         f"does not run on {gemms.arch.name!r} (it needs one group of 64 "
                         f"along K and 8-bit A/B types, got "
                         f"{[t.name for t in gemms.arch.types[:2]]})")
    a, w, q, s, z, bias = _operands(torch, mod, x)
    qa, sa = quantize_symmetric(a, 8)
    c, rec = gemms(name, qa.astype(np.int64), np.ascontiguousarray(q.T),
                   w4a16_ir(name, mod, x))
    d = c.astype(np.int64) - z[None, :] * qa.astype(np.int64).sum(1)[:, None]
    y = w8a8_output(d, sa, s, bias)
    if rec:
        err, bound = w4a16_error(a, w, bias, sa, s, d, y)
        gemms.records.append(OpRecord(**rec, err=err, err_bound=bound))
    out = torch.from_numpy(np.ascontiguousarray(y)).reshape(*x.shape[:-1], mod.out_features)
    return out.to(x.dtype)
