"""torch.fx import: the torch twins round-trip to the zoo's hand-written tiny graphs, a Hugging
Face Llama imports with hand-counted MACs, unsupported operators are all named, user files load."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from functools import cache
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mapping.fx_compare import canonical_ops, describe_difference, equivalent, op_difference
from mapping.fx_import import UnsupportedOperators, import_module, load_user_model
from mapping.fx_map import Unsupported, classify_mask
from mapping.ir import Attention, Conv2d, Elementwise, Linear, ModelGraph, Stage
from mapping.torch_models import TORCH_TWINS, TWIN_OPTIONS, tiny_llama3_8b_duo
from mapping.zoo import model

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "models" / "tiny_mlp.py"


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Toy tensors gain nothing from threads, and OpenMP spinning on a busy machine is slow."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@cache
def _twin_graph(name: str) -> ModelGraph:
    module, inputs = TORCH_TWINS[name]()
    return import_module(module, inputs, name=name)


# ------------------------------------------------------------------------- twins round trip


@pytest.mark.parametrize("name", list(TORCH_TWINS))
def test_twin_imports_to_the_hand_written_graph(name):
    imported = _twin_graph(name)
    written = model(name, **TWIN_OPTIONS.get(name, {}))
    assert equivalent(imported, written), describe_difference(imported, written)
    assert imported.totals() == written.totals()
    assert imported.kinds() == written.kinds()
    assert dict(imported.config)["frontend"] == "fx"
    assert any(s.repeat > 1 for s in imported.stages)  # the layer list folded


@pytest.mark.parametrize("name", list(TORCH_TWINS))
def test_twin_runs_with_finite_outputs(name):
    module, inputs = TORCH_TWINS[name]()
    with torch.no_grad():
        out = module(*inputs)
        again = module(*inputs)
    assert torch.isfinite(out.float()).all() and out.numel() > 0
    assert torch.equal(out, again)  # caches start from the same past on every run


def test_twin_stages_are_the_model_blocks():
    flux = _twin_graph("tiny-flux1-dev")
    assert [(s.name, s.repeat) for s in flux.stages] == [
        ("embed", 1), ("double_blocks", 2), ("single_blocks", 2), ("final", 1)]
    ops = {op.name: op for op in flux.stage("double_blocks").ops}
    assert ops["img_qkv_linear"] == Linear("img_qkv_linear", 16, 64, 192, "int4_g64",
                                           "int4_g64", "bf16", 32, True)
    assert ops["img_fc2_quant"].out_fmt.name == "uint4_g64"
    assert ops["img_mod_lin"].weight_fmt.name == "int4_awq_g64"
    llama = _twin_graph("tiny-llama3-8b-duo")
    assert [s.name for s in llama.stages] == ["embed", "layers", "head"]
    streaming = llama.op("layers.attn_attn_streaming")
    assert streaming.window == (4, 8) and streaming.kv_heads == 1 and streaming.q_heads == 2


def test_duo_prefill_and_full_attention_round_trip():
    module, inputs = tiny_llama3_8b_duo("prefill")
    written = model("tiny-llama3-8b-duo", phase="prefill")
    imported = import_module(module, inputs)
    assert equivalent(imported, written), describe_difference(imported, written)
    module, inputs = tiny_llama3_8b_duo(retrieval_heads=2)
    assert equivalent(import_module(module, inputs), model("tiny-llama3-8b-duo", full=True))


def test_export_front_end_keeps_the_ir_leaves():
    module, inputs = TORCH_TWINS["tiny-llama3-8b-duo"]()
    graph = import_module(module, inputs, frontend="export")
    assert dict(graph.config)["frontend"] == "export"
    assert equivalent(graph, model("tiny-llama3-8b-duo"))


def test_vila_u_default_buckets_differ_only_in_attention_contexts():
    # The hand-written graph runs each of 4 buckets of 4 decode steps at the bucket's mean
    # context rounded up (6.5 -> 7 keys ...); the twin runs every step at its own context.
    imported, written = _twin_graph("tiny-vila-u"), model("tiny-vila-u")
    only_twin, only_written = op_difference(imported, written)
    assert {k for k, _ in only_twin} == {k for k, _ in only_written} == {"attention"}
    # the steps off their bucket's mean (3 of 4: contexts 5, 6, 8 against 7) x 4 buckets x
    # 2 layers
    assert sum(only_twin.values()) == sum(only_written.values()) == 24
    per_key = 2 * 2 * 4 * 16  # MACs per key: QK^T + PV, batch 2, 4 heads of 16
    excess = written.totals().macs - imported.totals().macs
    assert excess == 16 * 2 * per_key // 2  # half a key per step and layer


# ---------------------------------------------------------------------- Hugging Face Llama


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_hf_llama_imports_with_hand_counted_macs(attn):
    import transformers

    config = transformers.LlamaConfig(
        vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
        use_cache=False, attn_implementation=attn)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        llama = transformers.LlamaForCausalLM(config).eval()
    graph = import_module(llama, (torch.randint(0, 256, (1, 16)),))
    assert graph.kinds() == {"embedding", "norm", "linear", "attention", "elementwise"}
    assert dict(graph.config)["frontend"] == "export"
    assert dict(graph.config)["bookkeeping_nodes"] > 0  # position ids, mask, RoPE tables
    t, h, kv, ffn, vocab = 16, 64, 32, 128, 256
    linears = t * h * (h + kv + kv + h) + t * h * ffn * 3  # q, k, v, o; gate, up, down
    attention = 2 * 4 * 16 * (t * (t + 1) // 2)  # QK^T + PV, 4 heads of 16, causal pairs
    assert graph.totals().macs == 2 * (linears + attention) + t * h * vocab  # + lm_head
    attn_ops = [op for op, _ in graph if isinstance(op, Attention)]
    assert attn_ops[0] == Attention(attn_ops[0].name, 1, 4, 2, 16, 16, 16, True, fmt="fp32")
    counts = {}
    for op, repeat in graph:
        key = op.op if isinstance(op, Elementwise) else op.kind
        counts[key] = counts.get(key, 0) + repeat
    assert counts == {"embedding": 1, "norm": 5, "linear": 15, "attention": 2, "rope": 4,
                      "add": 4, "silu": 2, "mul": 2}


# --------------------------------------------------------------------- operator mapping


class _SoftmaxAttention(nn.Module):
    """softmax(q k^T / sqrt(d)) v with a causal sink + recent mask, masked_fill or additive."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self.qkv = nn.Linear(32, 64)
        p, j = torch.arange(8)[:, None], torch.arange(8)[None]
        seen = (j <= p) & ((j < 2) | (p - j < 3))
        self.register_buffer("hidden", ~seen)
        self.register_buffer("bias", torch.zeros(8, 8).masked_fill(~seen, float("-inf")))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(x).split([32, 16, 16], dim=-1)
        q = q.unflatten(-1, (4, 8)).transpose(1, 2)
        k = k.unflatten(-1, (2, 8)).transpose(1, 2)[:, :, None].expand(1, 2, 2, 8, 8)
        v = v.unflatten(-1, (2, 8)).transpose(1, 2).repeat_interleave(2, 1)
        scores = q @ k.flatten(1, 2).transpose(-1, -2) / 8 ** 0.5
        if self.kind == "fill":
            scores = scores.masked_fill(self.hidden, float("-inf"))
        else:
            scores = scores + self.bias
        return torch.softmax(scores, -1) @ v


