"""Torch twins of the zoo's decoders: Llama with DuoAttention, VILA-U's generation loop.

Built from :mod:`mapping.torch_blocks` and :mod:`mapping.torch_attention` in the layout of the
hand-written graphs (:mod:`mapping.zoo_llama`, :mod:`mapping.zoo_vila`): fused qkv and gate/up
linears, RMSNorm (``nn.RMSNorm``), rotate-half RoPE, SwiGLU, 16-bit weights.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .torch_attention import CachedAttention, DuoAttention
from .torch_blocks import MLP, ClassifierFreeGuidance, GatedSiLU, RotaryEmbedding
from .zoo_llama import LlamaDims

__all__ = ["DepthBlock", "DuoLlama", "LlamaLayer", "VilaUGeneration"]

BF16 = torch.bfloat16


def _heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """``(batch, tokens, heads * d)`` -> ``(batch, heads, tokens, d)``."""
    return x.unflatten(-1, (heads, -1)).transpose(1, 2)


class LlamaLayer(nn.Module):
    """Pre-norm Llama decoder layer: RMSNorm, fused qkv, RoPE, ``attention(q, k, v, pos)``,
    o_proj, residual, RMSNorm, fused gate/up, SwiGLU, down, residual."""

    def __init__(self, d: LlamaDims, attention: nn.Module, dtype: torch.dtype = BF16) -> None:
        super().__init__()
        self.d = d
        qkv = (d.q_heads + 2 * d.kv_heads) * d.head_dim
        self.attn_norm = nn.RMSNorm(d.hidden, dtype=dtype)
        self.qkv = nn.Linear(d.hidden, qkv, bias=False, dtype=dtype)
        self.rope = RotaryEmbedding(d.head_dim)
        self.attn = attention
        self.o_proj = nn.Linear(d.q_heads * d.head_dim, d.hidden, bias=False, dtype=dtype)
        self.ffn_norm = nn.RMSNorm(d.hidden, dtype=dtype)
        self.gate_up = nn.Linear(d.hidden, 2 * d.ffn, bias=False, dtype=dtype)
        self.swiglu = GatedSiLU()
        self.down = nn.Linear(d.ffn, d.hidden, bias=False, dtype=dtype)

    def forward(self, x: torch.Tensor, pos: int) -> torch.Tensor:
        d = self.d
        sizes = [d.q_heads * d.head_dim, d.kv_heads * d.head_dim, d.kv_heads * d.head_dim]
        q, k, v = self.qkv(self.attn_norm(x)).split(sizes, dim=-1)
        q, k = self.rope(_heads(q, d.q_heads), _heads(k, d.kv_heads), pos)
        a = self.attn(q, k, _heads(v, d.kv_heads), pos)
        x = x + self.o_proj(a.transpose(1, 2).flatten(2))
        up, gate = self.gate_up(self.ffn_norm(x)).chunk(2, dim=-1)
        return x + self.down(self.swiglu(up, gate))


class _LMHead(nn.Module):
    """Final RMSNorm and LM head on the last token."""

    def __init__(self, hidden: int, vocab: int, dtype: torch.dtype) -> None:
        super().__init__()
        self.final_norm = nn.RMSNorm(hidden, dtype=dtype)
        self.lm_head = nn.Linear(hidden, vocab, bias=False, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lm_head(self.final_norm(x[:, -1:]))


class DuoLlama(nn.Module):
    """Llama with DuoAttention running ``tokens`` tokens (decode: 1; prefill: a chunk) that end
    at position ``context``, ``retrieval_heads`` of the KV heads per layer full, the rest
    streaming with ``(sink, recent)``. Input: token ids ``(1, tokens)``; output: the last
    token's logits."""

    def __init__(self, d: LlamaDims, context: int, tokens: int, retrieval_heads: int,
                 sink: int, recent: int, dtype: torch.dtype = BF16) -> None:
        super().__init__()
        self.pos = context - tokens
        self.embed = nn.Embedding(d.vocab, d.hidden, dtype=dtype)
        self.layers = nn.ModuleList(
            LlamaLayer(d, DuoAttention(d.q_heads, d.kv_heads, d.head_dim, retrieval_heads,
                                       context, tokens, sink, recent, dtype=dtype), dtype)
            for _ in range(d.layers))
        self.head = _LMHead(d.hidden, d.vocab, dtype)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.embed(ids)
        for layer in self.layers:
            x = layer(x, self.pos)
        return self.head(x)


