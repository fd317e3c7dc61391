"""Operators run as steps: GEMMs on the array with the host's vector work between them, for an
architecture without the units that fuse them (or when that is cheaper). Each function returns
the steps' costs in order, :class:`~mapping.accel_cost.OpCost` records (``target`` "accel" or
"host"); every intermediate crosses DRAM (the array's int32 results out, the host's codes back
in): the traffic fusion saves. Operands are int8 codes (the precision policy's job,
:mod:`mapping.policy`).

* :func:`unfused_attention`: softmax attention by query blocks of ``qb`` tokens. Per block, for
  each batch element and KV head with its ``g`` query heads stacked as rows: ``S = Q K^T``
  (``g qb`` x keys x ``d``) over the keys some query of the block sees (all of them when not
  causal; ``0 .. p`` causal; the sinks and the last ``recent + qb - 1`` with a window), the
  host's softmax on the int32 scores (:data:`~mapping.vector_work.SOFTMAX_OPS` a score, 4 bytes
  in, an int8 weight out), ``O = P V``, the host's normalization (the int32 ``O`` in, 2 ops an
  element, ``fmt`` out). Masked scores inside a block are computed (dense blocks).
* :func:`unfused_linear_attention`: per head, the host's ReLU of q and k (codes in and out),
  ``[V 1]^T K`` (``(d + 1) x d`` over the N tokens: VK and the key sum in one GEMM), the host's
  requantization of it to int8, ``[VK; KS] q`` (N x ``(d + 1)``), the host's division (a
  reciprocal a row, an op an element).
* :func:`group_partials`: a Linear of int4 group codes (SVDQuant) on an array without the group
  dequantizer: one GEMM per group of ``group`` along k, each with its int32 partial sums out;
  the host's rescale-accumulate (:data:`~mapping.vector_work.GROUP_RESCALE_OPS` an output
  element and group); a low-rank branch as two int8 GEMMs (``x L1``, requantized on the host,
  then ``(x L1) L2``; the branch's 16-bit weights as 8-bit codes: a lower bound of its cost)
  added on the host.
* :func:`k_split`: an SVDQuant layer in ``p`` parts along k (for one whose codes do not fit
  the kernel's memories, or whose long k leaves blocks of few rows that re-read the weights):
  each part the kernel without its branch (float32 partial outputs out), the branch as two
  int8 GEMMs (as in :func:`group_partials`), the parts and the branch added on the host.
* :func:`unfused_branch`: an SVDQuant layer with its branch in a separate pass (the kernel at
  rank 0, the branch as in :func:`group_partials`, the host's add): the unfused baseline of
  the branch's fusion.
* :func:`im2col_conv`: a convolution as the host's patch gather (``c_in k^2`` codes per output
  pixel written, the image read) and one GEMM ``c_out x pixels x c_in k^2`` per group.

Pure Python; the GEMM steps are :func:`~mapping.accel_cost.cost_op` of derived IR ops named
``<op>__<step>``.
"""

from __future__ import annotations

from dataclasses import replace

from hw.front.arch import ArchSpec

from .accel_cost import OpCost, cost_op
from .energy import EnergyTable
from .host_cost import DEFAULT_HOST, Host, host_step
from .ir import Attention, Conv2d, Linear, LinearAttention, Matmul
from .vector_work import GROUP_RESCALE_OPS, SOFTMAX_OPS

__all__ = ["attention_block_keys", "group_partials", "im2col_conv", "k_split",
           "unfused_attention", "unfused_branch", "unfused_linear_attention"]

_I8, _C = "int8", 4         # codes through the array; bytes of an int32 result


def _check_int8(op, *fields: str) -> None:
    for f in fields:
        fmt = getattr(op, f)
        if fmt.name != _I8:
            raise ValueError(f"{op.kind} {op.name!r}: {f} is {fmt.name}; the decomposed "
                             "lowering takes int8 codes (apply the precision policy first)")


def attention_block_keys(op: Attention, first: int, rows: int) -> int:
    """Keys some query of the block of ``rows`` queries starting at query ``first`` (0-based
    among the op's ``q_tokens``) sees (the block's dense width)."""
    last = op.kv_tokens - op.q_tokens + first + rows - 1        # position of its last query
    if not op.causal:
        return op.kv_tokens
    if op.window is None:
        return last + 1
    sink, recent = op.window
    return min(last + 1, sink + recent + rows - 1)


