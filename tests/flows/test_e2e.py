"""``flows.e2e``: tiny models' torch twins with their linears as W8A8 GEMMs on the accelerator
(RTL through the fast engine), bit-exact against golden, within the W8A8 bound of float, in
the mapper's cycles; Sana's linear attention and DuoAttention's decode heads on the fused
kernels; FLUX.1's SVDQuant W4A4 leaves on the SVDQuant kernel."""

from __future__ import annotations

import functools
import json
import subprocess
import sys

import numpy as np
import pytest

import flows.e2e as e2e
import flows.e2e_duo as e2e_duo
import flows.e2e_svdquant as e2e_svdquant
from hw.front.arch import load_arch

FUSED = load_arch("examples/arch/lego_fused.yaml")
GEMMINI = load_arch("examples/arch/gemmini_like.yaml")
_ARCHS = {"lego_fused": FUSED, "gemmini_like": GEMMINI}


@functools.cache
def _fast_run(name: str, arch: str) -> e2e.E2ERun:
    """``run_e2e(name, arch, engine="fast")``, once per session (unpatched tests only)."""
    return e2e.run_e2e(name, _ARCHS[arch], engine="fast")


@pytest.mark.parametrize("name, arch", [("tiny-llama3-8b-duo", FUSED),
                                        ("tiny-sana-0.6b", GEMMINI),
                                        ("tiny-flux1-dev", FUSED)])
def test_tiny_models_on_the_rtl(name, arch):
    run = _fast_run(name, arch.name)
    assert run.passed, run.report()
    assert run.ops and all(op.rtl_cycles == op.model_cycles == op.mapper_cycles
                           for op in run.ops)
    assert all(op.bit_exact and op.err <= op.err_bound for op in run.ops)
    assert 0 < run.rel_err_accel < 0.1            # W8A8 through the whole chain, reported
    report = run.report()
    assert report["pass"] and report["accel_ops"] == len(run.ops)
    assert "RMSNorm" in report["torch_ops"] or "LayerNorm" in report["torch_ops"]
    # every call joined into one program over one DRAM, run on the RTL as a whole
    assert run.forward.calls == len(run.ops) and run.forward.dram_match
    assert run.forward.rtl_cycles == run.forward.model_cycles == report["one_program_cycles"]


def test_linear_attention_on_its_kernel():
    """Sana's LiteLA heads on the fused architecture's kernel: bit-exact against golden's
    on-chip chain, within its bound, RTL = model = mapper; on the Gemmini-like (no units)
    they stay in torch and say so."""
    run = e2e.run_e2e("tiny-sana-0.6b", FUSED, engine="fast")
    heads = [op for op in run.ops if ".lite_la#" in op.name]
    assert len(heads) == 4 and run.passed                 # 2 blocks x 2 heads
    assert all(op.bit_exact and op.rtl_cycles == op.mapper_cycles for op in heads)
    assert "ReLULinearAttention" not in run.torch_ops
    base = e2e.run_e2e("tiny-sana-0.6b", GEMMINI, engine="ref")
    assert "ReLULinearAttention" in base.torch_ops


def _off_by_one(monkeypatch, module, name: str) -> None:
    """``module.name`` (a kernel run) with its output's first code one off."""
    real = getattr(module, name)

    def off_by_one(*args, **kwargs):
        run = real(*args, **kwargs)
        run.output[0, 0] += 1
        return run

    monkeypatch.setattr(module, name, off_by_one)


def test_a_wrong_product_is_caught(monkeypatch):
    _off_by_one(monkeypatch, e2e, "run_gemm")
    run = e2e.run_e2e("tiny-llama2-7b-duo", FUSED, engine="ref")
    assert not run.bit_exact and not run.passed
    gemms = [op for op in run.ops if ".attn#" not in op.name]   # heads: golden's inputs
    assert gemms and not any(op.bit_exact for op in gemms)