@pytest.mark.parametrize("kind, frontend", [("fill", "fx"), ("add", "fx"), ("add", "export")])
def test_softmax_attention_pattern_with_window_and_gqa(kind, frontend):
    graph = import_module(_SoftmaxAttention(kind), torch.randn(1, 8, 32), frontend=frontend)
    assert [op.kind for op, _ in graph] == ["linear", "attention"]
    att = graph.stages[-1].ops[-1]
    assert (att.q_heads, att.kv_heads, att.head_dim, att.q_tokens, att.kv_tokens) == (
        4, 2, 8, 8, 8)
    assert att.causal and att.window == (2, 3)


class _WrittenOut(nn.Module):
    """RMSNorm and rotate-half RoPE spelled out in torch calls, as Hugging Face models do."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(16, dtype=torch.bfloat16))
        self.register_buffer("cos", torch.randn(4, 16))
        self.register_buffer("sin", torch.randn(4, 16))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + 1e-6)
        h = self.weight * h.to(x.dtype)
        x1, x2 = h[..., :8], h[..., 8:]
        return h * self.cos + torch.cat([-x2, x1], dim=-1) * self.sin


def test_written_out_rmsnorm_and_rope_patterns():
    graph = import_module(_WrittenOut(), torch.randn(2, 4, 16).to(torch.bfloat16))
    norm, rope = graph.stages[0].ops
    assert (norm.kind, norm.norm, norm.tokens, norm.features, norm.affine) == (
        "norm", "rms", 8, 16, True) and norm.fmt.name == "bf16"
    assert (rope.op, rope.elements) == ("rope", 128)


def test_mask_classification():
    p, j = torch.arange(2, 6)[:, None], torch.arange(6)[None]  # 4 queries, the last of 6 keys
    assert classify_mask(torch.ones(4, 6, dtype=torch.bool)) == (False, None)
    assert classify_mask(torch.ones(1, 6, dtype=torch.bool)) == (True, None)
    assert classify_mask(j <= p) == (True, None)
    assert classify_mask((j <= p) & ((j < 1) | (p - j < 2))) == (True, (1, 2))
    with pytest.raises(Unsupported, match="neither full, causal"):
        classify_mask(torch.ones(4, 6, dtype=torch.bool).tril())  # top-left aligned


class _Mixed(nn.Module):
    """An int8 weight cast in forward, a strided conv, sdpa with torch's causal flag."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("w8", torch.randint(-8, 8, (16, 32), dtype=torch.int8))
        self.conv = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.dw = nn.Conv2d(8, 8, 5, padding=2, groups=8, bias=False)

    def forward(self, x: torch.Tensor, img: torch.Tensor) -> tuple[torch.Tensor, ...]:
        q = x.view(1, 4, 2, 16).transpose(1, 2)
        att = F.scaled_dot_product_attention(q, q, q, is_causal=True)
        return F.linear(x, self.w8.float()), self.dw(self.conv(img)), att


