"""torch.fx import: a ``torch.nn.Module`` and example inputs become a :class:`ModelGraph`.

:func:`import_module` traces the module (:mod:`mapping.fx_trace`: ``torch.fx`` symbolic tracing
with IR leaves kept whole, or ``torch.export`` where symbolic tracing fails, as for Hugging Face
models), runs it on the example inputs to learn every value's shape, dtype and whether it is an
activation, then maps it:

* multi-node patterns first (:mod:`mapping.fx_patterns`: softmax attention, rotate-half RoPE,
  written-out RMSNorm);
* IR leaves (modules with ``ir_ops(call)``, as :mod:`mapping.torch_blocks`) state their own
  operators;
* every other call by :mod:`mapping.fx_map` (linear, matmul, conv2d, norms, embedding,
  ``scaled_dot_product_attention``, element-wise ops); shape-only operators (view, reshape,
  permute, transpose, getitem, cat / split, casts, GQA expands...) give nothing;
* calls that touch no activation (position ids, masks, RoPE tables, asserts) are bookkeeping
  and give nothing.

Anything else is collected and reported together by :class:`UnsupportedOperators`, never
dropped. Operators are folded into stages by :mod:`mapping.fx_stages`. Compare an import with a
hand-written graph with :func:`equivalent` (:mod:`mapping.fx_compare`).

:func:`import_items` gives the operators before folding, each with the module path that ran it
(what :mod:`flows.e2e_host` matches to the e2e run's calls).

:func:`load_user_model` loads ``path/to/file.py:function`` (which returns ``(module,
example_inputs)``) for the CLI.
"""

from __future__ import annotations

import importlib.util
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.fx
from torch import nn
from torch.utils import _pytree as pytree

from .fx_compare import (
    canonical_op,
    canonical_ops,
    describe_difference,
    equivalent,
    op_difference,
)
from .fx_map import HANDLERS, Call, Unsupported, module_call
from .fx_patterns import find_patterns
from .fx_stages import Item, fold_stages
from .fx_trace import (
    SHAPE_OPS,
    LeafCall,
    TensorMeta,
    Traced,
    is_ir_leaf,
    module_path,
    op_label,
    op_name,
    to_meta,
    trace,
)
from .ir import ModelGraph, Op

__all__ = ["LeafCall", "TensorMeta", "UnsupportedOperators", "canonical_op", "canonical_ops",
           "describe_difference", "equivalent", "import_items", "import_module",
           "load_user_model", "op_difference"]


class UnsupportedOperators(ValueError):
    """Operators of a traced module the IR cannot express, all of them: ``operators`` holds one
    ``"<target> at node '<name>'[: reason]"`` per node."""

    def __init__(self, model: str, operators: Sequence[str]) -> None:
        self.operators = tuple(operators)
        super().__init__(f"{model}: {len(self.operators)} unsupported operator(s): "
                         + "; ".join(self.operators))


def _leaf_groups(t: Traced) -> dict[torch.fx.Node, tuple[str, int] | None]:
    """Export front end: node -> (IR leaf path, call index) at a leaf call's first node, None
    at its other nodes."""
    leaves = {p for p, m in t.root.named_modules() if is_ir_leaf(m)}
    out: dict[torch.fx.Node, tuple[str, int] | None] = {}
    seen: set[str] = set()
    for node in t.gm.graph.nodes:
        stack = node.meta.get("nn_module_stack") or {}
        key = next((k for k, (path, _) in stack.items() if path in leaves), None)
        if key is None:
            continue
        index = int(key.rpartition("@")[2]) if "@" in key else 0
        out[node] = None if key in seen else (stack[key][0], index)
        seen.add(key)
    return out


def _leaf_ops(module: nn.Module, call: LeafCall) -> list[Op]:
    ops = list(module.ir_ops(call))  # type: ignore[operator]
    if not all(isinstance(op, Op) for op in ops):
        raise Unsupported(f"{type(module).__name__}.ir_ops returned a non-Op")
    return ops


def _fx_leaf_call(t: Traced, node: torch.fx.Node) -> LeafCall:
    def resolve(v: Any) -> Any:
        return t.meta.get(v) if isinstance(v, torch.fx.Node) else to_meta(v)

    outs = t.meta.get(node)
    flat = pytree.tree_leaves(outs)
    return LeafCall(str(node.target), torch.fx.node.map_aggregate(node.args, resolve),
                    dict(torch.fx.node.map_aggregate(node.kwargs, resolve)),
                    tuple(v for v in flat if isinstance(v, TensorMeta)))


