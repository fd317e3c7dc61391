"""Sweep files: which models, on which architectures, measured how; read strictly, expanded
into points with deterministic ids.

A sweep file (YAML, ``examples/sweeps/``)::

    name: lego_vs_gemmini                # letters, digits, _ - . (the store remembers it)
    models:                              # zoo names ('lego models'), FILE.py:FUNCTION,
      - flux1-dev                        #   'NAME OPTION=VALUE ...' (as lego map --set) or
      - llama3-8b-duo phase=prefill      #   {name: NAME, options: {OPTION: VALUE}}
      - {name: llama3-8b-duo, options: {phase: decode}}
    base:                                # architecture YAML file(s); default lego_fused
      - examples/arch/lego_fused.yaml
      - examples/arch/gemmini_like.yaml
    axes:                                # each a non-empty list of distinct values
      array: [8x8, 16x16, 32x32]         # ROWSxCOLS (or [ROWS, COLS])
      scratchpad_kib: [64, 256, 1024]
      accumulator_kib: [64]
      dram_bytes_per_cycle: [16, 32]     # the DRAM beat (one scratchpad row, flows.sweep_eval)
      dataflows: [all, output_stationary, output_stationary+weight_stationary]
      types: ["int8,int8,int32"]         # A,B,C element types
      unit_lanes: [8, 16]                # every workload unit's lanes (bases with units)
    constraints: ["pes <= 1024"]         # see flows.sweep_constraints
    measure: [cost, area, rtl]           # cost (always): the mapper's; area: mm^2 from Yosys
                                         #   (flows.sweep_area); rtl: sampled operators on
                                         #   the RTL (flows.sweep_rtl)
    rtl: {samples: 2, seed: 0}           # the rtl measure's draw (these defaults)
    objective: cycles                    # what the mapper minimizes: cycles, energy, edp

Relative paths (bases, ``FILE.py``) are relative to the current directory, as ``--arch`` is
everywhere in ``lego``. The points are the product bases x axes x models, less the axis
combinations a constraint rejects. A point's ``inputs`` are ``model`` (one string: the name
and its options, ``"llama3-8b-duo phase=decode"``, :func:`parse_model`), ``base`` (the path),
every axis at its value (the base architecture's where the sweep has no such axis, so adding
an axis whose only value is the base's keeps every id; without a ``dram_bytes_per_cycle``
axis the beat is the base's widened to one array edge, :func:`edge_bytes`), ``objective`` and
``measure``: every key but ``model`` describes the architecture and how it is measured. A
point's id is the SHA-256 of its inputs' canonical JSON (:func:`point_id`): the same inputs
give the same id in any sweep, on any machine.

Every error is a :class:`SweepError` (a ``ValueError``) naming the file, the field and the
offending value, raised while reading: unknown keys or axes, an empty axis or model list,
repeated values, an unknown model or model option, a dataflow a base lacks, a bad
constraint or one over an unknown variable, no point left after the constraints.

Layer: flows.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from golden.int_types import int_type
from hw.front.arch import ArchSpec, arch_from_dict
from hw.front.spec_model import SpecError, close_hint
from hw.front.yaml_fields import as_list, check_keys, is_int, mapping, read_yaml, require

from .sweep_constraints import Constraint, ConstraintError, parse_constraint
from .sweep_models import ModelRef, model_ref, parse_model

__all__ = ["AXES", "DEFAULT_BASE", "MEASURES", "Base", "ModelRef", "SweepError", "SweepSpec",
           "base_values", "canonical_json", "edge_bytes", "load_sweep", "parse_model",
           "point_id",
           "sweep_from_dict"]

DEFAULT_BASE = "examples/arch/lego_fused.yaml"
#: the axes a sweep may vary, in the order points are generated.
AXES = ("array", "dataflows", "types", "scratchpad_kib", "accumulator_kib",
        "dram_bytes_per_cycle", "unit_lanes")
#: what a point can measure: the mapper's cost (cycles, energy, DRAM traffic, dataflows;
#: always), the accelerator's area, sampled operators checked on the RTL.
MEASURES = ("cost", "area", "rtl")
_RTL_DEFAULTS = {"samples": 2, "seed": 0}
_OBJECTIVES = ("cycles", "energy", "edp")      # mapping.mapper.OBJECTIVES, without its import
_TOP_KEYS = ("name", "models", "base", "axes", "constraints", "measure", "rtl", "objective")
_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
_ARRAY = re.compile(r"^\s*(\d+)\s*x\s*(\d+)\s*$")


class SweepError(SpecError):
    """A sweep file (or spec) is malformed; the message names the field and the value."""


def canonical_json(obj: Any) -> str:
    """``obj`` as canonical JSON: sorted keys, no spaces, no NaN (the form ids hash and the
    store keeps)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False)