def unfused_attention(arch: ArchSpec, op: Attention, qb: int, *, host: Host = DEFAULT_HOST,
                      table: EnergyTable | None = None) -> list[OpCost]:
    """The steps of ``op`` by query blocks of ``qb`` tokens (module docstring); blocks of the
    same width are costed once and repeated in the records' ``schedule["repeat"]``."""
    _check_int8(op, "fmt", "kv_fmt")
    if isinstance(qb, bool) or not isinstance(qb, int) or qb < 1:
        raise ValueError(f"qb must be a positive int (query tokens a block), got {qb!r}")
    g, bh, d = op.q_heads // op.kv_heads, op.batch * op.kv_heads, op.head_dim
    widths: dict[tuple[int, int], int] = {}
    for first in range(0, op.q_tokens, qb):
        rows = min(qb, op.q_tokens - first)
        key = (rows, attention_block_keys(op, first, rows))
        widths[key] = widths.get(key, 0) + 1
    steps = []
    for (rows, keys), times in widths.items():
        r, scores = g * rows, g * rows * keys * bh
        tag = f"{op.name}__q{rows}k{keys}"
        block = [
            cost_op(arch, Matmul(f"{tag}_qk", bh, r, d, keys, _I8, _I8), table=table),
            host_step(arch, f"{tag}_softmax", "softmax", ops=scores * SOFTMAX_OPS[0],
                      transcendentals=scores * SOFTMAX_OPS[1], dram_bytes=scores * (_C + 1),
                      host=host, table=table),
            cost_op(arch, Matmul(f"{tag}_pv", bh, r, keys, d, _I8, _I8), table=table),
            host_step(arch, f"{tag}_normalize", "normalize", ops=2 * bh * r * d,
                      dram_bytes=bh * r * d * (_C + op.fmt.nbytes(1)), host=host,
                      table=table)]
        steps += [_repeat(s, times) for s in block]
    return steps


def unfused_linear_attention(arch: ArchSpec, op: LinearAttention, *,
                             host: Host = DEFAULT_HOST, table: EnergyTable | None = None
                             ) -> list[OpCost]:
    """The steps of a LiteLA head group (module docstring), all heads batched."""
    _check_int8(op, "fmt")
    bh, n, d = op.batch * op.heads, op.tokens, op.head_dim
    return [
        host_step(arch, f"{op.name}__relu", "relu", ops=2 * bh * n * d,
                  dram_bytes=4 * bh * n * d, host=host, table=table),
        cost_op(arch, Matmul(f"{op.name}__vk", bh, d + 1, n, d, _I8, _I8), table=table),
        host_step(arch, f"{op.name}__requant", "requant", ops=2 * bh * (d + 1) * d,
                  dram_bytes=bh * (d + 1) * d * (_C + 1), host=host, table=table),
        cost_op(arch, Matmul(f"{op.name}__num_den", bh, n, d, d + 1, _I8, _I8), table=table),
        host_step(arch, f"{op.name}__divide", "divide", ops=bh * n * d,
                  transcendentals=bh * n,
                  dram_bytes=bh * n * ((d + 1) * _C + op.fmt.nbytes(d)), host=host,
                  table=table)]


def group_partials(arch: ArchSpec, op: Linear, *, host: Host = DEFAULT_HOST,
                   table: EnergyTable | None = None) -> list[OpCost]:
    """The steps of a Linear of int4 group codes without a group dequantizer (module
    docstring); ``ValueError`` unless both formats are integer codes, grouped by one size
    (one of them may be ungrouped: per-row or per-channel scales fold into the rescale)."""
    groups = {f.group for f in (op.act_fmt, op.weight_fmt) if f.group}
    if len(groups) != 1 or any(
            f.kind == "float" for f in (op.act_fmt, op.weight_fmt)):
        raise ValueError(f"linear {op.name!r}: group partials take integer codes with one group "
                         f"size, got {op.act_fmt.name} x {op.weight_fmt.name}")
    group = groups.pop()
    m, n, r, gs = op.m, op.n, op.rank, op.k // group
    out = op.out_fmt.nbytes(m * n, n)
    steps = [
        cost_op(arch, Matmul(f"{op.name}__groups", gs, m, group, n, _I8, _I8), table=table),
        host_step(arch, f"{op.name}__rescale", "group_rescale",
                  ops=m * n * gs * GROUP_RESCALE_OPS, dram_bytes=gs * m * n * _C + out,
                  host=host, table=table)]
    if r:
        steps += _branch(arch, op, host, table) + [
            host_step(arch, f"{op.name}__add", "add", ops=2 * m * n,
                      dram_bytes=m * n * _C + 2 * out, host=host, table=table)]
    return steps


