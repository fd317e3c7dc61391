"""Operator IR: element formats, frozen operator records with exact costs, and model graphs.

Every operator is a frozen dataclass validated on construction (a ``ValueError`` names the field
and the value) and reports, for one execution:

* ``macs``: multiply-accumulates of its contractions (0 for element-wise work and norms);
* ``weight_params`` / ``weight_bytes``: the parameters it owns and their storage;
* ``weight_read_bytes``: weight bytes one execution reads (an embedding reads only its rows);
* ``input_bytes`` / ``output_bytes``: activations read and written, each tensor moved once;
* ``resident_bytes``: state it keeps alive between executions (a KV cache);
* ``vector_elements``: elements it pushes through non-MAC (vector / special-function) hardware.

Byte counts come from :class:`Format`; formats are registered by name in :data:`FORMATS` and an
operator accepts a ``Format`` or its name. A :class:`ModelGraph` is a list of :class:`Stage`
(named blocks of operators with a repeat count) and round-trips through JSON-able dicts.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from typing import Any

from .ir_format import (
    BF16,
    FORMATS,
    FP8_E4M3,
    FP8_E5M2,
    FP16,
    FP32,
    INT4_AWQ_G64,
    INT4_G64,
    INT8,
    NVFP4,
    UINT4_G64,
    Format,
    check_int,
    get_format,
)
from .ir_ops import (
    ELEMENTWISE_OPS,
    OP_KINDS,
    Attention,
    Conv2d,
    Elementwise,
    Embedding,
    KVCacheRead,
    KVCacheWrite,
    Linear,
    LinearAttention,
    Matmul,
    Norm,
    Op,
)

__all__ = [
    "BF16", "ELEMENTWISE_OPS", "FORMATS", "FP16", "FP32", "FP8_E4M3", "FP8_E5M2", "INT4_AWQ_G64",
    "INT4_G64", "INT8", "NVFP4", "OP_KINDS", "SCHEMA", "UINT4_G64", "Attention", "Conv2d",
    "Elementwise", "Embedding", "Format", "KVCacheRead", "KVCacheWrite", "Linear",
    "LinearAttention", "Matmul", "ModelGraph", "Norm", "Op", "Stage", "Totals", "get_format",
    "op_from_dict",
]

SCHEMA = 1
"""Version of the :meth:`ModelGraph.to_dict` layout."""

_SCALARS = (str, int, float, bool, type(None))


def _name(owner: str, value: object) -> str:
    if not isinstance(value, str) or not value or "." in value:
        raise ValueError(f"{owner}.name must be a non-empty string without '.', got {value!r}")
    return value


def op_from_dict(data: Mapping[str, Any]) -> Op:
    """The operator :meth:`Op.to_dict` wrote (unknown kinds or fields raise ``ValueError``)."""
    if not isinstance(data, Mapping) or data.get("kind") not in OP_KINDS:
        kind = data.get("kind") if isinstance(data, Mapping) else data
        raise ValueError(f"op kind must be one of {sorted(OP_KINDS)}, got {kind!r}")
    cls = OP_KINDS[data["kind"]]
    known = {f.name for f in fields(cls)}
    extra = sorted(set(data) - known - {"kind"})
    if extra:
        raise ValueError(f"{cls.__name__} has no field {extra[0]!r}")
    return cls(**{k: v for k, v in data.items() if k != "kind"})


@dataclass(frozen=True)
class Stage:
    """A named block of operators run ``repeat`` times per graph execution.

    ``layers`` distinct weight copies serve those runs (default ``repeat``: every run is its own
    layer, as FLUX's 19 double blocks; ``layers < repeat`` when runs reuse weights, as the decode
    steps of one layer). ``repeat`` must be a multiple of ``layers``. Stages with the same
    ``weights`` key (default: the stage's name) share weights: an operator's parameters and
    resident state count once per (``weights``, operator name), times ``layers``.
    """

    name: str
    ops: tuple[Op, ...]
    repeat: int = 1
    layers: int = 0
    weights: str = ""

    def __post_init__(self) -> None:
        _name("Stage", self.name)
        ops = tuple(self.ops) if isinstance(self.ops, (list, tuple)) else self.ops
        if not isinstance(ops, tuple) or not ops or not all(isinstance(o, Op) for o in ops):
            raise ValueError(f"Stage.ops must be a non-empty sequence of Op, got {self.ops!r}")
        object.__setattr__(self, "ops", ops)
        check_int(f"Stage {self.name!r}", "repeat", self.repeat, 1)
        layers = self.layers or self.repeat
        check_int(f"Stage {self.name!r}", "layers", layers, 1)
        if self.repeat % layers:
            raise ValueError(f"Stage {self.name!r}.repeat {self.repeat} is not a multiple of "
                             f"layers {layers}")
        object.__setattr__(self, "layers", layers)
        if not isinstance(self.weights, str):
            raise ValueError(f"Stage.weights must be a string, got {self.weights!r}")
        object.__setattr__(self, "weights", self.weights or self.name)
        seen: set[str] = set()
        for op in ops:
            if op.name in seen:
                raise ValueError(f"Stage {self.name!r}: duplicate op name {op.name!r}")
            seen.add(op.name)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able fields, operators in order."""
        return {"name": self.name, "repeat": self.repeat, "layers": self.layers,
                "weights": self.weights, "ops": [op.to_dict() for op in self.ops]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Stage:
        """The stage :meth:`to_dict` wrote."""
        extra = sorted(set(data) - {"name", "repeat", "layers", "weights", "ops"})
        if extra:
            raise ValueError(f"Stage has no field {extra[0]!r}")
        return cls(data["name"], tuple(op_from_dict(o) for o in data["ops"]),
                   data.get("repeat", 1), data.get("layers", 0), data.get("weights", ""))


@dataclass(frozen=True)
class Totals:
    """Whole-graph sums (per graph execution; parameters and resident state counted once)."""

    macs: int
    weight_params: int
    weight_bytes: int
    weight_read_bytes: int
    activation_bytes: int
    kv_cache_bytes: int
    vector_elements: int

    def to_dict(self) -> dict[str, int]:
        """Field name -> value."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class ModelGraph:
    """A model as stages of operators, with a description, a source citation and its config.

    Stage names are unique, and operator names unique within a stage, so ``"stage.op"`` names
    every operator of the graph once. ``config`` holds the builder's arguments (JSON scalars).
    """

    name: str
    stages: tuple[Stage, ...]
    description: str = ""
    source: str = ""
    config: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"ModelGraph.name must be a non-empty string, got {self.name!r}")
        stages = tuple(self.stages) if isinstance(self.stages, (list, tuple)) else self.stages
        if not isinstance(stages, tuple) or not stages or not all(
                isinstance(s, Stage) for s in stages):
            raise ValueError(f"ModelGraph.stages must be a non-empty sequence of Stage, "
                             f"got {self.stages!r}")
        object.__setattr__(self, "stages", stages)
        names = [s.name for s in stages]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"ModelGraph {self.name!r}: duplicate stage name {dup[0]!r}")
        for attr in ("description", "source"):
            if not isinstance(getattr(self, attr), str):
                raise ValueError(f"ModelGraph.{attr} must be a string, "
                                 f"got {getattr(self, attr)!r}")
        object.__setattr__(self, "config", self._config(self.config))
        self._state()

    @staticmethod
    def _config(config: object) -> tuple[tuple[str, Any], ...]:
        items = config.items() if isinstance(config, Mapping) else config
        try:
            pairs = tuple(sorted((str(k), v) for k, v in items))
        except (TypeError, ValueError):
            raise ValueError(f"ModelGraph.config must map names to scalars, "
                             f"got {config!r}") from None
        for key, value in pairs:
            if not isinstance(value, _SCALARS):
                raise ValueError(f"ModelGraph.config[{key!r}] must be a JSON scalar, "
                                 f"got {value!r}")
        return pairs

    def _state(self) -> dict[tuple[str, str], tuple[int, Op]]:
        """(weights key, op name) -> (layers, op), checked consistent across sharing stages."""
        state: dict[tuple[str, str], tuple[int, Op]] = {}
        for stage in self.stages:
            for op in stage.ops:
                if not (op.weight_params or op.resident_bytes):
                    continue
                key = (stage.weights, op.name)
                if key in state:
                    layers, prev = state[key]
                    if (layers != stage.layers or prev.weight_bytes != op.weight_bytes
                            or prev.resident_bytes != op.resident_bytes):
                        raise ValueError(f"ModelGraph {self.name!r}: stages sharing weights "
                                         f"{stage.weights!r} disagree on op {op.name!r}")
                state[key] = (stage.layers, op)
        return state

    def __iter__(self) -> Iterator[tuple[Op, int]]:
        """``(op, repeat)`` for every operator, in stage order."""
        for stage in self.stages:
            for op in stage.ops:
                yield op, stage.repeat

    def walk(self) -> Iterator[tuple[Stage, Op]]:
        """``(stage, op)`` for every operator, in stage order."""
        for stage in self.stages:
            for op in stage.ops:
                yield stage, op

    def stage(self, name: str) -> Stage:
        """The stage called ``name`` (``KeyError`` naming the known ones otherwise)."""
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise KeyError(f"{self.name} has no stage {name!r}; stages: "
                       f"{', '.join(s.name for s in self.stages)}")

    def op(self, qualified: str) -> Op:
        """The operator named ``"stage.op"``."""
        stage_name, _, op_name = qualified.partition(".")
        for op in self.stage(stage_name).ops:
            if op.name == op_name:
                return op
        raise KeyError(f"{self.name}: stage {stage_name!r} has no op {op_name!r}")

    def totals(self) -> Totals:
        """Sums per execution: MACs, traffic and vector work times ``repeat``; parameters and
        resident state once per unique (weights key, op) times ``layers``."""
        state = self._state().values()
        return Totals(
            macs=sum(op.macs * r for op, r in self),
            weight_params=sum(n * op.weight_params for n, op in state),
            weight_bytes=sum(n * op.weight_bytes for n, op in state),
            weight_read_bytes=sum(op.weight_read_bytes * r for op, r in self),
            activation_bytes=sum((op.input_bytes + op.output_bytes) * r for op, r in self),
            kv_cache_bytes=sum(n * op.resident_bytes for n, op in state),
            vector_elements=sum(op.vector_elements * r for op, r in self),
        )

    def macs_by_kind(self) -> dict[str, int]:
        """Operator kind -> MACs per execution (kinds in first-seen order)."""
        out: dict[str, int] = {}
        for op, r in self:
            out[op.kind] = out.get(op.kind, 0) + op.macs * r
        return out

    def kinds(self) -> frozenset[str]:
        """The operator kinds the graph uses."""
        return frozenset(op.kind for op, _ in self)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict; equal graphs give equal dicts, key order fixed."""
        return {"schema": SCHEMA, "name": self.name, "description": self.description,
                "source": self.source, "config": dict(self.config),
                "stages": [s.to_dict() for s in self.stages]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelGraph:
        """The graph :meth:`to_dict` wrote (``ValueError`` for another schema or stray keys)."""
        if not isinstance(data, Mapping) or data.get("schema") != SCHEMA:
            got = data.get("schema") if isinstance(data, Mapping) else data
            raise ValueError(f"ModelGraph dict schema must be {SCHEMA}, got {got!r}")
        extra = sorted(set(data) - {"schema", "name", "description", "source", "config",
                                    "stages"})
        if extra:
            raise ValueError(f"ModelGraph has no field {extra[0]!r}")
        return cls(data["name"], tuple(Stage.from_dict(s) for s in data["stages"]),
                   data.get("description", ""), data.get("source", ""), data.get("config", {}))
