"""The e2e run's operators on the accelerator's workload units (:mod:`flows.e2e`): Sana's
ReLU linear attention on the linear-attention kernel (operand ReLU, requant, normalizer).

Per (batch, head): q, k, v quantized per tensor to int8 codes
(:func:`golden.linear_attention_fixed.quantize_int8`), the kernel's program
(:func:`hw.front.kernel_attention.run_linear_attention`) on the reference machine (and the
RTL), its normalizer codes equal to
:func:`golden.linear_attention_chain.linear_attention_chain_int`'s
bit for bit, decoded ``codes s_v / 2**Fo``. The record's error is the decoded output against
the exact ratio of the codes (``o s_v``) with golden's bound of the on-chip chain (``VK``
requantized to int8 on chip, then the normalizer:
:func:`~golden.linear_attention_chain.chain_error_bound`, times ``s_v``); the quantization of
q, k, v is the chain's (in the model's output error).

Layer: flows.
"""

from __future__ import annotations

import numpy as np

from golden.linear_attention_chain import chain_error_bound, linear_attention_chain_int
from golden.linear_attention_fixed import decode, quantize_int8
from hw.front.arch import ArchSpec
from hw.front.kernel_attention import run_linear_attention
from mapping.ir import LinearAttention
from mapping.mapper import map_op

from .e2e_error import worst

__all__ = ["has_linear_attention", "lite_la"]


def has_linear_attention(arch: ArchSpec) -> bool:
    """Whether ``arch`` has the linear-attention kernel's units."""
    u = arch.units
    return u.requant is not None and u.normalizer is not None and u.operand_relu


def _exact(qc: np.ndarray, kc: np.ndarray, vc: np.ndarray
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(the exact ratio ``o`` (N, Dv), ``sum_j qr_j`` and ``den`` (N, 1)) of the codes."""
    kr, qr = np.maximum(kc, 0).astype(np.float64), np.maximum(qc, 0).astype(np.float64)
    num = qr @ (vc.astype(np.float64).T @ kr).T
    den = qr @ kr.sum(0)[:, None]
    return np.where(den > 0, num / np.where(den > 0, den, 1), 0.0), qr.sum(1)[:, None], den


def lite_la(torch, q, k, v, runner, name: str):
    """``ReLULinearAttention(q, k, v)`` of (batch, heads, tokens, d) tensors on the kernel,
    head by head; a record per head on ``runner`` (a :class:`flows.e2e._Gemms`)."""
    from .e2e import OpRecord

    arch, norm = runner.arch, runner.arch.units.normalizer
    frac = (norm.out_frac_bits, norm.den_bits, norm.recip_frac_bits)
    b, h, n, d = q.shape
    out = np.zeros((b, h, n, v.shape[-1]), np.float32)
    for bi in range(b):
        for hi in range(h):
            (qc, _), (kc, _), (vc, sv) = (quantize_int8(x[bi, hi].detach().float().numpy())
                                          for x in (q, k, v))
            chain = linear_attention_chain_int(qc, kc, vc, *frac)
            if runner.engine is None:                   # the golden run: golden's codes
                out[bi, hi] = decode(chain.out, sv, frac[0])
                continue
            step = map_op(arch, LinearAttention(name.replace(".", "_"), 1, 1, d, n,
                                                "int8")).steps[0]
            run = run_linear_attention(arch, qc, kc, vc)
            rec = runner.measured(run, chain.out, f"{name}[{bi},{hi}]", (n, d, vc.shape[1]),
                                  step)
            got = decode(np.asarray(run.output), sv, frac[0])
            o, q_sum, den = _exact(qc, kc, vc)
            err = np.abs(got.astype(np.float64) - o * sv)
            bound = (chain_error_bound(o, q_sum, den, chain.shift, chain.saturated, *frac) * sv
                     + 2.0 ** -24 * np.abs(o * sv))
            err, bound = worst(err, bound)
            runner.records.append(OpRecord(**rec, err=err, err_bound=bound))
            out[bi, hi] = got
    return torch.from_numpy(out).to(q.dtype)