def point_id(inputs: dict) -> str:
    """The point's id: the hex SHA-256 of its inputs' :func:`canonical_json`."""
    return hashlib.sha256(canonical_json(inputs).encode()).hexdigest()


@dataclass(frozen=True)
class Base:
    """A base architecture: its ``path`` as the sweep file gives it, the validated ``arch``
    and ``data``, the YAML mapping it was read from (what the workers rebuild it from)."""

    path: str
    arch: ArchSpec
    data: dict = field(compare=False, hash=False, repr=False)


def base_values(arch: ArchSpec) -> dict[str, Any]:
    """Every axis's value on ``arch`` (its YAML spelling: ``"16x16"``, ``"a+b"``,
    ``"int8,int8,int32"``, KiB, bytes a cycle)."""
    def kib(n: int) -> int | float:
        return n // 1024 if n % 1024 == 0 else n / 1024

    return {"array": "x".join(map(str, arch.array)),
            "dataflows": "+".join(d.name for d in arch.dataflows),
            "types": ",".join(str(t) for t in arch.types),
            "scratchpad_kib": kib(arch.scratchpad.capacity_bytes),
            "accumulator_kib": kib(arch.accumulator.capacity_bytes),
            "dram_bytes_per_cycle": arch.dram.bytes_per_cycle,
            "unit_lanes": _common_lanes(arch)}


def _common_lanes(arch: ArchSpec) -> int | None:
    """The lanes every laned unit of ``arch`` has; None without laned units or when they
    differ (then kept as declared)."""
    lanes = set(arch.units.lanes().values())
    return lanes.pop() if len(lanes) == 1 else None


