"""Sana's linear DiT (one denoising step) in the operator IR, 16-bit.

Configs: NVlabs/Sana ``diffusion/model/nets/sana_multi_scale.py`` (``SanaMS_600M_P1_D28``: depth
28, hidden 1152, 16 heads; ``SanaMS_1600M_P1_D20``: depth 20, hidden 2240, 20 heads; patch 1,
32 latent channels, mlp_ratio 2.5) with ``configs/sana_config/1024ms/`` (caption channels 2304,
300 tokens, linear self-attention with 32-dim heads, GLUMBConv Mix-FFN). Blocks from
``sana_blocks.py`` (LiteLA, MultiHeadCrossAttention, T2IFinalLayer) and ``basic_modules.py``
(GLUMBConv). DC-AE downsamples 32x: ``tokens = (resolution / 32)^2``.
"""

from __future__ import annotations

from dataclasses import dataclass

from .ir import (
    Attention,
    Conv2d,
    Elementwise,
    Linear,
    LinearAttention,
    ModelGraph,
    Norm,
    Op,
    Stage,
)

__all__ = ["SIZES", "sana", "tiny_sana"]

_SOURCE = ("NVlabs/Sana diffusion/model/nets/sana_multi_scale.py, sana_blocks.py, "
           "basic_modules.py; configs/sana_config/1024ms/")


@dataclass(frozen=True)
class _Dims:
    hidden: int
    depth: int
    cross_heads: int
    ffn: int
    head_dim: int = 32
    latent: int = 32
    caption_ch: int = 2304
    caption_tokens: int = 300
    time_dim: int = 256
    px_per_token: int = 32


SIZES = {"0.6B": _Dims(1152, 28, 16, 2880), "1.6B": _Dims(2240, 20, 20, 5600)}
"""Size -> (hidden, depth, cross-attention heads, Mix-FFN hidden H = 2.5 x hidden)."""
_TINY = {"0.6B": _Dims(64, 2, 2, 160, caption_ch=64, caption_tokens=8, time_dim=64),
         "1.6B": _Dims(128, 2, 4, 320, caption_ch=64, caption_tokens=8, time_dim=64)}


def _block(d: _Dims, batch: int, side: int) -> list[Op]:
    """adaLN-single modulation, LiteLA self-attention, softmax cross-attention, Mix-FFN."""
    c, f, t = d.hidden, d.ffn, side * side
    n, y = batch * t, batch * d.caption_tokens
    return [
        Elementwise("ada", "add", 6 * c * batch),
        Norm("norm1", "layer", n, c, affine=False),
        Elementwise("modulate1", "modulate", n * c),
        Linear("qkv", n, c, 3 * c),
        LinearAttention("lite_la", batch, c // d.head_dim, d.head_dim, t),
        Linear("proj", n, c, c, bias=True),
        Elementwise("residual1", "residual", n * c),
        Linear("cross_q", n, c, c, bias=True),
        Linear("cross_kv", y, c, 2 * c, bias=True),
        Attention("cross_attn", batch, d.cross_heads, d.cross_heads, c // d.cross_heads, t,
                  d.caption_tokens),
        Linear("cross_proj", n, c, c, bias=True),
        Elementwise("cross_add", "add", n * c),
        Norm("norm2", "layer", n, c, affine=False),
        Elementwise("modulate2", "modulate", n * c),
        Conv2d("ffn_inverted", batch, c, 2 * f, side, side, 1, bias=True),
        Elementwise("ffn_silu", "silu", n * 2 * f),
        Conv2d("ffn_depthwise", batch, 2 * f, 2 * f, side, side, 3, groups=2 * f, bias=True),
        Elementwise("ffn_gate", "gate", n * f),
        Conv2d("ffn_point", batch, f, c, side, side, 1),
        Elementwise("residual2", "residual", n * c),
    ]


def _embed(d: _Dims, batch: int, side: int) -> list[Op]:
    c, y = d.hidden, batch * d.caption_tokens
    return [
        Conv2d("x_embed", batch, d.latent, c, side, side, 1, bias=True),
        Linear("t_fc1", batch, d.time_dim, c, bias=True),
        Elementwise("t_silu", "silu", batch * c),
        Linear("t_fc2", batch, c, c, bias=True),
        Elementwise("t_block_silu", "silu", batch * c),
        Linear("t_block", batch, c, 6 * c, bias=True),
        Linear("y_fc1", y, d.caption_ch, c, bias=True),
        Elementwise("y_gelu", "gelu", y * c),
        Linear("y_fc2", y, c, c, bias=True),
        Norm("y_norm", "rms", y, c),
    ]


def _final(d: _Dims, batch: int, side: int) -> list[Op]:
    c, n = d.hidden, batch * side * side
    return [Elementwise("ada", "add", 2 * c * batch),
            Norm("norm", "layer", n, c, affine=False),
            Elementwise("modulate", "modulate", n * c),
            Linear("linear", n, c, d.latent, bias=True)]


def _build(name: str, dims: dict[str, _Dims], size: str, resolution: int, batch: int,
           px_per_token: int = 32) -> ModelGraph:
    if size not in dims:
        raise ValueError(f"size must be one of {sorted(dims)}, got {size!r}")
    d = dims[size]
    if (isinstance(resolution, bool) or not isinstance(resolution, int)
            or resolution < px_per_token or resolution % px_per_token):
        raise ValueError(f"resolution must be a positive multiple of {px_per_token}, "
                         f"got {resolution!r}")
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ValueError(f"batch must be an int >= 1, got {batch!r}")
    side = resolution // px_per_token
    stages = (Stage("embed", _embed(d, batch, side)),
              Stage("block", _block(d, batch, side), d.depth),
              Stage("final", _final(d, batch, side)))
    desc = (f"Sana-{size} linear DiT, one step at {resolution}px ({side * side} tokens, "
            f"batch {batch}), 16-bit")
    return ModelGraph(name, stages, desc, _SOURCE, {"size": size, "resolution": resolution,
                                                    "batch": batch, "tokens": side * side})


def sana(size: str = "0.6B", resolution: int = 1024, batch: int = 1) -> ModelGraph:
    """Sana-``size`` (``"0.6B"`` or ``"1.6B"``), one denoising step at ``resolution`` pixels
    (``(resolution / 32)^2`` tokens; 1024 -> 1024, 4096 -> 16384). ``batch`` 2 runs CFG's
    two branches together. The adaLN ``scale_shift_table`` (6 x hidden per block) is folded
    into the ``ada`` add and not counted as parameters."""
    return _build(f"sana-{size.lower()}" if isinstance(size, str) else "sana", SIZES, size,
                  resolution, batch)


def tiny_sana(size: str = "0.6B", resolution: int = 128, batch: int = 1) -> ModelGraph:
    """Sana's structure at hidden 64 (0.6B) or 128 (1.6B), 32-dim linear heads, depth 2,
    8 caption tokens of 64 channels, 4x4 = 16 tokens at 128 px."""
    return _build(f"tiny-sana-{size.lower()}" if isinstance(size, str) else "tiny-sana", _TINY,
                  size, resolution, batch)
