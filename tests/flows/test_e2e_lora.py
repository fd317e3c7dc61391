"""A LoRA on SVDQuant leaves in the e2e run (issue 16): joined to the low-rank branch, the
layer's int4 codes and scales reach the SVDQuant kernel byte for byte as without it, the
kernel's output equals golden's fixed-point layer on the fused branch bit for bit (padded to
the kernel's rank where needed), within golden's bound of the float layer with its LoRA;
and the tiny FLUX.1 with a rank-16 LoRA on every SVDQuant linear end to end."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import flows.e2e as e2e
import flows.e2e_svdquant as e2e_svdquant
from golden.svdquant_fixed import SVDQuantFixedSpec, quantize_branch, svdquant_fixed_int
from golden.svdquant_ops import quantize_int4
from hw.front.arch import load_arch
from mapping.ir import Linear
from mapping.mapper import map_op
from mapping.torch_blocks import SVDQuantLinear, attach_loras

FUSED = load_arch("examples/arch/lego_fused.yaml")
_INT4 = ("qx", "sx", "qw", "sw")         # the residual's operands, in the kernel's order


def _leaf(act: str) -> tuple[SVDQuantLinear, torch.Tensor]:
    torch.manual_seed(7)
    leaf = SVDQuantLinear(128, 48, 32, act=act, dtype=torch.float32)
    with torch.no_grad():
        leaf.bias.uniform_(-0.1, 0.1)
    x = torch.randn(24, 128)
    return leaf, (F.gelu(x) if act == "uint4_g64" else x)


def _call(monkeypatch, leaf: SVDQuantLinear, x: torch.Tensor):
    """The leaf on the reference machine: (output, record, the kernel's operands)."""
    seen = []
    run = e2e_svdquant.run_svdquant_linear

    def spy(arch, *ops, **kw):
        seen.append(ops)
        return run(arch, *ops, **kw)

    monkeypatch.setattr(e2e_svdquant, "run_svdquant_linear", spy)
    runner = e2e._Gemms(FUSED, "ref")
    y = e2e_svdquant.svdquant_linear(torch, leaf, x, runner, "leaf")
    assert len(seen) == 1 and len(runner.records) == 1
    return y, runner.records[0], seen[0]


@pytest.mark.parametrize("act", ["int4_g64", "uint4_g64"])
@pytest.mark.parametrize("lora_rank, kernel_rank", [(16, 48), (8, 48)])   # 40 padded to 48
def test_lora_leaf_runs_on_the_same_int4_codes(monkeypatch, act, lora_rank, kernel_rank):
    leaf, x = _leaf(act)
    y0, rec0, ops0 = _call(monkeypatch, leaf, x)
    attach_loras(leaf, lora_rank, seed=3)
    y, rec, ops = _call(monkeypatch, leaf, x)
    for name, a, b in zip(_INT4, ops0[:4], ops[:4], strict=True):     # byte for byte
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes(), name
    assert np.asarray(ops0[6]).shape == (128, 32)
    assert np.asarray(ops[6]).shape == (128, kernel_rank)
    assert np.asarray(ops[7]).shape == (kernel_rank, 48)
    assert rec0.bit_exact and rec.bit_exact and rec.cycles_match
    assert 0 < rec.err <= rec.err_bound
    choice = map_op(FUSED, Linear("l", 24, 128, 48, act, "int4_g64", rank=kernel_rank))
    assert choice.label.startswith("whole/") and rec.mapper_cycles == choice.steps[0].cycles
    with torch.no_grad():
        want = leaf(x)                       # the float layer with its LoRA
    rel = (y - want).abs().max() / want.abs().max()
    assert rel < 0.05 and (y - y0).abs().max() > 0.05 * y0.abs().max()


def test_padding_the_branch_is_exact():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((9, 128)).astype(np.float32)
    down = rng.standard_normal((40, 128)).astype(np.float32) / 11
    up = rng.standard_normal((20, 40)).astype(np.float32)
    qw = rng.integers(-8, 8, (20, 128)).astype(np.int8)
    sw = rng.uniform(0.01, 0.02, (20, 2)).astype(np.float32)
    br = quantize_branch(x, down, up, 8)
    ops = [*quantize_int4(x, 64), qw, sw, br.xl, br.sxl, br.l1q, br.l2q, br.sl2]
    padded = e2e_svdquant.pad_branch(ops, e2e_svdquant.kernel_rank(FUSED, 40))
    assert padded[6].shape == (128, 48) and not padded[6][:, 40:].any()
    spec = SVDQuantFixedSpec(dequant=FUSED.units.dequant.golden_spec())
    a, b = svdquant_fixed_int(*ops, spec).y, svdquant_fixed_int(*padded, spec).y
    assert np.array_equal(a.view(np.int32), b.view(np.int32))
    assert all(p is o for p, o in zip(padded[:6], ops[:6], strict=True))
    assert e2e_svdquant.pad_branch(ops, 40)[6] is ops[6]
    with pytest.raises(ValueError, match="cannot pad a rank-40 branch to rank 32"):
        e2e_svdquant.pad_branch(ops, 32)


@pytest.mark.parametrize("r, want", [(0, 0), (12, 12), (16, 16), (17, 32), (40, 48), (48, 48)])
def test_kernel_rank(r, want):
    assert e2e_svdquant.kernel_rank(FUSED, r) == want


def test_kernel_rank_rejects_negative_ranks():
    with pytest.raises(ValueError, match="rank must be an int >= 0, got -1"):
        e2e_svdquant.kernel_rank(FUSED, -1)


def test_flux_with_a_lora_end_to_end(monkeypatch):
    """``run_e2e`` of the twin built with :data:`~mapping.torch_models.E2E_TWIN_OPTIONS`
    (rank-16 LoRAs): every SVDQuant leaf on the kernel at rank 48, bit-exact, within bounds,
    in the mapper's cycles; the int4 codes are those of the twin without LoRA."""
    from mapping import torch_models

    opts = torch_models.E2E_TWIN_OPTIONS["tiny-flux1-dev"]
    assert opts == {"lora_rank": 16}
    build = partial(torch_models.tiny_flux1_dev, **opts)
    monkeypatch.setitem(torch_models.TORCH_TWINS, "tiny-flux1-dev", build)
    run = e2e.run_e2e("tiny-flux1-dev", FUSED, engine="ref")
    assert run.passed and run.bit_exact and "SVDQuantLinear" not in run.torch_ops, run.report()
    lora, _ = build()
    plain, _ = torch_models.tiny_flux1_dev()
    leaves = {p: m for p, m in lora.named_modules() if isinstance(m, SVDQuantLinear)}
    base = dict(plain.named_modules())
    assert len(leaves) == 20 and all(m.branch_rank == 48 for m in leaves.values())
    assert all(torch.equal(m.qweight, base[p].qweight) and torch.equal(m.wscale, base[p].wscale)
               for p, m in leaves.items())
    ops = [op for op in run.ops if op.name.split("#")[0] in leaves]
    # 20 SVDQuant, 10 plain linears, 6 W4A16 modulation linears, 4 attentions x 2 heads
    assert len(ops) == 20 and len(run.ops) == 44
    assert all(op.bit_exact and op.cycles_match and 0 < op.err <= op.err_bound
               for op in ops)
    for op in ops:
        act = "uint4_g64" if ".fc2#" in op.name else "int4_g64"
        choice = map_op(FUSED, Linear("l", *op.shape, act, "int4_g64", rank=48))
        assert choice.label.startswith("whole/") and op.mapper_cycles == choice.steps[0].cycles
    assert 0 < run.rel_err_accel < 0.1
