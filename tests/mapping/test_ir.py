"""Operator IR: formats' bytes, validation, costs against hand counts and brute force, graphs."""

from __future__ import annotations

import json
import random

import pytest

from mapping.ir import (
    BF16,
    FORMATS,
    INT4_AWQ_G64,
    INT4_G64,
    NVFP4,
    OP_KINDS,
    Attention,
    Conv2d,
    Elementwise,
    Embedding,
    Format,
    KVCacheRead,
    KVCacheWrite,
    Linear,
    LinearAttention,
    Matmul,
    ModelGraph,
    Norm,
    Stage,
    get_format,
    op_from_dict,
)

# ---------------------------------------------------------------------------------- formats


def test_int4_g64_bytes_by_hand():
    # a 128 x 64 weight: 8192 codes of 4 bits = 4096 B; 128 rows x 1 group x 16-bit scale = 256 B
    assert INT4_G64.nbytes(128 * 64, inner=64) == 4096 + 256
    # 3072 x 3072: 4,718,592 B of codes + 3072 x 48 groups x 2 B = 294,912 B of scales
    assert INT4_G64.nbytes(3072 * 3072, 3072) == 3072 * 3072 // 2 + 3072 * 48 * 2
    # ceil rules: 100 elements -> 50 B codes; ceil(100 / 64) = 2 groups -> 4 B
    assert INT4_G64.nbytes(100) == 54
    # rows of 10: 10 rows x ceil(10 / 64) = 10 groups -> 20 B
    assert INT4_G64.nbytes(100, inner=10) == 70
    assert INT4_G64.nbytes(7) == 4 + 2  # ceil(28 / 8) = 4 code bytes, one group
    # AWQ W4A16: a 16-bit scale and a 16-bit zero per group of 64
    assert INT4_AWQ_G64.nbytes(64 * 64, 64) == 2048 + 64 * 4


def test_nvfp4_bytes_by_hand():
    # 4096 E2M1 codes = 2048 B; 256 groups of 16 x one E4M3 byte; one fp32 tensor scale
    assert NVFP4.nbytes(4096) == 2048 + 256 + 4
    # 17 elements: ceil(68 / 8) = 9 B codes, 2 groups = 2 B, 4 B tensor scale
    assert NVFP4.nbytes(17) == 15
    assert NVFP4.nbytes(0) == 0


def test_plain_formats_and_lookup():
    assert BF16.nbytes(10) == 20 and FORMATS["fp32"].nbytes(3) == 12
    assert FORMATS["int8"].nbytes(5) == 5
    assert FORMATS["fp8_e4m3"].nbytes(10) == 10 + 4  # per-tensor fp32 scale
    assert get_format("fp8") is FORMATS["fp8_e4m3"] and get_format("int4") is INT4_G64
    assert get_format(INT4_G64) is INT4_G64
    with pytest.raises(ValueError, match="int3"):
        get_format("int3")
    with pytest.raises(ValueError, match="must be one of"):
        get_format(Format("int4_g64", 4, "int", 32, 16))  # same name, other group: unregistered


@pytest.mark.parametrize("kwargs, field", [
    ({"bits": 0}, "bits"), ({"group": -1}, "group"), ({"kind": "posit"}, "kind"),
    ({"group": 64}, "group"), ({"zero_bits": 8}, "group"), ({"bits": True}, "bits")])
def test_format_validation(kwargs, field):
    args = {"name": "x", "bits": 4} | kwargs
    with pytest.raises(ValueError, match=field):
        Format(**args)


def test_nbytes_validation():
    with pytest.raises(ValueError, match="n must be"):
        BF16.nbytes(-1)
    with pytest.raises(ValueError, match="rows of 3"):
        INT4_G64.nbytes(10, inner=3)

# ------------------------------------------------------------------------------ validation


