"""Reading design specs: YAML files and parsed mappings -> validated :class:`DesignSpec` s.

The reader checks what only the YAML form can get wrong: unknown keys at every level (named
with their path and the closest known key), the type of every field (a mapping, a list, an
expression string, ...), the expression syntax; the dataclasses of :mod:`.spec_model` check
the rest on construction. Every error is one :class:`SpecError` line naming the field path
(``dataflow.outer_order``, ``op.tensors.C.index``) and the offending value; a fused spec's
dataflow ``n`` prefixes ``dataflows[n]: ``, and a spec read from a file names the file
(``gemm.yaml: ...``; YAML syntax errors ``gemm.yaml:LINE:COL: ...``).

Layer: hw.front, the planning layer (plain Python, no Amaranth).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from golden.int_types import int_type

from .spec_model import DataflowSpec, DesignSpec, OpSpec, SpecError, TensorSpec, close_hint
from .yaml_fields import as_list, check_keys, is_int, mapping, read_yaml, require

__all__ = ["load_spec", "load_specs", "parse_affine", "spec_from_dict", "specs_from_dict"]

TOP_KEYS = ("name", "op", "array", "dataflow", "dataflows")
OP_KEYS = ("dims", "tensors")
TENSOR_KEYS = ("index", "access", "offset", "role", "type")
FLOW_KEYS = ("name", "space", "time", "tile", "outer_order")


_TERM = re.compile(r"\s*([+-]?)\s*(?:(\d+)\s*\*?\s*)?([A-Za-z_]\w*)?\s*")


def parse_affine(text: str, dims: tuple[str, ...], where: str) -> tuple[tuple[int, ...], int]:
    """``"y + 2*r - 1"`` -> (coefficients per dim, constant). Raises :class:`SpecError`."""
    if isinstance(text, int) and not isinstance(text, bool):
        return tuple(0 for _ in dims), int(text)
    if not isinstance(text, str) or not text.strip():
        raise SpecError(f"{where}: expected an affine expression, got {text!r}")
    coef = dict.fromkeys(dims, 0)
    const = 0
    pos = 0
    s = text.strip()
    first = True
    while pos < len(s):
        m = _TERM.match(s, pos)
        if m is None or m.end() == pos:
            raise SpecError(f"{where}: cannot parse {text!r} at {s[pos:]!r}")
        sign, num, name = m.groups()
        if not first and not sign:
            raise SpecError(f"{where}: missing '+' or '-' before {s[pos:].strip()!r} in {text!r}")
        if num is None and name is None:
            raise SpecError(f"{where}: dangling sign in {text!r}")
        value = (-1 if sign == "-" else 1) * (int(num) if num is not None else 1)
        if name is None:
            const += value
        elif name not in coef:
            raise SpecError(f"{where}: unknown dim {name!r} in {text!r} "
                            f"(dims: {', '.join(dims)}){close_hint(name, dims)}")
        else:
            coef[name] += value
        pos = m.end()
        first = False
    return tuple(coef[d] for d in dims), const


def _expression(value: Any, where: str, dims: tuple[str, ...]) -> tuple[tuple[int, ...], int]:
    """A string affine in ``dims`` (``"i + j + k"``), parsed."""
    if not isinstance(value, str):
        raise SpecError(f"{where} must be an expression string like 'i + k', got {value!r}")
    return parse_affine(value, dims, where)


def _tensor(name: Any, d: Any, dims: tuple[str, ...]) -> TensorSpec:
    """``op.tensors.NAME``: ``{index | access [+ offset], role, type}``."""
    if not isinstance(name, str) or not name.isidentifier():
        raise SpecError(f"op.tensors: tensor name must be an identifier, got {name!r}")
    where = f"op.tensors.{name}"
    d = mapping(d, where, "with index, role and type")
    check_keys(d, TENSOR_KEYS, where)
    role = require(d, "role", where)
    type_name = require(d, "type", where)
    if not isinstance(type_name, str):
        raise SpecError(f"{where}.type must be a type name like 'int8' or 'uint4', "
                        f"got {type_name!r}")
    try:
        dtype = int_type(type_name)
    except ValueError as exc:
        raise SpecError(f"{where}.type: {exc}") from None
    if "access" in d:
        if "index" in d:
            raise SpecError(f"{where}: give either 'index' or 'access', not both")
        rows, consts = _access(d, dims, where)
    else:
        if "offset" in d:
            raise SpecError(f"{where}.offset goes with 'access'; with 'index' write the offset "
                            f"into the expression (e.g. 'y + 1'), got offset {d['offset']!r}")
        index = require(d, "index", where)
        if not isinstance(index, str):
            raise SpecError(f"{where}.index must be a string of expressions separated by commas, "
                            f"one per axis (e.g. \"i, k\"), got {index!r}")
        parsed = [parse_affine(p, dims, f"{where}.index") for p in index.split(",")]
        rows, consts = tuple(p[0] for p in parsed), tuple(p[1] for p in parsed)
    return TensorSpec(name, rows, consts, role, dtype)


def _access(d: dict, dims: tuple[str, ...],
            where: str) -> tuple[tuple[tuple[int, ...], ...], tuple[int, ...]]:
    """The matrix form: ``access: [[1, 0, 0], [0, 0, 1]]``, ``offset: [0, 0]`` (optional)."""
    access = d["access"]
    if not isinstance(access, list) or not access or any(not isinstance(r, list) for r in access):
        raise SpecError(f"{where}.access must be a non-empty list of rows, got {access!r}")
    for r, row in enumerate(access):
        if len(row) != len(dims) or not all(is_int(c) for c in row):
            raise SpecError(f"{where}.access row {r} must hold {len(dims)} integers "
                            f"(one per dim {', '.join(dims)}), got {row!r}")
    offset = d.get("offset", [0] * len(access))
    if not isinstance(offset, list) or len(offset) != len(access) \
            or not all(is_int(o) for o in offset):
        raise SpecError(f"{where}.offset must be a list of {len(access)} integers (one per "
                        f"access row), got {offset!r}")
    return tuple(tuple(r) for r in access), tuple(offset)


def _op(d: Any) -> OpSpec:
    """``op: {dims: {NAME: EXTENT, ..}, tensors: {NAME: {..}, ..}}``."""
    d = mapping(d, "op", "with dims and tensors")
    check_keys(d, OP_KEYS, "op")
    dims_d = require(d, "dims", "op")
    if not isinstance(dims_d, dict) or not dims_d:
        raise SpecError(f"op.dims must map dim names to extents (e.g. {{i: 8, k: 16}}), "
                        f"got {dims_d!r}")
    dims = tuple(dims_d)
    for dim in dims:
        if not isinstance(dim, str) or not dim.isidentifier():
            raise SpecError(f"op.dims: dim name must be an identifier, got {dim!r}")
    tensors_d = require(d, "tensors", "op")
    if not isinstance(tensors_d, dict) or not tensors_d:
        raise SpecError(f"op.tensors must map tensor names to their descriptions, "
                        f"got {tensors_d!r}")
    tensors = tuple(_tensor(n, t, dims) for n, t in tensors_d.items())
    return OpSpec(dims, tuple(dims_d.values()), tensors)


def _dataflow(d: Any, op: OpSpec) -> DataflowSpec:
    """``dataflow: {name, space: [EXPR, ..], time: EXPR, tile: {DIM: N}, outer_order: [..]}``."""
    dims = op.dims
    d = mapping(d, "dataflow", "with space, time, tile and outer_order")
    check_keys(d, FLOW_KEYS, "dataflow")
    name = d.get("name", "dataflow")
    if not isinstance(name, str):
        raise SpecError(f"dataflow.name must be a string, got {name!r}")
    space = []
    for n, e in enumerate(as_list(require(d, "space", "dataflow"), "dataflow.space",
                                "[i, j] (one expression per array axis)")):
        coef, const = _expression(e, f"dataflow.space[{n}]", dims)
        if const:
            raise SpecError(f"dataflow.space[{n}]: constant offsets are not allowed, got {e!r}")
        space.append(coef)
    time_text = require(d, "time", "dataflow")
    time, const = _expression(time_text, "dataflow.time", dims)
    if const:
        raise SpecError(f"dataflow.time: constant offsets are not allowed, got {time_text!r}")
    tile_d = mapping(d.get("tile", {}), "dataflow.tile", "dim -> intra-tile extent")
    for k, v in tile_d.items():
        if k not in dims:
            raise SpecError(f"dataflow.tile: unknown dim {k!r} (dims: {', '.join(dims)})"
                            f"{close_hint(k, dims)}")
        if not is_int(v):
            raise SpecError(f"dataflow.tile.{k} must be a positive integer, got {v!r}")
    order = as_list(d.get("outer_order", list(dims)), "dataflow.outer_order",
                  f"[{', '.join(dims)}] (every dim once, outermost first)")
    for n, dim in enumerate(order):
        if not isinstance(dim, str):
            raise SpecError(f"dataflow.outer_order[{n}] must be a dim name, got {dim!r}")
    tile = tuple(tile_d.get(dim, ext) for dim, ext in zip(dims, op.extents, strict=True))
    return DataflowSpec(name, tuple(space), time, tile, tuple(order))


def _array(d: dict) -> list:
    return as_list(require(d, "array", "spec"), "array", "[4, 4] (1 or 2 positive sizes)")


def _top(d: Any) -> dict:
    if d is None:
        raise SpecError("the spec is empty (expected a mapping with name, op, array, dataflow)")
    d = mapping(d, "a spec", "with name, op, array and dataflow or dataflows")
    check_keys(d, TOP_KEYS)
    name = d.get("name", "design")
    if not isinstance(name, str) or not name.isidentifier():
        raise SpecError(f"name must be an identifier, got {name!r}")
    return d


def spec_from_dict(d: Any) -> DesignSpec:
    """Validate a parsed YAML/JSON mapping with one ``dataflow`` into a :class:`DesignSpec`."""
    d = _top(d)
    if "dataflows" in d:
        raise SpecError("spec: missing 'dataflow' (this spec lists several 'dataflows', a fused "
                        "design: read it with load_specs / specs_from_dict)")
    op = _op(require(d, "op", "spec"))
    array = _array(d)
    flow = _dataflow(require(d, "dataflow", "spec"), op)
    return DesignSpec(d.get("name", "design"), op, tuple(array), flow)


def specs_from_dict(d: Any) -> list[DesignSpec]:
    """One spec per dataflow: ``dataflow:`` (one) or ``dataflows:`` (a list, fused designs).

    A fused spec shares ``name`` and ``array``; its dataflows need distinct names. They share
    the top-level ``op`` unless a dataflow carries its own ``op:`` (fusion of different ops,
    e.g. ``K^T V`` then ``Q (K^T V)``); the top-level ``op`` may then be left out. Errors in
    dataflow ``n`` (its own op included) start with ``dataflows[n]: ``.
    """
    d = _top(d)
    if "dataflows" not in d:
        return [spec_from_dict(d)]
    if "dataflow" in d:
        raise SpecError("give either 'dataflow' or 'dataflows', not both")
    flows = d["dataflows"]
    if not isinstance(flows, list) or not flows:
        raise SpecError(f"dataflows must be a non-empty list, got {flows!r}")
    shared = _op(d["op"]) if "op" in d else None
    array = tuple(_array(d))
    specs = [_fused_one(n, flow, shared, d.get("name", "design"), array)
             for n, flow in enumerate(flows)]
    names = [s.dataflow.name for s in specs]
    if len(set(names)) != len(names):
        raise SpecError(f"dataflows need distinct names, got {names}")
    return specs


def _fused_one(n: int, flow: Any, shared: OpSpec | None, name: str,
               array: tuple) -> DesignSpec:
    """Dataflow ``n`` of a fused spec, its errors prefixed ``dataflows[n]: ``."""
    try:
        flow = mapping(flow, "dataflow", "with space, time, tile and outer_order")
        check_keys(flow, (*FLOW_KEYS, "op"), "dataflow")
        if "op" not in flow and shared is None:
            raise SpecError("spec: missing 'op' (give a top-level op or one per dataflow)")
        op = _op(flow["op"]) if "op" in flow else shared
        df = _dataflow({k: v for k, v in flow.items() if k != "op"}, op)
        return DesignSpec(name, op, array, df)
    except SpecError as exc:
        raise SpecError(f"dataflows[{n}]: {exc}") from None


def load_spec(path: str | Path) -> DesignSpec:
    """Read a YAML spec with one dataflow."""
    return read_yaml(path, spec_from_dict)


def load_specs(path: str | Path) -> list[DesignSpec]:
    """Read a YAML spec with one dataflow or several (a fused design)."""
    return read_yaml(path, specs_from_dict)
