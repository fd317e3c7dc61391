"""KV-cache memory accounting."""

from __future__ import annotations

import json

import pytest

from golden.kv_memory import (
    CONFIGS,
    KVModelConfig,
    duo_bytes,
    full_bytes,
    main,
    ratio,
    retrieval_heads,
)


def test_formulas_by_hand_llama2():
    cfg = CONFIGS["llama-2-7b-32k"]
    t = 32768
    # 2 (K and V) * 32 layers * 32 heads * 128 dims * 2 bytes = 512 KiB per token
    assert full_bytes(cfg, t) == 524288 * t == 16 * 2**30
    assert retrieval_heads(cfg) == 256
    # 256 heads keep 32768 tokens, 768 heads keep 64 + 256 = 320 tokens; 512 bytes/head/token
    assert duo_bytes(cfg, t) == 512 * (256 * 32768 + 768 * 320)
    assert ratio(cfg, t) == pytest.approx(16 * 2**30 / (512 * (256 * 32768 + 768 * 320)))


def test_short_context_and_gqa():
    cfg = CONFIGS["llama-3-8b-1048k"]
    assert retrieval_heads(cfg) == 128
    assert full_bytes(cfg, 100) == 2 * 32 * 8 * 128 * 2 * 100
    assert duo_bytes(cfg, 100) == full_bytes(cfg, 100)  # shorter than sink + recent
    assert ratio(cfg, 0) == 1.0


@pytest.mark.parametrize("key", list(CONFIGS))
def test_ratio_approaches_inverse_fraction(key):
    cfg = CONFIGS[key]
    limit = 1 / cfg.retrieval_fraction
    rs = [ratio(cfg, t) for t in (2**15, 2**17, 2**20, 2**24)]
    assert all(a < b for a, b in zip(rs, rs[1:], strict=False))
    assert rs[-1] == pytest.approx(limit, rel=1e-3) and rs[-1] < limit


def test_main_prints_table(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    data = json.loads(out[-1])
    assert len(data["rows"]) == 12
    assert any("1048576" in line for line in out)


def test_bad_config():
    with pytest.raises(ValueError, match=r"retrieval_fraction must be in \(0, 1\], got 1.5"):
        KVModelConfig("x", 1, 1, 1, 1.5)
    with pytest.raises(ValueError, match=r"sink must be an int >= 0, got -1"):
        KVModelConfig("x", 1, 1, 1, 0.5, sink=-1)
    with pytest.raises(ValueError, match=r"tokens must be an int >= 0, got -5"):
        full_bytes(CONFIGS["llama-2-7b-32k"], -5)