def edge_bytes(array: str, types: str) -> int:
    """Bytes of one array edge of operands (``"32x32"``, ``"int8,int8,int32"`` -> 32): the
    narrowest scratchpad row, hence DRAM beat, that feeds the array a cycle."""
    a, b, _ = (int_type(t) for t in types.split(","))
    return -(-max(int(x) for x in array.split("x")) * max(a.bits, b.bits) // 8)


@dataclass(frozen=True)
class SweepSpec:
    """A validated sweep (module docstring): ``axes`` are (axis, canonical values) pairs in
    :data:`AXES` order; ``dataflows`` values are ``"all"`` or names joined by ``+``."""

    name: str
    models: tuple[ModelRef, ...]
    bases: tuple[Base, ...]
    axes: tuple[tuple[str, tuple[Any, ...]], ...] = ()
    constraints: tuple[Constraint, ...] = ()
    measure: tuple[str, ...] = ("cost",)
    objective: str = "cycles"
    rtl: tuple[tuple[str, int], ...] = tuple(_RTL_DEFAULTS.items())

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise SweepError(f"name must be letters, digits, '_', '-' or '.', got "
                             f"{self.name!r}")
        _distinct("models", [m.label for m in self.models])
        _distinct("base", [b.path for b in self.bases])
        for axis, values in self.axes:
            if axis not in AXES:
                raise SweepError(f"axes.{axis}: unknown axis {axis!r}{close_hint(axis, AXES)}"
                                 f" (axes: {', '.join(AXES)})")
            _distinct(f"axes.{axis}", values)
        for n, m in enumerate(self.measure):
            if m not in MEASURES:
                raise SweepError(f"measure[{n}]: unknown measure {m!r}{close_hint(m, MEASURES)}"
                                 f" (measures: {', '.join(MEASURES)})")
        _distinct("measure", self.measure)
        for key, value in self.rtl:
            if key not in _RTL_DEFAULTS or not is_int(value) or value < (key == "samples"):
                raise SweepError(f"rtl.{key}: expected samples >= 1 and seed >= 0, got "
                                 f"{key}={value!r}")
        if self.objective not in _OBJECTIVES:
            raise SweepError(f"objective must be one of {', '.join(_OBJECTIVES)}, got "
                             f"{self.objective!r}")
        self._check_dataflows()
        self._check_lanes()

    def _check_lanes(self) -> None:
        for axis, _ in self.axes:
            for b in self.bases if axis == "unit_lanes" else ():
                if not b.arch.units.lanes():
                    raise SweepError(f"axes.unit_lanes: base {b.path} has no workload unit "
                                     "with lanes")

    def _check_dataflows(self) -> None:
        for axis, values in self.axes:
            for v in values if axis == "dataflows" else ():
                for b in self.bases if v != "all" else ():
                    known = [d.name for d in b.arch.dataflows]
                    for name in v.split("+"):
                        if name not in known:
                            raise SweepError(f"axes.dataflows: {v!r}: base {b.path} has no "
                                             f"dataflow {name!r}{close_hint(name, known)} "
                                             f"(dataflows: {', '.join(known)})")

    @cached_property
    def points(self) -> tuple[tuple[str, dict[str, Any]], ...]:
        """``(id, inputs)`` of every point, in generation order (bases, axes in
        :data:`AXES` order, models), each once (a dataflow set equal to ``all`` on a base
        is the same point); ``SweepError`` when the constraints leave none."""
        out: dict[str, dict] = {}
        rejected = dict.fromkeys((c.text for c in self.constraints), 0)
        names = [a for a, _ in self.axes]
        for base, combo in itertools.product(self.bases,
                                             itertools.product(*(v for _, v in self.axes))):
            values = {**base_values(base.arch), **dict(zip(names, combo, strict=True))}
            if values["dataflows"] == "all":
                values["dataflows"] = base_values(base.arch)["dataflows"]
            if "dram_bytes_per_cycle" not in names:     # the beat widens with the array
                values["dram_bytes_per_cycle"] = max(values["dram_bytes_per_cycle"],
                                                     edge_bytes(values["array"],
                                                                values["types"]))
            failed = [c for c in self.constraints if not c(_variables(values))]
            if failed:
                rejected[failed[0].text] += 1
                continue
            for m in self.models:
                inputs = {"model": m.label, "base": base.path, **values,
                          "objective": self.objective, "measure": list(self.measure)}
                if "rtl" in self.measure:
                    inputs["rtl"] = dict(self.rtl)
                out[point_id(inputs)] = inputs   # "all" may equal a listed set: one point
        if not out:
            why = ", ".join(f"{t!r} rejects {n}" for t, n in rejected.items() if n)
            raise SweepError(f"sweep {self.name!r} has no points: every combination of the "
                             f"axes fails a constraint ({why})")
        return tuple(out.items())


def _variables(values: dict[str, Any]) -> dict[str, float]:
    """The constraint variables of a point's axis values."""
    rows, cols = (int(x) for x in values["array"].split("x"))
    return {"rows": rows, "cols": cols, "pes": rows * cols,
            **{k: values[k] for k in ("scratchpad_kib", "accumulator_kib",
                                      "dram_bytes_per_cycle")},
            "unit_lanes": values["unit_lanes"] or 0}


def _distinct(where: str, values: list | tuple) -> None:
    if not values:
        raise SweepError(f"{where} is empty: give at least one value")
    seen = set()
    for v in values:
        if v in seen:
            raise SweepError(f"{where}: {v!r} is given twice")
        seen.add(v)


def _base(n: int, path: Any) -> Base:
    if not isinstance(path, str) or not path:
        raise SweepError(f"base[{n}] must be an architecture YAML path, got {path!r}")
    try:
        data, arch = read_yaml(path, lambda d: (d, arch_from_dict(d)), "architecture")
    except SpecError as exc:
        raise SweepError(f"base[{n}]: {exc}") from None
    return Base(Path(path).as_posix(), arch, data)


def _axis(axis: str, values: Any) -> tuple[str, tuple]:
    where = f"axes.{axis}"
    if axis not in AXES:
        raise SweepError(f"{where}: unknown axis {axis!r}{close_hint(axis, AXES)} (axes: "
                         f"{', '.join(AXES)})")
    values = as_list(values, where, "[8x8, 16x16]" if axis == "array" else "[64, 256]")
    if not values:
        raise SweepError(f"{where} is empty: give at least one value")
    return axis, tuple(_axis_value(axis, f"{where}[{n}]", v) for n, v in enumerate(values))


def _axis_value(axis: str, where: str, v: Any) -> Any:
    """One axis value in its canonical form (see :func:`base_values`)."""
    if axis == "array":
        if isinstance(v, list) and len(v) == 2 and all(is_int(x) and x > 0 for x in v):
            return f"{v[0]}x{v[1]}"
        m = _ARRAY.match(v) if isinstance(v, str) else None
        if m is None or int(m[1]) < 1 or int(m[2]) < 1:
            raise SweepError(f"{where} must be ROWSxCOLS such as 16x16, got {v!r}")
        return f"{int(m[1])}x{int(m[2])}"
    if axis in ("dataflows", "types"):
        parts = v if isinstance(v, list) else str(v).replace("+" if axis == "dataflows"
                                                              else ",", " ").split()
        if not parts or not all(isinstance(p, str) and p.isidentifier() for p in parts):
            what = "dataflow names joined by +" if axis == "dataflows" else "A,B,C types"
            raise SweepError(f"{where} must be {what}, got {v!r}")
        if axis == "dataflows":
            return "+".join(parts)
        if len(parts) != 3:
            raise SweepError(f"{where} must give three types A,B,C such as "
                             f"'int8,int8,int32', got {v!r}")
        for p in parts:
            try:
                int_type(p)
            except ValueError as exc:
                raise SweepError(f"{where}: {exc}") from None
        return ",".join(parts)
    if not is_int(v) or v < 1:
        raise SweepError(f"{where} must be a positive integer, got {v!r}")
    return v


def sweep_from_dict(d: Any) -> SweepSpec:
    """Validate a parsed sweep file into a :class:`SweepSpec` whose points exist (errors:
    :class:`SweepError` naming the field and value)."""
    try:
        d = mapping(d, "a sweep file", "with name, models, axes")
        check_keys(d, _TOP_KEYS)
        models = as_list(require(d, "models", "sweep"), "models", "[tiny-llama3-8b-duo]")
        bases = d.get("base", DEFAULT_BASE)
        bases = bases if isinstance(bases, list) else [bases]
        constraints = d.get("constraints", [])
        constraints = constraints if isinstance(constraints, list) else [constraints]
        measure = as_list(d.get("measure", ["cost"]), "measure", "[cost]")
        rtl = mapping(d.get("rtl", {}), "rtl", "{samples: 2, seed: 0}")
        check_keys(rtl, tuple(_RTL_DEFAULTS), "rtl")
        spec = SweepSpec(
            require(d, "name", "sweep"),
            tuple(model_ref(m, f"models[{n}]") for n, m in enumerate(models)),
            tuple(_base(n, b) for n, b in enumerate(bases)),
            tuple(_axis(str(a), v) for a, v in sorted(
                mapping(d.get("axes", {}), "axes", "AXIS: [VALUES]").items(),
                key=lambda kv: AXES.index(kv[0]) if kv[0] in AXES else -1)),
            tuple(_constraint(n, c) for n, c in enumerate(constraints)),
            tuple(measure), d.get("objective", "cycles"),
            tuple({**_RTL_DEFAULTS, **rtl}.items()))
        spec.points  # noqa: B018 - an empty product is an error of the file
        return spec
    except SweepError:
        raise
    except SpecError as exc:
        raise SweepError(str(exc)) from None


def _constraint(n: int, text: Any) -> Constraint:
    try:
        return parse_constraint(text)
    except ConstraintError as exc:
        raise SweepError(f"constraints[{n}]: {exc}") from None


def load_sweep(path: str | Path) -> SweepSpec:
    """Read and validate the sweep file at ``path``; every failure one :class:`SweepError`
    naming the file."""
    try:
        return read_yaml(path, sweep_from_dict, "sweep")
    except SweepError:
        raise
    except SpecError as exc:                # read_yaml's own (unreadable file, bad YAML)
        err = SweepError(str(exc))
        err.file = exc.file
        raise err from None