def _branch(arch: ArchSpec, op: Linear, host: Host, table: EnergyTable | None
            ) -> list[OpCost]:
    """The low-rank branch as int8 GEMMs: ``x L1``, its requantization, ``(x L1) L2``."""
    m, k, n, r = op.m, op.k, op.n, op.rank
    return [cost_op(arch, Linear(f"{op.name}__down", m, k, r, _I8, _I8), table=table),
            host_step(arch, f"{op.name}__requant", "requant", ops=2 * m * r,
                      dram_bytes=m * r * (_C + 1), host=host, table=table),
            cost_op(arch, Linear(f"{op.name}__up", m, r, n, _I8, _I8), table=table)]


def k_split(arch: ArchSpec, op: Linear, parts: int, *, host: Host = DEFAULT_HOST,
            table: EnergyTable | None = None) -> list[OpCost]:
    """The steps of an SVDQuant layer in ``parts`` parts along k (module docstring), each of
    whole groups (the last smaller when they do not divide evenly); ``ValueError`` when k has
    fewer groups than parts, :class:`Unmappable` when a part's program does not fit."""
    group = op.weight_fmt.group
    if not group:
        raise ValueError(f"linear {op.name!r}: k_split takes group codes, got "
                         f"{op.weight_fmt.name}")
    groups = op.k // group
    if isinstance(parts, bool) or not isinstance(parts, int) or not 2 <= parts <= groups:
        raise ValueError(f"linear {op.name!r}: parts must be an int in 2..{groups} (the groups "
                         f"of k={op.k}), got {parts!r}")
    size = -(-groups // parts) * group
    sizes = [size] * (op.k // size) + ([op.k % size] if op.k % size else [])
    steps = [_repeat(cost_op(arch, replace(op, name=f"{op.name}__k{kp}", k=kp, rank=0),
                             table=table), sizes.count(kp)) for kp in sorted(set(sizes))]
    if op.rank:
        steps += _branch(arch, op, host, table)
    terms = len(sizes) + bool(op.rank)
    out = op.out_fmt.nbytes(op.m * op.n, op.n)
    steps.append(host_step(arch, f"{op.name}__sum", "add", ops=terms * op.m * op.n,
                           dram_bytes=terms * op.m * op.n * _C + out, host=host, table=table))
    return steps


def unfused_branch(arch: ArchSpec, op: Linear, *, host: Host = DEFAULT_HOST,
                   table: EnergyTable | None = None) -> list[OpCost]:
    """The steps of an SVDQuant layer whose low-rank branch is not fused: the kernel at rank 0
    (float32 outputs out), the branch as two int8 GEMMs with the host's requantization
    between them, the host's add of both (module docstring); ``ValueError`` for rank 0."""
    if not op.rank:
        raise ValueError(f"linear {op.name!r} has no low-rank branch (rank 0)")
    main = cost_op(arch, replace(op, name=f"{op.name}__main", rank=0), table=table)
    out = op.out_fmt.nbytes(op.m * op.n, op.n)
    return [main, *_branch(arch, op, host, table),
            host_step(arch, f"{op.name}__add", "add", ops=2 * op.m * op.n,
                      dram_bytes=op.m * op.n * 2 * _C + out, host=host, table=table)]


def im2col_conv(arch: ArchSpec, op: Conv2d, *, host: Host = DEFAULT_HOST,
                table: EnergyTable | None = None) -> list[OpCost]:
    """The steps of a convolution as patches and a GEMM per group (module docstring)."""
    _check_int8(op, "act_fmt", "weight_fmt")
    pixels, per = op.batch * op.oh * op.ow, op.c_in // op.groups * op.kernel ** 2
    gemm = Linear(f"{op.name}__gemm", op.c_out // op.groups, per, pixels, _I8, _I8)
    return [host_step(arch, f"{op.name}__im2col", "im2col",
                      dram_bytes=op.batch * op.c_in * op.h * op.w + op.groups * pixels * per,
                      host=host, table=table),
            _repeat(cost_op(arch, gemm, table=table), op.groups)]


def _repeat(cost: OpCost, times: int) -> OpCost:
    """``cost`` run ``times`` times: every count and the energy times ``times``."""
    if times == 1:
        return cost
    counts = {f: getattr(cost, f) * times for f in (
        "cycles", "macs", "padded_macs", "dram_bytes", "instructions", "scratchpad_reads",
        "scratchpad_writes", "accumulator_reads", "accumulator_writes", "roofline_cycles",
        "energy_pj")}
    return replace(cost, **counts, schedule={**cost.schedule, "times": times},
                   energy_breakdown={k: v * times for k, v in cost.energy_breakdown.items()})
