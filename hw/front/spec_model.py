"""The design spec as data: frozen dataclasses that validate themselves on construction.

Every :class:`TensorSpec`, :class:`OpSpec`, :class:`DataflowSpec` and :class:`DesignSpec`
checks itself in ``__post_init__`` and raises :class:`SpecError` naming the field the way a
YAML spec spells it (``op.tensors.C.type``, ``dataflow.tile.k``), so ``with_extents`` and
``with_tile`` can only give valid specs. What is checked here is what a spec can get wrong
without planning: shapes and types of every field, dims / extents / tiles / outer order /
array consistency, tensor roles, the output index forms the generator writes completely, and
the MAC arithmetic (an unsigned output needs unsigned inputs; the output type holds the
exact product). The space-time map itself is checked by :func:`hw.front.plan.plan_array`.

Layer: hw.front, the planning layer (plain Python, no Amaranth).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from math import prod
from pathlib import Path

from golden.int_types import IntType

from .mac_spec import MacSpec

__all__ = ["MAX_EXTENT", "MAX_OPERAND_BITS", "MAX_TENSOR_ELEMENTS", "ROLES",
           "DataflowSpec", "DesignSpec", "OpSpec", "SpecError", "TensorSpec", "close_hint",
           "format_affine", "in_file"]

ROLES = ("input", "accumulate")
#: the largest extent of one dim a spec may give. The loop nest's iteration count is not
#: limited: planning and costing work per tile (a 4096^3 GEMM is costed in milliseconds).
MAX_EXTENT = 2**31 - 1
#: the most elements one tensor may have (its words fill the generated memories: emission and
#: host images take time linear in them, ~1 s per 4k words here).
MAX_TENSOR_ELEMENTS = 2**24
#: the widest MAC input type (:class:`~hw.front.mac_spec.MacSpec`).
MAX_OPERAND_BITS = 16


class SpecError(ValueError):
    """A spec is malformed; the message names the offending entry and value.

    ``file`` is the spec file the message already names (set by :func:`in_file`), else None.
    """

    file: str | None = None


def in_file(exc: SpecError, path: str | Path) -> SpecError:
    """``exc`` (same class) with ``"<path>: "`` in front; one that names a file is kept."""
    if exc.file is not None:
        return exc
    try:
        named = type(exc)(f"{path}: {exc}")
    except TypeError:               # a subclass with another constructor
        named = SpecError(f"{path}: {exc}")
    named.file = str(path)
    return named


def close_hint(word: object, known: Sequence[str]) -> str:
    """``"; did you mean 'tile'?"`` for the closest of ``known`` to ``word``, or ``""``."""
    close = difflib.get_close_matches(str(word), list(known), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def format_affine(coef: Sequence[int], const: int, dims: Sequence[str]) -> str:
    """``(0, 2, -1), 3`` over dims i, j, k -> ``"2*j - k + 3"`` (inverse of parse_affine)."""
    terms = [(c, d if abs(c) == 1 else f"{abs(c)}*{d}")
             for c, d in zip(coef, dims, strict=True) if c]
    if const:
        terms.append((const, str(abs(const))))
    if not terms:
        return "0"
    text = ("-" if terms[0][0] < 0 else "") + terms[0][1]
    return text + "".join(f" {'-' if c < 0 else '+'} {t}" for c, t in terms[1:])


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _positive(value: object, where: str) -> int:
    """``value`` if it is an integer in ``1..MAX_EXTENT``, else a SpecError naming ``where``."""
    if not _is_int(value) or value < 1:
        raise SpecError(f"{where} must be a positive integer, got {value!r}")
    if value > MAX_EXTENT:
        raise SpecError(f"{where} = {value} is too large: at most {MAX_EXTENT} (2**31 - 1)")
    return value


def _ints(value: object, where: str) -> tuple[int, ...]:
    """A sequence of integers as a tuple, else a SpecError naming ``where``."""
    if isinstance(value, str | bytes) or not isinstance(value, Sequence) \
            or not all(_is_int(v) for v in value):
        raise SpecError(f"{where} must be a list of integers, got {value!r}")
    return tuple(value)


def _rows(value: object, where: str) -> tuple[tuple[int, ...], ...]:
    """A non-empty sequence of equally long integer rows as a tuple of tuples."""
    if isinstance(value, str | bytes) or not isinstance(value, Sequence) or not value:
        raise SpecError(f"{where} must be a non-empty list of rows, got {value!r}")
    rows = tuple(_ints(row, f"{where}[{r}]") for r, row in enumerate(value))
    if len({len(row) for row in rows}) != 1:
        raise SpecError(f"{where}: rows of different lengths {[list(r) for r in rows]}")
    return rows


@dataclass(frozen=True)
class TensorSpec:
    """``name[access . I + offset]``; ``role`` input or accumulate (the MAC's output)."""

    name: str
    access: tuple[tuple[int, ...], ...]
    offset: tuple[int, ...]
    role: str
    dtype: IntType

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise SpecError(f"op.tensors: tensor name must be an identifier, got {self.name!r}")
        where = f"op.tensors.{self.name}"
        if self.role not in ROLES:
            raise SpecError(f"{where}.role must be one of {ROLES}, got {self.role!r}")
        if not isinstance(self.dtype, IntType):
            raise SpecError(f"{where}.type must be an integer type, got {self.dtype!r}")
        access = _rows(self.access, f"{where}.access")
        offset = _ints(self.offset, f"{where}.offset")
        if len(offset) != len(access):
            raise SpecError(f"{where}.offset must have {len(access)} entries (one per axis), "
                            f"got {list(offset)}")
        for r, row in enumerate(access):
            if not any(row):
                raise SpecError(f"{where}: axis {r} does not depend on any dim")
        if any(c < 0 for c in offset) or any(c < 0 for row in access for c in row):
            raise SpecError(f"{where}: negative index coefficients or offsets are not supported")
        object.__setattr__(self, "access", access)
        object.__setattr__(self, "offset", offset)

    @property
    def rank(self) -> int:
        return len(self.access)


@dataclass(frozen=True)
class OpSpec:
    """A MAC loop nest: ``out[...] += in0[...] * in1[...]`` over ``dims`` with ``extents``.

    Valid on construction: distinct identifier dims, extents in ``1..MAX_EXTENT`` with at
    most ``MAX_TENSOR_ELEMENTS`` elements per tensor, two
    inputs and one accumulate output indexed over the dims, an output index the generator
    writes completely (:func:`_check_output`), MAC arithmetic it computes exactly
    (:func:`_check_types`).
    """

    dims: tuple[str, ...]
    extents: tuple[int, ...]
    tensors: tuple[TensorSpec, ...]

    def __post_init__(self) -> None:
        dims = _dim_names(self.dims)
        if isinstance(self.extents, str | bytes) or not isinstance(self.extents, Sequence) \
                or len(self.extents) != len(dims):
            raise SpecError(f"op.dims: expected {len(dims)} extents, got {self.extents!r}")
        extents = tuple(_positive(e, f"op.dims.{d}") for d, e in zip(dims, self.extents,
                                                                      strict=True))
        object.__setattr__(self, "dims", dims)
        object.__setattr__(self, "extents", extents)
        object.__setattr__(self, "tensors", _check_tensors(self.tensors, dims))
        for t in self.tensors:
            shape = self.tensor_extent(t, extents)
            if prod(shape) > MAX_TENSOR_ELEMENTS:
                raise SpecError(
                    f"op.tensors.{t.name}: {' x '.join(map(str, shape))} = {prod(shape)} "
                    f"elements, more than the maximum {MAX_TENSOR_ELEMENTS} (2**24) per tensor")
        _check_output(self.output, dims)
        _check_types(self.inputs, self.output)

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


def _dim_names(dims: object) -> tuple[str, ...]:
    if isinstance(dims, str | bytes) or not isinstance(dims, Sequence) or not dims:
        raise SpecError(f"op.dims must name at least one dim, got {dims!r}")
    for dim in dims:
        if not isinstance(dim, str) or not dim.isidentifier():
            raise SpecError(f"op.dims: dim name must be an identifier, got {dim!r}")
    if len(set(dims)) != len(dims):
        raise SpecError(f"op.dims: dim names must be distinct, got {list(dims)}")
    return tuple(dims)


def _check_tensors(tensors: object, dims: tuple[str, ...]) -> tuple[TensorSpec, ...]:
    """Two inputs and one output over ``dims``, distinct names; returned as a tuple."""
    if not isinstance(tensors, Sequence) or not all(isinstance(t, TensorSpec) for t in tensors):
        raise SpecError(f"op.tensors must be TensorSpecs, got {tensors!r}")
    names = [t.name for t in tensors]
    if len(set(names)) != len(names):
        raise SpecError(f"op.tensors: tensor names must be distinct, got {names}")
    for t in tensors:
        if len(t.access[0]) != len(dims):
            raise SpecError(f"op.tensors.{t.name}: access rows have {len(t.access[0])} entries "
                            f"but there are {len(dims)} dims ({', '.join(dims)})")
    roles = [t.role for t in tensors]
    if roles.count("input") != 2 or roles.count("accumulate") != 1:
        raise SpecError(f"op.tensors: a MAC op needs exactly 2 inputs and 1 accumulate output, "
                        f"got roles {roles}")
    return tuple(tensors)


def _check_output(out: TensorSpec, dims: tuple[str, ...]) -> None:
    """The output index must reach every output element: each axis one dim or a sum of dims,
    coefficient 1, no offset, no dim in two axes (anything else leaves elements unwritten)."""
    owner: dict[int, int] = {}
    reason = ""
    for r, (row, off) in enumerate(zip(out.access, out.offset, strict=True)):
        axis = format_affine(row, off, dims)
        strided = [f"coefficient {c} on {d}" for c, d in zip(row, dims, strict=True) if c > 1]
        shared = [d for d, c in enumerate(row) if c and d in owner]
        if off:
            reason = f"axis {r} ({axis}) has an offset"
        elif strided:
            reason = f"axis {r} ({axis}) has a stride ({strided[0]})"
        elif shared:
            reason = f"dim {dims[shared[0]]} indexes axes {owner[shared[0]]} and {r}"
        if reason:
            index = ", ".join(format_affine(a, o, dims) for a, o in
                              zip(out.access, out.offset, strict=True))
            raise SpecError(
                f"op.tensors.{out.name}: output index {index!r} is not supported: {reason}; "
                f"each output axis must be a dim or a sum of dims, with coefficient 1 and no "
                f"offset, and no dim may index two axes, so that every element of {out.name} "
                f"is written (e.g. 'i, j')")
        owner.update({d: r for d, c in enumerate(row) if c})


def _check_types(inputs: tuple[TensorSpec, TensorSpec], out: TensorSpec) -> None:
    """Types the MAC computes exactly: inputs of at most 16 bits, an output wide enough for
    the exact product (:class:`MacSpec`), unsigned only if both inputs are unsigned."""
    for x in inputs:
        if x.dtype.bits > MAX_OPERAND_BITS:
            raise SpecError(f"op.tensors.{x.name}.type: {x.dtype} is too wide: MAC inputs are "
                            f"at most {MAX_OPERAND_BITS} bits")
    a, b = inputs
    if not out.dtype.signed and (a.dtype.signed or b.dtype.signed):
        raise SpecError(
            f"op.tensors.{out.name}.type: the output {out.name} is unsigned ({out.dtype}) but "
            f"its inputs are {a.name} {a.dtype} and {b.name} {b.dtype}; an unsigned output needs "
            f"both inputs unsigned (or give {out.name} a signed type, e.g. int{out.dtype.bits})")
    need = MacSpec(a.dtype, b.dtype, 64).product_bits
    if out.dtype.bits < need:
        raise SpecError(
            f"op.tensors.{out.name}.type: {out.dtype} is too narrow: {a.name} ({a.dtype}) x "
            f"{b.name} ({b.dtype}) products need {need} bits, so the output type needs "
            f"{need}..64 bits")


@dataclass(frozen=True)
class DataflowSpec:
    """Space-time map of one tile (``s = space . I``, ``t = time . I``) and the tile loops.

    Valid on construction as far as it goes without the op: a non-empty name, integer rows, a
    positive tile, dim names in ``outer_order``; :class:`DesignSpec` checks it against the op.
    """

    name: str
    space: tuple[tuple[int, ...], ...]
    time: tuple[int, ...]
    tile: tuple[int, ...]
    outer_order: tuple[str, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise SpecError(f"dataflow.name must be a non-empty string, got {self.name!r}")
        object.__setattr__(self, "space", _rows(self.space, "dataflow.space"))
        object.__setattr__(self, "time", _ints(self.time, "dataflow.time"))
        object.__setattr__(self, "tile", _ints(self.tile, "dataflow.tile"))
        order = self.outer_order
        if isinstance(order, str | bytes) or not isinstance(order, Sequence) \
                or not all(isinstance(d, str) for d in order):
            raise SpecError(f"dataflow.outer_order must be a list of dim names, got {order!r}")
        object.__setattr__(self, "outer_order", tuple(order))


@dataclass(frozen=True)
class DesignSpec:
    """One array running one dataflow of one op; valid on construction (see the module)."""

    name: str
    op: OpSpec
    array: tuple[int, ...]
    dataflow: DataflowSpec

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise SpecError(f"name must be an identifier, got {self.name!r}")
        if not isinstance(self.op, OpSpec) or not isinstance(self.dataflow, DataflowSpec):
            raise SpecError(f"a DesignSpec needs an OpSpec and a DataflowSpec, got "
                            f"{type(self.op).__name__} and {type(self.dataflow).__name__}")
        array = self.array
        if isinstance(array, str | bytes) or not isinstance(array, Sequence) \
                or not 1 <= len(array) <= 2:
            raise SpecError(f"array must be a list of 1 or 2 positive sizes, got {array!r}")
        array = tuple(_positive(a, f"array[{n}]") for n, a in enumerate(array))
        object.__setattr__(self, "array", array)
        _check_flow(self.dataflow, self.op.dims, array)
        _check_sums_in_one_tile(self.op, self.dataflow.tile)

    def with_extents(self, extents: Mapping[str, int]) -> DesignSpec:
        """The same design for another problem size (``--dims i=..``).

        A tile larger than its dim's new extent shrinks to that extent (a problem made
        smaller is not padded back to the old tile); every other tile is kept. Raises
        :class:`SpecError` (``--dims: ...``) for an unknown dim, an extent that is not an
        integer in ``1..MAX_EXTENT``, or a resized design that is not valid.
        """
        dims = self.op.dims
        new = dict(zip(dims, self.op.extents, strict=True))
        tile = dict(zip(dims, self.dataflow.tile, strict=True))
        for name, value in extents.items():
            if name not in new:
                raise SpecError(f"--dims: unknown dim {name!r} (dims: {', '.join(dims)})"
                                f"{close_hint(name, dims)}")
            new[name] = _positive(value, f"--dims: {name}")
            tile[name] = min(tile[name], new[name])
        try:
            op = replace(self.op, extents=tuple(new.values()))
            return replace(self, op=op, dataflow=replace(self.dataflow, tile=tuple(tile.values())))
        except SpecError as exc:
            given = ",".join(f"{k}={v}" for k, v in extents.items())
            raise SpecError(f"--dims {given}: {exc}") from None

    def with_tile(self, tile: Mapping[str, int]) -> DesignSpec:
        """The same design with other intra-tile extents for the named dims."""
        dims = self.op.dims
        new = dict(zip(dims, self.dataflow.tile, strict=True))
        for name, value in tile.items():
            if name not in new:
                raise SpecError(f"tile: unknown dim {name!r} (dims: {', '.join(dims)})"
                                f"{close_hint(name, dims)}")
            new[name] = _positive(value, f"tile.{name}")
        return replace(self, dataflow=replace(self.dataflow, tile=tuple(new.values())))


def _check_flow(df: DataflowSpec, dims: tuple[str, ...], array: tuple[int, ...]) -> None:
    """``df`` against the op's dims and the array: one space row per array axis, rows and
    tile over the dims, every dim once in the outer order."""
    if len(df.space) != len(array):
        raise SpecError(f"dataflow.space has {len(df.space)} rows but the array has "
                        f"{len(array)} axes ({'x'.join(map(str, array))})")
    for where, row in [*((f"dataflow.space[{n}]", r) for n, r in enumerate(df.space)),
                       ("dataflow.time", df.time), ("dataflow.tile", df.tile)]:
        if len(row) != len(dims):
            raise SpecError(f"{where} must have {len(dims)} entries (one per dim: "
                            f"{', '.join(dims)}), got {list(row)}")
    for dim, t in zip(dims, df.tile, strict=True):
        _positive(t, f"dataflow.tile.{dim}")
    if sorted(df.outer_order) != sorted(dims):
        raise SpecError(f"dataflow.outer_order must list every dim once ({', '.join(dims)}), "
                        f"got {list(df.outer_order)}")


def _check_sums_in_one_tile(op: OpSpec, tile: tuple[int, ...]) -> None:
    """An output axis that adds dims (``C[i + k, j]``) is written per tile; tiles would
    overlap in it unless each of its dims fits one tile."""
    out = op.output
    for r, row in enumerate(out.access):
        summed = [d for d, c in enumerate(row) if c]
        split = [d for d in summed if tile[d] < op.extents[d]]
        if len(summed) > 1 and split:
            d = split[0]
            raise SpecError(
                f"op.tensors.{out.name}: output axis {r} ({format_affine(row, 0, op.dims)}) adds "
                f"dims, so each of them must fit one tile (tiles would write overlapping "
                f"elements of {out.name}), but dim {op.dims[d]} has extent {op.extents[d]} and "
                f"tile {tile[d]}; give {op.dims[d]} tile {op.extents[d]} or index "
                f"{out.name} by single dims")
