"""The e2e run's softmax attention leaves (:class:`mapping.torch_attention.SoftmaxAttention`:
FLUX.1's joint attention, Sana's cross-attention, VILA-U's decode over its caches) on the
accelerator's long-context attention kernel (:mod:`hw.front.kernel_duo_long`), for
:mod:`flows.e2e`: per batch element and KV head ``h`` with its ``G`` query heads.

* **Codes.** The group's queries ``(G, Nq, D)``, the head's keys and values ``(Nk, D)``
  quantized per tensor to int8 (:func:`golden.linear_attention_fixed.quantize_int8`: ``qc,
  s_q``, ``kc, s_k``, ``vc, s_v``); the logit scale folded into ``(mult, shift)``
  (:func:`golden.attention_fixed.logit_multiplier`) under the architecture's config
  (:func:`hw.front.kernel_duo.attention_config`), as :mod:`flows.e2e_duo` does.
* **Kernel.** One query (a decode): :func:`~hw.front.kernel_duo_long.run_long_decode`, one
  tile over all keys in blocks. More: :func:`~hw.front.kernel_duo_long.run_long_prefill`
  with ``causal=False``, query tiles over all keys in blocks, the tiling the mapper costs
  (:func:`~hw.front.kernel_duo_long.query_tiling`).
* **Golden.** :func:`golden.attention_fixed.attention_head_int` per query head with every key
  visible: the normalizer's codes must equal it bit for bit; the golden run takes these codes.
* **Cycles.** ``mapper_cycles``: :func:`mapping.accel_cost.cost_op` of one KV head's
  ``Attention`` (``G`` query heads, ``Nq`` queries over ``Nk`` keys, int8; causal for one
  query, which sees every key, as :meth:`SoftmaxAttention.ir_ops` states it). The cycle
  model times the program; with the fast engine the RTL runs it (equal DRAM and cycles).
* **Error.** The decoded output ``codes s_v / 2**Fo`` against the exact attention of the
  codes, bounded by golden's :func:`~golden.attention_fixed.attention_error_bound` a
  posteriori (:func:`flows.e2e_duo.head_error_bound`) times ``s_v`` plus float32 rounding.

Shapes in a record: ``(G Nq, Nk, D)`` (query rows, keys, head dim).

Layer: flows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from golden.attention_fixed import attention_head_int, logit_multiplier
from golden.linear_attention_fixed import decode, quantize_int8
from hw.front.arch import ArchSpec
from hw.front.kernel_duo import attention_config
from hw.front.kernel_duo_long import query_tiling, run_long_decode, run_long_prefill
from mapping.accel_cost import cost_op
from mapping.ir import Attention

from .e2e_duo import decoded_head_error, has_attention_units

if TYPE_CHECKING:
    from .e2e import _Gemms

__all__ = ["softmax_attention", "softmax_on_accelerator"]


def softmax_on_accelerator(module: object, arch: ArchSpec) -> bool:
    """Whether the e2e run puts ``module`` (a ``SoftmaxAttention``) on ``arch``'s kernel: the
    fused attention units are there."""
    from mapping.torch_attention import SoftmaxAttention

    return isinstance(module, SoftmaxAttention) and has_attention_units(arch)


def _kernel(arch: ArchSpec, qc: np.ndarray, kc: np.ndarray, vc: np.ndarray, mult: int,
            shift: int):
    """The kernel run of one KV head (module docstring: Kernel): output (G, Nq, Dv)."""
    g, nq, d = qc.shape
    if nq == 1:
        run = run_long_decode(arch, qc[:, 0], kc, vc, mult, shift)
        return run, np.asarray(run.output)[:, None]
    tile, kb = query_tiling(arch, g, d, vc.shape[1], nq)
    run = run_long_prefill(arch, qc, kc, vc, mult, shift, tile, kb, causal=False)
    return run, np.asarray(run.output)


def _head(runner: _Gemms, q: np.ndarray, k: np.ndarray, v: np.ndarray, name: str
          ) -> np.ndarray:
    """One KV head: float ``q`` (G, Nq, D), ``k``, ``v`` (Nk, D); its decoded output (G, Nq,
    Dv) and a record on ``runner`` unless it is golden's run (``engine`` None)."""
    from .e2e import OpRecord

    arch, cfg = runner.arch, attention_config(runner.arch)
    (qc, sq), (kc, sk), (vc, sv) = (quantize_int8(x) for x in (q, k, v))
    qc, kc, vc = (x.astype(np.int64) for x in (qc, kc, vc))
    mult, shift = logit_multiplier(sq, sk, kc.shape[1], cfg)
    gold = np.stack([attention_head_int(qi, kc, vc, mult, shift, None, cfg) for qi in qc])
    if runner.engine is None:
        return decode(gold, sv, cfg.out_frac_bits)
    g, nq, d = qc.shape
    cost = cost_op(arch, Attention("attention", 1, g, 1, d, nq, kc.shape[0], nq == 1, None,
                                   "int8", "int8"))
    run, out = _kernel(arch, qc, kc, vc, mult, shift)
    shape = (g * nq, kc.shape[0], d)
    rec = runner.measured(run, gold.reshape(np.shape(run.output)), name, shape, cost)
    got = decode(out, sv, cfg.out_frac_bits)
    err, bound = decoded_head_error(got.reshape(g * nq, -1), qc.reshape(g * nq, d), kc, vc,
                                    (sq, sk, sv), mult, shift, np.ones((1, kc.shape[0]), bool),
                                    cfg)
    runner.records.append(OpRecord(**rec, err=err, err_bound=bound))
    return got


def softmax_attention(torch, q, k, v, runner: _Gemms, name: str):
    """``SoftmaxAttention()(q, k, v)`` on the kernel, KV head by KV head (module docstring): a
    record per head on ``runner`` (a :class:`flows.e2e._Gemms`) named ``name[b,h]``.
    ``ValueError`` for shapes the leaf does not take."""
    if q.dim() != 4 or k.dim() != 4 or k.shape != v.shape or q.shape[1] % k.shape[1] \
            or q.shape[-1] != k.shape[-1]:
        raise ValueError(f"softmax attention takes q (B, Hq, N, D), k and v (B, Hkv, M, D) "
                         f"with Hkv dividing Hq, got {tuple(q.shape)}, {tuple(k.shape)}, "
                         f"{tuple(v.shape)}")
    b, hq, nq, _ = q.shape
    hk = k.shape[1]
    g = hq // hk
    out = np.zeros((b, hq, nq, v.shape[-1]), np.float32)
    qs, ks, vs = (x.detach().float().numpy() for x in (q, k, v))
    for bi in range(b):
        for h in range(hk):
            out[bi, h * g:(h + 1) * g] = _head(runner, qs[bi, h * g:(h + 1) * g], ks[bi, h],
                                               vs[bi, h], f"{name}[{bi},{h}]")
    return torch.from_numpy(out).to(q.dtype)