@pytest.mark.parametrize("make, match", [
    (lambda: Linear("l", 0, 64, 64), r"Linear\.m must be an int >= 1, got 0"),
    (lambda: Linear("l", 1, 64, True), r"Linear\.n .* got True"),
    (lambda: Linear("l", 1, 64, 64, rank=-1), r"Linear\.rank .* got -1"),
    (lambda: Linear("l", 1, 96, 64, "int4_g64"), r"Linear\.act_fmt int4_g64 needs k .* 96"),
    (lambda: Linear("l", 1, 64, 64, weight_fmt="int5"), r"Linear\.weight_fmt .* 'int5'"),
    (lambda: Linear("l", 1, 64, 64, bias=1), r"Linear\.bias must be a bool"),
    (lambda: Linear("a.b", 1, 64, 64), r"Linear\.name .* 'a\.b'"),
    (lambda: Linear("", 1, 64, 64), r"Linear\.name"),
    (lambda: Matmul("m", 1, 2, 3, 0), r"Matmul\.n"),
    (lambda: Conv2d("c", 1, 6, 4, 8, 8, 3, groups=4), r"Conv2d\.groups must divide"),
    (lambda: Conv2d("c", 1, 4, 4, 2, 2, 5, padding=0), r"Conv2d\.kernel leaves no output"),
    (lambda: Conv2d("c", 1, 4, 4, 8, 8, 3, padding=-2), r"Conv2d\.padding"),
    (lambda: Elementwise("e", "tanh", 4), r"Elementwise\.op must be one of"),
    (lambda: Elementwise("e", "add", 0), r"Elementwise\.elements"),
    (lambda: Norm("n", "batch", 4, 4), r"Norm\.norm must be 'layer' or 'rms', got 'batch'"),
    (lambda: Attention("a", 1, 6, 4, 8, 2, 2), r"Attention\.q_heads must be a multiple"),
    (lambda: Attention("a", 1, 4, 4, 8, 5, 4, causal=True), r"Attention\.q_tokens .* 5"),
    (lambda: Attention("a", 1, 4, 4, 8, 2, 4, window=(1, 1)), r"Attention\.window"),
    (lambda: Attention("a", 1, 4, 4, 8, 2, 4, True, (1, 0)), r"window recent .* got 0"),
    (lambda: Attention("a", 1, 4, 4, 8, 2, 4, True, (1, 2, 3)), r"Attention\.window"),
    (lambda: LinearAttention("la", 1, 0, 32, 4), r"LinearAttention\.heads"),
    (lambda: KVCacheWrite("w", 1, 4, 2, 8, 3), r"KVCacheWrite\.cache_tokens must be >= "),
    (lambda: KVCacheRead("r", 1, 4, 2, 8, out_fmt="fp7"), r"KVCacheRead\.out_fmt"),
    (lambda: Embedding("e", 1, 0, 8), r"Embedding\.vocab"),
])
def test_op_validation(make, match):
    with pytest.raises(ValueError, match=match):
        make()

# --------------------------------------------------------------------------- hand counts


def test_linear_costs_by_hand():
    lin = Linear("l", 2, 64, 3, rank=1, bias=True)
    assert lin.macs == 2 * 64 * 3 + 2 * 1 * (64 + 3)
    assert lin.weight_params == 3 * 64 + (64 + 3) + 3
    assert lin.weight_bytes == 2 * lin.weight_params
    assert (lin.input_bytes, lin.output_bytes) == (2 * 2 * 64, 2 * 2 * 3)
    q = Linear("q", 2, 64, 3, "int4_g64", "int4_g64", "bf16", rank=1, bias=True)
    # codes 96 B + 3 rows x 1 group x 2 B; branch (64 + 3) x 2 B; bias 3 x 2 B
    assert q.weight_bytes == 96 + 6 + 2 * 67 + 6
    assert q.input_bytes == 64 + 2 * 2  # 2 tokens: 64 B of codes, 2 group scales
    assert q.macs == lin.macs and q.weight_read_bytes == q.weight_bytes


def test_conv_matmul_norm_elementwise_by_hand():
    dw = Conv2d("dw", 1, 8, 8, 5, 5, 3, groups=8, bias=True)
    assert dw.depthwise and (dw.oh, dw.ow) == (5, 5)
    assert dw.macs == 8 * 25 * 9 and dw.weight_params == 8 * 9 + 8
    s2 = Conv2d("s2", 2, 4, 6, 5, 7, 3, stride=2)
    assert (s2.oh, s2.ow) == (3, 4) and s2.macs == 2 * 6 * 12 * 4 * 9
    assert not s2.depthwise and s2.output_bytes == 2 * 2 * 6 * 12
    mm = Matmul("mm", 3, 4, 5, 6)
    assert mm.macs == 360 and mm.input_bytes == 2 * (60 + 90) and mm.output_bytes == 144
    ln, rms = Norm("ln", "layer", 4, 8), Norm("rms", "rms", 4, 8, affine=False)
    assert (ln.weight_params, rms.weight_params, ln.macs, ln.vector_elements) == (16, 0, 0, 32)
    gate = Elementwise("g", "gate", 10)
    assert gate.inputs == 2 and gate.input_bytes == 40 and gate.output_bytes == 20
    quant = Elementwise("q", "quantize", 128, "bf16", "int4_g64")
    assert quant.input_bytes == 256 and quant.output_bytes == 64 + 4
    emb = Embedding("e", 3, 100, 8)
    assert emb.weight_bytes == 1600 and emb.weight_read_bytes == 48 and emb.input_bytes == 12


