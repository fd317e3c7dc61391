import pytest

from sw.roofline import (
    DEVICES,
    KernelCost,
    duo_decode_costs,
    linear_attention_costs,
    sequence_time,
    svdquant_costs,
)


class TestDevice:
    def test_int4_falls_back_to_int8_on_hopper(self):
        h100 = DEVICES["H100"]
        assert h100.peak("int4") == (h100.peaks["int8"], "int8")
        assert DEVICES["RTX4090-laptop"].peak("int4")[1] == "int4"

    def test_unknown_precision(self):
        with pytest.raises(ValueError, match="has no fp64 peak"):
            DEVICES["H100"].peak("fp64")


class TestKernelCost:
    def test_roofline_max(self):
        dev = DEVICES["H100"]
        c = KernelCost("x", ops=989e12, bytes=3.35e12 / 2)     # 1 s compute, 0.5 s memory
        assert c.time(dev) == pytest.approx(1.0) and c.bound(dev) == "compute"
        m = KernelCost("y", ops=0.0, bytes=3.35e12)
        assert m.time(dev) == pytest.approx(1.0) and m.bound(dev) == "memory"


class TestWorkloads:
    def test_svdquant_fusion_saves_traffic(self):
        fused = svdquant_costs(4096, 3072, 3072)
        unfused = svdquant_costs(4096, 3072, 3072, fused=False)
        fb, ub = (sum(c.bytes for c in x) for x in (fused, unfused))
        # unfused re-reads X (fp16) for lora_down and reads + rewrites Y (fp16) for lora_up
        extra = 4096 * 3072 * 2 + 2 * 4096 * 3072 * 2
        assert ub - fb == pytest.approx(extra, rel=0.01)
        for dev in DEVICES.values():
            assert sequence_time(unfused, dev) > sequence_time(fused, dev)

    def test_duo_halves_decode_traffic_at_long_context(self):
        full = duo_decode_costs(131072, duo=False)[0].bytes
        duo = duo_decode_costs(131072, retrieval_fraction=0.5)[0].bytes
        assert 1.95 < full / duo <= 2.0
        assert full == 32 * 8 * 131072 * 128 * 2 * 2   # layers, heads, ctx, d, K+V, fp16

    def test_duo_bad_fraction(self):
        with pytest.raises(ValueError, match="retrieval_fraction must be in"):
            duo_decode_costs(1024, retrieval_fraction=1.5)

    def test_linear_attention_is_linear_in_tokens(self):
        a = sum(c.ops for c in linear_attention_costs(1024, 70, 32))
        b = sum(c.ops for c in linear_attention_costs(4096, 70, 32))
        assert b == pytest.approx(4 * a)
