"""Sana Mix-FFN (GLUMBConv, ratio 2.5), float reference.

With C channels and hidden width H (``int(C * 2.5)`` in Sana)::

    h = SiLU(W1 x + b1)                 1x1 conv C -> 2H, bias
    h = dwconv3x3(h; Wd, bd)            depthwise 3x3, zero padding 1, bias
    a, g = h[:H], h[H:]                 channel split (torch.chunk order)
    y = W2 (a * SiLU(g)) (+ b2)         1x1 conv H -> C, no bias in Sana

Written with explicit einsums and a 9-tap shifted sum (no conv layers), in the input's float
dtype (float32 unless float64 is given). Input ``(B, C, h, w)`` or tokens ``(B, N, C)`` with
``hw = (h, w)``, tokens in row-major ``(h, w)`` order; the output has the input's layout and
kind (numpy or torch, :mod:`golden.arrays`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .arrays import ArrayLike, array_function

__all__ = ["MixFFNWeights", "init_mix_ffn_weights", "mix_ffn"]


@dataclass(frozen=True)
class MixFFNWeights:
    """Mix-FFN parameters as torch tensors (shapes for C channels, hidden H):
    ``w_inv (2H, C)``, ``b_inv (2H,)``, ``w_dw (2H, 3, 3)``, ``b_dw (2H,)``, ``w_point (C, H)``,
    ``b_point (C,)`` or None."""

    w_inv: torch.Tensor
    b_inv: torch.Tensor
    w_dw: torch.Tensor
    b_dw: torch.Tensor
    w_point: torch.Tensor
    b_point: torch.Tensor | None = None

    def __post_init__(self) -> None:
        two_h, c = self.w_inv.shape
        if two_h % 2:
            raise ValueError(f"w_inv must have an even number of rows (2H), got {two_h}")
        h = two_h // 2
        expect = {
            "b_inv": (two_h,),
            "w_dw": (two_h, 3, 3),
            "b_dw": (two_h,),
            "w_point": (c, h),
        }
        for name, shape in expect.items():
            got = tuple(getattr(self, name).shape)
            if got != shape:
                raise ValueError(f"{name} must have shape {shape}, got {got}")
        if self.b_point is not None and tuple(self.b_point.shape) != (c,):
            raise ValueError(f"b_point must have shape {(c,)}, got {tuple(self.b_point.shape)}")

    @property
    def channels(self) -> int:
        return int(self.w_inv.shape[1])

    @property
    def hidden(self) -> int:
        return int(self.w_inv.shape[0]) // 2


def init_mix_ffn_weights(
    channels: int,
    hidden: int | None = None,
    ratio: float = 2.5,
    seed: int = 0,
    point_bias: bool = False,
    dtype: torch.dtype = torch.float32,
) -> MixFFNWeights:
    """Seeded random weights (uniform ``+-1/sqrt(fan_in)``, like torch's conv init);
    ``hidden = int(channels * ratio)`` unless given."""
    if channels < 1:
        raise ValueError(f"channels must be >= 1, got {channels}")
    h = int(channels * ratio) if hidden is None else int(hidden)
    if h < 1:
        raise ValueError(f"hidden must be >= 1, got {h}")
    gen = torch.Generator().manual_seed(seed)

    def u(shape: tuple[int, ...], fan_in: int) -> torch.Tensor:
        bound = 1.0 / fan_in**0.5
        return ((torch.rand(shape, generator=gen, dtype=torch.float64) * 2 - 1) * bound).to(dtype)

    return MixFFNWeights(
        w_inv=u((2 * h, channels), channels),
        b_inv=u((2 * h,), channels),
        w_dw=u((2 * h, 3, 3), 9),
        b_dw=u((2 * h,), 9),
        w_point=u((channels, h), h),
        b_point=u((channels,), h) if point_bias else None,
    )


def _as_float(x: torch.Tensor) -> torch.Tensor:
    """``x`` detached, float64 kept and any other real dtype as float32, checked finite."""
    t = x.detach()
    if t.is_complex() or t.dtype == torch.bool:
        raise ValueError(f"x must be real, got dtype {t.dtype}")
    if t.dtype != torch.float64:
        t = t.to(torch.float32)
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"x holds a non-finite value ({t[~torch.isfinite(t)][0].item()})")
    return t


def _dwconv3x3(h: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Depthwise 3x3 cross-correlation with zero padding 1: sum of 9 shifted, weighted maps."""
    hp = F.pad(h, (1, 1, 1, 1))
    rows, cols = h.shape[-2:]
    out = b[None, :, None, None].expand_as(h).clone()
    for dy in range(3):
        for dx in range(3):
            out = out + w[None, :, dy, dx, None, None] * hp[..., dy : dy + rows, dx : dx + cols]
    return out


@array_function("x", native="torch")
def mix_ffn(x: ArrayLike, weights: MixFFNWeights, hw: tuple[int, int] | None = None) -> ArrayLike:
    """Mix-FFN on ``(B, C, h, w)`` (``hw`` must be None) or tokens ``(B, N, C)`` with
    ``hw = (h, w)``, ``h * w = N`` (square ``N`` may omit ``hw``)."""
    t = _as_float(x)
    c = weights.channels
    if t.ndim == 3:
        b, n, ct = t.shape
        if hw is None:
            side = int(round(n**0.5))
            if side * side != n:
                raise ValueError(f"hw is required for non-square token count {n}")
            hw = (side, side)
        if len(hw) != 2 or int(hw[0]) * int(hw[1]) != n or min(hw) < 1:
            raise ValueError(f"hw {tuple(hw)} does not match the {n} tokens of x")
        img = t.reshape(b, int(hw[0]), int(hw[1]), ct).permute(0, 3, 1, 2)
    elif t.ndim == 4:
        if hw is not None:
            raise ValueError(f"hw must be None for 4-D x, got {hw}")
        img, ct = t, t.shape[1]
    else:
        raise ValueError(f"x must be (B, C, h, w) or (B, N, C), got shape {tuple(t.shape)}")
    if ct != c:
        raise ValueError(f"x has {ct} channels but the weights expect {c}")
    p = {name: getattr(weights, name) for name in ("w_inv", "b_inv", "w_dw", "b_dw", "w_point")}
    p = {name: val.to(device=img.device, dtype=img.dtype) for name, val in p.items()}
    h = torch.einsum("oc,bcyx->boyx", p["w_inv"], img) + p["b_inv"][None, :, None, None]
    h = F.silu(h)
    h = _dwconv3x3(h, p["w_dw"], p["b_dw"])
    a, g = h[:, : weights.hidden], h[:, weights.hidden :]
    y = torch.einsum("oc,bcyx->boyx", p["w_point"], a * F.silu(g))
    if weights.b_point is not None:
        y = y + weights.b_point.to(device=y.device, dtype=y.dtype)[None, :, None, None]
    if t.ndim == 3:
        y = y.permute(0, 2, 3, 1).reshape(t.shape[0], -1, c)
    return y
