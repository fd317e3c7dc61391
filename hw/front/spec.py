"""Design specs: a tensor operation (loop nest + affine accesses), an FU array and a dataflow.

A spec is plain data (frozen dataclasses) and round-trips through YAML::

    name: gemm_os
    op:
      dims: {i: 8, j: 8, k: 8}                # default problem extents
      tensors:
        A: {index: "i, k", role: input, type: int8}
        B: {index: "k, j", role: input, type: int8}
        C: {index: "i, j", role: accumulate, type: int32}
    array: [4, 4]
    dataflow:
      name: output_stationary
      space: ["i", "j"]                       # one affine expression per array axis
      time: "i + j + k"                       # the cycle within a tile
      tile: {i: 4, j: 4, k: 8}                # intra-tile extents (default: the problem)
      outer_order: [i, j, k]                  # outer tile loops, outermost first

Every index / space / time expression is affine in the dims with integer coefficients
(``"y + r"``, ``"2*x - 1"``); the equivalent integer matrices are what the generator uses.

Layer: hw.front, the planning layer (plain Python, no Amaranth).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from golden.int_types import IntType, int_type

__all__ = ["DataflowSpec", "DesignSpec", "OpSpec", "SpecError", "TensorSpec", "load_spec",
           "load_specs", "parse_affine", "spec_from_dict", "specs_from_dict"]

ROLES = ("input", "accumulate")


class SpecError(ValueError):
    """A spec is malformed; the message names the offending entry."""


_TERM = re.compile(r"\s*([+-]?)\s*(?:(\d+)\s*\*?\s*)?([A-Za-z_]\w*)?\s*")


def parse_affine(text: str, dims: tuple[str, ...], where: str) -> tuple[tuple[int, ...], int]:
    """``"y + 2*r - 1"`` -> (coefficients per dim, constant). Raises :class:`SpecError`."""
    if isinstance(text, int):
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
            raise SpecError(f"{where}: unknown dim {name!r} in {text!r} (dims: {', '.join(dims)})")
        else:
            coef[name] += value
        pos = m.end()
        first = False
    return tuple(coef[d] for d in dims), const


@dataclass(frozen=True)
class TensorSpec:
    """``name[access . I + offset]``; ``role`` input or accumulate (the MAC's output)."""

    name: str
    access: tuple[tuple[int, ...], ...]
    offset: tuple[int, ...]
    role: str
    dtype: IntType

    @property
    def rank(self) -> int:
        return len(self.access)


@dataclass(frozen=True)
class OpSpec:
    """A MAC loop nest: ``out[...] += in0[...] * in1[...]`` over ``dims`` with ``extents``."""

    dims: tuple[str, ...]
    extents: tuple[int, ...]
    tensors: tuple[TensorSpec, ...]

    @property
    def inputs(self) -> tuple[TensorSpec, TensorSpec]:
        ins = tuple(t for t in self.tensors if t.role == "input")
        return ins[0], ins[1]

    @property
    def output(self) -> TensorSpec:
        return next(t for t in self.tensors if t.role == "accumulate")

    def tensor_extent(self, t: TensorSpec, extents: tuple[int, ...]) -> tuple[int, ...]:
        """Extent of each tensor axis over the box ``0 <= I < extents`` (offsets included)."""
        out = []
        for row, off in zip(t.access, t.offset, strict=True):
            hi = off + sum(c * (e - 1) for c, e in zip(row, extents, strict=True) if c > 0)
            out.append(hi + 1)
        return tuple(out)


@dataclass(frozen=True)
class DataflowSpec:
    """Space-time map of one tile (``s = space . I``, ``t = time . I``) and the tile loops."""

    name: str
    space: tuple[tuple[int, ...], ...]
    time: tuple[int, ...]
    tile: tuple[int, ...]
    outer_order: tuple[str, ...]


@dataclass(frozen=True)
class DesignSpec:
    name: str
    op: OpSpec
    array: tuple[int, ...]
    dataflow: DataflowSpec
    source: dict = field(default_factory=dict, compare=False, repr=False)

    def with_extents(self, extents: dict[str, int]) -> DesignSpec:
        """The same design for another problem size (``--dims i=..``); tiles are kept."""
        new = list(self.op.extents)
        for name, value in extents.items():
            if name not in self.op.dims:
                raise SpecError(f"--dims: unknown dim {name!r} (dims: {', '.join(self.op.dims)})")
            if not isinstance(value, int) or value < 1:
                raise SpecError(f"--dims: {name} must be a positive integer, got {value!r}")
            new[self.op.dims.index(name)] = value
        op = OpSpec(self.op.dims, tuple(new), self.op.tensors)
        return DesignSpec(self.name, op, self.array, self.dataflow, self.source)


    def with_tile(self, tile: dict[str, int]) -> DesignSpec:
        """The same design with other intra-tile extents for the named dims."""
        new = list(self.dataflow.tile)
        for name, value in tile.items():
            if name not in self.op.dims:
                raise SpecError(f"tile: unknown dim {name!r} (dims: {', '.join(self.op.dims)})")
            new[self.op.dims.index(name)] = _positive(value, f"tile.{name}")
        df = self.dataflow
        flow = DataflowSpec(df.name, df.space, df.time, tuple(new), df.outer_order)
        return DesignSpec(self.name, self.op, self.array, flow, self.source)


def _require(d: dict, key: str, where: str):
    if not isinstance(d, dict):
        raise SpecError(f"{where}: expected a mapping, got {type(d).__name__}")
    if key not in d:
        raise SpecError(f"{where}: missing '{key}'")
    return d[key]


def _positive(value, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SpecError(f"{where} must be a positive integer, got {value!r}")
    return value


def _tensor(name: str, d: dict, dims: tuple[str, ...]) -> TensorSpec:
    where = f"op.tensors.{name}"
    if not name.isidentifier():
        raise SpecError(f"{where}: tensor name must be an identifier")
    role = _require(d, "role", where)
    if role not in ROLES:
        raise SpecError(f"{where}.role must be one of {ROLES}, got {role!r}")
    try:
        dtype = int_type(_require(d, "type", where))
    except ValueError as exc:
        raise SpecError(f"{where}.type: {exc}") from None
    if "access" in d:
        access = d["access"]
        if (not isinstance(access, list) or not access
                or any(not isinstance(r, list) for r in access)):
            raise SpecError(f"{where}.access must be a non-empty list of rows, got {access!r}")
        for r, row in enumerate(access):
            if len(row) != len(dims) or any(not isinstance(c, int) for c in row):
                raise SpecError(f"{where}.access row {r} must hold {len(dims)} integers "
                                f"(one per dim {', '.join(dims)}), got {row!r}")
        offset = d.get("offset", [0] * len(access))
        if len(offset) != len(access):
            raise SpecError(f"{where}.offset must have {len(access)} entries, got {offset!r}")
        rows, consts = tuple(tuple(r) for r in access), tuple(int(o) for o in offset)
    else:
        index = _require(d, "index", where)
        parts = [p for p in str(index).split(",")]
        parsed = [parse_affine(p, dims, f"{where}.index") for p in parts]
        rows, consts = tuple(p[0] for p in parsed), tuple(p[1] for p in parsed)
    for r, row in enumerate(rows):
        if not any(row):
            raise SpecError(f"{where}: axis {r} does not depend on any dim")
    if any(c < 0 for c in consts) or any(c < 0 for row in rows for c in row):
        raise SpecError(f"{where}: negative index coefficients or offsets are not supported")
    return TensorSpec(name, rows, consts, role, dtype)


def spec_from_dict(d: dict) -> DesignSpec:
    """Validate a parsed YAML/JSON mapping into a :class:`DesignSpec`."""
    if not isinstance(d, dict):
        raise SpecError(f"a spec must be a mapping, got {type(d).__name__}")
    name = d.get("name", "design")
    if not isinstance(name, str) or not name.isidentifier():
        raise SpecError(f"name must be an identifier, got {name!r}")
    op_d = _require(d, "op", "spec")
    dims_d = _require(op_d, "dims", "op")
    if not isinstance(dims_d, dict) or not dims_d:
        raise SpecError(f"op.dims must map dim names to extents, got {dims_d!r}")
    dims = tuple(dims_d)
    for dim in dims:
        if not isinstance(dim, str) or not dim.isidentifier():
            raise SpecError(f"op.dims: dim name must be an identifier, got {dim!r}")
    extents = tuple(_positive(dims_d[dim], f"op.dims.{dim}") for dim in dims)
    tensors_d = _require(op_d, "tensors", "op")
    if not isinstance(tensors_d, dict):
        raise SpecError("op.tensors must map tensor names to their descriptions")
    tensors = tuple(_tensor(n, t, dims) for n, t in tensors_d.items())
    roles = [t.role for t in tensors]
    if roles.count("input") != 2 or roles.count("accumulate") != 1:
        raise SpecError(f"op.tensors: a MAC op needs exactly 2 inputs and 1 accumulate output, "
                        f"got roles {roles}")
    op = OpSpec(dims, extents, tensors)

    array = _require(d, "array", "spec")
    if not isinstance(array, list) or not 1 <= len(array) <= 2:
        raise SpecError(f"array must be a list of 1 or 2 positive sizes, got {array!r}")
    array = tuple(_positive(a, f"array[{n}]") for n, a in enumerate(array))

    df = _require(d, "dataflow", "spec")
    df_name = df.get("name", "dataflow") if isinstance(df, dict) else "dataflow"
    space_d = _require(df, "space", "dataflow")
    if not isinstance(space_d, list):
        raise SpecError(f"dataflow.space must be a list of expressions, got {space_d!r}")
    if len(space_d) != len(array):
        raise SpecError(f"dataflow.space has {len(space_d)} rows but the array has "
                        f"{len(array)} axes ({'x'.join(map(str, array))})")
    space = []
    for n, e in enumerate(space_d):
        coef, const = parse_affine(e, dims, f"dataflow.space[{n}]")
        if const:
            raise SpecError(f"dataflow.space[{n}]: constant offsets are not allowed, got {e!r}")
        space.append(coef)
    time, tconst = parse_affine(_require(df, "time", "dataflow"), dims, "dataflow.time")
    if tconst:
        raise SpecError(f"dataflow.time: constant offsets are not allowed, got {df['time']!r}")
    tile_d = df.get("tile", {})
    if not isinstance(tile_d, dict):
        raise SpecError(f"dataflow.tile must map dims to extents, got {tile_d!r}")
    for k in tile_d:
        if k not in dims:
            raise SpecError(f"dataflow.tile: unknown dim {k!r} (dims: {', '.join(dims)})")
    tile = tuple(_positive(tile_d.get(dim, ext), f"dataflow.tile.{dim}")
                 for dim, ext in zip(dims, extents, strict=True))
    order = tuple(df.get("outer_order", list(dims)))
    if sorted(order) != sorted(dims):
        raise SpecError(f"dataflow.outer_order must list every dim once ({', '.join(dims)}), "
                        f"got {list(order)}")
    flow = DataflowSpec(str(df_name), tuple(space), time, tile, order)
    return DesignSpec(name, op, array, flow, source=d)


def _read(path: str | Path, parse):
    """YAML at ``path`` through ``parse``; every failure a SpecError naming the file."""
    import yaml

    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text())
    except OSError as exc:
        raise SpecError(f"cannot read spec {p}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise SpecError(f"{p}: not valid YAML: {exc}") from None
    try:
        return parse(data)
    except SpecError as exc:
        raise SpecError(f"{p}: {exc}") from None


def load_spec(path: str | Path) -> DesignSpec:
    """Read a YAML spec with one dataflow."""
    return _read(path, spec_from_dict)


def specs_from_dict(d: dict) -> list[DesignSpec]:
    """One spec per dataflow: ``dataflow:`` (one) or ``dataflows:`` (a list, fused designs).

    A fused spec shares ``name`` and ``array``; its dataflows need distinct names. They share
    the top-level ``op`` unless a dataflow carries its own ``op:`` (fusion of different ops,
    e.g. ``K^T V`` then ``Q (K^T V)``); the top-level ``op`` may then be left out.
    """
    if not isinstance(d, dict) or "dataflows" not in d:
        return [spec_from_dict(d)]
    if "dataflow" in d:
        raise SpecError("give either 'dataflow' or 'dataflows', not both")
    flows = d["dataflows"]
    if not isinstance(flows, list) or not flows:
        raise SpecError(f"dataflows must be a non-empty list, got {flows!r}")
    specs = []
    for n, flow in enumerate(flows):
        try:
            own = {"op": flow["op"]} if isinstance(flow, dict) and "op" in flow else {}
            if isinstance(flow, dict):
                flow = {k: v for k, v in flow.items() if k != "op"}
            specs.append(spec_from_dict({**{k: v for k, v in d.items() if k != "dataflows"},
                                         **own, "dataflow": flow}))
        except SpecError as exc:
            raise SpecError(f"dataflows[{n}]: {exc}") from None
    names = [s.dataflow.name for s in specs]
    if len(set(names)) != len(names):
        raise SpecError(f"dataflows need distinct names, got {names}")
    return specs


def load_specs(path: str | Path) -> list[DesignSpec]:
    """Read a YAML spec with one dataflow or several (a fused design)."""
    return _read(path, specs_from_dict)