def test_kv_cache_ops_by_hand():
    w = KVCacheWrite("w", 2, 1, 8, 128, 320)
    assert w.output_bytes == 2 * 2 * 8 * 128 * 2 and w.resident_bytes == 320 * w.output_bytes
    r = KVCacheRead("r", 1, 10, 2, 4, "fp8_e4m3", "bf16")
    assert r.input_bytes == 160 + 4 and r.output_bytes == 320 and r.resident_bytes == 0


def _lite_la_brute_macs(heads: int, d: int, n: int) -> int:
    """Count the multiplies of the padded-v formulation loop by loop."""
    count = 0
    for _ in range(heads):
        for _tok in range(n):           # vk[(d+1) x d] += v_pad[:, t] k[:, t]^T
            count += (d + 1) * d
        for _tok in range(n):           # out[:, t] = vk q[:, t]
            count += (d + 1) * d
    return count


@pytest.mark.parametrize("heads, d, n", [(1, 1, 1), (2, 4, 5), (3, 8, 7)])
def test_linear_attention_macs(heads, d, n):
    la = LinearAttention("la", 1, heads, d, n)
    assert la.macs == _lite_la_brute_macs(heads, d, n) == 2 * heads * n * d * (d + 1)

# --------------------------------------------------------------- attention vs brute force


def _brute(q: int, kv: int, causal: bool, window: tuple[int, int] | None) -> tuple[int, int]:
    """(visible pairs, keys some query sees) by enumerating the mask's definition."""
    pairs, keys = 0, set()
    for p in range(kv - q, kv):
        for j in range(kv):
            ok = not causal or j <= p
            if window is not None:
                ok = ok and (j < window[0] or p - j < window[1])
            if ok:
                pairs += 1
                keys.add(j)
    return pairs, len(keys) if causal else kv


def test_attention_masks_against_brute_force():
    rng = random.Random(1234)
    for _ in range(400):
        kv = rng.randint(1, 40)
        q = rng.randint(1, kv)
        causal = rng.random() < 0.8
        window = (rng.randint(0, 6), rng.randint(1, 12)) if causal and rng.random() < 0.6 else None
        heads, group, d, batch = rng.randint(1, 3), rng.randint(1, 3), rng.randint(1, 8), 2
        att = Attention("a", batch, heads * group, heads, d, q, kv, causal, window)
        pairs, keys = _brute(q, kv, causal, window)
        assert att.visible_pairs == pairs, (q, kv, causal, window)
        assert att.keys_touched == keys, (q, kv, causal, window)
        assert att.macs == 2 * batch * heads * group * d * pairs
        assert att.input_bytes == 2 * batch * d * (q * heads * group + 2 * keys * heads)


def test_attention_counts_at_scale():
    dec = Attention("d", 1, 32, 8, 128, 1, 32768, causal=True)
    assert dec.visible_pairs == 32768 and dec.macs == 2 * 32 * 128 * 32768
    stream = Attention("s", 1, 32, 8, 128, 1, 32768, causal=True, window=(64, 256))
    assert stream.visible_pairs == 320 and stream.keys_touched == 320
    pre = Attention("p", 1, 4, 4, 8, 4096, 32768, causal=True)
    assert pre.visible_pairs == sum(range(32768 - 4096 + 1, 32769))
    full = Attention("f", 1, 24, 24, 128, 4608, 4608)
    assert full.macs == 2 * 24 * 128 * 4608 ** 2 and full.vector_elements == 24 * 4608 ** 2

# ---------------------------------------------------------------------------------- graphs


def _graph() -> ModelGraph:
    layer = [Norm("norm", "rms", 4, 64), Linear("qkv", 4, 64, 192, "int4", "int4", rank=8),
             KVCacheWrite("kv", 1, 4, 2, 32, 16),
             Attention("attn", 1, 2, 2, 32, 4, 16, True, (2, 4)),
             Elementwise("add", "add", 256)]
    return ModelGraph("toy", [
        Stage("embed", [Embedding("tok", 4, 100, 64)]),
        Stage("layer", layer, repeat=6, layers=3),
        Stage("again", [Linear("qkv", 4, 64, 192, "int4", "int4", rank=8)], 6, 3, "layer"),
        Stage("conv", [Conv2d("c", 1, 4, 4, 4, 4, 3, groups=4)], 2),
        Stage("la", [LinearAttention("la", 1, 2, 32, 16), Matmul("mm", 2, 2, 2, 2)])],
        "a toy", "tests", {"context": 16, "note": "x", "ratio": 0.5})


