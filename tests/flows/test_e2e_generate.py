"""``flows.e2e_generate``: a DuoAttention decoder twin generating on the accelerator: a chunked
prefill of a prompt longer than sink + recent, then decode steps, every KV head's cache kept
in the accelerator's memories; bit-exact against golden's chain and caches, every step in the
mapper's cycles, the caches equal to golden's (fixed-point codes, golden.kv_cache's
positions), the heads' whole lives replayed on the RTL."""

from __future__ import annotations

import functools
import json
import subprocess
import sys

import numpy as np
import pytest

import flows.e2e_generate as gen
from hw.front.arch import load_arch
from hw.front.kernel_duo_session import HeadSession

FUSED = load_arch("examples/arch/lego_fused.yaml")
GEMMINI = load_arch("examples/arch/gemmini_like.yaml")


@functools.cache
def _ref_run() -> gen.GenerateRun:
    """Two retrieval and two streaming KV heads a layer, 14 prompt tokens in chunks of 6."""
    return gen.run_generate("tiny-llama2-7b-duo", FUSED, steps=2, prompt=14, chunk=6,
                            engine="ref")


def test_two_retrieval_two_streaming_heads_generate_bit_exact():
    run = _ref_run()
    assert run.passed and run.bit_exact and run.kv_cache_match and run.cycles_match
    assert [c.kind for c in run.caches] == ["retrieval"] * 2 + ["streaming"] * 2 + \
        ["retrieval"] * 2 + ["streaming"] * 2
    assert all(c.tokens == 16 for c in run.caches)
    heads = [op for op in run.ops if ".attn." in op.name]
    assert len(heads) == 8 * 5                          # 8 heads x (3 chunks + 2 decodes)
    assert {op.name.split("@")[1] for op in heads} == {"0+6", "6+6", "12+2", "14+1", "15+1"}
    assert all(op.model_cycles == op.mapper_cycles > 0 for op in heads)
    assert all(0 < op.err <= op.err_bound for op in heads)
    assert len(run.step_errors) == 5 and 0 < run.rel_err_accel < 0.05
    assert len(run.tokens_float) == 3 and run.report()["tokens_match"].endswith("/3")
    # the error of every layer call (2 layers x 5 forwards) against float, reported
    assert [b[0] for b in run.blocks] == [f"layers.{i}#{n}" for n in range(1, 6)
                                          for i in range(2)]
    assert all(0 < rel < 0.05 and err > 0 for _, err, rel in run.blocks)
    assert run.report()["max_block_rel_err"] == max(b[2] for b in run.blocks)
    # the GPU run: linears on int8_gemm, each layer's attention on one DuoKVCache
    assert run.gpu_within_bounds and 0 < run.rel_err_gpu < 0.05
    attn = [op for op in run.gpu_ops if ".attn" in op.name]
    assert len(attn) == 2 * 5 and all(op.launches > 0 for op in attn)
    assert {op.kernel for op in attn} == {"sw.duo_attention.prefill",
                                          "sw.duo_attention.decode_step"}
    assert sum(op.bit_exact is True for op in run.gpu_ops) == 9 * 5      # the linears


def test_host_operators_of_every_forward_costed():
    """Each forward's host operators (3 chunks of 6, 6, 2 tokens, then 2 decode steps) are
    costed; a decode forward's equal the e2e rule's on the decode twin (both put every
    linear and the DuoAttention contractions on the accelerator)."""
    from flows.e2e_host import host_record, placed_ops
    from mapping.torch_models import tiny_llama2_7b_duo

    run = _ref_run()
    forwards = ["0+6", "6+6", "12+2", "14+1", "15+1"]
    assert run.host_ops and all(op.costed and op.macs == 0 for op in run.host_ops)
    assert [op.name.split("@")[1] for op in run.host_ops
            if op.kind == "embedding"] == forwards
    writes = [op for op in run.host_ops if op.kind == "kv_cache_write"]
    assert len(writes) == 5 * 2 * 2                      # forwards x layers x head kinds
    model, inputs = tiny_llama2_7b_duo(phase="decode", context=15, retrieval_heads=2)
    want = [host_record(FUSED, p.name, p.op)
            for p in placed_ops(model.float().eval(), inputs, FUSED) if not p.accel]
    got = [op for op in run.host_ops if op.name.endswith("@14+1")]
    assert [(op.name, op.cycles, op.energy_pj) for op in got] == [
        (f"{w.name}@14+1", w.cycles, w.energy_pj) for w in want]
    report = run.report()
    assert report["host_uncosted"] == {} and report["host_cycles"] == sum(
        op.cycles for op in run.host_ops) > 0
    assert report["total_cycles"] == report["accel_cycles"] + report["host_cycles"]