def _node_ops(t: Traced, node: torch.fx.Node, leaf: tuple[str, int] | None) -> list[Op]:
    """The IR operators of one active node (``Unsupported`` when it has none)."""
    if leaf is not None:
        path, index = leaf
        calls = t.leaf_calls.get(path, [])
        if index >= len(calls):
            raise Unsupported(f"no recorded call {index} of IR leaf {path!r}")
        rec = calls[index]
        return _leaf_ops(t.root.get_submodule(path),
                         LeafCall(path, rec.args, rec.kwargs, rec.outputs))
    if node.op == "call_module":
        module = t.gm.get_submodule(str(node.target))
        if is_ir_leaf(module):
            return _leaf_ops(module, _fx_leaf_call(t, node))
        call = module_call(node, module)
    else:
        name = op_name(node)
        if name in SHAPE_OPS:
            return []
        call = Call(node, name, tuple(node.args), dict(node.kwargs))
    if call.op in SHAPE_OPS:
        return []
    handler = HANDLERS.get(call.op)
    if handler is None:
        raise Unsupported("")
    return handler(t, call)


def _item_module_call(t: Traced, node: torch.fx.Node, leaf: bool) -> bool:
    if leaf or node.op == "call_module":
        return True
    stack = node.meta.get("nn_module_stack") or {}
    if not stack:
        return False
    path = next(reversed(stack.values()))[0]
    module = t.root.get_submodule(path) if path else t.root
    return type(module).__module__.startswith("torch.nn.modules")


def _collect(t: Traced) -> tuple[list[Item], list[str], int]:
    """``(items, problems, bookkeeping nodes)``: the operators of every node in order, the
    unsupported nodes described, and how many nodes were bookkeeping."""
    groups = _leaf_groups(t) if t.frontend == "export" else {}
    anchors, covered = find_patterns(t, groups.keys())
    items: list[Item] = []
    problems: list[str] = []
    skipped = 0
    for node in t.gm.graph.nodes:
        if node.op in ("placeholder", "get_attr", "output"):
            continue
        leaf = groups.get(node, False)
        if leaf is None or (node in covered and node not in anchors):
            continue
        if leaf is False and node not in anchors and not t.active.get(node, False):
            skipped += 1
            continue
        try:
            ops = anchors[node].ops() if node in anchors else _node_ops(t, node, leaf or None)
            items.append(Item(module_path(node) if not leaf else leaf[0], tuple(ops),
                              _item_module_call(t, node, bool(leaf))))
        except (Unsupported, ValueError) as exc:
            reason = f": {exc}" if str(exc) else ""
            problems.append(f"{op_label(node, t.gm)} at node {node.name!r}{reason}")
    return items, problems, skipped


def _imported(module: nn.Module, example_inputs: Any, name: str | None, frontend: str
              ) -> tuple[str, tuple[Any, ...], Traced, list[Item], int]:
    """``(name, inputs, traced, items, bookkeeping nodes)`` of one import (every unsupported
    node raised together)."""
    if not isinstance(module, nn.Module):
        raise ValueError(f"module must be a torch.nn.Module, got {type(module).__name__}")
    inputs = tuple(example_inputs) if isinstance(example_inputs, (tuple, list)) else (
        example_inputs,)
    name = name or type(module).__name__
    traced = trace(module, inputs, frontend)
    items, problems, skipped = _collect(traced)
    if problems:
        raise UnsupportedOperators(name, problems)
    return name, inputs, traced, items, skipped


def import_items(module: nn.Module, example_inputs: Any, *, name: str | None = None,
                 frontend: str = "auto") -> list[Item]:
    """The operators of every traced call of ``module`` on ``example_inputs``, in execution
    order, each an :class:`~mapping.fx_stages.Item` with the module path that ran it (an IR
    leaf's or ``torch.nn`` layer's own path; a function call's innermost module) and the
    operators' local names (``"linear"``, ``"norm"``, a leaf's ``"quant"``): what
    :func:`import_module` folds into the graph's stages (:func:`~mapping.fx_stages.
    fold_stages`), before folding, one item per call (a layer run twice gives two items).
    Items without operators (shape-only nodes) are dropped. Raises as :func:`import_module`."""
    _, _, _, items, _ = _imported(module, example_inputs, name, frontend)
    return [item for item in items if item.ops]


