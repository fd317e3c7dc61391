"""The e2e run's DuoAttention leaves (:class:`mapping.torch_attention.DuoAttention`) on the
accelerator's fused attention kernels (:mod:`flows.e2e`), decode phase (one token at
``context``): per batch element and KV head ``h`` with its ``G`` query heads.

* **Codes.** The head's keys and values (retrieval: the cache's ``context - 1`` past
  positions and the new token; streaming: its kept positions,
  :func:`~mapping.torch_attention.streaming_positions`) and the group's queries quantized per
  tensor to int8 (:func:`golden.linear_attention_fixed.quantize_int8`: ``qc, s_q``, ``kc,
  s_k``, ``vc, s_v``); the logit scale folded into ``(mult, shift)``
  (:func:`golden.attention_fixed.logit_multiplier`: ``mult 2**-shift ~ s_q s_k / sqrt(D)
  2**Fi``) under the architecture's config (:func:`hw.front.kernel_duo.attention_config`).
* **Kernels.** Retrieval: :func:`hw.front.kernel_duo_long.run_long_decode` over the
  ``context`` keys (one query tile, blocks of the largest ``kb``). Streaming: a
  :class:`hw.front.kernel_duo.DuoHead` of ``context`` positions (the positions it does not
  keep zero) reset and warmed to ``context - 1`` tokens as :mod:`mapping.lower` warms one
  (``warm_head``: the steps of the kept positions, ``kv_cache advance`` over the rest: the
  *setup*), then the decode *step*.
* **Golden.** :func:`golden.attention_fixed.attention_head_int` per query head with the
  :func:`~golden.attention_fixed.position_mask` of the query at ``context - 1`` over the keys'
  positions (causal; streaming with its ``(sink, recent)`` window): the normalizer's codes
  must equal it bit for bit. The golden run of the chain takes these codes.
* **Cycles.** ``mapper_cycles`` is :func:`mapping.accel_cost.cost_op`'s fused cost of the
  head's op (``Attention`` of ``G`` query heads and one KV head, int8, as
  :meth:`DuoAttention.ir_ops` states it per head kind; :mod:`mapping.accel_attention`):
  :func:`mapping.mapper.map_op` may prefer an unfused decomposition (GEMMs and a host
  softmax, which has no fixed-point golden); this run measures the fused kernel. The cycle
  model times the step's program alone (``model_cycles``). With the fast engine the RTL runs
  the same words (a streaming head: setup + step, as :class:`mapping.lower.LoweredStep`
  does) from the same DRAM: its DRAM must equal the reference machine's, and its cycles the
  cycle model's on those words; a streaming record's ``rtl_cycles`` is the RTL's cycles less
  the cycle model's share of the setup (``model(setup + step) - model(step)``), so it equals
  ``model_cycles`` exactly when the RTL's run equals the cycle model's.
* **Error.** The decoded output ``codes s_v / 2**Fo`` (float32) against the exact attention
  of the codes ``o* s_v``, ``o* = softmax(z) vc`` over the visible keys, ``z = (s_q qc)
  (s_k kc)^T / sqrt(D)`` (float64), bounded by golden's
  :func:`~golden.attention_fixed.attention_error_bound` a posteriori (the row's visible
  keys, logit span, value range, ``den = sum w`` and ``|O / den|``) times ``s_v``, plus the
  float32 rounding of the decode (``2**-23 |out|``).

Prefill (a chunk of tokens) is not on the accelerator yet: such leaves stay in torch
(:func:`on_accelerator`). Shapes in a record: ``(G, keys, D)``.

Layer: flows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from golden.attention_fixed import (
    attention_error_bound,
    attention_head_int,
    attention_logits,
    attention_weights,
    logit_multiplier,
    position_mask,
)
from golden.linear_attention_fixed import decode, quantize_int8
from hw.front.accel_params import accel_params
from hw.front.accel_timing import accel_timing
from hw.front.arch import ArchSpec
from hw.front.kernel_duo import DuoHead, attention_config
from hw.front.kernel_duo_long import run_long_decode
from mapping.accel_cost import cost_op
from mapping.ir import Attention
from mapping.lower import warm_head

from .e2e_error import worst

if TYPE_CHECKING:
    from mapping.op_cost import OpCost
    from mapping.torch_attention import DuoAttention

    from .e2e import _Gemms

__all__ = ["decoded_head_error", "duo_attention", "has_attention_units", "head_error_bound",
           "on_accelerator"]

_UNITS = ("requant", "softmax", "normalizer", "kv_cache")


def has_attention_units(arch: ArchSpec) -> bool:
    """Whether ``arch`` has the fused attention kernels' units (requant, softmax, normalizer,
    kv_cache)."""
    return all(getattr(arch.units, u) is not None for u in _UNITS)


def on_accelerator(module: DuoAttention, arch: ArchSpec) -> bool:
    """Whether the e2e run puts DuoAttention leaf ``module`` on ``arch``'s kernels: the units
    are there and it decodes (one token; prefill stays in torch)."""
    return has_attention_units(arch) and module.tokens == 1


def _fused_cost(arch: ArchSpec, mod: DuoAttention, g: int, d: int, streaming: bool
                ) -> OpCost:
    """The fused cost (:func:`cost_op`) of one KV head of ``mod`` of the given kind."""
    kind = "streaming" if streaming else "retrieval"
    return cost_op(arch, Attention(f"attn_{kind}", 1, g, 1, d, 1, mod.context, True,
                                   mod.window if streaming else None, "int8", "int8"))


def head_error_bound(qc: np.ndarray, kc: np.ndarray, vc: np.ndarray,
                     scales: tuple[float, float], mult: int, shift: int, mask: np.ndarray,
                     cfg) -> tuple[np.ndarray, np.ndarray]:
    """(exact ``o*`` (R, Dv) in v-code units, golden's bound per element) of query rows ``qc``
    (R, D) of one head over keys ``kc``, values ``vc`` with ``mask`` (R or 1, keys) (module
    docstring: Error; the value range over the keys any row sees)."""
    sq, sk = scales
    z = (qc * sq) @ (kc * sk).T / np.sqrt(kc.shape[1])           # (R, Nk), float64
    vis = np.broadcast_to(mask, z.shape)
    z = np.where(vis, z, -np.inf)
    p = np.exp(z - z.max(-1, keepdims=True))
    exact = (p / p.sum(-1, keepdims=True)) @ vc
    w = np.stack([attention_weights(attention_logits(qi[None], kc, mult, shift), vis[i][None],
                                    cfg)[0] for i, qi in enumerate(qc)])
    den = w.sum(-1, keepdims=True)
    span = np.where(vis, z, -np.inf).max(-1) - np.where(vis, z, np.inf).min(-1)
    vals = vc[vis.any(0)]
    bound = attention_error_bound(vis.sum(-1)[:, None], span[:, None], cfg,
                                  float(vals.max() - vals.min()), den,
                                  np.abs((w @ vc) / den))
    return exact, bound


def decoded_head_error(decoded: np.ndarray, qc: np.ndarray, kc: np.ndarray, vc: np.ndarray,
                       scales: tuple[float, float, float], mult: int, shift: int,
                       mask: np.ndarray, cfg) -> tuple[float, float]:
    """(error, bound) at the element nearest its bound (:func:`flows.e2e_error.worst`) of a
    head's decoded output ``decoded`` (R, Dv) float32 against the exact attention of the
    codes ``o* s_v`` (:func:`head_error_bound` times ``s_v``, plus the decode's float32
    rounding ``2**-23 |out|``); ``scales`` = ``(s_q, s_k, s_v)``."""
    exact, bound = head_error_bound(qc, kc, vc, scales[:2], mult, shift, mask, cfg)
    out = decoded.astype(np.float64)
    return worst(np.abs(out - exact * scales[2]), bound * scales[2] + 2.0 ** -23 * np.abs(out))


def _rtl(runner: _Gemms, words: list, dram_in: bytes, dram_out: bytes, model: int
         ) -> tuple[int, bool]:
    """The fast engine's cycles and whether its DRAM equals ``dram_out``."""
    from .accel_engines import run_program

    r = run_program(runner.arch, words, dram_in, engine="fast", expected_cycles=model)
    return r.cycles, r.dram == dram_out


def _streaming(runner: _Gemms, mod: DuoAttention, codes: tuple, mult: int, shift: int,
               cost: OpCost, gold: np.ndarray, name: str, shape: tuple[int, int, int]
               ) -> tuple[np.ndarray, dict]:
    """A streaming head's decode step after its setup (module docstring); (its codes (G,
    Dv), the record's fields)."""
    qc, kc, vc = codes
    arch, ctx, pos = runner.arch, mod.context, mod.stream_pos.numpy()
    g, d = qc.shape
    full = [np.zeros((g, ctx, d), np.int64), np.zeros((ctx, d), np.int64),
            np.zeros((ctx, vc.shape[1]), np.int64)]
    full[0][:, ctx - 1], full[1][pos], full[2][pos] = qc, kc, vc
    chunk = cost.schedule["chunk"]
    head = DuoHead(arch, *full, mult, shift, *mod.window, max_chunk=chunk)
    dram_in = head.machine.dram.tobytes()             # the reset touches no DRAM
    setup = list(head.reset_program) + warm_head(head, ctx - 1, chunk)
    out = head.step(1)[:, 0]
    params = accel_params(arch)
    model = accel_timing(head.last_program, params).cycles
    ob, dv = arch.types[2].bits // 8, vc.shape[1]
    rows = [head.addr[3] + (gi * ctx + ctx - 1) * dv * ob for gi in range(g)]
    runner.keep(name, setup + head.last_program, dram_in, head.machine.dram.tobytes(),
                [(0, head.addr[3])] + [(r, r + dv * ob) for r in rows])
    rtl, exact = None, bool(np.array_equal(out, gold))
    if runner.engine == "fast":
        whole = accel_timing(setup + head.last_program, params).cycles
        cycles, same = _rtl(runner, setup + head.last_program, dram_in,
                            head.machine.dram.tobytes(), whole)
        rtl, exact = cycles - (whole - model), exact and same
    return out, {"name": name, "target": "accel", "shape": shape, "dataflow": cost.dataflow,
                 "model_cycles": model, "rtl_cycles": rtl, "mapper_cycles": cost.cycles,
                 "dram_bytes": cost.dram_bytes, "utilization": cost.utilization,
                 "bit_exact": exact}


def _head(runner: _Gemms, mod: DuoAttention, q: np.ndarray, k: np.ndarray, v: np.ndarray,
          streaming: bool, name: str) -> np.ndarray:
    """One KV head: float ``q`` (G, D) (the query at ``context - 1``), ``k``, ``v`` (Nk, D)
    at key positions ``mod.stream_pos`` (streaming) or ``0..context-1``; its decoded output
    (G, Dv), a record on ``runner`` unless it is golden's run (``engine`` None)."""
    from .e2e import OpRecord

    arch, cfg = runner.arch, attention_config(runner.arch)
    (qc, sq), (kc, sk), (vc, sv) = (quantize_int8(x) for x in (q, k, v))
    mult, shift = logit_multiplier(sq, sk, kc.shape[1], cfg)
    keys = mod.stream_pos.numpy() if streaming else np.arange(mod.context)
    mask = position_mask(np.array([mod.context - 1]), keys,
                         *(mod.window if streaming else (None, None)))
    gold = np.stack([attention_head_int(qi[None], kc, vc, mult, shift, mask, cfg)[0]
                     for qi in qc])
    if runner.engine is None:
        return decode(gold, sv, cfg.out_frac_bits)
    g, d = qc.shape
    cost = _fused_cost(arch, mod, g, d, streaming)
    shape = (g, len(keys), d)
    if streaming:
        out, rec = _streaming(runner, mod, (qc, kc, vc), mult, shift, cost, gold, name, shape)
    else:
        run = run_long_decode(arch, qc, kc, vc, mult, shift)
        out, rec = np.asarray(run.output), runner.measured(run, gold, name, shape, cost)
    got = decode(out, sv, cfg.out_frac_bits)
    err, bound = decoded_head_error(got, qc, kc, vc, (sq, sk, sv), mult, shift, mask, cfg)
    runner.records.append(OpRecord(**rec, err=err, err_bound=bound))
    return got


def duo_attention(torch, mod: DuoAttention, q, k, v, pos: int, runner: _Gemms, name: str):
    """``mod(q, k, v, pos)`` (a decoding :class:`~mapping.torch_attention.DuoAttention`) on
    the fused kernels, KV head by KV head (module docstring); a record per head on ``runner``
    (a :class:`flows.e2e._Gemms`), named ``name.retrieval[b,h]`` / ``name.streaming[b,h]``.
    ``ValueError`` for a call the leaf was not built for, or a prefill leaf."""
    if mod.tokens != 1:
        raise ValueError(f"DuoAttention of {mod.tokens} tokens (prefill) is not yet on the "
                         "accelerator: decode (1 token) only")
    if pos != mod.context - 1 or q.shape[2] != 1:
        raise ValueError(f"DuoAttention built for 1 token at {mod.context}, called with "
                         f"{q.shape[2]} at {pos}")
    r, g = mod.retrieval, mod.q_heads // mod.kv_heads
    b, _, _, d = q.shape
    out = np.zeros((b, mod.q_heads, 1, v.shape[-1]), np.float32)
    for bi in range(b):
        for h in range(mod.kv_heads):
            streaming = h >= r
            kind, past = ("streaming", h - r) if streaming else ("retrieval", h)
            keys, vals = (torch.cat([getattr(mod, f"{t}_{kind}")[bi, past], x[bi, h]], 0)
                          .detach().float().numpy() for t, x in (("k", k), ("v", v)))
            qh = q[bi, h * g:(h + 1) * g, 0].detach().float().numpy()
            out[bi, h * g:(h + 1) * g, 0] = _head(runner, mod, qh, keys, vals, streaming,
                                                  f"{name}.{kind}[{bi},{h}]")
    return torch.from_numpy(out).to(q.dtype)
