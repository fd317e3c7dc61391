"""LLaMA decoders with DuoAttention (retrieval + streaming KV heads) in the operator IR, 16-bit.

Configs: meta-llama/Meta-Llama-3-8B ``config.json`` (hidden 4096, 32 layers, 32 q / 8 kv heads,
intermediate 14336, vocab 128256, untied embeddings; DuoAttention runs its 1048k-context
variant, same shapes) and meta-llama/Llama-2-7b-hf ``config.json`` (MHA 32 / 32 heads,
intermediate 11008, vocab 32000; the -32K variant has the same shapes). DuoAttention deployment
(mit-han-lab/duo-attention): 50% retrieval heads for GQA, 25% for MHA, 64 sink + 256 recent
tokens, chunked prefill of 4096 tokens.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .ir import (
    Attention,
    Elementwise,
    Embedding,
    KVCacheWrite,
    Linear,
    ModelGraph,
    Norm,
    Op,
    Stage,
)

__all__ = ["LLAMA2_7B", "LLAMA3_8B", "LlamaDims", "decoder_layer", "llama2_7b_duo",
           "llama3_8b_duo", "tiny_llama2_7b_duo", "tiny_llama3_8b_duo"]

_SOURCE = ("meta-llama/Meta-Llama-3-8B and meta-llama/Llama-2-7b-hf config.json; "
           "mit-han-lab/duo-attention (duo_attn/patch/llama.py, README.md)")


@dataclass(frozen=True)
class LlamaDims:
    """Decoder shapes: layers, hidden, query / KV heads, head dim, SwiGLU hidden, vocab."""

    layers: int
    hidden: int
    q_heads: int
    kv_heads: int
    head_dim: int
    ffn: int
    vocab: int


LLAMA3_8B = LlamaDims(32, 4096, 32, 8, 128, 14336, 128256)
LLAMA2_7B = LlamaDims(32, 4096, 32, 32, 128, 11008, 32000)
_TINY3 = LlamaDims(2, 64, 4, 2, 16, 128, 256)
_TINY2 = LlamaDims(2, 64, 4, 4, 16, 128, 256)


def decoder_layer(d: LlamaDims, tokens: int, batch: int = 1,
                  attention: tuple[Op, ...] = ()) -> list[Op]:
    """One pre-norm decoder layer on ``batch * tokens`` rows: RMSNorm, fused qkv, RoPE,
    ``attention`` (the caller's attention and KV-cache ops), o_proj, residual, RMSNorm, fused
    gate/up, SwiGLU, down, residual."""
    m, h, qkv = batch * tokens, d.hidden, (d.q_heads + 2 * d.kv_heads) * d.head_dim
    return [Norm("attn_norm", "rms", m, h), Linear("qkv", m, h, qkv),
            Elementwise("rope", "rope", m * (d.q_heads + d.kv_heads) * d.head_dim),
            *attention,
            Linear("o_proj", m, d.q_heads * d.head_dim, h), Elementwise("attn_add", "add", m * h),
            Norm("ffn_norm", "rms", m, h), Linear("gate_up", m, h, 2 * d.ffn),
            Elementwise("swiglu", "gate", m * d.ffn), Linear("down", m, d.ffn, h),
            Elementwise("ffn_add", "add", m * h)]


def _check(phase: str, context: int, chunk: int, retrieval: float, sink: int,
           recent: int) -> None:
    if phase not in ("prefill", "decode"):
        raise ValueError(f"phase must be 'prefill' or 'decode', got {phase!r}")
    for name, val, low in (("context", context, 1), ("chunk", chunk, 1), ("sink", sink, 0),
                           ("recent", recent, 1)):
        if isinstance(val, bool) or not isinstance(val, int) or val < low:
            raise ValueError(f"{name} must be an int >= {low}, got {val!r}")
    if phase == "prefill" and chunk > context:
        raise ValueError(f"chunk {chunk} must be <= context {context}")
    if isinstance(retrieval, bool) or not isinstance(retrieval, (int, float)) or not (
            0.0 <= retrieval <= 1.0):
        raise ValueError(f"retrieval must be a fraction in [0, 1], got {retrieval!r}")


def _duo_attention(d: LlamaDims, tokens: int, context: int, retrieval_heads: int,
                   window: tuple[int, int]) -> list[Op]:
    """KV writes and attention of the retrieval heads (full causal over ``context``) and the
    streaming heads (sink + recent window); each cache holds what its heads can still see."""
    group, writes, attends = d.q_heads // d.kv_heads, [], []
    for kind, heads, win in (("retrieval", retrieval_heads, None),
                             ("streaming", d.kv_heads - retrieval_heads, window)):
        if heads:
            att = Attention(f"attn_{kind}", 1, heads * group, heads, d.head_dim, tokens,
                            context, causal=True, window=win)
            writes.append(KVCacheWrite(f"kv_write_{kind}", 1, tokens, heads, d.head_dim,
                                       att.keys_touched))
            attends.append(att)
    return writes + attends


def _build(name: str, d: LlamaDims, phase: str, context: int, chunk: int, retrieval: float,
           sink: int, recent: int, full: bool) -> ModelGraph:
    _check(phase, context, chunk, retrieval, sink, recent)
    retrieval = 1.0 if full else retrieval
    r = math.floor(retrieval * d.kv_heads + 0.5)
    tokens = chunk if phase == "prefill" else 1
    attention = _duo_attention(d, tokens, context, r, (sink, recent))
    stages = (Stage("embed", [Embedding("embed_tokens", tokens, d.vocab, d.hidden)]),
              Stage("layer", decoder_layer(d, tokens, 1, tuple(attention)), d.layers),
              Stage("head", [Norm("final_norm", "rms", 1, d.hidden),
                             Linear("lm_head", 1, d.hidden, d.vocab)]))
    what = (f"one {tokens}-token chunk ending at {context}" if phase == "prefill"
            else f"one decode step at context {context}")
    desc = (f"{name}: {what}; {r}/{d.kv_heads} retrieval KV heads per layer, streaming "
            f"window {sink}+{recent}")
    return ModelGraph(name, stages, desc, _SOURCE, {
        "phase": phase, "context": context, "chunk": chunk, "retrieval": float(retrieval),
        "retrieval_heads": r, "sink": sink, "recent": recent, "full": bool(full)})


def llama3_8b_duo(phase: str = "decode", context: int = 32768, chunk: int = 4096,
                  retrieval: float = 0.5, sink: int = 64, recent: int = 256,
                  full: bool = False) -> ModelGraph:
    """Llama-3-8B (GQA) with DuoAttention, batch 1. ``decode``: one token whose query sees
    ``context`` keys (itself included); ``prefill``: the ``chunk`` tokens ending at
    ``context``. ``round(retrieval * 8)`` (halves up) KV heads per layer are retrieval heads
    (DuoAttention ranks heads globally: per-layer counts vary, totals agree); ``full=True``:
    all of them. The LM head runs on the last token only."""
    return _build("llama3-8b-duo", LLAMA3_8B, phase, context, chunk, retrieval, sink, recent,
                  full)


def llama2_7b_duo(phase: str = "decode", context: int = 32768, chunk: int = 4096,
                  retrieval: float = 0.25, sink: int = 64, recent: int = 256,
                  full: bool = False) -> ModelGraph:
    """Llama-2-7B(-32K) (MHA) with DuoAttention at 25% retrieval heads; as
    :func:`llama3_8b_duo`."""
    return _build("llama2-7b-duo", LLAMA2_7B, phase, context, chunk, retrieval, sink, recent,
                  full)


def tiny_llama3_8b_duo(phase: str = "decode", context: int = 64, chunk: int = 16,
                       retrieval: float = 0.5, sink: int = 4, recent: int = 8,
                       full: bool = False) -> ModelGraph:
    """Llama-3-8B's structure: 2 layers, hidden 64, 4 q / 2 kv heads of 16, FFN 128, vocab 256;
    1 retrieval + 1 streaming KV head per layer."""
    return _build("tiny-llama3-8b-duo", _TINY3, phase, context, chunk, retrieval, sink, recent,
                  full)


def tiny_llama2_7b_duo(phase: str = "decode", context: int = 64, chunk: int = 16,
                       retrieval: float = 0.25, sink: int = 4, recent: int = 8,
                       full: bool = False) -> ModelGraph:
    """Llama-2-7B's structure: 2 layers, hidden 64, 4 / 4 heads of 16, FFN 128, vocab 256;
    1 retrieval + 3 streaming KV heads per layer."""
    return _build("tiny-llama2-7b-duo", _TINY2, phase, context, chunk, retrieval, sink, recent,
                  full)