def test_deterministic_and_seeded():
    a = e2e.run_e2e("tiny-llama2-7b-duo", GEMMINI, engine="ref", seed=3).report()
    b = e2e.run_e2e("tiny-llama2-7b-duo", GEMMINI, engine="ref", seed=3).report()
    c = e2e.run_e2e("tiny-llama2-7b-duo", GEMMINI, engine="ref", seed=4).report()
    assert a == b and a["max_err_accel"] != c["max_err_accel"]


def test_bad_arguments():
    with pytest.raises(ValueError, match="no torch twin named 'llama'"):
        e2e.run_e2e("llama", FUSED)
    with pytest.raises(ValueError, match="engine must be one of"):
        e2e.run_e2e("tiny-llama3-8b-duo", FUSED, engine="cocotb")


def test_cli_prints_table_and_json():
    r = subprocess.run([sys.executable, "-m", "flows.cli", "e2e", "tiny-llama3-8b-duo",
                        "--engine", "ref"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("accelerator call") and "layers.0.qkv#1" in r.stdout
    report = json.loads(lines[-1])
    assert report["pass"] and report["bit_exact"] and np.isfinite(report["max_err_accel"])


def _duo_records(run):
    return [op for op in run.ops if ".attn#" in op.name]


@pytest.mark.parametrize("name, streaming", [("tiny-llama3-8b-duo", 1),
                                             ("tiny-llama2-7b-duo", 3)])
def test_duo_attention_on_its_kernels(name, streaming):
    """DuoAttention's decode heads on the fused kernels: bit-exact against golden's
    fixed-point head, RTL = cycle model = the fused cost (mapping.accel_cost) of the op
    DuoAttention.ir_ops states per head kind, within golden's bound."""
    from mapping.accel_cost import cost_op
    from mapping.ir import Attention

    run = e2e.run_e2e(name, FUSED, engine="fast")
    heads = _duo_records(run)
    assert run.passed and "DuoAttention" not in run.torch_ops, run.report()
    assert len(heads) == 2 * (1 + streaming)                     # 2 layers x KV heads
    assert all(op.bit_exact and op.rtl_cycles == op.model_cycles == op.mapper_cycles
               and op.err <= op.err_bound for op in heads)
    g = 4 // (1 + streaming)
    for kind, kv, window in (("retrieval", 1, None), ("streaming", streaming, (4, 8))):
        fused = cost_op(FUSED, Attention(f"attn_{kind}", 1, kv * g, kv, 16, 1, 64, True,
                                         window, "int8", "int8"))
        ops = [op for op in heads if op.name.startswith("layers.0.") and kind in op.name]
        assert len(ops) == kv and sum(op.mapper_cycles for op in ops) == fused.cycles
        assert all(op.shape == (g, 64 if window is None else 12, 16) for op in ops)


class _OffByOneHead(e2e_duo.DuoHead):
    def step(self, c):
        out = super().step(c)
        out[0, 0, 0] += 1
        return out


@pytest.mark.parametrize("kind", ["retrieval", "streaming"])
def test_a_wrong_attention_output_is_caught(monkeypatch, kind):
    if kind == "retrieval":
        _off_by_one(monkeypatch, e2e_duo, "run_long_decode")
    else:
        monkeypatch.setattr(e2e_duo, "DuoHead", _OffByOneHead)
    run = e2e.run_e2e("tiny-llama3-8b-duo", FUSED, engine="ref")
    assert not run.bit_exact and not run.passed
    heads = _duo_records(run)
    assert heads and all(op.bit_exact == (kind not in op.name) for op in heads)


def test_duo_attention_stays_in_torch_without_the_units_or_in_prefill():
    from mapping.torch_models import TORCH_TWINS

    run = e2e.run_e2e("tiny-llama3-8b-duo", GEMMINI, engine="ref")
    assert "DuoAttention" in run.torch_ops and not _duo_records(run) and run.passed
    model, _ = TORCH_TWINS["tiny-llama3-8b-duo"](phase="prefill")
    assert "DuoAttention" in e2e._torch_kinds(model, FUSED)
    leaf = model.layers[0].attn
    with pytest.raises(ValueError, match="16 tokens .prefill. is not yet on the accelerator"):
        e2e_duo.duo_attention(None, leaf, None, None, None, 48, e2e._Gemms(FUSED, "ref"),
                              "attn")


def _svdquant_paths(name: str) -> set[str]:
    from mapping.torch_blocks import SVDQuantLinear
    from mapping.torch_models import TORCH_TWINS

    model, _ = TORCH_TWINS[name]()
    return {p for p, m in model.named_modules() if isinstance(m, SVDQuantLinear)}


def _svdquant_records(run):
    paths = _svdquant_paths(run.model)
    return [op for op in run.ops if op.name.split("#")[0] in paths]


def test_svdquant_on_its_kernel():
    """FLUX.1's SVDQuant leaves (signed and, fc2, unsigned after the GELU) on the SVDQuant
    kernel: bit-exact against golden's fixed-point layer, RTL = cycle model = the mapper's
    cost (the whole kernel), within golden's bounds (a) + (b) of the leaf's float linear."""
    from mapping.ir import Linear
    from mapping.mapper import map_op

    run = _fast_run("tiny-flux1-dev", "lego_fused")
    ops = _svdquant_records(run)
    assert run.passed and "SVDQuantLinear" not in run.torch_ops, run.report()
    assert len(ops) == 20 and len(_svdquant_paths(run.model)) == 20    # 2 x 2 x 4 + 2 x 2
    assert sum(".fc2#" in op.name for op in ops) == 4
    assert all(op.bit_exact and op.rtl_cycles == op.model_cycles == op.mapper_cycles
               and 0 < op.err <= op.err_bound for op in ops)
    for op in ops:
        act = "uint4_g64" if ".fc2#" in op.name else "int4_g64"
        choice = map_op(FUSED, Linear("l", *op.shape, act, "int4_g64", rank=48))
        step = choice.steps[0]
        assert choice.label.startswith("whole/") and len(choice.steps) == 1
        assert op.mapper_cycles == step.cycles and op.dataflow == step.dataflow
    assert {op.shape for op in ops} >= {(16, 64, 192), (8, 256, 64), (24, 64, 448),
                                        (24, 320, 64)}


def test_a_wrong_svdquant_output_is_caught(monkeypatch):
    _off_by_one(monkeypatch, e2e_svdquant, "run_svdquant_linear")
    run = e2e.run_e2e("tiny-flux1-dev", FUSED, engine="ref")
    assert not run.bit_exact and not run.passed
    ops = _svdquant_records(run)
    assert len(ops) == 20 and not any(op.bit_exact for op in ops)
    assert all(op.bit_exact for op in run.ops if op not in ops)     # golden on their inputs


def test_svdquant_stays_in_torch_without_the_units():
    run = e2e.run_e2e("tiny-flux1-dev", GEMMINI, engine="ref")
    assert "SVDQuantLinear" in run.torch_ops and not _svdquant_records(run) and run.passed
    from mapping.torch_blocks import SVDQuantLinear

    leaf = SVDQuantLinear(64, 16, 8, act="uint4_g64").float()
    with pytest.raises(ValueError, match="'gemmini_like' cannot run SVDQuant leaf 'fc'"):
        e2e_svdquant.svdquant_linear(None, leaf, None, e2e._Gemms(GEMMINI, "ref"), "fc")
    import torch

    with pytest.raises(ValueError, match="input -0.5 below -GELU_SHIFT"):
        e2e_svdquant.svdquant_linear(torch, leaf, torch.full((2, 64), -0.5),
                                     e2e._Gemms(FUSED, "ref"), "fc")
