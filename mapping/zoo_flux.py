"""FLUX.1-dev's transformer (one denoising step) in the operator IR, 16-bit or SVDQuant W4A4.

Config: black-forest-labs/FLUX.1-dev ``transformer/config.json`` (``num_layers`` 19,
``num_single_layers`` 38, ``num_attention_heads`` 24, ``attention_head_dim`` 128, ``in_channels``
64, ``joint_attention_dim`` 4096, ``pooled_projection_dim`` 768, ``guidance_embeds`` true) and
black-forest-labs/flux ``src/flux/util.py`` ("flux-dev": hidden 3072, mlp_ratio 4, qkv_bias).
Image tokens: the VAE downsamples 8x and 2x2 patches are packed, so ``(resolution / 16)^2``.
Quantized layers follow SVDQuant (mit-han-lab/deepcompressor, nunchaku): every linear of the
blocks in W4A4 with a rank-32 16-bit branch; the adaLN modulation linears in AWQ W4A16 as nunchaku
deploys them (``modulation="bf16"`` keeps them 16-bit); embedders, final layer, norms and
attention (QK^T, PV) stay 16-bit.
"""

from __future__ import annotations

from dataclasses import dataclass

from .ir import Attention, Elementwise, Linear, ModelGraph, Norm, Op, Stage

__all__ = ["QUANT_MODES", "flux1_dev", "tiny_flux1_dev"]

QUANT_MODES = {"bf16": ("bf16", "bf16", 0), "svdquant": ("int4_g64", "uint4_g64", 32),
               "nvfp4": ("nvfp4", "nvfp4", 32)}
"""quant -> (format of the block linears, format of fc2's post-GELU input, low-rank rank)."""
_SOURCE = ("black-forest-labs/FLUX.1-dev transformer/config.json; black-forest-labs/flux "
           "src/flux/util.py; SVDQuant: mit-han-lab/nunchaku, mit-han-lab/deepcompressor")


@dataclass(frozen=True)
class _Dims:
    hidden: int
    heads: int
    mlp: int
    double: int
    single: int
    in_ch: int
    ctx_dim: int
    vec_dim: int
    time_dim: int
    patch_px: int = 16


_FULL = _Dims(3072, 24, 12288, 19, 38, 64, 4096, 768, 256)
_TINY = _Dims(64, 2, 256, 2, 2, 64, 64, 64, 64)


class _Q:
    """Formats of one build: quantized block linears (with their quantize ops) or 16-bit."""

    def __init__(self, quant: str, modulation: str) -> None:
        if quant not in QUANT_MODES:
            raise ValueError(f"quant must be one of {sorted(QUANT_MODES)}, got {quant!r}")
        if modulation not in ("w4a16", "bf16"):
            raise ValueError(f"modulation must be 'w4a16' or 'bf16', got {modulation!r}")
        self.fmt, self.post_gelu, self.rank = QUANT_MODES[quant]
        self.quantized = quant != "bf16"
        self.mod_fmt = "int4_awq_g64" if self.quantized and modulation == "w4a16" else "bf16"

    def linear(self, name: str, m: int, k: int, n: int, act: str | None = None) -> list[Op]:
        """A block linear, preceded by the quantize op of its input when quantized."""
        if not self.quantized:
            return [Linear(name, m, k, n, bias=True)]
        act = act or self.fmt
        return [Elementwise(f"{name}_quant", "quantize", m * k, "bf16", act),
                Linear(name, m, k, n, act, self.fmt, "bf16", self.rank, True)]

    def modulation(self, name: str, hidden: int, chunks: int) -> list[Op]:
        """SiLU of the conditioning vector and its adaLN linear (hidden -> chunks x hidden)."""
        return [Elementwise(f"{name}_silu", "silu", hidden),
                Linear(name, 1, hidden, chunks * hidden, "bf16", self.mod_fmt, bias=True)]


def _qk(prefix: str, tokens: int, d: _Dims) -> list[Op]:
    head_dim = d.hidden // d.heads
    return [Norm(f"{prefix}q_norm", "rms", tokens * d.heads, head_dim),
            Norm(f"{prefix}k_norm", "rms", tokens * d.heads, head_dim),
            Elementwise(f"{prefix}rope", "rope", 2 * tokens * d.hidden)]


