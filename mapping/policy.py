"""The precision policy: how a model's operators become what an integer accelerator runs.

The zoo's models are stated in their own formats (bf16 Llama, Sana; SVDQuant int4 FLUX.1); an
int8 array multiplies int8 codes. :func:`deploy` rewrites one operator for an architecture:

* ``float_as="int8"`` (default): a float contraction (Linear, Matmul, Conv2d) runs as int8
  codes (W8A8, per-channel scales applied when the result is converted: a different model,
  as every int8 accelerator deployment of a float model is), softmax and linear attention as
  int8 codes (the precision of the fixed-point units, :mod:`golden.attention_fixed`).
  ``float_as=None``: float contractions stay as they are (the accelerator then reports them
  unmappable).
* ``grouped="partials"`` (default): an SVDQuant (int4 group codes) Linear on an architecture
  without the group dequantizer keeps its numerics and runs as group partials
  (:func:`mapping.decompose.group_partials`); ``grouped="int8"``: it becomes W8A8 without
  the low-rank branch (a different model; the comparison the baseline's users would make).

Ops the policy does not touch are returned as they are. Element-wise ops, norms, embeddings
and KV-cache moves keep their formats (the host runs them in their own precision).

Pure Python.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from hw.front.arch import ArchSpec

from .ir import Attention, Conv2d, Linear, LinearAttention, Matmul, Op

__all__ = ["DEFAULT_POLICY", "Policy", "deploy", "runs_grouped"]

_FIELDS = {Linear: ("act_fmt", "weight_fmt"), Matmul: ("a_fmt", "b_fmt"),
           Conv2d: ("act_fmt", "weight_fmt"), Attention: ("fmt", "kv_fmt"),
           LinearAttention: ("fmt",)}


@dataclass(frozen=True)
class Policy:
    """``float_as``: "int8" or None; ``grouped``: "partials" or "int8" (module docstring)."""

    float_as: str | None = "int8"
    grouped: str = "partials"

    def __post_init__(self) -> None:
        if self.float_as not in ("int8", None):
            raise ValueError(f"Policy.float_as must be 'int8' or None, got {self.float_as!r}")
        if self.grouped not in ("partials", "int8"):
            raise ValueError(f"Policy.grouped must be 'partials' or 'int8', got "
                             f"{self.grouped!r}")

    def to_dict(self) -> dict[str, str | None]:
        """JSON-able fields."""
        return {"float_as": self.float_as, "grouped": self.grouped}


DEFAULT_POLICY = Policy()


def runs_grouped(op: Op, arch: ArchSpec) -> bool:
    """Whether ``op`` is a Linear of integer group codes that ``arch`` cannot dequantize
    (no dequant unit, another group, or a branch without the requant unit)."""
    if not isinstance(op, Linear) or not op.weight_fmt.group or op.weight_fmt.kind == "float" \
            or op.act_fmt.kind == "float":
        return False
    dq, u = arch.units.dequant, arch.units
    return (dq is None or dq.group != op.weight_fmt.group or op.act_fmt.group != dq.group
            or (op.rank > 0 and u.requant is None))


def deploy(op: Op, arch: ArchSpec, policy: Policy = DEFAULT_POLICY) -> tuple[Op, tuple[str, ...]]:
    """``op`` as ``arch`` runs it under ``policy``, and notes of what changed (module
    docstring)."""
    fields = _FIELDS.get(type(op))
    if fields is None:
        return op, ()
    if runs_grouped(op, arch) and policy.grouped == "int8":
        return replace(op, act_fmt="int8", weight_fmt="int8", rank=0), (
            f"{op.act_fmt.name} x {op.weight_fmt.name} rank {op.rank} run as W8A8 without the "
            f"low-rank branch (policy grouped=int8; {arch.name} has no group dequantizer)",)
    floats = [f for f in fields if getattr(op, f).kind == "float"]
    if not floats or policy.float_as is None:
        return op, ()
    new = replace(op, **{f: policy.float_as for f in floats})
    return new, (f"{', '.join(f'{f} {getattr(op, f).name}' for f in floats)} run as "
                 f"{policy.float_as} codes (policy float_as={policy.float_as})",)
