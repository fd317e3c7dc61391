"""Front ends of the torch import (:mod:`mapping.fx_import`): trace, run, record.

Two tracers give an fx graph of a ``torch.nn.Module``:

* ``"fx"``: :func:`torch.fx.symbolic_trace` semantics with a tracer that keeps as leaves (one
  ``call_module`` node each) the standard ``torch.nn`` layers and every **IR leaf**: a module
  with an ``ir_ops(call: LeafCall) -> Sequence[Op]`` method that states its own operators
  (SVDQuant's linear, DuoAttention, a KV cache...). Nodes are torch functions, Tensor methods
  and modules.
* ``"export"``: :func:`torch.export.export` (non-strict), for models symbolic tracing cannot
  follow (data-dependent Python, as Hugging Face models' mask and cache code): a graph of ATen
  operators. IR leaves are inlined there; their nodes are found by ``nn_module_stack`` and their
  calls (argument shapes) recorded by forward hooks on one eager run.

The graph then runs on the example inputs (:class:`_Recorder`, an fx ``Interpreter``: fx's
``ShapeProp`` records shapes only, the import also needs which values are activations and the
concrete attention masks), recording per node its tensor shapes and dtypes, whether it is an
**activation** (depends on a floating-point input or a parameter; position ids, masks and RoPE
tables built from buffers and integer inputs are bookkeeping, not activations) and, for
bookkeeping tensors, the value itself.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.fx
from torch import nn
from torch.utils import _pytree as pytree

__all__ = ["CAST_OPS", "DTYPE_FORMATS", "FACTORY_OPS", "LeafCall", "SHAPE_OPS", "TensorMeta",
           "Traced", "format_of", "is_ir_leaf", "module_path", "op_label", "op_name", "to_meta",
           "trace"]

DTYPE_FORMATS: dict[torch.dtype, str] = {
    torch.bfloat16: "bf16", torch.float16: "fp16", torch.float32: "fp32", torch.int8: "int8",
    torch.float8_e4m3fn: "fp8_e4m3", torch.float8_e5m2: "fp8_e5m2"}
"""torch dtype -> IR format name."""

SHAPE_OPS = frozenset({
    "view", "reshape", "_unsafe_view", "permute", "transpose", "t", "contiguous", "clone",
    "getitem", "getattr", "flatten", "unflatten", "unsqueeze", "squeeze", "expand", "expand_as",
    "cat", "concat", "concatenate", "stack", "split", "split_with_sizes", "chunk", "unbind",
    "narrow", "slice", "select", "movedim", "swapaxes", "repeat", "repeat_interleave", "to",
    "type", "float", "half", "bfloat16", "_to_copy", "_to_dtype", "alias", "lift_fresh_copy",
    "detach", "identity", "view_as", "reshape_as", "type_as"})
"""Operators that move or re-type data only: no IR operator."""
FACTORY_OPS = frozenset({
    "arange", "zeros", "ones", "full", "empty", "zeros_like", "ones_like", "full_like",
    "empty_like", "new_zeros", "new_ones", "new_full", "new_empty", "size", "sym_size", "dim",
    "numel", "scalar_tensor", "tensor", "rand", "randn", "rand_like", "randn_like", "tril",
    "triu"})
"""Operators whose result does not depend on their inputs' values: never activations."""
CAST_OPS = frozenset({"to", "type", "float", "half", "bfloat16", "_to_copy", "_to_dtype",
                      "contiguous", "clone", "alias", "detach"})
_TRUSTED = {"torch": "torch", "torch._C._VariableFunctions": "torch",
            "torch.nn.functional": "torch.nn.functional", "torch._C._nn": "torch.nn.functional",
            "_operator": "operator", "operator": "operator", "builtins": "builtins"}
_ALIASES = {"truediv": "div", "true_divide": "div", "iadd": "add", "imul": "mul", "isub": "sub",
            "itruediv": "div", "multiply": "mul", "subtract": "sub", "divide": "div",
            "scaled_dot_product_attention": "sdpa", "_softmax": "softmax"}
