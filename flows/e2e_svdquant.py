"""The e2e run's SVDQuant W4A4 leaves (:class:`mapping.torch_blocks.SVDQuantLinear`) on the
accelerator's SVDQuant kernel (:func:`hw.front.kernel_svdquant.run_svdquant_linear`: the
int4 group dots and the low-rank branch on the array, the branch requantized on chip, both
accumulated by the group dequantizer), where the architecture has the requant and dequant
units (:func:`svdquant_on_accelerator`) and the dequantizer's group is the leaf's.

Per call, activations ``x`` (M, K) float32, the leaf's residual codes ``qw`` (N, K) and
scales ``sw`` (N, G) as it stores them (``G = K / 64``), its branch ``(down, up) =
mod.branch()`` (r, K), (N, r) (its LoRA fused, below), its bias ``b``:

* **Codes.** ``(qx, sx) = quantize_int4(x_a, 64)`` (:func:`golden.svdquant_ops.
  quantize_int4`), ``x_a = x`` signed; for ``act="uint4_g64"`` leaves
  ``x_a = fl32(x + GELU_SHIFT)`` unsigned (0..15; ``x >= -GELU_SHIFT`` or ``ValueError``).
  The branch's ``xl, sxl, l1q, l2q, sl2 = quantize_branch(x, down, up, 8)``
  (:func:`golden.svdquant_fixed.quantize_branch`: unshifted ``x``).
* **Golden.** ``y_f = svdquant_fixed_int(qx, sx, qw, sw, xl, sxl, l1q, l2q, sl2, spec,
  act_signed)`` with the architecture's dequantizer (``spec``: group 64, 8-bit branch,
  ``arch.units.dequant.golden_spec()``); the kernel's float32 output must equal it bit for
  bit (and with the fast engine the RTL's DRAM the reference machine's, its cycles the cycle
  model's). The golden run (``engine`` None) takes ``y_f`` without running the kernel.
* **Output.** ``y = fl32(y_f + e)``, ``e = fl32(b - GELU_SHIFT sum_k w_nk)`` (the epilogue
  bias, :func:`golden.svdquant_ops.fold_act_shift` of the shift; ``e = b`` for signed leaves),
  ``w = qw sw`` dequantized exactly (:func:`golden.svdquant_ops.dequantize_int4`).
* **Error.** Against the leaf's float linear on the same input, in float64:
  ``y* = sum_g sx sw dot_g - [GELU_SHIFT sum_k w] + b + (x down^T) up^T``: what the leaf's
  forward computes (its fake-quantized activations are ``qx sx`` (``- GELU_SHIFT``)) without
  rounding. Bound: golden's (a) :func:`~golden.svdquant_fixed.fixed_error_bound` (the
  fixed-point layer against the exact product of its codes) + (b)
  :func:`~golden.svdquant_fixed.branch_error_bound` (the fixed-point branch against the exact
  ``x down^T up^T``) + ``2**-23 (|e| + |y|)`` (the two float32 roundings of the epilogue).
* **Rank.** The kernel takes a rank at most the array edge or a multiple of it
  (:func:`hw.front.kernel_svdquant.svdquant_program`); the branch is padded to
  :func:`kernel_rank` with zero columns of ``l1q`` and zero rows of ``l2q``
  (:func:`pad_branch`), which is exact: the zero columns of ``u32`` change no row's maximum,
  so neither ``s_m`` nor ``u``, and add nothing to ``dot_lr``. Golden runs the unpadded branch,
  so bit-exactness checks the padding too. The dequantizer's ``dot_bits`` bounds the rank
  (golden's ``max_rank`` 64, 22 bits on ``lego_fused``).
* **Cycles.** ``mapper_cycles`` is :func:`mapping.mapper.map_op`'s cost of ``Linear(name, M,
  K, N, act, "int4_g64", rank=kernel_rank(r))`` when it picks the whole SVDQuant kernel (on
  the tiny FLUX.1 it does, one step); when it picks another candidate (a split along k, the
  branch in its own pass) the record takes :func:`mapping.accel_cost.cost_op`'s cost of the
  op (the whole kernel's, which this run measures). The bias is added on the host, not costed.

**LoRA without requantization** (SVDQuant, Li et al. 2024): a LoRA ``s B A``
(:meth:`mapping.torch_blocks.SVDQuantLinear.attach_lora`) is concatenated to the branch,
``down = [down_svd; A]``, ``up = [up_svd, fl32(s B)]`` (rank ``r_svd + r_l``); ``qw``, ``sw``
and the activation codes are the layer's as before, byte for byte. Everything above runs on
the fused branch: its quantization (``quantize_branch``), golden, the float reference ``y*``
(the layer with its LoRA, ``x down^T up^T = x down_svd^T up_svd^T + s (x A^T) B^T``), bound
(b) and the mapper's rank. tests/flows/test_e2e_lora.py checks that the kernel's int4
operands are identical with and without a LoRA, the output bit-exact against golden, the
error within the bound, and the tiny FLUX.1 with a rank-16 LoRA on every SVDQuant linear
(:data:`mapping.torch_models.E2E_TWIN_OPTIONS`) end to end.

Shapes in a record: ``(M, K, N)``.

Layer: flows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from golden.svdquant_fixed import (
    SVDQuantFixedResult,
    SVDQuantFixedSpec,
    branch_error_bound,
    fixed_error_bound,
    quantize_branch,
    svdquant_fixed_int,
)
from golden.svdquant_ops import GELU_SHIFT, dequantize_int4, fold_act_shift, quantize_int4
from hw.front.arch import ArchSpec
from hw.front.kernel_chain import chain_dataflow
from hw.front.kernel_svdquant import run_svdquant_linear
from mapping.accel_cost import cost_op
from mapping.ir import Linear
from mapping.mapper import map_op

from .e2e_error import worst

if TYPE_CHECKING:
    from mapping.op_cost import OpCost
    from mapping.torch_blocks import SVDQuantLinear

    from .e2e import _Gemms

__all__ = ["has_svdquant_units", "kernel_rank", "pad_branch", "svdquant_linear",
           "svdquant_on_accelerator"]

_U = 2.0 ** -23         #: twice the float32 unit roundoff: one RNE of a value, with slack


def has_svdquant_units(arch: ArchSpec) -> bool:
    """Whether ``arch`` has the SVDQuant kernel's units (requant and dequant)."""
    return arch.units.requant is not None and arch.units.dequant is not None