def test_a_gpu_attention_that_never_launched_fails(monkeypatch):
    import flows.e2e_gpu as e2e_gpu

    real = e2e_gpu.duo.DuoKVCache.__init__

    def torch_backend(self, *args, **kwargs):
        real(self, *args, **{**kwargs, "backend": "torch"})

    monkeypatch.setattr(e2e_gpu.duo.DuoKVCache, "__init__", torch_backend)
    run = gen.run_generate("tiny-llama3-8b-duo", FUSED, steps=1, prompt=13, chunk=7,
                           engine="ref")
    assert run.bit_exact and not run.gpu_within_bounds and not run.passed
    assert all(op.launches == 0 for op in run.gpu_ops if ".attn" in op.name)


def test_report_written_atomically(tmp_path):
    from flows.e2e_report import write_generate_report

    paths = write_generate_report(_ref_run(), tmp_path / "out")
    assert [p.name for p in paths] == ["tiny-llama2-7b-duo_generate.md",
                                       "tiny-llama2-7b-duo_generate.html"]
    text = paths[0].read_text()
    assert "**PASS" in text and "layers.1.attn.streaming[0,3]" in text
    assert "Error per layer call" in text and "layers.1#5" in text
    assert "Host operators" in text and "layers.1.attn_norm#1@15+1" in text
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(p.name for p in paths)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="not a folder"):
        write_generate_report(_ref_run(), tmp_path / "file")


def test_the_rtl_replays_each_heads_life():
    run = gen.run_generate("tiny-llama3-8b-duo", FUSED, steps=1, prompt=13, chunk=13,
                           engine="fast", gpu=False)
    assert run.passed, run.report()
    assert len(run.caches) == 4 and all(c.rtl_cycles == c.model_cycles for c in run.caches)
    assert all(op.rtl_cycles == op.model_cycles for op in run.ops if ".attn." not in op.name)


def test_a_wrong_cache_is_caught(monkeypatch):
    real = HeadSession.cache

    def cache(self):
        positions, k, v = real(self)
        k = k.copy()
        k[-1, 0] ^= 1
        return positions, k, v

    monkeypatch.setattr(HeadSession, "cache", cache)
    run = gen.run_generate("tiny-llama3-8b-duo", FUSED, steps=1, prompt=13, chunk=7,
                           engine="ref", gpu=False)
    assert not run.kv_cache_match and not run.passed and run.bit_exact


def test_a_wrong_step_output_is_caught(monkeypatch):
    real = HeadSession.step

    def step(self, q, k, v):
        out = real(self, q, k, v)
        if self.window is None and self.length > 13:
            out = out.copy()
            out[0, 0, 0] += 1
        return out

    monkeypatch.setattr(HeadSession, "step", step)
    run = gen.run_generate("tiny-llama3-8b-duo", FUSED, steps=1, prompt=13, chunk=7,
                           engine="ref", gpu=False)
    assert not run.bit_exact and not run.passed


def test_deterministic():
    a = gen.run_generate("tiny-llama3-8b-duo", FUSED, steps=1, prompt=13, chunk=7,
                         engine="ref", seed=3, gpu=False)
    b = gen.run_generate("tiny-llama3-8b-duo", FUSED, steps=1, prompt=13, chunk=7,
                         engine="ref", seed=3, gpu=False)
    assert a.report() == b.report() and a.step_errors == b.step_errors


@pytest.mark.parametrize("kwargs, match", [
    ({"name": "tiny-sana-0.6b"}, "DuoAttention decoder twin"),
    ({"prompt": 12}, r"longer than sink \+ recent \(4 \+ 8\)"),
    ({"steps": 0}, "steps must be an int >= 1, got 0"),
    ({"engine": "cocotb"}, "engine must be one of"),
    ({"arch": GEMMINI}, "lacks the attention units"),
])
def test_bad_arguments(kwargs, match):
    args = {"name": "tiny-llama3-8b-duo", "arch": FUSED, "engine": "ref", **kwargs}
    with pytest.raises(ValueError, match=match):
        gen.run_generate(args.pop("name"), args.pop("arch"), **args)


def test_cli_generates_and_prints_json():
    r = subprocess.run([sys.executable, "-m", "flows.cli", "e2e", "tiny-llama3-8b-duo",
                        "--steps", "1", "--prompt", "13", "--engine", "ref", "--no-gpu"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert "layers.0.attn.streaming[0,1]" in r.stdout and "tokens (accel)" in r.stdout
    assert "error per block (relative, accelerator vs float): layers.0#1 " in r.stdout
    report = json.loads(r.stdout.splitlines()[-1])
    assert report["pass"] and report["kv_cache_match"] and report["steps"] == 1
    assert report["max_err_gpu"] is None
    bad = subprocess.run([sys.executable, "-m", "flows.cli", "e2e", "tiny-llama3-8b-duo",
                          "--prompt", "13"], capture_output=True, text=True, timeout=600)
    assert bad.returncode != 0 and "--prompt needs --steps" in bad.stderr
    assert "Traceback" not in bad.stderr
    assert np.isfinite(report["max_err_accel"])
