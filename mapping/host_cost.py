"""What the accelerator's host costs: the processor beside the array that runs the work no
unit of the architecture does (norms, element-wise ops, embeddings, KV-cache moves, the
vector steps of a decomposed operator: a softmax between two GEMMs, the per-group rescale of
a grouped GEMM's partial sums).

**Model** (:class:`Host`): ``lanes`` FP32-op equivalents a cycle (an FMA is 2; the work is
:func:`mapping.vector_work.vector_work`'s account), a transcendental worth
``transcendental_ops`` of them (a polynomial after range reduction), on the accelerator's
clock and DRAM port. One step is ``cycles = max(ceil(ops / lanes), ceil(bytes / B))`` with
``B`` the DRAM bytes a cycle of the architecture: the host streams its operands from DRAM and
its results back (nothing stays in a cache between operators), overlapping its arithmetic with
its own traffic, never with the array's (host and accelerator take turns: the sum of both,
an upper bound). The default, 16 lanes, is a vector unit as wide as the array's edge: generous
next to Gemmini's in-order Rocket core (one scalar op a cycle), so a schedule that leans on
the host is not made to look worse than it is.

**Energy**: ops x :func:`mapping.energy.fp_op_pj` (32-bit) + DRAM bytes x the table's pJ per
byte; no register-file or cache energy (an underestimate, in the same direction for every
architecture).

Pure Python; results are :class:`mapping.accel_cost.OpCost` records with ``target="host"``.
"""

from __future__ import annotations

from dataclasses import dataclass

from hw.front.arch import ArchSpec

from .accel_cost import OpCost
from .energy import EnergyTable, dram_pj_per_byte, energy_table, fp_op_pj
from .ir import Attention, Conv2d, Embedding, KVCacheRead, KVCacheWrite, LinearAttention, Op
from .vector_work import vector_work

__all__ = ["DEFAULT_HOST", "Host", "host_depthwise_cost", "host_op_cost", "host_step"]


@dataclass(frozen=True)
class Host:
    """The host's throughput (module docstring): ``lanes`` FP32 ops a cycle, a transcendental
    worth ``transcendental_ops`` ops. Validated: positive integers."""

    lanes: int = 16
    transcendental_ops: int = 8

    def __post_init__(self) -> None:
        for f in ("lanes", "transcendental_ops"):
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"Host.{f} must be a positive integer, got {v!r}")

    def to_dict(self) -> dict[str, int]:
        """JSON-able fields."""
        return {"lanes": self.lanes, "transcendental_ops": self.transcendental_ops}


DEFAULT_HOST = Host()
"""16 lanes, a transcendental worth 8 ops."""


def host_step(arch: ArchSpec, name: str, what: str, *, ops: int = 0, transcendentals: int = 0,
              dram_bytes: int = 0, host: Host = DEFAULT_HOST,
              table: EnergyTable | None = None, notes: tuple[str, ...] = ()) -> OpCost:
    """One host step named ``name`` doing ``what`` (the schedule's ``lowering``): ``ops`` FP32
    ops and ``transcendentals`` (both in the schedule too) on ``dram_bytes`` bytes of DRAM
    traffic (module docstring)."""
    for label, v in (("ops", ops), ("transcendentals", transcendentals),
                     ("dram_bytes", dram_bytes)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ValueError(f"host step {name!r}: {label} must be an int >= 0, got {v!r}")
    work = ops + transcendentals * host.transcendental_ops
    compute = -(-work // host.lanes)
    memory = -(-dram_bytes // arch.dram.bytes_per_cycle)
    cycles = max(compute, memory, 1)
    t = table or energy_table()
    energy = {"vector": work * fp_op_pj(32, table=t),
              "dram": dram_bytes * dram_pj_per_byte(table=t)}
    schedule = {"lowering": what, "ops": ops, "transcendentals": transcendentals,
                **host.to_dict()}
    return OpCost(name, "host", arch.name, "", schedule, cycles,
                  0, 0, dram_bytes, 0, 0, 0, 0, 0, 0.0, cycles,
                  "compute" if compute >= memory else "memory", sum(energy.values()), energy,
                  True, notes)


def host_op_cost(arch: ArchSpec, op: Op, *, host: Host = DEFAULT_HOST,
                 table: EnergyTable | None = None) -> OpCost:
    """``op`` run whole on the host: its :func:`~mapping.vector_work.vector_work` on the bytes
    the IR says it moves (weights read, inputs, outputs). Norms, element-wise ops, embeddings
    and KV-cache moves; a contraction here would be a mapping error (``ValueError``)."""
    if op.macs:
        raise ValueError(f"{op.kind} {op.name!r} has {op.macs} MACs: contractions run on the "
                         "array (or are decomposed), not whole on the host")
    if isinstance(op, Attention | LinearAttention):
        raise ValueError(f"{op.kind} {op.name!r} is a contraction: decompose it")
    ops, sfu = vector_work(op)
    moves = isinstance(op, Embedding | KVCacheRead | KVCacheWrite)
    what = "data_movement" if moves else "host_vector"
    return host_step(arch, op.name, what, ops=ops, transcendentals=sfu,
                     dram_bytes=op.weight_read_bytes + op.input_bytes + op.output_bytes,
                     host=host, table=table)


def host_depthwise_cost(arch: ArchSpec, op: Op, *, host: Host = DEFAULT_HOST,
                        table: EnergyTable | None = None) -> OpCost:
    """Depthwise convolution ``op`` (:attr:`~mapping.ir.Conv2d.depthwise`) run whole on the
    host, as vector work: each output one FMA (2 ops) a tap, ``kernel^2`` taps (the bias the
    accumulator's start: no op), so ``2 op.macs`` FP32 ops, no transcendentals, on the bytes
    the IR says it moves (weights read, inputs, outputs). The mapper's ``host`` candidate of
    a depthwise conv (a channel's taps are too few to use the array well); ``ValueError``
    for any other operator."""
    if not isinstance(op, Conv2d) or not op.depthwise:
        raise ValueError(f"{op.kind} {op.name!r} is not a depthwise convolution")
    return host_step(arch, op.name, "host_depthwise", ops=2 * op.macs,
                     dram_bytes=op.weight_read_bytes + op.input_bytes + op.output_bytes,
                     host=host, table=table)
