"""Torch operators -> IR operators, one traced call at a time (see :mod:`mapping.fx_import`).

A :class:`Call` is a node of the traced graph seen as a function call: torch functions, Tensor
methods and ATen operators by their normalized name (:func:`~mapping.fx_trace.op_name`),
``torch.nn`` layers converted to the functional call they make. :data:`HANDLERS` maps names to
the IR operators (locally named; the importer prefixes module paths):

* ``linear`` / ``addmm`` / ``mm`` / ``matmul`` / ``bmm`` with a stored weight (a parameter, or
  a non-floating buffer such as int8 codes) -> :class:`Linear` (``m`` = rows of the input);
  with two computed operands -> :class:`Matmul` (``batch`` = broadcast leading dims);
* ``conv2d`` / ``convolution`` (square kernel, equal strides, no dilation) -> :class:`Conv2d`;
* ``layer_norm`` / ``rms_norm`` -> :class:`Norm`; ``embedding`` -> :class:`Embedding`;
* ``scaled_dot_product_attention`` -> :class:`Attention` (:func:`attention`);
* ``gelu``, ``silu``, ``relu``, ``softmax`` -> the element-wise op of that name; ``add`` /
  ``sub`` -> ``add``; ``mul`` / ``div`` / ``neg`` -> ``mul``; a ``sum`` reduction -> ``add``
  over its inputs. ``inputs`` = tensor operand elements over output elements, rounded half up
  (a broadcast operand counts by its size; a Python scalar not at all);
* ``dropout`` outside training -> nothing.

Formats follow dtypes (:data:`~mapping.fx_trace.DTYPE_FORMATS`); a weight's format is its stored
dtype (int8 codes cast to bf16 before the product are an int8 weight). A call the IR cannot
express raises :class:`Unsupported` with the reason.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.fx
from torch import nn

from .fx_trace import SHAPE_OPS, TensorMeta, Traced, format_of, op_name
from .ir import Attention, Conv2d, Elementwise, Embedding, Linear, Matmul, Norm, Op

__all__ = ["HANDLERS", "Call", "Unsupported", "attention", "classify_mask", "module_call"]


class Unsupported(Exception):
    """A call the IR cannot express; the message says why."""


@dataclass
class Call:
    """A node seen as a function call ``op(*args, **kwargs)`` (``training``: of its module)."""

    node: torch.fx.Node
    op: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)
    training: bool = False

    def arg(self, index: int, *keys: str, default: Any = None) -> Any:
        """Positional argument ``index``, else the first keyword of ``keys`` given."""
        if index < len(self.args):
            return self.args[index]
        return next((self.kwargs[k] for k in keys if k in self.kwargs), default)


def _meta(t: Traced, arg: object, what: str) -> TensorMeta:
    meta = t.tensor(arg)
    if meta is None:
        raise Unsupported(f"{what} is not a tensor")
    return meta


def _weight_fmt(t: Traced, arg: object) -> str:
    stored = t.weight(arg)
    return format_of(stored.dtype if stored is not None else _meta(t, arg, "weight").dtype)


def _is_weight(t: Traced, arg: object) -> bool:
    stored = t.weight(arg)
    return stored is not None and (isinstance(stored, nn.Parameter)
                                   or not stored.is_floating_point())


def _linear(t: Traced, c: Call) -> list[Op]:
    x, w, b = c.arg(0, "input"), c.arg(1, "weight"), c.arg(2, "bias")
    xm, wm = _meta(t, x, "input"), _meta(t, w, "weight")
    if len(wm.shape) != 2:
        raise Unsupported(f"weight of shape {wm.shape} is not 2-D")
    n, k = wm.shape
    return [Linear("linear", xm.numel // k, k, n, xm.fmt, _weight_fmt(t, w),
                   _meta(t, c.node, "output").fmt, bias=b is not None)]


def _matmul(t: Traced, c: Call) -> list[Op]:
    bias, (a, b) = (c.args[0], c.args[1:3]) if c.op == "addmm" else (None, c.args[:2])
    am, bm = _meta(t, a, "first operand"), _meta(t, b, "second operand")
    out = _meta(t, c.node, "output").fmt
    if _is_weight(t, b) and len(bm.shape) == 2:
        k, n = bm.shape
        return [Linear("linear", am.numel // k, k, n, am.fmt, _weight_fmt(t, b), out,
                       bias=bias is not None)]
    if _is_weight(t, a) and len(am.shape) == 2 and bias is None:
        n, k = am.shape
        return [Linear("linear", bm.numel // k, k, n, bm.fmt, _weight_fmt(t, a), out)]
    if bias is not None:
        raise Unsupported("addmm of two computed operands")
    sa = am.shape if len(am.shape) > 1 else (1, *am.shape)
    sb = bm.shape if len(bm.shape) > 1 else (*bm.shape, 1)
    batch = math.prod(torch.broadcast_shapes(sa[:-2], sb[:-2]))
    return [Matmul("matmul", batch, sa[-2], sa[-1], sb[-1], am.fmt, bm.fmt, out)]


def _pair(value: Any, what: str) -> int:
    vals = [value] if isinstance(value, int) else list(value)
    if len(set(vals)) != 1:
        raise Unsupported(f"{what} {tuple(vals)} is not the same along both axes")
    return int(vals[0])


def _conv2d(t: Traced, c: Call) -> list[Op]:
    x, w, b = c.arg(0, "input"), c.arg(1, "weight"), c.arg(2, "bias")
    stride, padding = c.arg(3, "stride", default=1), c.arg(4, "padding", default=0)
    dilation = c.arg(5, "dilation", default=1)
    groups = c.arg(8 if c.op == "convolution" else 6, "groups", default=1)
    if c.op == "convolution" and c.arg(6, "transposed"):
        raise Unsupported("transposed convolution")
    xm, wm = _meta(t, x, "input"), _meta(t, w, "weight")
    if len(wm.shape) != 4:
        raise Unsupported(f"weight of shape {wm.shape} is not a 2-D convolution's")
    kernel = _pair(wm.shape[2:], "kernel")
    if _pair(dilation, "dilation") != 1:
        raise Unsupported(f"dilation {dilation}")
    if isinstance(padding, str):
        pad = 0 if padding == "valid" else kernel // 2
    else:
        pad = _pair(padding, "padding")
    batch, (c_in, h, wd) = (xm.shape[0], xm.shape[1:]) if len(xm.shape) == 4 else (1, xm.shape)
    return [Conv2d("conv2d", batch, c_in, wm.shape[0], h, wd, kernel,
                   _pair(stride, "stride"), int(groups), -1 if pad == kernel // 2 else pad,
                   xm.fmt, _weight_fmt(t, w), _meta(t, c.node, "output").fmt,
                   bias=b is not None)]


def _norm(t: Traced, c: Call) -> list[Op]:
    x, shape = c.arg(0, "input"), c.arg(1, "normalized_shape")
    weight = c.arg(2, "weight")
    xm = _meta(t, x, "input")
    features = math.prod([shape] if isinstance(shape, int) else shape)
    kind = "layer" if c.op == "layer_norm" else "rms"
    return [Norm("norm", kind, xm.numel // features, features, xm.fmt,
                 affine=weight is not None)]


def _embedding(t: Traced, c: Call) -> list[Op]:
    a, b = c.arg(0, "input", "weight"), c.arg(1, "weight", "indices")
    am, bm = _meta(t, a, "first operand"), _meta(t, b, "second operand")
    (w, wm), ids = ((a, am), bm) if am.dtype.is_floating_point else ((b, bm), am)
    return [Embedding("embedding", ids.numel, wm.shape[0], wm.shape[1], _weight_fmt(t, w))]


_ELEMENTWISE = {"gelu": "gelu", "silu": "silu", "relu": "relu", "softmax": "softmax",
                "add": "add", "sub": "add", "mul": "mul", "div": "mul", "neg": "mul",
                "sum": "add"}


def _elementwise(t: Traced, c: Call) -> list[Op]:
    out = _meta(t, c.node, "output")
    operands = [a for a in (*c.args, *c.kwargs.values()) if t.tensor(a) is not None]
    active = [a for a in operands if t.is_active(a)] or operands
    read = sum(_meta(t, a, "operand").numel for a in operands)
    inputs = max(1, math.floor(read / out.numel + 0.5))
    return [Elementwise(c.op, _ELEMENTWISE[c.op], out.numel, _meta(t, active[0], "operand").fmt,
                        out.fmt, inputs)]


def _dropout(t: Traced, c: Call) -> list[Op]:
    p = c.arg(1, "p", default=0.5)
    training = c.training if c.node.op == "call_module" else c.arg(2, "training", "train",
                                                                   default=True)
    if training and p:
        raise Unsupported(f"dropout p={p} in training mode (call .eval() first)")
    return []


def classify_mask(vis: torch.Tensor) -> tuple[bool, tuple[int, int] | None]:
    """``(causal, window)`` of a ``q_tokens x kv_tokens`` visibility matrix, the queries being
    the last positions: everything (causal only for one query), causal, or causal with a
    ``(sink, recent)`` window; ``Unsupported`` for any other mask."""
    tq, tk = vis.shape
    if bool(vis.all()):
        return tq == 1, None
    p = torch.arange(tk - tq, tk)[:, None]
    j = torch.arange(tk)[None, :]
    causal = j <= p
    if torch.equal(vis, causal):
        return True, None
    row = vis[-1].tolist()
    sink = row.index(False) if False in row else tk
    recent = row[::-1].index(False) if False in row else tk
    if recent >= 1 and torch.equal(vis, causal & ((j < sink) | (p - j < recent))):
        return True, (sink, recent)
    raise Unsupported("attention mask is neither full, causal (queries last) nor causal with a "
                      "sink + recent window")


def _visibility(t: Traced, mask: object, tq: int, tk: int,
                fills: bool) -> torch.Tensor | None:
    """Which keys each query sees under ``mask``: bool (True: seen; ``fills``: True is filled
    away, as ``masked_fill``) or additive (very negative: hidden)."""
    if mask is None:
        return None
    if t.is_active(mask):
        raise Unsupported("attention mask computed from activations")
    value = t.value(mask)
    if not isinstance(value, torch.Tensor):
        raise Unsupported("attention mask value unknown")
    if fills or value.dtype == torch.bool:
        vis = ~value.bool() if fills else value
    else:
        vis = value > torch.finfo(value.dtype).min / 2
    if not fills and value.dtype != torch.bool and bool((value[vis] != 0).any()):
        raise Unsupported("additive attention mask carries biases, not only masking")
    vis = torch.broadcast_to(vis, (*vis.shape[:-2], tq, tk)).reshape(-1, tq, tk)
    if not bool((vis == vis[0]).all()):
        raise Unsupported("attention mask differs across batch or heads")
    return vis[0]


def _kv_heads(t: Traced, k: object, heads: int) -> int:
    """KV heads before a GQA ``expand`` / ``repeat`` found walking back from ``k``."""
    cur = k
    while isinstance(cur, torch.fx.Node) and op_name(cur) in SHAPE_OPS and cur.args and (
            isinstance(cur.args[0], torch.fx.Node)):
        src = cur.args[0]
        if op_name(cur) in ("expand", "expand_as", "repeat", "repeat_interleave"):
            before, after = t.tensor(src), t.tensor(cur)
            if before and after and after.numel > before.numel:
                factor = after.numel // before.numel
                if after.numel % before.numel == 0 and heads % factor == 0:
                    return heads // factor
        cur = src
    return heads


def attention(t: Traced, q: object, k: object, v: object, mask: object = None,
              is_causal: bool = False, gqa: bool = False, k_transposed: bool = False,
              fills: bool = False) -> Op:
    """The :class:`Attention` of ``softmax(q k^T) v`` (``k`` given as ``k^T`` when
    ``k_transposed``) under ``mask`` (a bookkeeping tensor: bool, ``masked_fill``'s when
    ``fills``, or additive) and torch's top-left ``is_causal``; KV heads from ``k``'s shape
    under ``gqa``, else found before a GQA expand."""
    qm, km, vm = _meta(t, q, "query"), _meta(t, k, "key"), _meta(t, v, "value")
    tq, d = qm.shape[-2:]
    tk = km.shape[-1] if k_transposed else km.shape[-2]
    if vm.shape[-1] != d:
        raise Unsupported(f"value head dim {vm.shape[-1]} differs from query's {d}")
    nd = len(qm.shape)
    batch = math.prod(qm.shape[:-3]) if nd >= 4 else (qm.shape[0] if nd == 3 else 1)
    heads = qm.shape[-3] if nd >= 4 else 1
    k_heads = km.shape[-3] if len(km.shape) >= 4 else 1
    kv = k_heads if gqa or k_heads != heads else _kv_heads(t, k, heads)
    vis = _visibility(t, mask, tq, tk, fills)
    if is_causal:
        if tq != tk:
            raise Unsupported(f"is_causal with {tq} queries over {tk} keys aligns the mask "
                              "top-left; the IR's causal mask puts the queries last")
        tril = torch.ones(tq, tk, dtype=torch.bool).tril()
        vis = tril if vis is None else vis & tril
    causal, window = classify_mask(vis) if vis is not None else (tq == 1, None)
    return Attention("attention", batch, heads, kv, d, tq, tk, causal, window, qm.fmt, km.fmt)


def _sdpa(t: Traced, c: Call) -> list[Op]:
    q, k, v = c.arg(0, "query"), c.arg(1, "key"), c.arg(2, "value")
    return [attention(t, q, k, v, c.arg(3, "attn_mask"), bool(c.arg(5, "is_causal")),
                      bool(c.kwargs.get("enable_gqa", False)))]


HANDLERS: dict[str, Callable[[Traced, Call], list[Op]]] = {
    "linear": _linear, "addmm": _matmul, "mm": _matmul, "matmul": _matmul, "bmm": _matmul,
    "conv2d": _conv2d, "convolution": _conv2d, "layer_norm": _norm, "rms_norm": _norm,
    "embedding": _embedding, "sdpa": _sdpa, "dropout": _dropout,
    **{name: _elementwise for name in _ELEMENTWISE}}
"""Normalized operator name -> IR operators of one call."""


def _conv_args(m: nn.Conv2d) -> tuple[Any, ...]:
    if m.padding_mode != "zeros":
        raise Unsupported(f"padding_mode {m.padding_mode!r}")
    return m.weight, m.bias, m.stride, m.padding, m.dilation, m.groups


_MODULES: dict[type, Callable[[Any], tuple[str, tuple[Any, ...]]]] = {
    nn.Linear: lambda m: ("linear", (m.weight, m.bias)),
    nn.Conv2d: lambda m: ("conv2d", _conv_args(m)),
    nn.LayerNorm: lambda m: ("layer_norm", (m.normalized_shape, m.weight, m.bias)),
    nn.RMSNorm: lambda m: ("rms_norm", (m.normalized_shape, m.weight)),
    nn.Embedding: lambda m: ("embedding", (m.weight,)),
    nn.GELU: lambda m: ("gelu", ()), nn.SiLU: lambda m: ("silu", ()),
    nn.ReLU: lambda m: ("relu", ()), nn.Softmax: lambda m: ("softmax", (m.dim,)),
    nn.Dropout: lambda m: ("dropout", (m.p,)), nn.Identity: lambda m: ("identity", ()),
    nn.Flatten: lambda m: ("flatten", ()), nn.Unflatten: lambda m: ("unflatten", ()),
}


def module_call(node: torch.fx.Node, module: nn.Module) -> Call:
    """The functional call a ``torch.nn`` layer's ``call_module`` node makes (``Unsupported``
    for a layer without IR counterpart)."""
    convert = _MODULES.get(type(module))
    if convert is None or len(node.args) != 1 or node.kwargs:
        raise Unsupported("no IR operator for this layer" if convert is None
                          else "layer called with more than its input")
    name, rest = convert(module)
    return Call(node, name, (node.args[0], *rest), {}, module.training)
