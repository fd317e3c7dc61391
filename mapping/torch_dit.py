"""Torch twins of the zoo's diffusion transformers: FLUX.1-dev (SVDQuant) and Sana.

Built from :mod:`mapping.torch_blocks` and :mod:`mapping.torch_attention` in the layout of the
hand-written graphs (:mod:`mapping.zoo_flux`, :mod:`mapping.zoo_sana`): FLUX's double-stream
blocks (per-stream weights, joint attention) and single-stream blocks with SVDQuant W4A4 linears
and AWQ W4A16 modulation; Sana's blocks with LiteLA, cross-attention and the GLUMBConv Mix-FFN.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .torch_attention import ReLULinearAttention, SoftmaxAttention
from .torch_blocks import (
    MLP,
    GatedResidual,
    GatedSiLU,
    Modulate,
    RotaryEmbedding,
    SVDQuantLinear,
    Timesteps,
    W4A16Linear,
)

__all__ = ["Flux", "Sana"]

BF16 = torch.bfloat16


def _heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    return x.unflatten(-1, (heads, -1)).transpose(1, 2)


def _tokens(x: torch.Tensor) -> torch.Tensor:
    return x.transpose(1, 2).flatten(2)


class _Modulation(nn.Module):
    """SiLU of the conditioning vector and its adaLN linear into ``chunks`` vectors."""

    def __init__(self, hidden: int, chunks: int, quantized: bool, dtype: torch.dtype) -> None:
        super().__init__()
        self.chunks = chunks
        self.lin = (W4A16Linear(hidden, chunks * hidden, dtype=dtype) if quantized
                    else nn.Linear(hidden, chunks * hidden, dtype=dtype))

    def forward(self, vec: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.lin(F.silu(vec))[:, None].chunk(self.chunks, dim=-1)


class _FluxEmbed(nn.Module):
    """Image and text projections; timestep, guidance and pooled-text embedders summed."""

    def __init__(self, hidden: int, in_ch: int, ctx_dim: int, vec_dim: int, time_dim: int,
                 dtype: torch.dtype) -> None:
        super().__init__()
        self.img_in = nn.Linear(in_ch, hidden, dtype=dtype)
        self.txt_in = nn.Linear(ctx_dim, hidden, dtype=dtype)
        self.timesteps = Timesteps(time_dim, dtype)
        self.time_in = MLP(time_dim, hidden, "silu", dtype)
        self.guidance_in = MLP(time_dim, hidden, "silu", dtype)
        self.vector_in = MLP(vec_dim, hidden, "silu", dtype)

    def forward(self, img: torch.Tensor, txt: torch.Tensor, t: torch.Tensor, g: torch.Tensor,
                y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        vec = torch.stack([self.time_in(self.timesteps(t)), self.guidance_in(self.timesteps(g)),
                           self.vector_in(y)]).sum(0)
        return self.img_in(img), self.txt_in(txt), vec


class _Stream(nn.Module):
    """One stream's weights of a double block: modulation, norms, qkv, QK norms, RoPE, out
    proj, GELU MLP (SVDQuant linears; fc2's input unsigned after the GELU)."""

    def __init__(self, hidden: int, heads: int, mlp: int, rank: int, dtype: torch.dtype) -> None:
        super().__init__()
        hd, self.heads = hidden // heads, heads
        self.mod = _Modulation(hidden, 6, True, dtype)
        self.norm1 = nn.LayerNorm(hidden, elementwise_affine=False, dtype=dtype)
        self.norm2 = nn.LayerNorm(hidden, elementwise_affine=False, dtype=dtype)
        self.modulate1, self.modulate2 = Modulate(), Modulate()
        self.qkv = SVDQuantLinear(hidden, 3 * hidden, rank, dtype=dtype)
        self.q_norm, self.k_norm = nn.RMSNorm(hd, dtype=dtype), nn.RMSNorm(hd, dtype=dtype)
        self.rope = RotaryEmbedding(hd)
        self.out = SVDQuantLinear(hidden, hidden, rank, dtype=dtype)
        self.residual1, self.residual2 = GatedResidual(), GatedResidual()
        self.fc1 = SVDQuantLinear(hidden, mlp, rank, dtype=dtype)
        self.gelu = nn.GELU(approximate="tanh")
        self.fc2 = SVDQuantLinear(mlp, hidden, rank, act="uint4_g64", dtype=dtype)

    def pre(self, x: torch.Tensor, vec: torch.Tensor) -> tuple:
        m = self.mod(vec)
        q, k, v = self.qkv(self.modulate1(self.norm1(x), m[0], m[1])).chunk(3, dim=-1)
        q, k = self.rope(self.q_norm(_heads(q, self.heads)), self.k_norm(_heads(k, self.heads)))
        return q, k, _heads(v, self.heads), m

    def post(self, x: torch.Tensor, a: torch.Tensor, m: tuple) -> torch.Tensor:
        x = self.residual1(x, m[2], self.out(a))
        h = self.fc2(self.gelu(self.fc1(self.modulate2(self.norm2(x), m[3], m[4]))))
        return self.residual2(x, m[5], h)


class _DoubleBlock(nn.Module):
    def __init__(self, hidden: int, heads: int, mlp: int, rank: int, txt_tokens: int,
                 dtype: torch.dtype) -> None:
        super().__init__()
        self.txt_tokens = txt_tokens
        self.img = _Stream(hidden, heads, mlp, rank, dtype)
        self.txt = _Stream(hidden, heads, mlp, rank, dtype)
        self.attn = SoftmaxAttention()

    def forward(self, img: torch.Tensor, txt: torch.Tensor,
                vec: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        qi, ki, vi, mi = self.img.pre(img, vec)
        qt, kt, vt, mt = self.txt.pre(txt, vec)
        a = _tokens(self.attn(torch.cat([qt, qi], 2), torch.cat([kt, ki], 2),
                              torch.cat([vt, vi], 2)))
        return (self.img.post(img, a[:, self.txt_tokens:], mi),
                self.txt.post(txt, a[:, :self.txt_tokens], mt))


class _SingleBlock(nn.Module):
    def __init__(self, hidden: int, heads: int, mlp: int, rank: int, dtype: torch.dtype) -> None:
        super().__init__()
        hd, self.heads, self.sizes = hidden // heads, heads, [hidden] * 3 + [mlp]
        self.mod = _Modulation(hidden, 3, True, dtype)
        self.norm = nn.LayerNorm(hidden, elementwise_affine=False, dtype=dtype)
        self.modulate = Modulate()
        self.linear1 = SVDQuantLinear(hidden, 3 * hidden + mlp, rank, dtype=dtype)
        self.q_norm, self.k_norm = nn.RMSNorm(hd, dtype=dtype), nn.RMSNorm(hd, dtype=dtype)
        self.rope = RotaryEmbedding(hd)
        self.attn = SoftmaxAttention()
        self.gelu = nn.GELU(approximate="tanh")
        self.linear2 = SVDQuantLinear(hidden + mlp, hidden, rank, dtype=dtype)
        self.residual = GatedResidual()

    def forward(self, x: torch.Tensor, vec: torch.Tensor) -> torch.Tensor:
        shift, scale, gate = self.mod(vec)
        q, k, v, mlp = self.linear1(self.modulate(self.norm(x), shift, scale)).split(
            self.sizes, dim=-1)
        q, k = self.rope(self.q_norm(_heads(q, self.heads)), self.k_norm(_heads(k, self.heads)))
        a = _tokens(self.attn(q, k, _heads(v, self.heads)))
        return self.residual(x, gate, self.linear2(torch.cat([a, self.gelu(mlp)], -1)))


class _FinalLayer(nn.Module):
    def __init__(self, hidden: int, out: int, dtype: torch.dtype) -> None:
        super().__init__()
        self.mod = _Modulation(hidden, 2, False, dtype)
        self.norm = nn.LayerNorm(hidden, elementwise_affine=False, dtype=dtype)
        self.modulate = Modulate()
        self.proj_out = nn.Linear(hidden, out, dtype=dtype)

    def forward(self, x: torch.Tensor, vec: torch.Tensor) -> torch.Tensor:
        shift, scale = self.mod(vec)
        return self.proj_out(self.modulate(self.norm(x), shift, scale))


class Flux(nn.Module):
    """FLUX.1-dev's transformer, SVDQuant W4A4 blocks (rank ``rank``) with W4A16 modulation.
    Inputs: packed image tokens ``(1, img, in_ch)``, text tokens ``(1, txt, ctx_dim)``,
    timestep and guidance ``(1,)``, pooled text ``(1, vec_dim)``."""

    def __init__(self, hidden: int, heads: int, mlp: int, double: int, single: int,
                 in_ch: int, ctx_dim: int, vec_dim: int, time_dim: int, txt_tokens: int,
                 rank: int = 32, dtype: torch.dtype = BF16) -> None:
        super().__init__()
        self.txt_tokens = txt_tokens
        self.embed = _FluxEmbed(hidden, in_ch, ctx_dim, vec_dim, time_dim, dtype)
        self.double_blocks = nn.ModuleList(
            _DoubleBlock(hidden, heads, mlp, rank, txt_tokens, dtype) for _ in range(double))
        self.single_blocks = nn.ModuleList(
            _SingleBlock(hidden, heads, mlp, rank, dtype) for _ in range(single))
        self.final = _FinalLayer(hidden, in_ch, dtype)

    def forward(self, img: torch.Tensor, txt: torch.Tensor, t: torch.Tensor, g: torch.Tensor,
                y: torch.Tensor) -> torch.Tensor:
        img, txt, vec = self.embed(img, txt, t, g, y)
        for block in self.double_blocks:
            img, txt = block(img, txt, vec)
        x = torch.cat([txt, img], 1)
        for block in self.single_blocks:
            x = block(x, vec)
        return self.final(x[:, self.txt_tokens:], vec)


class _SanaEmbed(nn.Module):
    """Patch embedding (1x1 conv), timestep MLP and adaLN-single, caption MLP and RMSNorm."""

    def __init__(self, c: int, latent: int, caption_ch: int, time_dim: int,
                 dtype: torch.dtype) -> None:
        super().__init__()
        self.x_embed = nn.Conv2d(latent, c, 1, dtype=dtype)
        self.timesteps = Timesteps(time_dim, dtype)
        self.t_embed = MLP(time_dim, c, "silu", dtype)
        self.t_block = nn.Linear(c, 6 * c, dtype=dtype)
        self.y_embed = MLP(caption_ch, c, "gelu_tanh", dtype)
        self.y_norm = nn.RMSNorm(c, dtype=dtype)

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> tuple:
        t = self.t_embed(self.timesteps(t))
        y = self.y_norm(self.y_embed(y))
        return self.x_embed(x).flatten(2).transpose(1, 2), t, self.t_block(F.silu(t)), y


class _SanaBlock(nn.Module):
    """adaLN-single modulation, LiteLA, cross-attention, GLUMBConv Mix-FFN."""

    def __init__(self, c: int, cross_heads: int, ffn: int, side: int, head_dim: int,
                 dtype: torch.dtype) -> None:
        super().__init__()
        self.c, self.heads, self.cross_heads, self.side = c, c // head_dim, cross_heads, side
        self.table = nn.Parameter(torch.randn(6, c).to(dtype) / c ** 0.5)
        self.norm1 = nn.LayerNorm(c, elementwise_affine=False, dtype=dtype)
        self.norm2 = nn.LayerNorm(c, elementwise_affine=False, dtype=dtype)
        self.modulate1, self.modulate2 = Modulate(), Modulate()
        self.qkv = nn.Linear(c, 3 * c, bias=False, dtype=dtype)
        self.lite_la = ReLULinearAttention()
        self.proj = nn.Linear(c, c, dtype=dtype)
        self.residual1, self.residual2 = GatedResidual(), GatedResidual()
        self.cross_q, self.cross_kv = nn.Linear(c, c, dtype=dtype), nn.Linear(c, 2 * c,
                                                                             dtype=dtype)
        self.cross_proj = nn.Linear(c, c, dtype=dtype)
        self.cross_attn = SoftmaxAttention()
        self.ffn_inverted = nn.Conv2d(c, 2 * ffn, 1, dtype=dtype)
        self.ffn_depthwise = nn.Conv2d(2 * ffn, 2 * ffn, 3, padding=1, groups=2 * ffn,
                                       dtype=dtype)
        self.ffn_gate = GatedSiLU()
        self.ffn_point = nn.Conv2d(ffn, c, 1, bias=False, dtype=dtype)

    def forward(self, x: torch.Tensor, y: torch.Tensor, t6: torch.Tensor) -> torch.Tensor:
        m = (self.table[None] + t6.unflatten(-1, (6, self.c))).chunk(6, dim=1)
        q, k, v = self.qkv(self.modulate1(self.norm1(x), m[0], m[1])).chunk(3, dim=-1)
        a = self.lite_la(_heads(q, self.heads), _heads(k, self.heads), _heads(v, self.heads))
        x = self.residual1(x, m[2], self.proj(_tokens(a)))
        k, v = self.cross_kv(y).chunk(2, dim=-1)
        h = self.cross_heads
        a = self.cross_attn(_heads(self.cross_q(x), h), _heads(k, h), _heads(v, h))
        x = x + self.cross_proj(_tokens(a))
        h = self.modulate2(self.norm2(x), m[3], m[4]).transpose(1, 2).unflatten(
            -1, (self.side, self.side))
        h = self.ffn_depthwise(F.silu(self.ffn_inverted(h)))
        a, gate = h.chunk(2, dim=1)
        h = self.ffn_point(self.ffn_gate(a, gate))
        return self.residual2(x, m[5], h.flatten(2).transpose(1, 2))


class _SanaFinal(nn.Module):
    def __init__(self, c: int, latent: int, dtype: torch.dtype) -> None:
        super().__init__()
        self.table = nn.Parameter(torch.randn(2, c).to(dtype) / c ** 0.5)
        self.norm = nn.LayerNorm(c, elementwise_affine=False, dtype=dtype)
        self.modulate = Modulate()
        self.linear = nn.Linear(c, latent, dtype=dtype)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        shift, scale = (self.table[None] + t[:, None]).chunk(2, dim=1)
        return self.linear(self.modulate(self.norm(x), shift, scale))


class Sana(nn.Module):
    """Sana's linear DiT, 16-bit. Inputs: latent ``(batch, latent, side, side)``, timestep
    ``(batch,)``, caption ``(batch, caption_tokens, caption_ch)``."""

    def __init__(self, c: int, depth: int, cross_heads: int, ffn: int, side: int,
                 head_dim: int = 32, latent: int = 32, caption_ch: int = 2304,
                 time_dim: int = 256, dtype: torch.dtype = BF16) -> None:
        super().__init__()
        self.embed = _SanaEmbed(c, latent, caption_ch, time_dim, dtype)
        self.blocks = nn.ModuleList(_SanaBlock(c, cross_heads, ffn, side, head_dim, dtype)
                                    for _ in range(depth))
        self.final = _SanaFinal(c, latent, dtype)

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        x, t, t6, y = self.embed(x, t, y)
        for block in self.blocks:
            x = block(x, y, t6)
        return self.final(x, t)
