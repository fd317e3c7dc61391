"""``mapping.torch_attention.SoftmaxAttention``: the unmasked softmax attention leaf equals
torch's attention with the KV heads repeated over their query groups, imports as one
``Attention`` (non-causal; one query: causal, seeing every key) and rejects bad shapes."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mapping.fx_import import import_items
from mapping.ir import Attention
from mapping.torch_attention import SoftmaxAttention


class _Uses(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.attn = SoftmaxAttention()

    def forward(self, q, k, v):
        return self.attn(q, k, v) * 2


def _qkv(hq: int, hk: int, nq: int, nk: int, d: int = 8, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(2, hq, nq, d, generator=g), torch.randn(2, hk, nk, d, generator=g),
            torch.randn(2, hk, nk, d, generator=g))


@pytest.mark.parametrize("hq, hk", [(4, 4), (4, 2), (6, 1)])
def test_equals_sdpa_with_repeated_kv_heads(hq, hk):
    q, k, v = _qkv(hq, hk, 5, 7)
    g = hq // hk
    want = F.scaled_dot_product_attention(q, k.repeat_interleave(g, 1),
                                          v.repeat_interleave(g, 1))
    torch.testing.assert_close(SoftmaxAttention()(q, k, v), want, rtol=0, atol=0)


@pytest.mark.parametrize("nq, causal", [(5, False), (1, True)])
def test_imports_as_one_attention(nq, causal):
    q, k, v = _qkv(4, 2, nq, 7)
    items = import_items(_Uses().eval(), (q, k, v))
    ops = [(item.path, op) for item in items for op in item.ops]
    att = [(p, op) for p, op in ops if isinstance(op, Attention)]
    assert len(att) == 1 and att[0][0] == "attn"
    op = att[0][1]
    assert (op.batch, op.q_heads, op.kv_heads, op.head_dim, op.q_tokens, op.kv_tokens,
            op.causal, op.window) == (2, 4, 2, 8, nq, 7, causal, None)
    assert op.visible_pairs == nq * 7


@pytest.mark.parametrize("shapes", [((2, 3, 5, 8), (2, 2, 7, 8), (2, 2, 7, 8)),
                                    ((2, 4, 5, 8), (2, 2, 7, 8), (2, 2, 6, 8)),
                                    ((2, 4, 5, 8), (2, 2, 7, 4), (2, 2, 7, 4)),
                                    ((4, 5, 8), (2, 7, 8), (2, 7, 8))])
def test_rejects_bad_shapes(shapes):
    q, k, v = (torch.zeros(s) for s in shapes)
    with pytest.raises(ValueError, match="SoftmaxAttention takes q"):
        SoftmaxAttention()(q, k, v)
