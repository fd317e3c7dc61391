"""The e2e run's pointwise convolutions (Sana's ``x_embed``, ``ffn_inverted``, ``ffn_point``)
as W8A8 GEMMs on the accelerator and on the GPU's ``sw.int8_gemm`` (for :func:`flows.e2e.run_e2e`).

**Which** (:func:`is_pointwise`): an ``nn.Conv2d`` with a 1x1 kernel, stride 1, no padding,
dilation 1 and one group. It is a linear over channels with the pixels as rows::

    y[b, :, h, w] = W[:, :, 0, 0] x[b, :, h, w] + bias

so it is quantized exactly as a linear is (:func:`flows.e2e_w8a8.w8a8_operands` of the channels-last
activations ``a`` (B H W, C_in) and ``W[:, :, 0, 0]`` (C_out, C_in): a scale per pixel, one per
output channel; ``y = C s_a s_w^T + b`` by :func:`flows.e2e_w8a8.w8a8_output`), with the W8A8 bound
of :func:`flows.e2e_w8a8.w8a8_error`.

**Accelerator** (:func:`pointwise_conv`): the GEMM the mapper costs for the ``Conv2d`` the
importer emits for this call (:func:`conv_ir`; :mod:`mapping.accel_cost`: a 1x1 conv is one
GEMM ``c_out x (batch h w) x c_in``, the weights as ``A``, the activations channel-major as
``B``): ``C^T = qw qa^T`` by :func:`hw.front.kernel_runs.run_gemm` under the mapper's choice for
that ``Conv2d`` (:func:`mapping.mapper.map_op`: its ``whole/<dataflow>`` candidate; the im2col
one adds a host gather to the same GEMM, never cheaper), so the record's ``mapper_cycles`` is
the mapper's cost of the importer's operator and model = mapper (= RTL with the fast engine)
holds. (The Linear with the pixels as rows, ``(B H W) x C_out x C_in``, is the transposed
GEMM: the mapper costs it differently, e.g. 482 against the Conv2d's 466 cycles for Sana-0.6B's
``x_embed`` on lego_fused, so it is not what runs.) The int32 product is the same integers
either way: golden is :func:`golden.int_gemm.int_gemm` of ``qw`` and ``qa^T``, transposed back;
it must equal the accelerator's bit for bit. The record (:class:`flows.e2e.OpRecord`, named
``path#n``) goes through :meth:`flows.e2e._Gemms.measured` (so :mod:`flows.e2e_forward` joins
it) with ``shape`` the linear's ``(B H W, C_in, C_out)``.

**GPU** (:func:`gpu_pointwise_conv`): :func:`flows.e2e_gpu.gpu_linear` of the same operands
(``sw.int8_gemm``), so its output is the accelerator's bit for bit.

Other convolutions (Sana's depthwise 3x3) stay in torch, costed on the host
(:mod:`flows.e2e_host`, :func:`mapping.host_cost.host_depthwise_cost`).

Layer: flows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from golden.int_gemm import int_gemm
from hw.front.kernel_runs import gemm_operands, run_gemm
from mapping.ir import Conv2d
from mapping.lower import gemm_schedule
from mapping.mapper import map_op

from .e2e import OpRecord
from .e2e_w8a8 import w8a8_error, w8a8_operands, w8a8_output

if TYPE_CHECKING:
    from .e2e import _Gemms
    from .e2e_gpu import GpuRunner

__all__ = ["conv_ir", "gpu_pointwise_conv", "is_pointwise", "pointwise_conv"]


def is_pointwise(module: Any) -> bool:
    """Whether ``module`` is an ``nn.Conv2d`` the run puts on the accelerator: kernel 1x1,
    stride 1, padding 0, dilation 1, one group (module docstring)."""
    import torch

    if not isinstance(module, torch.nn.Conv2d):
        return False
    pad = module.padding
    return (tuple(module.kernel_size) == (1, 1) and tuple(module.stride) == (1, 1)
            and (pad == "valid" or (not isinstance(pad, str) and tuple(pad) == (0, 0)))
            and tuple(module.dilation) == (1, 1) and module.groups == 1)


def conv_ir(name: str, conv: Any, x: Any) -> Conv2d:
    """The IR ``Conv2d`` :mod:`mapping.fx_map` emits for pointwise ``conv`` on ``x`` (B, C, H,
    W) in float32 (the run's precision; the mapper's policy deploys it to int8 codes)."""
    b, c, h, w = x.shape
    return Conv2d(name.replace(".", "_"), b, c, conv.out_channels, h, w, 1, 1, 1, -1,
                  "fp32", "fp32", "fp32", bias=conv.bias is not None)


@dataclass(frozen=True)
class _AsLinear:
    """A pointwise conv's weights seen as a linear's (what :func:`w8a8_operands` reads)."""

    in_features: int
    out_features: int
    weight: Any
    bias: Any


def _as_linear(conv) -> _AsLinear:
    """Pointwise ``conv``'s weights as a linear's: ``W[:, :, 0, 0]`` (C_out, C_in), bias."""
    return _AsLinear(conv.in_channels, conv.out_channels, conv.weight[:, :, 0, 0], conv.bias)


def _product(gemms: _Gemms, name: str, op: Conv2d, qa: np.ndarray, qw: np.ndarray
             ) -> tuple[np.ndarray, dict]:
    """``C = qa qw^T`` (pixels, C_out) int32, run as the mapper's ``C^T = qw qa^T`` on the
    accelerator (``gemms.engine`` set: a record's fields) or golden's (module docstring)."""
    t = gemms.arch.types
    a, b = qw.astype(np.int64), np.ascontiguousarray(qa.T, np.int64)
    gold = int_gemm(a, b, t[0], t[1], t[2].bits)
    if gemms.engine is None:
        return gold.T, {}
    steps = map_op(gemms.arch, op).steps
    if len(steps) != 1 or steps[0].target != "accel" or steps[0].schedule.get(
            "lowering") != "gemm":
        raise ValueError(f"{name}: the mapper lowers {op} to {[s.op for s in steps]}, not one "
                         "GEMM on the array")
    step = steps[0]
    (m, k), n = a.shape, b.shape[1]
    run = run_gemm(gemms.arch, step.dataflow, gemm_operands(gemms.arch, m, n, k), a, b,
                   gemm_schedule(step.schedule))
    rec = gemms.measured(run, gold, name, (n, k, m), step)
    return np.asarray(run.output).T, rec


def pointwise_conv(torch, conv, x, gemms: _Gemms, name: str):
    """``conv(x)`` (pointwise, ``x`` (B, C_in, H, W)) through the accelerator's (or golden's)
    W8A8 GEMM (module docstring); records the call on ``gemms``."""
    a, w, bias, qa, sa, qw, sw = w8a8_operands(torch, _as_linear(conv), x.permute(0, 2, 3, 1))
    c, rec = _product(gemms, name, conv_ir(name, conv, x), qa, qw)
    y = w8a8_output(c, sa, sw, bias)
    if rec:
        err, bound = w8a8_error(a, w, bias, sa, sw, y)
        gemms.records.append(OpRecord(**rec, err=err, err_bound=bound))
    b, _, h, wd = x.shape
    out = torch.from_numpy(np.ascontiguousarray(y)).reshape(b, h, wd, conv.out_channels)
    return out.permute(0, 3, 1, 2).contiguous().to(x.dtype)


def gpu_pointwise_conv(conv, x, runner: GpuRunner, name: str):
    """``conv(x)`` on the GPU: :func:`flows.e2e_gpu.gpu_linear` of the channels-last ``x``
    (module docstring); its record is the linear's."""

    from .e2e_gpu import gpu_linear

    y = gpu_linear(_as_linear(conv), x.permute(0, 2, 3, 1), runner, name)
    return y.permute(0, 3, 1, 2).contiguous()