def svdquant_on_accelerator(module: SVDQuantLinear, arch: ArchSpec) -> bool:
    """Whether the e2e run puts SVDQuant leaf ``module`` on ``arch``'s kernel: the units are
    there and the dequantizer's group is the leaf's."""
    return has_svdquant_units(arch) and arch.units.dequant.group == module.group


def kernel_rank(arch: ArchSpec, r: int) -> int:
    """The rank the SVDQuant kernel runs a rank-``r`` branch at on ``arch``: ``r`` when it is
    at most the array edge ``E`` of the kernel's dataflow (:func:`hw.front.kernel_chain.
    chain_dataflow`, the one the mapper costs), else ``r`` rounded up to a multiple of ``E``
    (module docstring: Rank). ``ValueError`` for a negative ``r``."""
    if isinstance(r, bool) or not isinstance(r, int) or r < 0:
        raise ValueError(f"rank must be an int >= 0, got {r!r}")
    edge = chain_dataflow(arch, None, "SVDQuant")[1]
    return r if r <= edge else -(-r // edge) * edge


def pad_branch(ops: list[np.ndarray], rank: int) -> list[np.ndarray]:
    """The kernel's operands (:func:`svdquant_fixed_int`'s order) with the branch padded to
    ``rank``: zero columns appended to ``l1q`` (K, r) and zero rows to ``l2q`` (r, N), the
    rest the same objects (the result is golden's bit for bit, module docstring: Rank).
    ``ValueError`` for a ``rank`` below the branch's."""
    l1q, l2q = ops[6], ops[7]
    r = l1q.shape[1]
    if rank < r:
        raise ValueError(f"cannot pad a rank-{r} branch to rank {rank}")
    if rank == r:
        return list(ops)
    l1 = np.concatenate([l1q, np.zeros((l1q.shape[0], rank - r), l1q.dtype)], axis=1)
    l2 = np.concatenate([l2q, np.zeros((rank - r, l2q.shape[1]), l2q.dtype)], axis=0)
    return [*ops[:6], l1, l2, ops[8]]


def _kernel_cost(arch: ArchSpec, name: str, shape: tuple[int, int, int], act: str, r: int
                 ) -> OpCost:
    """The mapper's cost of the layer when it is the whole kernel, else the kernel's
    (:func:`cost_op`; module docstring: Cycles)."""
    op = Linear(name.replace(".", "_"), *shape, act, "int4_g64", rank=r)
    choice = map_op(arch, op)
    if choice.label.startswith("whole/") and len(choice.steps) == 1:
        return choice.steps[0]
    return cost_op(arch, op)


def _operands(mod: SVDQuantLinear, x: np.ndarray) -> tuple[list[np.ndarray], bool]:
    """The kernel's operands (as :func:`svdquant_fixed_int` takes them) of ``mod`` on ``x``
    (M, K) float32, and whether the activation codes are signed (module docstring: Codes)."""
    signed = mod.act == "int4_g64"
    if not signed:
        if x.size and x.min() < -GELU_SHIFT:
            raise ValueError(f"an unsigned (uint4_g64) SVDQuant leaf got an input {x.min()} "
                             f"below -GELU_SHIFT = {-GELU_SHIFT}")
        x_a = (x + np.float32(GELU_SHIFT)).astype(np.float32)
    else:
        x_a = x
    qx, sx = quantize_int4(x_a, mod.group, signed=signed)
    n, k = mod.out_features, mod.in_features
    qw = mod.qweight.detach().numpy().reshape(n, k)
    sw = mod.wscale.detach().float().numpy().reshape(n, k // mod.group)
    down, up = (t.numpy() for t in mod.branch())
    br = quantize_branch(x, down, up, 8)
    return [qx, sx, qw, sw, br.xl, br.sxl, br.l1q, br.l2q, br.sl2], signed


def _epilogue(mod: SVDQuantLinear, w: np.ndarray, signed: bool) -> np.ndarray:
    """Float64 (N,) ``b - [GELU_SHIFT sum_k w]`` (module docstring: Output)."""
    b = (np.zeros(mod.out_features) if mod.bias is None
         else mod.bias.detach().double().numpy())
    return b if signed else fold_act_shift(b, w, GELU_SHIFT)


def _record(runner: _Gemms, mod: SVDQuantLinear, x: np.ndarray, ops: list[np.ndarray],
            res: SVDQuantFixedResult, y: np.ndarray, e: np.ndarray, spec: SVDQuantFixedSpec,
            rec: dict) -> None:
    """Appends the call's :class:`~flows.e2e.OpRecord` (module docstring: Error)."""
    from .e2e import OpRecord

    qx, sx, qw, sw = ops[:4]
    g = mod.group
    w = dequantize_int4(qw, sw, g)
    xq = dequantize_int4(qx, sx, g)
    down, up = (t.double().numpy() for t in mod.branch())
    want = xq @ w.T + _epilogue(mod, w, mod.act == "int4_g64") + (
        x.astype(np.float64) @ down.T) @ up.T
    bound = (fixed_error_bound(res, sx, sw, ops[5], ops[8], spec)
             + branch_error_bound(x, down.astype(np.float32), up.astype(np.float32), 8)
             + _U * (np.abs(e.astype(np.float64)) + np.abs(y.astype(np.float64))))
    err = np.abs(y.astype(np.float64) - want)
    err, bound = worst(err, bound)
    runner.records.append(OpRecord(**rec, err=err, err_bound=bound))


def svdquant_linear(torch, mod: SVDQuantLinear, x, runner: _Gemms, name: str):
    """``mod(x)`` of activations (..., K) on the SVDQuant kernel (module docstring); a record
    on ``runner`` (a :class:`flows.e2e._Gemms`) unless it is golden's run (``engine``
    None). ``ValueError`` for an architecture whose dequantizer's group is not the leaf's."""
    arch = runner.arch
    if not svdquant_on_accelerator(mod, arch):
        raise ValueError(f"architecture {arch.name!r} cannot run SVDQuant leaf {name!r} "
                         f"(group {mod.group}): it needs requant and a dequant unit of that "
                         "group")
    k, n = mod.in_features, mod.out_features
    x2 = x.detach().reshape(-1, k).to(torch.float32).numpy()
    ops, signed = _operands(mod, x2)
    spec = SVDQuantFixedSpec(group_size=mod.group, branch_bits=8,
                             dequant=arch.units.dequant.golden_spec())
    res = svdquant_fixed_int(*ops, spec, act_signed=signed)
    gold = np.asarray(res.y, np.float32)
    e = _epilogue(mod, dequantize_int4(ops[2], ops[3], mod.group), signed).astype(np.float32)
    y = (gold + e).astype(np.float32)
    if runner.engine is not None:
        shape = (x2.shape[0], k, n)
        rank = kernel_rank(arch, mod.branch_rank)
        cost = _kernel_cost(arch, name, shape, mod.act, rank)
        run = run_svdquant_linear(arch, *pad_branch(ops, rank), dataflow=cost.dataflow)
        got = np.asarray(run.output, np.float32)
        rec = runner.measured(run, gold, name, shape, cost)
        rec["bit_exact"] = rec["bit_exact"] and np.array_equal(got.view(np.int32),
                                                               gold.view(np.int32))
        y = (got + e).astype(np.float32)
        _record(runner, mod, x2, ops, res, y, e, spec, rec)
    return torch.from_numpy(np.ascontiguousarray(y)).reshape(*x.shape[:-1], n).to(x.dtype)