def _double(d: _Dims, q: _Q, streams: dict[str, int]) -> list[Op]:
    """One double-stream block: per-stream modulation, norms, qkv; joint attention; per-stream
    out proj, gated residuals and GELU MLP."""
    h, total = d.hidden, sum(streams.values())
    ops: list[Op] = []
    for s, t in streams.items():
        ops += q.modulation(f"{s}_mod", h, 6)
        ops += [Norm(f"{s}_norm1", "layer", t, h, affine=False),
                Elementwise(f"{s}_modulate1", "modulate", t * h)]
        ops += q.linear(f"{s}_qkv", t, h, 3 * h) + _qk(f"{s}_", t, d)
    ops.append(Attention("attn", 1, d.heads, d.heads, h // d.heads, total, total))
    for s, t in streams.items():
        ops += q.linear(f"{s}_out", t, h, h)
        ops += [Elementwise(f"{s}_residual1", "residual", t * h),
                Norm(f"{s}_norm2", "layer", t, h, affine=False),
                Elementwise(f"{s}_modulate2", "modulate", t * h)]
        ops += q.linear(f"{s}_fc1", t, h, d.mlp) + [Elementwise(f"{s}_gelu", "gelu", t * d.mlp)]
        ops += q.linear(f"{s}_fc2", t, d.mlp, h, q.post_gelu)
        ops.append(Elementwise(f"{s}_residual2", "residual", t * h))
    return ops


def _single(d: _Dims, q: _Q, t: int) -> list[Op]:
    """One single-stream block: fused linear1 (qkv + MLP in), attention, GELU, fused linear2."""
    h = d.hidden
    ops = q.modulation("mod", h, 3) + [Norm("norm", "layer", t, h, affine=False),
                                        Elementwise("modulate", "modulate", t * h)]
    ops += q.linear("linear1", t, h, 3 * h + d.mlp) + _qk("", t, d)
    ops += [Attention("attn", 1, d.heads, d.heads, h // d.heads, t, t),
            Elementwise("gelu", "gelu", t * d.mlp)]
    ops += q.linear("linear2", t, h + d.mlp, h)
    return ops + [Elementwise("residual", "residual", t * h)]


def _embed(d: _Dims, img: int, txt: int) -> list[Op]:
    h = d.hidden
    ops: list[Op] = [Linear("img_in", img, d.in_ch, h, bias=True),
           Linear("txt_in", txt, d.ctx_dim, h, bias=True)]
    for name, k in (("time_in", d.time_dim), ("guidance_in", d.time_dim),
                    ("vector_in", d.vec_dim)):
        ops += [Linear(f"{name}_1", 1, k, h, bias=True), Elementwise(f"{name}_silu", "silu", h),
                Linear(f"{name}_2", 1, h, h, bias=True)]
    return ops + [Elementwise("vec_sum", "add", h, inputs=3)]


def _build(name: str, d: _Dims, resolution: int, quant: str, modulation: str,
           text_tokens: int) -> ModelGraph:
    if resolution < d.patch_px or resolution % d.patch_px:
        raise ValueError(f"resolution must be a positive multiple of {d.patch_px}, "
                         f"got {resolution!r}")
    if isinstance(text_tokens, bool) or not isinstance(text_tokens, int) or text_tokens < 1:
        raise ValueError(f"text_tokens must be an int >= 1, got {text_tokens!r}")
    q = _Q(quant, modulation)
    img = (resolution // d.patch_px) ** 2
    tokens = img + text_tokens
    final = [Elementwise("silu", "silu", d.hidden),
             Linear("mod", 1, d.hidden, 2 * d.hidden, bias=True),
             Norm("norm", "layer", img, d.hidden, affine=False),
             Elementwise("modulate", "modulate", img * d.hidden),
             Linear("proj_out", img, d.hidden, d.in_ch, bias=True)]
    stages = (Stage("embed", _embed(d, img, text_tokens)),
              Stage("double", _double(d, q, {"img": img, "txt": text_tokens}), d.double),
              Stage("single", _single(d, q, tokens), d.single),
              Stage("final", final))
    desc = (f"FLUX.1-dev transformer, one step at {resolution}px ({img} image + {text_tokens} "
            f"text tokens), {quant}" + (f", modulation {q.mod_fmt}" if q.quantized else ""))
    return ModelGraph(name, stages, desc, _SOURCE,
                      {"resolution": resolution, "quant": quant, "modulation": modulation,
                       "text_tokens": text_tokens, "image_tokens": img})


def flux1_dev(resolution: int = 1024, quant: str = "svdquant", modulation: str = "w4a16",
              text_tokens: int = 512) -> ModelGraph:
    """FLUX.1-dev transformer, one denoising step (batch 1: guidance is distilled, no CFG).

    ``quant``: ``"svdquant"`` (INT4 W4A4, groups of 64, rank 32; uint4 after GELU),
    ``"nvfp4"`` (SVDQuant's NVFP4 variant) or ``"bf16"``. ``modulation``: the adaLN linears in
    ``"w4a16"`` (AWQ int4, as nunchaku ships) or ``"bf16"``; ignored for ``quant="bf16"``."""
    return _build("flux1-dev", _FULL, resolution, quant, modulation, text_tokens)


def tiny_flux1_dev(resolution: int = 64, quant: str = "svdquant", modulation: str = "w4a16",
                   text_tokens: int = 8) -> ModelGraph:
    """FLUX.1-dev's structure at hidden 64 (2 heads x 32, MLP 256), 2 + 2 blocks, 16 image and
    8 text tokens; every quantized K (64, 256, 320) is a multiple of the group of 64."""
    return _build("tiny-flux1-dev", _TINY, resolution, quant, modulation, text_tokens)