class DepthBlock(nn.Module):
    """GPT block of VILA-U's depth transformer on one new position with a KV cache of
    ``codes`` positions: LayerNorm, qkv, cached attention, proj, residual, LayerNorm, GELU
    MLP, residual (biases everywhere)."""

    def __init__(self, embed: int, heads: int, codes: int, batch: int,
                 dtype: torch.dtype = BF16) -> None:
        super().__init__()
        self.heads = heads
        self.ln1 = nn.LayerNorm(embed, dtype=dtype)
        self.qkv = nn.Linear(embed, 3 * embed, dtype=dtype)
        self.attn = CachedAttention(batch, heads, embed // heads, codes, dtype)
        self.proj = nn.Linear(embed, embed, dtype=dtype)
        self.ln2 = nn.LayerNorm(embed, dtype=dtype)
        self.fc1 = nn.Linear(embed, 4 * embed, dtype=dtype)
        self.fc2 = nn.Linear(4 * embed, embed, dtype=dtype)

    def forward(self, x: torch.Tensor, pos: int) -> torch.Tensor:
        q, k, v = self.qkv(self.ln1(x)).chunk(3, dim=-1)
        a = self.attn(_heads(q, self.heads), _heads(k, self.heads), _heads(v, self.heads), pos)
        x = x + self.proj(a.transpose(1, 2).flatten(2))
        return x + self.fc2(F.gelu(self.fc1(self.ln2(x))))


class _TokenIn(nn.Module):
    """Sum of a token's code embeddings, then the ``mlp2x_gelu`` projector."""

    def __init__(self, code_dim: int, hidden: int, dtype: torch.dtype) -> None:
        super().__init__()
        self.proj = MLP(code_dim, hidden, "gelu", dtype)

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        return self.proj(codes.sum(1, keepdim=True))


class _DepthIn(nn.Module):
    """The depth transformer's input sequence: the LLM state (``in_mlp_2``), the first
    ``codes - 1`` code embeddings (``in_mlp_1``), plus learned positions."""

    def __init__(self, hidden: int, code_dim: int, embed: int, codes: int,
                 dtype: torch.dtype) -> None:
        super().__init__()
        self.in_mlp_2 = nn.Linear(hidden, embed, dtype=dtype)
        self.in_mlp_1 = nn.Linear(code_dim, embed, dtype=dtype)
        self.pos = nn.Parameter(torch.randn(1, codes, embed).to(dtype))
        self.codes = codes

    def forward(self, h: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        first = self.in_mlp_1(codes[:, : self.codes - 1])
        return torch.cat([self.in_mlp_2(h), first], 1) + self.pos


class _DepthHead(nn.Module):
    """LayerNorm, codebook classifier, classifier-free guidance, softmax."""

    def __init__(self, embed: int, codebook: int, dtype: torch.dtype) -> None:
        super().__init__()
        self.ln = nn.LayerNorm(embed, dtype=dtype)
        self.classifier = nn.Linear(embed, codebook, dtype=dtype)
        self.cfg = ClassifierFreeGuidance()

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.cfg(self.classifier(self.ln(y))), dim=-1)


class VilaUGeneration(nn.Module):
    """VILA-U generating ``tokens`` image tokens after a ``prompt`` (batch 2 for CFG), teacher
    forced: input ``(tokens, batch, codes, code_dim)`` code embeddings (sampling is not an IR
    operator). Per token: the projector on the summed code embeddings, one LLM decode step
    (layers with a KV cache of ``prompt + tokens``), the depth transformer's ``codes`` steps
    (KV cache of ``codes``), each followed by the head. Output: ``(tokens * codes, 1, 1,
    codebook)`` code probabilities."""

    def __init__(self, d: LlamaDims, embed: int, heads: int, depth_layers: int, codes: int,
                 codebook: int, code_dim: int, tokens: int, prompt: int, batch: int = 2,
                 dtype: torch.dtype = BF16) -> None:
        super().__init__()
        self.tokens, self.prompt, self.codes = tokens, prompt, codes
        self.token_in = _TokenIn(code_dim, d.hidden, dtype)
        self.llm = nn.ModuleList(
            LlamaLayer(d, CachedAttention(batch, d.kv_heads, d.head_dim, prompt + tokens, dtype),
                       dtype) for _ in range(d.layers))
        self.llm_norm = nn.RMSNorm(d.hidden, dtype=dtype)
        self.depth_in = _DepthIn(d.hidden, code_dim, embed, codes, dtype)
        self.depth = nn.ModuleList(DepthBlock(embed, heads, codes, batch, dtype)
                                   for _ in range(depth_layers))
        self.depth_head = _DepthHead(embed, codebook, dtype)

    def forward(self, code_embs: torch.Tensor) -> torch.Tensor:
        probs = []
        for t in range(self.tokens):
            x = self.token_in(code_embs[t])
            for layer in self.llm:
                x = layer(x, self.prompt + t)
            seq = self.depth_in(self.llm_norm(x), code_embs[t])
            for j in range(self.codes):
                y = seq[:, j:j + 1]
                for block in self.depth:
                    y = block(y, j)
                probs.append(self.depth_head(y))
        return torch.stack(probs)