def import_module(module: nn.Module, example_inputs: Any, *, name: str | None = None,
                  frontend: str = "auto", description: str = "") -> ModelGraph:
    """The IR graph of ``module`` run on ``example_inputs`` (a tuple of positional arguments,
    or one tensor), traced as given (call ``.eval()`` first: dropout in training mode is
    reported). ``name``: the graph's (default: the module's class name); ``frontend``:
    ``"auto"``, ``"fx"`` or ``"export"`` (:func:`mapping.fx_trace.trace`). Hugging Face
    models go through export; build them with ``use_cache=False`` (a ``DynamicCache`` output
    cannot be exported). The graph's ``config`` records the front end, the example inputs and
    how many bookkeeping nodes were passed over.

    ``UnsupportedOperators`` lists every node the IR cannot express; ``ValueError`` when the
    module cannot be traced or run."""
    name, inputs, traced, items, skipped = _imported(module, example_inputs, name, frontend)
    stages = fold_stages(module, items)
    if not stages:
        raise ValueError(f"{name}: no IR operator found (only shape and bookkeeping nodes)")
    cls = type(module)
    what = f"torch import ({traced.frontend}) of {cls.__module__}.{cls.__qualname__}"
    return ModelGraph(name, stages, description or what, what,
                      {"frontend": traced.frontend, "bookkeeping_nodes": skipped,
                       "inputs": "; ".join(_describe(v) for v in inputs)})


def _describe(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"{str(value.dtype).removeprefix('torch.')}{list(value.shape)}"
    return type(value).__name__


def load_user_model(spec: str) -> tuple[nn.Module, tuple[Any, ...]]:
    """``(module, example_inputs)`` from ``"path/to/file.py:function"``: the file is imported by
    path (and removed from ``sys.modules`` again) and ``function()`` called. ``ValueError`` names
    the problem: a malformed spec, a missing file or function, a failing import, or a return
    value that is not ``(torch.nn.Module, inputs)``."""
    path_str, sep, func = str(spec).rpartition(":")
    if not sep or not path_str or not func:
        raise ValueError(f"model spec {spec!r} must be 'path/to/file.py:function'")
    path = Path(path_str)
    if path.suffix != ".py":
        raise ValueError(f"model spec {spec!r}: {path_str!r} is not a .py file")
    if not path.is_file():
        raise ValueError(f"model spec {spec!r}: file {path_str!r} does not exist")
    mod_name = f"_lego_user_model_{uuid.uuid4().hex}"
    loader = importlib.util.spec_from_file_location(mod_name, path)
    if loader is None or loader.loader is None:
        raise ValueError(f"model spec {spec!r}: cannot import {path_str!r}")
    mod = importlib.util.module_from_spec(loader)
    sys.modules[mod_name] = mod  # while it runs: dataclasses and pickling look modules up
    try:
        loader.loader.exec_module(mod)
        fn = getattr(mod, func, None)
        result = fn() if callable(fn) else None
    except Exception as exc:
        raise ValueError(f"model spec {spec!r}: {type(exc).__name__}: {exc}") from exc
    finally:
        sys.modules.pop(mod_name, None)
    if not callable(fn):
        known = sorted(k for k, v in vars(mod).items() if callable(v) and not k.startswith("_")
                       and getattr(v, "__module__", None) == mod_name)
        raise ValueError(f"model spec {spec!r}: {path_str!r} has no function {func!r} "
                         f"(functions: {', '.join(known) or 'none'})")
    return _check_result(spec, func, result)


def _check_result(spec: str, func: str, result: Any) -> tuple[nn.Module, tuple[Any, ...]]:
    if not (isinstance(result, (tuple, list)) and len(result) == 2
            and isinstance(result[0], nn.Module)):
        got = (f"a {len(result)}-tuple" if isinstance(result, (tuple, list))
               else type(result).__name__)
        raise ValueError(f"model spec {spec!r}: {func}() must return (torch.nn.Module, "
                         f"example_inputs), got {got}")
    module, inputs = result
    if isinstance(inputs, torch.Tensor):
        inputs = (inputs,)
    if not isinstance(inputs, (tuple, list)):
        raise ValueError(f"model spec {spec!r}: {func}()'s example_inputs must be a tensor or "
                         f"a tuple, got {type(inputs).__name__}")
    return module, tuple(inputs)