_VALUE_LIMIT = 1 << 22


def format_of(dtype: torch.dtype) -> str:
    """The IR format of ``dtype`` (``ValueError`` naming it when the IR has none)."""
    if dtype not in DTYPE_FORMATS:
        raise ValueError(f"no IR format for {dtype} (formats: "
                         f"{', '.join(str(d) for d in DTYPE_FORMATS)})")
    return DTYPE_FORMATS[dtype]


@dataclass(frozen=True)
class TensorMeta:
    """Shape and dtype of one tensor value."""

    shape: tuple[int, ...]
    dtype: torch.dtype

    @classmethod
    def of(cls, tensor: torch.Tensor) -> TensorMeta:
        """The meta of a tensor."""
        return cls(tuple(int(d) for d in tensor.shape), tensor.dtype)

    @property
    def numel(self) -> int:
        """Elements."""
        return math.prod(self.shape)

    @property
    def fmt(self) -> str:
        """IR format name of the dtype (``ValueError`` when it has none)."""
        return format_of(self.dtype)


def to_meta(value: Any) -> Any:
    """``value`` with every tensor in it replaced by its :class:`TensorMeta`."""
    return pytree.tree_map(lambda v: TensorMeta.of(v) if isinstance(v, torch.Tensor) else v,
                           value)


@dataclass(frozen=True)
class LeafCall:
    """One call of an IR leaf module at ``path``: its arguments and outputs with tensors as
    :class:`TensorMeta`. The leaf names its operators briefly (``"quant"``, ``"linear"``); the
    importer prefixes them with the module path."""

    path: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    outputs: tuple[TensorMeta, ...]

    def tensors(self) -> list[TensorMeta]:
        """The tensor arguments, positional then keyword, in order."""
        leaves = pytree.tree_leaves((self.args, self.kwargs))
        return [v for v in leaves if isinstance(v, TensorMeta)]


def is_ir_leaf(module: object) -> bool:
    """Whether ``module`` states its IR operators (has a callable ``ir_ops``)."""
    return isinstance(module, nn.Module) and callable(getattr(module, "ir_ops", None))


def op_name(node: torch.fx.Node) -> str:
    """Normalized operator name of a call node (``aten.add.Tensor``, ``operator.add``,
    ``torch.add`` and ``Tensor.add`` are all ``"add"``); ``""`` for functions outside torch,
    ``operator`` and ``builtins`` and for placeholders, attributes and outputs."""
    if node.op == "call_method":
        name = str(node.target)
    elif node.op != "call_function":
        return ""
    elif isinstance(node.target, torch._ops.OpOverload):
        if node.target.namespace != "aten":
            return ""
        name = node.target.overloadpacket.__name__
    elif getattr(node.target, "__module__", None) in _TRUSTED:
        name = getattr(node.target, "__name__", "")
    else:
        return ""
    name = _ALIASES.get(name, name)
    return name[:-1] if name.endswith("_") and not name.startswith("_") else name


def op_label(node: torch.fx.Node, root: nn.Module) -> str:
    """What a node calls, for messages: ``aten.cumsum.default``, ``torch.cumsum``,
    ``Tensor.sort``, ``torch.nn.GroupNorm``."""
    target = node.target
    if node.op == "call_method":
        return f"Tensor.{target}"
    if node.op == "call_module":
        cls = type(root.get_submodule(str(target)))
        mod = cls.__module__
        return f"torch.nn.{cls.__name__}" if mod.startswith("torch.nn") else (
            f"{mod}.{cls.__qualname__}")
    if isinstance(target, torch._ops.OpOverload):
        return str(target)
    mod = getattr(target, "__module__", None) or "?"
    name = getattr(target, "__name__", repr(target))
    if mod.startswith("torch._C._"):
        sub = mod[len("torch._C._"):]
        mod, name = f"torch.{sub}", name.removeprefix(f"{sub}_")
    return f"{_TRUSTED.get(mod, mod)}.{name}"


