"""Torch building blocks of the model twins (:mod:`mapping.torch_models`), each an IR leaf.

Every block runs its algorithm in float at random weights and states its IR operators through
``ir_ops(call)`` (:class:`~mapping.fx_trace.LeafCall`: the call's tensor shapes and dtypes), so
:func:`mapping.fx_import.import_module` keeps it whole:

* :class:`SVDQuantLinear`: SVDQuant W4A4 (the weight's top-``rank`` SVD as a 16-bit low-rank
  branch, the residual and the activations fake-quantized to int4 per group of 64; uint4 with
  a shift after a GELU) -> ``quantize`` + :class:`~mapping.ir.Linear` with ``rank``; a LoRA
  attached (:meth:`SVDQuantLinear.attach_lora`, :func:`attach_loras`) joins the branch
  (rank ``rank + r_lora``), the int4 residual untouched;
* :class:`W4A16Linear`: AWQ-style int4 weights with a scale and zero per group, 16-bit
  activations -> :class:`~mapping.ir.Linear` in ``int4_awq_g64``;
* :class:`Modulate` (``x (1 + scale) + shift``), :class:`GatedResidual` (``x + g y``),
  :class:`GatedSiLU` (``a silu(g)``), :class:`ClassifierFreeGuidance`, :class:`RotaryEmbedding`
  (rotate-half RoPE of q and k) -> the element-wise op of that name;
* :class:`Timesteps`: sinusoidal features of a scalar timestep -> nothing (the zoo graphs start
  at the embedder's first linear; the features are a few hundred sines).

:class:`MLP` (two linears around a SiLU or GELU) is no leaf: the importer sees its layers.

Attention blocks are in :mod:`mapping.torch_attention`.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from .ir import Elementwise, Linear, Op

if TYPE_CHECKING:
    from .fx_trace import LeafCall

__all__ = ["ClassifierFreeGuidance", "GatedResidual", "GatedSiLU", "MLP", "Modulate",
           "RotaryEmbedding", "SVDQuantLinear", "Timesteps", "W4A16Linear", "attach_loras",
           "dequantize", "elementwise", "fake_quant", "quantize_groups"]

GELU_SHIFT = 0.171875
"""Added to GELU outputs (minimum about -0.17) before unsigned 4-bit quantization (nunchaku)."""


def quantize_groups(x: torch.Tensor, group: int, bits: int,
                    mode: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(codes, scale, zero)`` of ``x`` per ``group`` consecutive elements of the last dim, in
    float32: ``mode`` ``"signed"`` (symmetric, codes in [-2^(b-1), 2^(b-1) - 1]), ``"unsigned"``
    (x >= 0, codes in [0, 2^b - 1]) or ``"asymmetric"`` (min..max onto [0, 2^b - 1] with a
    zero point). ``x ~= (codes - zero) * scale``."""
    if x.shape[-1] % group:
        raise ValueError(f"last dim {x.shape[-1]} is not a multiple of group {group}")
    g = x.float().reshape(*x.shape[:-1], x.shape[-1] // group, group)
    tiny = torch.finfo(torch.float32).tiny
    if mode == "signed":
        top = 2 ** (bits - 1) - 1
        scale = g.abs().amax(-1, keepdim=True).clamp(min=tiny) / top
        return torch.round(g / scale).clamp(-top - 1, top), scale, torch.zeros_like(scale)
    top = 2 ** bits - 1
    if mode == "unsigned":
        scale = g.amax(-1, keepdim=True).clamp(min=tiny) / top
        return torch.round(g / scale).clamp(0, top), scale, torch.zeros_like(scale)
    if mode != "asymmetric":
        raise ValueError(f"mode must be 'signed', 'unsigned' or 'asymmetric', got {mode!r}")
    lo, hi = g.amin(-1, keepdim=True), g.amax(-1, keepdim=True)
    scale = ((hi - lo) / top).clamp(min=tiny)
    zero = torch.round(-lo / scale)
    return (torch.round(g / scale) + zero).clamp(0, top), scale, zero


def dequantize(codes: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor) -> torch.Tensor:
    """The float32 values of grouped ``codes`` (groups merged back into the last dim)."""
    x = (codes.float() - zero.float()) * scale.float()
    return x.reshape(*x.shape[:-2], -1)


def fake_quant(x: torch.Tensor, group: int, bits: int, mode: str) -> torch.Tensor:
    """``x`` quantized per group and dequantized again, in ``x``'s dtype."""
    return dequantize(*quantize_groups(x, group, bits, mode)).to(x.dtype)


def elementwise(call: LeafCall, name: str, op: str, elements: int | None = None) -> list[Op]:
    """One element-wise op of a leaf call over its first output (or ``elements``), in the
    format of its first tensor argument."""
    out = call.outputs[0]
    return [Elementwise(name, op, out.numel if elements is None else elements,
                        call.tensors()[0].fmt, out.fmt)]


class SVDQuantLinear(nn.Module):
    """SVDQuant W4A4 linear ``y = Q(x) Q(W - U V)^T + (x V^T) U^T + b``: the weight's top-``rank``
    singular directions as a 16-bit branch, the residual's int4 codes with a 16-bit scale per
    ``group`` inputs, activations fake-quantized per group (``act="uint4_g64"``: shifted by
    :data:`GELU_SHIFT`, unsigned, for the input of a GELU MLP's second linear).

    A LoRA ``W + s B A`` (:meth:`attach_lora`: ``A`` (r_l, K), ``B`` (N, r_l), scale ``s``)
    joins the low-rank branch without requantizing anything (SVDQuant, Li et al. 2024, Sec. 4):
    :meth:`branch` is ``down' = [down; A]`` (r + r_l, K), ``up' = [up, s B]`` (N, r + r_l), so
    ``x down'^T up'^T = x down^T up^T + s (x A^T) B^T``; ``qweight``, ``wscale`` and the
    activation quantization stay as they are. ``rank`` stays the SVD's; :attr:`branch_rank`
    is ``rank + r_l``, the rank :meth:`ir_ops` reports."""

    lora_down: nn.Parameter | None
    lora_up: nn.Parameter | None

    def __init__(self, in_features: int, out_features: int, rank: int = 32, group: int = 64,
                 act: str = "int4_g64", bias: bool = True,
                 dtype: torch.dtype = torch.bfloat16) -> None:
        super().__init__()
        if act not in ("int4_g64", "uint4_g64") or group != 64:
            raise ValueError(f"act must be 'int4_g64' or 'uint4_g64' with group 64, got "
                             f"{act!r}, group {group}")
        self.in_features, self.out_features, self.rank, self.group, self.act = (
            in_features, out_features, rank, group, act)
        w = torch.randn(out_features, in_features) / math.sqrt(in_features)
        u, s, vh = torch.linalg.svd(w, full_matrices=False)
        up, down = u[:, :rank] * s[:rank], vh[:rank]
        codes, scale, _ = quantize_groups(w - up @ down, group, 4, "signed")
        self.register_buffer("qweight", codes.to(torch.int8))
        self.register_buffer("wscale", scale.to(dtype))
        self.down = nn.Parameter(down.to(dtype))
        self.up = nn.Parameter(up.to(dtype))
        self.bias = nn.Parameter(torch.zeros(out_features, dtype=dtype)) if bias else None
        self.register_parameter("lora_down", None)
        self.register_parameter("lora_up", None)
        self.lora_scale = 0.0

    @property
    def lora_rank(self) -> int:
        """The attached LoRA's rank ``r_l`` (0: none)."""
        return 0 if self.lora_down is None else int(self.lora_down.shape[0])

    @property
    def branch_rank(self) -> int:
        """The low-rank branch's rank with the LoRA fused: ``rank + lora_rank``."""
        return self.rank + self.lora_rank

    def attach_lora(self, down: torch.Tensor, up: torch.Tensor, scale: float = 1.0) -> None:
        """Attaches the LoRA ``s B A`` (``down`` = A (r_l, K), ``up`` = B (N, r_l), ``scale``
        = s), stored as parameters ``lora_down``, ``lora_up`` in the branch's dtype (16-bit
        like ``down``/``up``; SVDQuant keeps LoRAs at 16 bits) and ``lora_scale``. One LoRA
        at a time: attaching a second raises ``ValueError`` (fold several into one before, or
        :meth:`remove_lora` first). ``ValueError`` naming the offending value for a rank < 1,
        shapes that are not (r_l, K) and (N, r_l), non-float or non-finite weights, or a
        non-finite scale. The int4 codes and scales are not touched."""
        if self.lora_down is not None:
            raise ValueError(f"a LoRA of rank {self.lora_rank} is already attached; remove_lora()"
                             " first (one LoRA at a time)")
        if not isinstance(down, torch.Tensor) or not isinstance(up, torch.Tensor):
            raise ValueError(f"down and up must be tensors, got {type(down).__name__} and "
                             f"{type(up).__name__}")
        k, n = self.in_features, self.out_features
        if down.dim() != 2 or down.shape[1] != k or down.shape[0] < 1:
            raise ValueError(f"LoRA down has shape {tuple(down.shape)}, expected (r_l >= 1, "
                             f"K={k})")
        r = down.shape[0]
        if tuple(up.shape) != (n, r):
            raise ValueError(f"LoRA up has shape {tuple(up.shape)}, expected (N={n}, r_l={r})")
        for name, t in (("down", down), ("up", up)):
            if not t.is_floating_point() or not bool(torch.isfinite(t).all()):
                raise ValueError(f"LoRA {name} must hold finite floats, got {t.dtype}"
                                 f"{'' if not t.is_floating_point() else ' with inf/nan'}")
        if isinstance(scale, bool) or not isinstance(scale, int | float) or not math.isfinite(
                scale):
            raise ValueError(f"LoRA scale must be a finite number, got {scale!r}")
        dtype = self.down.dtype
        self.lora_down = nn.Parameter(down.detach().to(dtype).clone())
        self.lora_up = nn.Parameter(up.detach().to(dtype).clone())
        self.lora_scale = float(scale)

    def remove_lora(self) -> None:
        """Detaches the LoRA (none attached: nothing happens); the layer is as built."""
        self.lora_down = self.lora_up = None
        self.lora_scale = 0.0

    def branch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The float32 low-rank branch ``(down', up')``, (R, K) and (N, R), ``R`` =
        :attr:`branch_rank`: ``(down, up)`` without a LoRA, else ``down' = [down; A]``,
        ``up' = [up, fl32(s B)]``, so ``x down'^T up'^T = x down^T up^T + s (x A^T) B^T``
        (exactly in real arithmetic; in float32 up to summation order)."""
        down, up = self.down.detach().float(), self.up.detach().float()
        if self.lora_down is None or self.lora_up is None:
            return down, up
        return (torch.cat([down, self.lora_down.detach().float()], 0),
                torch.cat([up, self.lora_scale * self.lora_up.detach().float()], 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = dequantize(self.qweight, self.wscale, torch.zeros_like(self.wscale)).to(x.dtype)
        if self.act == "uint4_g64":
            xq = fake_quant(x + GELU_SHIFT, self.group, 4, "unsigned") - GELU_SHIFT
        else:
            xq = fake_quant(x, self.group, 4, "signed")
        if self.lora_down is None:
            down, up = self.down, self.up
        else:
            down, up = (t.to(x.dtype) for t in self.branch())
        return F.linear(xq, w, self.bias) + F.linear(F.linear(x, down), up)

    def ir_ops(self, call: LeafCall) -> Sequence[Op]:
        """The activation's ``quantize`` op and the W4A4 linear with its low-rank branch (rank
        :attr:`branch_rank`: a LoRA is more rank, nothing new)."""
        x, out = call.tensors()[0], call.outputs[0]
        k, n = self.in_features, self.out_features
        return [Elementwise("quant", "quantize", x.numel, x.fmt, self.act),
                Linear("linear", x.numel // k, k, n, self.act, "int4_g64", out.fmt,
                       self.branch_rank, self.bias is not None)]


def attach_loras(model: nn.Module, rank: int, seed: int = 0,
                 scale: float = 1.0) -> list[str]:
    """Attaches a random LoRA of ``rank`` to every :class:`SVDQuantLinear` of ``model`` (in
    :meth:`~torch.nn.Module.named_modules` order) and returns their paths; ``rank`` 0 attaches
    none. Per layer (K inputs, N outputs), from a generator seeded by ``crc32(f"{seed}:{path}")``
    (deterministic, the global RNG untouched): ``A ~ N(0, 1) / sqrt(K)`` (r_l, K), ``B ~ 0.1
    N(0, 1) / sqrt(r_l)`` (N, r_l), so ``s B A`` moves the layer by about ``0.1 s`` of its
    weight's scale. ``ValueError`` for a negative or non-int ``rank``, and as
    :meth:`SVDQuantLinear.attach_lora` raises (a layer with a LoRA already)."""
    if isinstance(rank, bool) or not isinstance(rank, int) or rank < 0:
        raise ValueError(f"LoRA rank must be an int >= 0, got {rank!r}")
    if rank == 0:
        return []
    paths = []
    for path, mod in model.named_modules():
        if isinstance(mod, SVDQuantLinear):
            gen = torch.Generator().manual_seed(zlib.crc32(f"{seed}:{path}".encode()))
            k, n = mod.in_features, mod.out_features
            down = torch.randn(rank, k, generator=gen) / math.sqrt(k)
            up = 0.1 * torch.randn(n, rank, generator=gen) / math.sqrt(rank)
            mod.attach_lora(down, up, scale)
            paths.append(path)
    return paths


class W4A16Linear(nn.Module):
    """AWQ-style W4A16 linear: int4 weight codes with a 16-bit scale and zero per ``group``
    inputs, dequantized to the activations' 16-bit format."""

    def __init__(self, in_features: int, out_features: int, group: int = 64, bias: bool = True,
                 dtype: torch.dtype = torch.bfloat16) -> None:
        super().__init__()
        if group != 64:
            raise ValueError(f"group must be 64 (the int4_awq_g64 format), got {group}")
        self.in_features, self.out_features = in_features, out_features
        w = torch.randn(out_features, in_features) / math.sqrt(in_features)
        codes, scale, zero = quantize_groups(w, group, 4, "asymmetric")
        self.register_buffer("qweight", codes.to(torch.uint8))
        self.register_buffer("scales", scale.to(dtype))
        self.register_buffer("zeros", zero.to(dtype))
        self.bias = nn.Parameter(torch.zeros(out_features, dtype=dtype)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = dequantize(self.qweight, self.scales, self.zeros).to(x.dtype)
        return F.linear(x, w, self.bias)

    def ir_ops(self, call: LeafCall) -> Sequence[Op]:
        """One linear with ``int4_awq_g64`` weights."""
        x, out = call.tensors()[0], call.outputs[0]
        k = self.in_features
        return [Linear("linear", x.numel // k, k, self.out_features, x.fmt, "int4_awq_g64",
                       out.fmt, 0, self.bias is not None)]


class Modulate(nn.Module):
    """adaLN modulation ``x (1 + scale) + shift`` (scale, shift broadcast per channel)."""

    def forward(self, x: torch.Tensor, shift: torch.Tensor,
                scale: torch.Tensor) -> torch.Tensor:
        return x * (1 + scale) + shift

    def ir_ops(self, call: LeafCall) -> Sequence[Op]:
        """One ``modulate`` op over the output."""
        return elementwise(call, "modulate", "modulate")


class GatedResidual(nn.Module):
    """Gated residual ``x + gate y`` (gate per channel)."""

    def forward(self, x: torch.Tensor, gate: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return x + gate * y

    def ir_ops(self, call: LeafCall) -> Sequence[Op]:
        """One ``residual`` op over the output."""
        return elementwise(call, "residual", "residual")


class GatedSiLU(nn.Module):
    """SwiGLU / GLU gate ``a silu(g)``."""

    def forward(self, a: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        return a * F.silu(g)

    def ir_ops(self, call: LeafCall) -> Sequence[Op]:
        """One ``gate`` op over the output."""
        return elementwise(call, "gate", "gate")


class ClassifierFreeGuidance(nn.Module):
    """``uncond + s (cond - uncond)`` of a batch holding the conditional half first."""

    def __init__(self, scale: float = 3.0) -> None:
        super().__init__()
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cond, uncond = x.chunk(2, dim=0)
        return uncond + self.scale * (cond - uncond)

    def ir_ops(self, call: LeafCall) -> Sequence[Op]:
        """One ``cfg`` op over the guided output."""
        return elementwise(call, "cfg", "cfg")


class RotaryEmbedding(nn.Module):
    """Rotate-half RoPE of ``q`` and ``k`` (``(..., tokens, head_dim)``) at positions
    ``offset``, ``offset + 1``, ..."""

    def __init__(self, head_dim: int, base: float = 10000.0) -> None:
        super().__init__()
        if head_dim % 2:
            raise ValueError(f"head_dim must be even, got {head_dim}")
        inv = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
        self.register_buffer("inv_freq", inv, persistent=False)

    def _rotate(self, x: torch.Tensor, offset: int) -> torch.Tensor:
        pos = torch.arange(offset, offset + x.shape[-2], dtype=torch.float32)
        freqs = torch.outer(pos, self.inv_freq)
        cos, sin = torch.cat([freqs, freqs], -1).cos(), torch.cat([freqs, freqs], -1).sin()
        x1, x2 = x.float().chunk(2, dim=-1)
        return (x.float() * cos + torch.cat([-x2, x1], -1) * sin).to(x.dtype)

    def forward(self, q: torch.Tensor, k: torch.Tensor,
                offset: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        return self._rotate(q, offset), self._rotate(k, offset)

    def ir_ops(self, call: LeafCall) -> Sequence[Op]:
        """One ``rope`` op over q and k together."""
        return elementwise(call, "rope", "rope", sum(t.numel for t in call.outputs))


class Timesteps(nn.Module):
    """Sinusoidal features (``dim``, cos then sin) of timesteps ``(batch,)``, in ``dtype``."""

    def __init__(self, dim: int, dtype: torch.dtype = torch.bfloat16,
                 max_period: float = 10000.0) -> None:
        super().__init__()
        self.dtype = dtype
        half = dim // 2
        freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32) / half)
        self.register_buffer("freqs", freqs, persistent=False)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        args = t.float()[:, None] * 1000.0 * self.freqs[None]
        return torch.cat([args.cos(), args.sin()], -1).to(self.dtype)

    def ir_ops(self, call: LeafCall) -> Sequence[Op]:
        """None: the zoo graphs start at the embedder's first linear."""
        return []


class MLP(nn.Module):
    """``fc2(act(fc1(x)))`` with biases; ``act``: ``"silu"``, ``"gelu"`` or ``"gelu_tanh"``."""

    def __init__(self, k: int, hidden: int, act: str,
                 dtype: torch.dtype = torch.bfloat16) -> None:
        super().__init__()
        if act not in ("silu", "gelu", "gelu_tanh"):
            raise ValueError(f"act must be 'silu', 'gelu' or 'gelu_tanh', got {act!r}")
        self.act = act
        self.fc1 = nn.Linear(k, hidden, dtype=dtype)
        self.fc2 = nn.Linear(hidden, hidden, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc1(x)
        if self.act == "silu":
            h = F.silu(h)
        else:
            h = F.gelu(h, approximate="tanh" if self.act == "gelu_tanh" else "none")
        return self.fc2(h)