@pytest.mark.parametrize("frontend", ["fx", "export"])
def test_formats_convolutions_and_sdpa(frontend):
    graph = import_module(_Mixed(), (torch.randn(4, 32), torch.randn(2, 3, 16, 16)),
                          frontend=frontend)
    ops = {op.kind: op for op, _ in graph if op.kind != "conv2d"}
    convs = [op for op, _ in graph if op.kind == "conv2d"]
    assert ops["linear"] == Linear(ops["linear"].name, 4, 32, 16, "fp32", "int8", "fp32")
    assert convs[0] == Conv2d(convs[0].name, 2, 3, 8, 16, 16, 3, 2, 1, -1, "fp32", "fp32",
                              "fp32", True)
    assert convs[1].depthwise and (convs[1].h, convs[1].kernel, convs[1].padding) == (8, 5, -1)
    assert ops["attention"] == Attention(ops["attention"].name, 1, 2, 2, 16, 4, 4, True,
                                         fmt="fp32")


class _Unsupported(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.gn = nn.GroupNorm(2, 4)
        self.fc = nn.Linear(5, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.cumsum(self.fc(x), dim=-1)
        return self.gn(y) + torch.fft.fft(x).real.sort(dim=-1).values


def test_unsupported_operators_are_all_named():
    with pytest.raises(UnsupportedOperators) as err:
        import_module(_Unsupported(), torch.randn(2, 4, 5), frontend="fx")
    assert isinstance(err.value, ValueError)
    message = str(err.value)
    for part in ("torch.cumsum at node 'cumsum'", "torch.nn.GroupNorm at node 'gn'",
                 "torch.fft.fft at node 'fft_fft'", "Tensor.sort at node 'sort'"):
        assert part in message
    assert len(err.value.operators) == 4 and message.startswith("_Unsupported: 4 unsupported")
    with pytest.raises(UnsupportedOperators, match=r"aten\.cumsum\.default at node 'cumsum'"):
        import_module(_Unsupported(), torch.randn(2, 4, 5), frontend="export")


def test_dropout_in_training_is_reported_and_eval_is_not():
    net = nn.Sequential(nn.Linear(8, 8), nn.Dropout(0.1))
    with pytest.raises(UnsupportedOperators, match="dropout p=0.1 in training mode"):
        import_module(net.train(), torch.randn(2, 8))
    graph = import_module(net.eval(), torch.randn(2, 8))
    assert [op.kind for op, _ in graph] == ["linear"]


def test_bad_arguments():
    with pytest.raises(ValueError, match="frontend must be"):
        import_module(nn.Linear(2, 2), torch.randn(1, 2), frontend="jit")
    with pytest.raises(ValueError, match="must be a torch.nn.Module, got function"):
        import_module(lambda x: x, torch.randn(1, 2))
    with pytest.raises(ValueError, match="no IR operator found"):
        import_module(nn.Flatten(), torch.randn(2, 3, 4))


# --------------------------------------------------------------------- canonical form


def test_equivalence_ignores_layout_and_names_but_not_fields():
    written = model("tiny-llama2-7b-duo")
    flat = ModelGraph("flat", [Stage(f"s{i}_{n}", [replace(op, name=f"x{i}")])
                               for i, (stage, op) in enumerate(written.walk())
                               for n in range(stage.repeat)])
    assert equivalent(flat, written) and describe_difference(flat, written) == ""
    assert sum(canonical_ops(flat).values()) == sum(r for _, r in written)
    wider = model("tiny-llama2-7b-duo", context=65)
    assert not equivalent(wider, written)
    assert "kv_tokens=65" in describe_difference(wider, written)
    same = [Conv2d("a", 1, 4, 4, 8, 8, 3, padding=-1), Conv2d("b", 1, 4, 4, 8, 8, 3, padding=1),
            Attention("c", 1, 2, 2, 8, 1, 9), Attention("d", 1, 2, 2, 8, 1, 9, causal=True)]
    a = ModelGraph("a", [Stage("s", same[::2])])
    b = ModelGraph("b", [Stage("s", same[1::2])])
    assert equivalent(a, b)


def test_mapping_package_stays_torch_free():
    code = ("import sys, mapping, mapping.fx_compare, mapping.zoo; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


# ----------------------------------------------------------------------------- user files


def test_example_loads_and_imports():
    module, inputs = load_user_model(f"{EXAMPLE}:build")
    assert not any(k.startswith("_lego_user_model_") for k in sys.modules)
    graph = import_module(module, inputs, name="tiny_mlp")
    assert [(op.kind, getattr(op, "op", "")) for op, _ in graph] == [
        ("norm", ""), ("linear", ""), ("elementwise", "gelu"), ("linear", ""),
        ("elementwise", "add")]
    assert graph.totals().macs == 8 * 32 * 128 * 2


@pytest.mark.parametrize("source, spec, match", [
    (None, "{dir}/model.py", "must be 'path/to/file.py:function'"),
    (None, "{dir}/missing.py:build", "file '.*missing.py' does not exist"),
    (None, "{dir}/model.txt:build", "is not a .py file"),
    ("def build():\n    return 1\n", "{dir}/model.py:make", "has no function 'make' .*build"),
    ("def build():\n    return 1\n", "{dir}/model.py:build", "must return .* got int"),
    ("def build():\n    return (1, 2)\n", "{dir}/model.py:build", "got a 2-tuple"),
    ("import torch\ndef build():\n    return torch.nn.Linear(2, 2), 'x'\n",
     "{dir}/model.py:build", "example_inputs must be a tensor or a tuple, got str"),
    ("def build(:\n", "{dir}/model.py:build", "SyntaxError"),
])
def test_bad_model_specs_name_the_problem(tmp_path, source, spec, match):
    if source is not None:
        (tmp_path / "model.py").write_text(source)
    with pytest.raises(ValueError, match=match):
        load_user_model(spec.format(dir=tmp_path))
    assert not any(k.startswith("_lego_user_model_") for k in sys.modules)