def module_path(node: torch.fx.Node) -> str:
    """The module path a node runs in (its own target for a ``call_module``)."""
    if node.op == "call_module":
        return str(node.target)
    stack = node.meta.get("nn_module_stack") or {}
    return next(reversed(stack.values()))[0] if stack else ""


@dataclass
class Traced:
    """A traced module and what one run on the example inputs recorded.

    ``meta``: node -> its value with tensors as :class:`TensorMeta`; ``active``: node -> whether
    it is an activation; ``values``: bookkeeping tensors by node; ``leaf_calls`` (export only):
    IR leaf path -> its calls in order; ``fx_error``: why symbolic tracing failed, when the
    ``"auto"`` front end fell back to export."""

    root: nn.Module
    gm: torch.fx.GraphModule
    frontend: str
    meta: dict[torch.fx.Node, Any] = field(default_factory=dict)
    active: dict[torch.fx.Node, bool] = field(default_factory=dict)
    values: dict[torch.fx.Node, torch.Tensor] = field(default_factory=dict)
    leaf_calls: dict[str, list[LeafCall]] = field(default_factory=dict)
    fx_error: str = ""

    def tensor(self, arg: object) -> TensorMeta | None:
        """The :class:`TensorMeta` of an argument (a node or a tensor), else None."""
        if isinstance(arg, torch.fx.Node):
            meta = self.meta.get(arg)
            return meta if isinstance(meta, TensorMeta) else None
        return TensorMeta.of(arg) if isinstance(arg, torch.Tensor) else None

    def is_active(self, arg: object) -> bool:
        """Whether an argument is an activation (a parameter given directly counts)."""
        if isinstance(arg, torch.fx.Node):
            return self.active.get(arg, False)
        return isinstance(arg, nn.Parameter)

    def value(self, arg: object) -> Any:
        """The concrete value of an argument: a constant, or a recorded bookkeeping tensor."""
        if isinstance(arg, torch.fx.Node):
            return self.values.get(arg)
        return arg

    def origin(self, arg: object) -> object:
        """``arg`` followed back through shape-only and cast operators to its source."""
        while isinstance(arg, torch.fx.Node) and op_name(arg) in SHAPE_OPS and arg.args:
            if not isinstance(arg.args[0], torch.fx.Node):
                break
            arg = arg.args[0]
        return arg

    def weight(self, arg: object) -> torch.Tensor | None:
        """The stored tensor behind an argument (a module attribute reached through shape and
        cast operators), or None for a computed value."""
        src = self.origin(arg)
        if isinstance(src, torch.Tensor):
            return src
        if isinstance(src, torch.fx.Node) and src.op == "get_attr":
            found = _attr(self.gm, str(src.target))
            return found if isinstance(found, torch.Tensor) else None
        return None


def _attr(obj: object, dotted: str) -> object:
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


class _LeafTracer(torch.fx.Tracer):
    """Symbolic tracer keeping IR leaves (and ``torch.nn`` layers) as single calls; buffers
    are graph attributes (not constants folded at trace time), so a cast int8 weight stays
    visible as int8."""

    proxy_buffer_attributes = True

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return is_ir_leaf(m) or super().is_leaf_module(m, module_qualified_name)


