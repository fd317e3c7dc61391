"""``flows.e2e``: tiny models' torch twins with their linears as W8A8 GEMMs on the accelerator
(RTL through the fast engine), bit-exact against golden, within the W8A8 bound of float, in
the mapper's cycles."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import flows.e2e as e2e
from hw.front.arch import load_arch

FUSED = load_arch("examples/arch/lego_fused.yaml")
GEMMINI = load_arch("examples/arch/gemmini_like.yaml")


@pytest.mark.parametrize("name, arch", [("tiny-llama3-8b-duo", FUSED),
                                        ("tiny-sana-0.6b", GEMMINI),
                                        ("tiny-flux1-dev", FUSED)])
def test_tiny_models_on_the_rtl(name, arch):
    run = e2e.run_e2e(name, arch, engine="fast")
    assert run.passed, run.report()
    assert run.ops and all(op.rtl_cycles == op.model_cycles == op.mapper_cycles
                           for op in run.ops)
    assert all(op.bit_exact and op.max_err <= op.err_bound for op in run.ops)
    assert 0 < run.rel_err_accel < 0.1            # W8A8 through the whole chain, reported
    report = run.report()
    assert report["pass"] and report["accel_ops"] == len(run.ops)
    assert "RMSNorm" in report["torch_ops"] or "LayerNorm" in report["torch_ops"]


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


def test_a_wrong_product_is_caught(monkeypatch):
    real = e2e.run_gemm

    def off_by_one(*args, **kwargs):
        run = real(*args, **kwargs)
        run.output[0, 0] += 1
        return run

    monkeypatch.setattr(e2e, "run_gemm", off_by_one)
    run = e2e.run_e2e("tiny-llama2-7b-duo", FUSED, engine="ref")
    assert not run.bit_exact and not run.passed
    assert not any(op.bit_exact for op in run.ops)


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
