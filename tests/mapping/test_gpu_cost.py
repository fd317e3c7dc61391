import ast
import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from mapping.gpu_cost import (
    ELEMENTWISE_VECTOR_OPS,
    GROUP_RESCALE_OPS,
    gpu_cost,
    gpu_model_cost,
    tensor_precision,
    transcendental_ops,
)
from mapping.ir import (
    ELEMENTWISE_OPS,
    FORMATS,
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
from mapping.zoo import MODELS, model
from sw.roofline import DEVICES, linear_attention_costs

H100_BW, H100_FP16, H100_INT8, H100_FP32 = 3.35e12, 989e12, 1979e12, 67e12
L4090_BW, L4090_FP16, L4090_INT4, L4090_FP32 = 576e9, 75.9e12, 607e12, 37.9e12
A100_BW, A100_FP16, A100_INT4, A100_FP32 = 2.039e12, 312e12, 1248e12, 19.5e12


def _nvfp4_bytes(rows: int, inner: int) -> int:
    return rows * inner // 2 + rows * inner // 16 + 4      # codes, E4M3 per 16, fp32 tensor


class TestA100Device:
    def test_datasheet_numbers(self):
        a = DEVICES["A100"]
        assert a.bandwidth == A100_BW
        assert a.peaks == {"fp16": 312e12, "fp32": 19.5e12, "int8": 624e12, "int4": 1248e12}
        assert a.peak("int4") == (A100_INT4, "int4")
        with pytest.raises(ValueError, match="has no fp8 peak"):
            a.peak("fp8")


class TestHandComputed:
    def test_compute_bound_gemm(self):
        op = Linear("qkv", 4096, 3072, 3072)
        c = gpu_cost(op, "H100")
        ops = 2 * 4096 * 3072 * 3072
        nbytes = 4096 * 3072 * 2 + 3072 * 3072 * 2 + 4096 * 3072 * 2
        assert (c.ops, c.vector_ops, c.bytes) == (ops, 0, nbytes)
        assert c.compute_s == pytest.approx(ops / H100_FP16)
        assert c.memory_s == pytest.approx(nbytes / H100_BW)
        assert c.time_s == c.compute_s and c.bound == "compute" and c.utilization == 1.0
        assert (c.op, c.target, c.device, c.precision, c.kernel) == (
            "qkv", "gpu", "H100", "fp16", "none")

    def test_memory_bound_decode_gemv(self):
        c = gpu_cost(Linear("o_proj", 1, 4096, 4096))          # default: the laptop 4090
        nbytes = 4096 * 2 + 4096 * 4096 * 2 + 4096 * 2
        assert c.device == "RTX4090-laptop" and c.bytes == nbytes
        assert c.time_s == pytest.approx(nbytes / L4090_BW) and c.bound == "memory"
        assert c.compute_s == pytest.approx(2 * 4096 * 4096 / L4090_FP16)
        assert c.utilization == pytest.approx(c.compute_s / c.time_s) and c.utilization < 0.01

    def test_w4a4_int4_and_fallback_to_int8_on_h100(self):
        m, k, n, r = 4096, 3072, 3072, 32
        op = Linear("fc", m, k, n, "int4_g64", "int4_g64", rank=r)
        main, branch = 2 * m * k * n, 2 * m * r * (k + n)
        vec = m * n * (k // 64) * GROUP_RESCALE_OPS
        h = gpu_cost(op, "H100")
        assert h.precision == "int8" and any("no int4" in s for s in h.notes)
        assert h.kernel == "sw.svdquant.w4a4_gemm_lora"
        assert (h.ops, h.vector_ops) == (main + branch, vec)
        assert h.compute_s == pytest.approx(main / H100_INT8 + branch / H100_FP16
                                            + vec / H100_FP32)
        lap = gpu_cost(op, "RTX4090-laptop")
        assert lap.precision == "int4"
        assert lap.compute_s == pytest.approx(main / L4090_INT4 + branch / L4090_FP16
                                              + vec / L4090_FP32)
        a = gpu_cost(op, "A100")
        assert a.precision == "int4"
        assert a.compute_s == pytest.approx(main / A100_INT4 + branch / A100_FP16
                                            + vec / A100_FP32)
        wq = n * k // 2 + n * (k // 64) * 2 + 2 * r * (k + n)
        assert h.bytes == (m * k // 2 + m * (k // 64) * 2) + wq + m * n * 2

    def test_nvfp4_runs_as_fp16(self):
        m, k, n = 4096, 3072, 3072
        op = Linear("fc", m, k, n, "nvfp4", "nvfp4")
        for key, fp16, bw in (("H100", H100_FP16, H100_BW), ("RTX4090-laptop", L4090_FP16,
                                                               L4090_BW), ("A100", A100_FP16,
                                                                           A100_BW)):
            c = gpu_cost(op, key)
            assert c.precision == "fp16" and c.kernel == "sw.svdquant.nvfp4_gemm_lora"
            assert c.vector_ops == 0 and any("nvfp4 as fp16" in s for s in c.notes)
            assert c.compute_s == pytest.approx(2 * m * k * n / fp16)
            nbytes = _nvfp4_bytes(m, k) + _nvfp4_bytes(n, k) + m * n * 2
            assert c.bytes == nbytes and c.memory_s == pytest.approx(nbytes / bw)

    def test_fp8_without_fp8_cores_upcasts(self):
        op = Matmul("mm", 2, 1024, 1024, 1024, "fp8", "fp8", "bf16")
        assert gpu_cost(op, "H100").precision == "fp8"
        a = gpu_cost(op, "A100")
        assert a.precision == "fp16" and a.compute_s == pytest.approx(2 * op.macs / A100_FP16)

    def test_int8_gemm_kernel(self):
        c = gpu_cost(Linear("l", 512, 1024, 1024, "int8", "int8", "int8"), "A100")
        assert c.precision == "int8" and c.kernel == "sw.int8_gemm.int8_gemm"
        assert c.vector_ops == 0 and c.compute_s == pytest.approx(2 * 512 * 1024 ** 2 / 624e12)

    def test_weight_only_int4_runs_fp16(self):
        c = gpu_cost(Linear("mod", 1, 3072, 18432, "bf16", "int4_awq_g64"), "H100")
        assert c.precision == "fp16" and c.vector_ops == 0 and c.bound == "memory"

    def test_vector_ops(self):
        n = 1 << 20
        gelu = Elementwise("g", "gelu", n)
        h = gpu_cost(gelu, "H100")
        assert transcendental_ops("H100") == 16 and transcendental_ops("A100") == 8
        assert (h.ops, h.vector_ops, h.precision) == (0, n * (8 + 16), "fp32")
        assert h.compute_s == pytest.approx(n * 24 / H100_FP32)
        assert h.bytes == 4 * n and h.time_s == pytest.approx(4 * n / H100_BW)
        assert h.bound == "memory"
        assert gpu_cost(gelu, "A100").vector_ops == n * (8 + 8)
        norm = gpu_cost(Norm("ln", "layer", 4096, 3072), "RTX4090-laptop")
        assert norm.vector_ops == 4096 * 3072 * 7
        assert norm.compute_s == pytest.approx(4096 * 3072 * 7 / L4090_FP32)
        assert gpu_cost(Norm("rms", "rms", 8, 64, affine=False)).vector_ops == 8 * 64 * 3

    def test_attention_tensor_plus_softmax(self):
        op = Attention("attn", 1, 24, 24, 128, 4608, 4608)
        c = gpu_cost(op, "H100")
        pairs = 24 * 4608 ** 2
        assert c.ops == 4 * 128 * pairs and c.vector_ops == pairs * (4 + 16)
        assert c.compute_s == pytest.approx(4 * 128 * pairs / H100_FP16
                                            + pairs * 20 / H100_FP32)
        assert c.bound == "compute" and c.kernel == "none"
        dec = gpu_cost(Attention("a", 1, 16, 4, 128, 1, 32768, causal=True), "H100")
        assert dec.kernel == "sw.duo_attention.decode_step" and dec.bound == "memory"
        pre = Attention("a", 1, 16, 4, 128, 4096, 32768, causal=True, window=(64, 256))
        assert gpu_cost(pre).kernel == "sw.duo_attention.prefill"

    def test_linear_attention_matches_sw_roofline(self):
        op = LinearAttention("la", 1, 70, 32, 1024)
        c = gpu_cost(op, "H100")
        ref = linear_attention_costs(1024, 70, 32)
        assert c.ops == pytest.approx(sum(k.ops for k in ref)) and c.precision == "fp32"
        assert c.kernel == "sw.linear_attention.linear_attention"
        assert c.compute_s == pytest.approx((c.ops + 70 * 1024 * 32 * 3) / H100_FP32)

    def test_data_movement_ops(self):
        for op in (Embedding("e", 1, 128256, 4096), KVCacheWrite("w", 1, 1, 8, 128, 4096),
                   KVCacheRead("r", 1, 4096, 8, 128)):
            c = gpu_cost(op, "A100")
            assert (c.ops, c.vector_ops, c.compute_s, c.precision) == (0, 0, 0.0, "none")
            nbytes = op.weight_read_bytes + op.input_bytes + op.output_bytes
            assert c.bytes == nbytes and c.time_s == pytest.approx(nbytes / A100_BW)
            assert c.bound == "memory" and c.utilization == 0.0

    def test_depthwise_conv_on_cuda_cores(self):
        c = gpu_cost(Conv2d("dw", 1, 64, 64, 32, 32, 3, groups=64), "H100")
        assert c.precision == "fp32" and c.compute_s == pytest.approx(c.ops / H100_FP32)


class TestRules:
    def test_tensor_precision_table(self):
        f = FORMATS
        assert tensor_precision(f["int4_g64"], f["uint4_g64"])[0] == "int4"
        assert tensor_precision(f["int8"], f["int4_g64"])[0] == "int8"
        assert tensor_precision(f["bf16"], f["fp16"]) == ("fp16", ())
        assert tensor_precision(f["fp32"], f["bf16"])[0] == "fp32"
        assert tensor_precision(f["fp8_e4m3"], f["fp8_e5m2"])[0] == "fp8"
        assert tensor_precision(f["nvfp4"], f["bf16"])[0] == "fp16"

    def test_elementwise_table_covers_ir(self):
        assert set(ELEMENTWISE_VECTOR_OPS) == set(ELEMENTWISE_OPS)

    def test_unknown_device(self):
        with pytest.raises(ValueError, match="known: A100, H100, RTX4090-laptop"):
            gpu_cost(Linear("l", 1, 64, 64), "B200")
        with pytest.raises(ValueError, match="unknown device"):
            gpu_model_cost(model("tiny-sana-0.6b"), "rtx4090")

    def test_device_object(self):
        assert gpu_cost(Linear("l", 1, 64, 64), DEVICES["A100"]).device == "A100"

    def test_unknown_kind_is_unmappable(self):
        from mapping.accel_cost import Unmappable

        @dataclass(frozen=True)
        class Fake(Op):
            name: str
            kind = "fake"

        with pytest.raises(Unmappable, match="fake 'x' cannot run on 'H100'"):
            gpu_cost(Fake("x"), "H100")

    def test_kernels_exist_in_sw(self):
        """Every kernel name is in its sw module's __all__ (read with ast: no torch import)."""
        names = set()
        ops = [Linear("a", 64, 64, 64, "int4_g64", "int4_g64", rank=16),
               Linear("b", 64, 64, 64, "nvfp4", "nvfp4", rank=16),
               Linear("c", 64, 64, 64, "int8", "int8"), Matmul("d", 1, 64, 64, 64, "int8", "int8"),
               Elementwise("e", "quantize", 64, out_fmt="uint4_g64"),
               Elementwise("f", "quantize", 64, out_fmt="nvfp4"),
               Attention("g", 1, 4, 2, 64, 1, 64, causal=True),
               Attention("h", 1, 4, 2, 64, 8, 64, causal=True),
               LinearAttention("i", 1, 2, 32, 64)]
        for op in ops:
            names.add(gpu_cost(op).kernel)
        assert "none" not in names and len(names) == 8
        root = Path(__file__).resolve().parents[2] / "sw"
        for kernel in names:
            _, module, func = kernel.split(".")
            tree = ast.parse((root / f"{module}.py").read_text())
            exported = next(ast.literal_eval(n.value) for n in tree.body
                            if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "")
                            == "__all__")
            assert func in exported, kernel


class TestModels:
    @pytest.mark.parametrize("device", sorted(DEVICES))
    def test_sum_equals_parts(self, device):
        g = model("llama3-8b-duo", phase="decode", context=32768)
        c = gpu_model_cost(g, device)
        assert c.time_s == pytest.approx(sum(x.time_s * r for _, r, x in c.items))
        assert c.bytes == sum(x.bytes * r for _, r, x in c.items)
        assert c.ops == sum(x.ops * r for _, r, x in c.items)
        assert c.ops == 2 * g.totals().macs
        assert c.bytes == g.totals().weight_read_bytes + g.totals().activation_bytes
        assert sum(k["count"] for k in c.by_kind.values()) == sum(r for _, r in g)
        assert sum(c.bound_time_s.values()) == pytest.approx(c.time_s)
        assert [n for n, _, _ in c.items] == [f"{s.name}.{o.name}" for s, o in g.walk()]
        assert c.bound == "memory" and set(c.by_kind) == set(g.kinds())
        for name, r, x in c.items:
            assert x == gpu_cost(g.op(name), device) and r == g.stage(name.split(".")[0]).repeat

    def test_every_zoo_model_costable(self):
        variants = [(n, {}) for n in MODELS]
        variants += [(n, {"phase": "prefill"}) for n in MODELS if "llama" in n]
        variants += [(n, {"quant": q}) for n in MODELS if "flux" in n for q in ("bf16", "nvfp4")]
        kinds = set()
        for name, kw in variants:
            g = model(name, **kw)
            kinds |= g.kinds()
            for device in DEVICES:
                c = gpu_model_cost(g, device)
                assert c.time_s > 0 and len(c.items) == sum(len(s.ops) for s in g.stages)
                for _, _, x in c.items:
                    assert x.time_s == max(x.compute_s, x.memory_s) > 0
        assert kinds == set(OP_KINDS) - {"matmul", "kv_cache_read"}

    def test_every_ir_kind_costed(self):
        ops = [Linear("l", 8, 64, 64), Matmul("m", 2, 8, 64, 8), Conv2d("c", 1, 8, 16, 8, 8, 3),
               Elementwise("e", "add", 64), Norm("n", "rms", 8, 64),
               Attention("a", 1, 2, 2, 16, 8, 8), LinearAttention("la", 1, 2, 16, 8),
               KVCacheWrite("w", 1, 1, 2, 16, 8), KVCacheRead("r", 1, 8, 2, 16),
               Embedding("emb", 4, 256, 64)]
        assert {o.kind for o in ops} == set(OP_KINDS)
        for op in ops:
            for device in DEVICES:
                assert gpu_cost(op, device).time_s > 0

    def test_deterministic_and_json(self):
        a = gpu_model_cost(model("flux1-dev"), "H100")
        b = gpu_model_cost(model("flux1-dev"), "H100")
        assert a.to_dict() == b.to_dict()
        json.dumps(a.to_dict())
        assert a.bound == "compute" and a.by_kind["attention"]["count"] == 57