class _Recorder(torch.fx.Interpreter):
    """Runs a graph recording metas, activations and bookkeeping values into ``traced``."""

    def __init__(self, traced: Traced) -> None:
        super().__init__(traced.gm)
        self.traced = traced

    def run_node(self, n: torch.fx.Node) -> Any:
        result = super().run_node(n)
        t = self.traced
        if n.op == "output":
            return result
        t.meta[n] = to_meta(result)
        has_tensor = any(isinstance(v, torch.Tensor) for v in pytree.tree_leaves(result))
        t.active[n] = has_tensor and self._activity(n, result)
        if (not t.active[n] and isinstance(result, torch.Tensor)
                and result.numel() <= _VALUE_LIMIT):
            t.values[n] = result.detach()
        return result

    def _activity(self, n: torch.fx.Node, result: Any) -> bool:
        inputs = any(self.traced.active.get(a, False) for a in n.all_input_nodes)
        if n.op == "placeholder":
            return isinstance(result, torch.Tensor) and result.is_floating_point()
        if n.op == "get_attr":
            return isinstance(result, nn.Parameter)
        if n.op == "call_module":
            mod = self.traced.gm.get_submodule(str(n.target))
            return inputs or any(True for _ in mod.parameters())
        return inputs and op_name(n) not in FACTORY_OPS


def _hook(calls: list[LeafCall], module: nn.Module, args: tuple, kwargs: dict,
          output: Any) -> None:
    outs = tuple(v for v in pytree.tree_leaves(to_meta(output)) if isinstance(v, TensorMeta))
    calls.append(LeafCall("", to_meta(tuple(args)), to_meta(dict(kwargs)), outs))


def _leaf_calls(module: nn.Module, inputs: tuple) -> dict[str, list[LeafCall]]:
    """IR leaf path -> its calls in order, from forward hooks on one eager run."""
    calls: dict[str, list[LeafCall]] = defaultdict(list)
    handles = [m.register_forward_hook(_bind(calls[path]), with_kwargs=True)
               for path, m in module.named_modules() if is_ir_leaf(m)]
    try:
        with torch.no_grad():
            module(*inputs)
    finally:
        for h in handles:
            h.remove()
    return dict(calls)


def _bind(calls: list[LeafCall]) -> Callable[..., None]:
    return lambda module, args, kwargs, output: _hook(calls, module, args, kwargs, output)


def _front(module: nn.Module, inputs: tuple, frontend: str) -> Traced:
    if frontend == "fx":
        graph = _LeafTracer().trace(module)
        return Traced(module, torch.fx.GraphModule(module, graph), "fx")
    exported = torch.export.export(module, inputs, strict=False)
    traced = Traced(module, exported.module(), "export")
    traced.leaf_calls = _leaf_calls(module, inputs)
    return traced


def trace(module: nn.Module, inputs: Sequence[Any], frontend: str = "auto") -> Traced:
    """Trace ``module`` with ``frontend`` (``"fx"``, ``"export"`` or ``"auto"``: fx, and export
    where symbolic tracing fails) and run it on ``inputs``, recording every node.

    ``ValueError`` names the module and why tracing failed (both front ends' reasons)."""
    if frontend not in ("auto", "fx", "export"):
        raise ValueError(f"frontend must be 'auto', 'fx' or 'export', got {frontend!r}")
    inputs = tuple(inputs)
    fx_error = ""
    order = ("fx", "export") if frontend == "auto" else (frontend,)
    for kind in order:
        try:
            traced = _front(module, inputs, kind)
            _record(traced, inputs)
            break
        except Exception as exc:  # any tracing or run failure: try the next front end
            reason = f"{type(exc).__name__}: {(str(exc).strip() or '?').splitlines()[0][:300]}"
            fx_error = f"{fx_error}; {kind}: {reason}" if fx_error else f"{kind}: {reason}"
    else:
        raise ValueError(f"cannot trace {type(module).__name__} ({fx_error})")
    traced.fx_error = fx_error
    return traced


def _record(traced: Traced, inputs: tuple) -> None:
    """Run the traced graph on ``inputs``, recording every node into ``traced``."""
    flat = pytree.tree_leaves(inputs)
    places = [n for n in traced.gm.graph.nodes if n.op == "placeholder"]
    if len(places) != len(flat):
        raise ValueError(f"{len(flat)} example input values for {len(places)} graph inputs "
                         f"({[n.name for n in places]})")
    with torch.no_grad():
        _Recorder(traced).run(*flat)

