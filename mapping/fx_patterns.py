"""Multi-node patterns of the torch import (see :mod:`mapping.fx_import`).

Some IR operators are several torch calls in a traced graph; :func:`find_patterns` finds them
before the call-by-call mapping, each as an **anchor** node that emits the operator and the other
nodes it covers (which emit nothing). Every intermediate result must feed the pattern only.

* **softmax attention**: ``matmul(q, k^T)`` -> optional casts, scaling by a constant and an
  additive or ``masked_fill`` bookkeeping mask -> ``softmax`` -> optional casts and dropout ->
  ``matmul(., v)``: one :class:`~mapping.ir.Attention` (mask classified as in
  :func:`~mapping.fx_map.classify_mask`);
* **rotate-half RoPE** (Hugging Face ``apply_rotary_pos_emb``): ``x * cos + cat(-x2, x1) *
  sin``: one ``rope`` element-wise op over ``x``;
* **RMSNorm** written out: ``x * rsqrt(mean(x^2, -1, keepdim) + eps)`` (through casts), with an
  optional ``* weight``: one ``rms`` :class:`~mapping.ir.Norm`.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass

import torch.fx

from .fx_map import Unsupported, attention
from .fx_trace import CAST_OPS, Traced, op_name
from .ir import Elementwise, Norm, Op

__all__ = ["Match", "find_patterns"]

Node = torch.fx.Node


@dataclass(frozen=True)
class Match:
    """A pattern: ``anchor`` emits ``ops()``, the ``covered`` nodes emit nothing."""

    anchor: Node
    covered: frozenset[Node]
    ops: Callable[[], list[Op]]


def _users(n: Node) -> list[Node]:
    """Users of ``n`` that compute (export's dtype and shape asserts left out)."""
    return [u for u in n.users if not op_name(u).startswith("_assert")]


def _single(n: object) -> bool:
    return isinstance(n, Node) and len(_users(n)) == 1


def _only_user(n: Node, name: str | tuple[str, ...]) -> Node | None:
    names = (name,) if isinstance(name, str) else name
    users = _users(n)
    return users[0] if len(users) == 1 and op_name(users[0]) in names else None


def _other(n: Node, known: object) -> object:
    args = list(n.args[:2])
    return args[1] if len(args) == 2 and args[0] is known else args[0]


def _is_constant(t: Traced, arg: object) -> bool:
    meta = t.tensor(arg)
    return isinstance(arg, (int, float)) or (meta is not None and not t.is_active(arg)
                                             and meta.numel == 1)


def _scores_back(t: Traced, start: object) -> tuple[Node | None, list[Node], object, bool]:
    """From the softmax input back to ``q k^T``: (matmul, chain, mask, mask is fill)."""
    chain: list[Node] = []
    mask, fill, cur = None, False, start
    while _single(cur):
        name = op_name(cur)
        if name in ("matmul", "bmm"):
            return cur, chain, mask, fill
        chain.append(cur)
        if name in CAST_OPS:
            cur = cur.args[0]
        elif name in ("mul", "div") and len(cur.args) == 2 and _is_constant(t, cur.args[1]):
            cur = cur.args[0]
        elif name == "add" and mask is None and len(cur.args) == 2 and any(
                not t.is_active(a) for a in cur.args):
            mask = next(a for a in cur.args if not t.is_active(a))
            cur = _other(cur, mask)
        elif name == "masked_fill" and mask is None:
            mask, fill, cur = cur.args[1], True, cur.args[0]
        else:
            break
    return None, chain, mask, fill


def _attention_at(t: Traced, s: Node) -> Match | None:
    m1, chain, mask, fill = _scores_back(t, s.args[0])
    if m1 is None or not all(t.is_active(a) for a in m1.args[:2]):
        return None
    cur, tail = s, []
    while (nxt := _only_user(cur, (*CAST_OPS, "dropout"))) is not None:
        tail.append(nxt)
        cur = nxt
    m2 = _only_user(cur, ("matmul", "bmm"))
    if m2 is None or m2.args[0] is not cur:
        return None
    q, kt, v = m1.args[0], m1.args[1], m2.args[1]
    return Match(s, frozenset({m1, *chain, *tail, m2}),
                 lambda: [attention(t, q, kt, v, mask, k_transposed=True, fills=fill)])


def _rope_at(t: Traced, neg: Node) -> Match | None:
    x = t.origin(neg.args[0])
    cat = _only_user(neg, "cat")
    if cat is None or len(cat.args[0]) != 2 or t.origin(cat.args[0][1]) is not x:
        return None
    m2 = _only_user(cat, "mul")
    add = _only_user(m2, "add") if m2 is not None else None
    if add is None or t.is_active(_other(m2, cat)):
        return None
    m1 = _other(add, m2)
    if not _single(m1) or op_name(m1) != "mul":
        return None
    if not any(t.origin(a) is x for a in m1.args) or all(t.is_active(a) for a in m1.args):
        return None
    out = t.tensor(add)
    fmt = t.tensor(m1).fmt if t.tensor(m1) else out.fmt
    return Match(add, frozenset({neg, cat, m2, m1, add}),
                 lambda: [Elementwise("rope", "rope", out.numel, fmt, out.fmt)])


def _rms_at(t: Traced, r: Node) -> Match | None:
    cur, covered = r.args[0], [r]
    if _single(cur) and op_name(cur) == "add":
        covered.append(cur)
        cur = next((a for a in cur.args if isinstance(a, Node)), None)
    if not _single(cur) or op_name(cur) != "mean":
        return None
    power = cur.args[0]
    if not isinstance(power, Node) or op_name(power) != "pow" or power.args[1:2] != (2,):
        return None
    dims = cur.args[1] if len(cur.args) > 1 else cur.kwargs.get("dim")
    dims = [dims] if isinstance(dims, int) else list(dims or ())
    if dims not in ([-1], [len(t.tensor(power).shape) - 1]):
        return None
    x = t.origin(power.args[0])
    norm = _only_user(r, "mul")
    if norm is None or t.origin(_other(norm, r)) is not x:
        return None
    covered += [cur, power, norm]
    end = norm
    while (nxt := _only_user(end, tuple(CAST_OPS))) is not None:
        end = nxt
    scale = _only_user(end, "mul")
    weight = t.weight(_other(scale, end)) if scale is not None else None
    features = t.tensor(norm).shape[-1]
    affine = weight is not None and tuple(weight.shape) == (features,)
    anchor = scale if affine else norm
    src = power.args[0]
    while isinstance(src, Node) and op_name(src) in CAST_OPS:
        src = src.args[0]
    fmt, tokens = t.tensor(src).fmt, t.tensor(norm).numel // features
    return Match(anchor, frozenset({*covered, anchor}),
                 lambda: [Norm("norm", "rms", tokens, features, fmt, affine=affine)])


_FINDERS = {"softmax": _attention_at, "neg": _rope_at, "rsqrt": _rms_at}


def find_patterns(t: Traced, exclude: Collection[Node] = ()) -> tuple[dict[Node, Match],
                                                                      dict[Node, str]]:
    """``(anchor -> match, covered node -> its anchor's name)`` over the traced graph; a node
    covered by a match is not matched again, and no match covers a node of ``exclude`` (the
    nodes of inlined IR leaves)."""
    anchors: dict[Node, Match] = {}
    covered: dict[Node, str] = {}
    for node in t.gm.graph.nodes:
        finder = _FINDERS.get(op_name(node))
        if finder is None or node in covered or node in exclude or not t.is_active(node):
            continue
        try:
            match = finder(t, node)
        except (Unsupported, ValueError, AttributeError, TypeError):
            match = None  # a candidate of unexpected shape or dtype is no match
        if match is None or match.covered & covered.keys() or any(
                n in exclude for n in match.covered):
            continue
        anchors[match.anchor] = match
        covered.update({n: match.anchor.name for n in match.covered})
    return anchors, covered