def test_graph_totals_by_hand():
    g = _graph()
    qkv = g.op("layer.qkv")
    t = g.totals()
    # weights: embedding once; layer weights x 3 layers ("again" shares them); conv x 2 layers
    expect_w = 100 * 64 * 2 + 3 * (64 * 2 + qkv.weight_bytes) + 2 * (4 * 9 * 2)
    assert t.weight_bytes == expect_w
    assert t.kv_cache_bytes == 3 * (2 * 16 * 2 * 32 * 2)
    assert t.macs == sum(op.macs * r for op, r in g) == (
        6 * (qkv.macs + g.op("layer.attn").macs) + 6 * qkv.macs + 2 * g.op("conv.c").macs
        + g.op("la.la").macs + 16)
    assert t.weight_read_bytes == 4 * 64 * 2 + 12 * qkv.weight_bytes + 6 * 64 * 2 + 2 * 72
    assert g.macs_by_kind()["linear"] == 12 * qkv.macs and "norm" in g.kinds()
    assert [s.name for s, _ in g.walk()][:2] == ["embed", "layer"]
    assert g.stage("again").weights == "layer" and g.stage("layer").layers == 3
    with pytest.raises(KeyError, match="stages: embed"):
        g.stage("nope")
    with pytest.raises(KeyError, match="no op 'x'"):
        g.op("layer.x")


def test_graph_round_trip_and_determinism():
    g = _graph()
    d1, d2 = g.to_dict(), _graph().to_dict()
    assert d1 == d2 and json.dumps(d1) == json.dumps(d2)
    back = ModelGraph.from_dict(json.loads(json.dumps(d1)))
    assert back == g and back.to_dict() == d1 and back.totals() == g.totals()
    assert dict(back.config) == {"context": 16, "note": "x", "ratio": 0.5}


def test_every_op_kind_round_trips():
    for op, _ in _graph():
        assert op_from_dict(json.loads(json.dumps(op.to_dict()))) == op
    assert set(OP_KINDS) >= {op.kind for op, _ in _graph()}
    kv_read = KVCacheRead("r", 1, 2, 2, 4)
    assert op_from_dict(kv_read.to_dict()) == kv_read


@pytest.mark.parametrize("bad, match", [
    ({"kind": "conv3d"}, "op kind must be one of"),
    ({"kind": "norm", "name": "n", "norm": "rms", "tokens": 1, "features": 2, "eps": 1},
     "Norm has no field 'eps'"),
])
def test_op_from_dict_errors(bad, match):
    with pytest.raises(ValueError, match=match):
        op_from_dict(bad)


def test_graph_from_dict_errors():
    d = _graph().to_dict()
    with pytest.raises(ValueError, match="schema must be 1, got 2"):
        ModelGraph.from_dict(d | {"schema": 2})
    with pytest.raises(ValueError, match="no field 'extra'"):
        ModelGraph.from_dict(d | {"extra": 1})
    d["stages"][0] = d["stages"][0] | {"color": "red"}
    with pytest.raises(ValueError, match="Stage has no field 'color'"):
        ModelGraph.from_dict(d)


def test_graph_validation():
    lin = Linear("l", 1, 64, 64)
    with pytest.raises(ValueError, match="duplicate op name 'l'"):
        Stage("s", [lin, lin])
    with pytest.raises(ValueError, match="duplicate stage name 's'"):
        ModelGraph("g", [Stage("s", [lin]), Stage("s", [lin])])
    with pytest.raises(ValueError, match="repeat 6 is not a multiple of layers 4"):
        Stage("s", [lin], 6, 4)
    with pytest.raises(ValueError, match="Stage.ops"):
        Stage("s", [])
    with pytest.raises(ValueError, match=r"Stage\.name"):
        Stage("a.b", [lin])
    with pytest.raises(ValueError, match="disagree on op 'l'"):
        ModelGraph("g", [Stage("a", [lin]), Stage("b", [Linear("l", 1, 64, 128)], 1, 1, "a")])
    with pytest.raises(ValueError, match="JSON scalar"):
        ModelGraph("g", [Stage("a", [lin])], config={"dims": [1, 2]})
    with pytest.raises(ValueError, match="ModelGraph.stages"):
        ModelGraph("g", [])
