"""The synthetic passkey task, the tiny causal transformer and its head-gated training recipe.

Token layout of one sequence of ``length`` tokens (ids: 0 BOS, 1 passkey marker ``PK``, 2..11 the
digits, 12.. the filler alphabet)::

    BOS  filler ... PK d1 d2 d3 d4  filler ...  PK d1 d2 d3 d4
         ^ order-2 Markov chain      ^ key at a random depth       ^ query: the last 5 tokens

The four digits are distinct. The filler is an order-2 Markov chain (next token a deterministic
function of the previous two with probability ``p_markov``, otherwise uniform): predictable from
*local* context, so under a language-modelling loss heads learn local jobs. Loss while training:
mean cross-entropy on the four answer positions (the query ``PK``, d1, d2, d3 predicting d1..d4)
plus mean cross-entropy on every filler-predicts-filler position whose order-2 context is filler.

**Recipe** (:class:`GateRecipe`, issue 18: retrieval must sit in a few heads that are needed
*together*, or a random pick of 25% of the heads finds them):

* *Narrow heads* (``head_dim`` 4 at ``d_model`` 48): one head's value path is too narrow to copy
  a digit alone, so the copy is shared by several heads and each of them is needed.
* *Hard head gates while training*: from step ``start * steps`` on, each step is either full
  attention (probability ``full_frac``) or gated: every head is retrieval (1) or streaming (0),
  drawn from ``sigmoid(logit)``, with a straight-through gradient to the logits (init ``init``,
  learning rate ``lr_mult`` x the model's) and ``l1 * mean(sigmoid(logits))`` added to the loss.
  The first ``start`` of the steps are full attention only, so retrieval is learned before the
  gates squeeze it.
* *Frozen tail with a head budget*: the last ``freeze`` of the steps use fixed gates, the
  ``budget`` largest logits (no sampling, no penalty), except that a tail step is full
  attention with probability ``tail_full_frac``: the model settles on exactly that many
  retrieval heads without the sampling noise, which would otherwise teach it redundancy (any
  head standing in for another, so that random picks work too). The tail is long (``freeze``
  0.4, from step 0.6 of the run, while the cosine learning rate is still a third of its peak)
  and mostly gated (``tail_full_frac`` 0.25), so the budget heads alone learn to answer.

Measured on seed 2 (3 layers x 8 heads, 2000 steps, ``start`` 0.4, ``freeze`` 0.2, tail gates
``logit > 0`` unless a budget is named): ``head_dim`` 16, ``l1`` 0.5 (1500 steps, gates from the
first step, no tail): 8 heads open, top-6 accuracy 0.99 but the best of 8 random 6-head picks
0.74; ``head_dim`` 8, ``l1`` 2: top-6 0.99, best random 0.84 (2 heads carry 0.84);
``head_dim`` 6, ``l1`` 2: top-6 0.84, best random 0.23; ``head_dim`` 4, ``l1`` 2: 10 heads open,
top-6 0.76; 12 heads of 4, ``l1`` 2: top-9 of 36 0.66; ``head_dim`` 4, ``l1`` 6: top-6 0.94,
best random 0.35. The last on seed 0 left 8 heads open (top-6 0.45); with ``budget`` 6 seed 0
reached top-6 0.96 with best random 0.04. A hinge penalty on ``sum(p) - 6`` instead closed
every gate (top-6 0.24). The budget equals 25% of the 24 heads: it decides how many heads the
model may use, not which - that is left to the gate optimisation of :mod:`golden.duo_identify`.

Measured on seed 4, where the earlier tail (``start`` 0.4, ``freeze`` 0.2, half the tail steps
full attention) failed: its six tail heads alone answered 0.70 (full 0.99; a greedy search for
the best six heads picked the same six); in full attention the model also leaned on a seventh
head (streaming it alone: 0.72) that the gate optimisation then ranked third, so its top-6 gave
0.57. A tail without full steps (``tail_full_frac`` 0) left top-6 at 0.57 and full at 0.93
(answer loss 0.13 in the tail: 400 steps at a low learning rate are too few). ``start`` 0.35,
``freeze`` 0.4, ``tail_full_frac`` 0.25: top-6 0.895 of full 0.977 (seed 3: 0.998 of 0.996).
Also opening each non-budget head with probability 0.25 in gated tail steps (head dropout
towards full attention) lifted seed 0's 12-head accuracy (0.975 to 0.992) but dropped seed 4's
top-6 to 0.838 of 0.979, so it is not part of the recipe.

The training gates only shape the model; which heads are retrieval heads is decided afterwards by
DuoAttention's own gate optimisation (:mod:`golden.duo_identify`). Attention with hard 0/1 gates
(no gradient) runs as one ``scaled_dot_product_attention`` with a per-head boolean mask (causal
or sink + recent window); soft or differentiable gates as ``st + a * (full - st)`` from two SDPA
calls, which equals :func:`golden.duo_attention.mixed_attention` to float32 rounding (tested).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .arrays import ArrayLike, array_function
from .duo_attention import causal_mask, streaming_mask

__all__ = ["GateRecipe", "PasskeyTask", "TinyLM", "TinyLMConfig", "passkey_accuracy",
           "train_tiny_lm"]

_BOS, _PK, _DIGIT0, _FILL0 = 0, 1, 2, 12
_NDIG = 4


@dataclass(frozen=True)
class PasskeyTask:
    """Sequence length, filler alphabet and Markov predictability; see module docstring."""

    length: int = 128
    n_filler: int = 16
    p_markov: float = 0.9
    table_seed: int = 1234

    def __post_init__(self) -> None:
        if self.length < 40:
            raise ValueError(f"length must be >= 40, got {self.length}")

    @property
    def vocab(self) -> int:
        return _FILL0 + self.n_filler

    @property
    def answer_positions(self) -> torch.Tensor:
        """Positions whose next-token prediction is a passkey digit (query ``PK``, d1..d3)."""
        return torch.arange(self.length - _NDIG - 1, self.length - 1)

    def _table(self) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.table_seed)
        return torch.randint(0, self.n_filler, (self.n_filler, self.n_filler), generator=g)

    def batch(self, n: int, g: torch.Generator, min_gap: int = 22
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``n`` sequences: ``(tokens (n, L), lm_mask (n, L-1), key_pos (n,))``.

        ``lm_mask[b, t]`` marks the filler positions whose next-token loss is used. The key block
        starts at ``key_pos`` in ``[5, L - 5 - min_gap - 5]``, so every answer position is at
        least ``min_gap`` tokens after the key's last digit.
        """
        L, nf = self.length, self.n_filler
        table = self._table()
        x = torch.empty(n, L, dtype=torch.long)
        x[:, 0] = torch.randint(0, nf, (n,), generator=g)
        x[:, 1] = torch.randint(0, nf, (n,), generator=g)
        for t in range(2, L):
            det = table[x[:, t - 2], x[:, t - 1]]
            rnd = torch.randint(0, nf, (n,), generator=g)
            use = torch.rand(n, generator=g) < self.p_markov
            x[:, t] = torch.where(use, det, rnd)
        tok = x + _FILL0
        tok[:, 0] = _BOS
        digits = torch.argsort(torch.rand(n, 10, generator=g), dim=1)[:, :_NDIG] + _DIGIT0
        hi = L - _NDIG - 1 - min_gap - _NDIG - 1
        key_pos = torch.randint(5, hi + 1, (n,), generator=g)
        block = torch.cat([torch.full((n, 1), _PK), digits], dim=1)
        rows = torch.arange(n).unsqueeze(1)
        tok[rows, key_pos.unsqueeze(1) + torch.arange(_NDIG + 1)] = block
        tok[:, L - _NDIG - 1:] = block
        filler = tok >= _FILL0
        lm_mask = filler[:, :-2] & filler[:, 1:-1] & filler[:, 2:]
        lm_mask = torch.cat([torch.zeros(n, 1, dtype=torch.bool), lm_mask], dim=1)
        return tok, lm_mask, key_pos


@dataclass(frozen=True)
class TinyLMConfig:
    """Decoder shape: ``layers`` x ``heads`` MHA heads of size ``head_dim``.

    ``head_dim`` is decoupled from ``d_model`` (see the module docstring for why it is narrow).
    """

    vocab: int = 28
    length: int = 128
    d_model: int = 64
    layers: int = 4
    heads: int = 8
    head_dim: int = 16
    mlp: int = 128
    sink: int = 4
    recent: int = 16


def _is_hard(alpha: torch.Tensor) -> bool:
    """Exactly 0/1 gates that need no gradient: the fast boolean-mask path applies."""
    return not alpha.requires_grad and bool(((alpha == 0) | (alpha == 1)).all())


class _Block(nn.Module):
    def __init__(self, c: TinyLMConfig) -> None:
        super().__init__()
        self.c = c
        self.ln1, self.ln2 = nn.LayerNorm(c.d_model), nn.LayerNorm(c.d_model)
        self.qkv = nn.Linear(c.d_model, 3 * c.heads * c.head_dim)
        self.o = nn.Linear(c.heads * c.head_dim, c.d_model)
        self.fc1, self.fc2 = nn.Linear(c.d_model, c.mlp), nn.Linear(c.mlp, c.d_model)

    def _attention(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                   alpha: torch.Tensor | None) -> torch.Tensor:
        """Full attention (None), per-head boolean masks (hard gates) or the gated mix
        ``(1 - a) * streaming + a * full`` (differentiable in ``a``)."""
        if alpha is None or (_is_hard(alpha) and bool((alpha == 1).all())):
            return F.scaled_dot_product_attention(q, k, v, is_causal=True)
        t = q.shape[2]
        stream = streaming_mask(t, t, self.c.sink, self.c.recent)
        if _is_hard(alpha):
            mask = torch.where(alpha.bool().reshape(-1, 1, 1), causal_mask(t, t), stream)
            return F.scaled_dot_product_attention(q, k, v, attn_mask=mask.unsqueeze(0))
        full = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        st = F.scaled_dot_product_attention(q, k, v, attn_mask=stream)
        return st + alpha.reshape(1, -1, 1, 1) * (full - st)

    def forward(self, x: torch.Tensor, alpha: torch.Tensor | None) -> torch.Tensor:
        b, t, _ = x.shape
        h, hd = self.c.heads, self.c.head_dim
        q, k, v = self.qkv(self.ln1(x)).reshape(b, t, 3, h, hd).permute(2, 0, 3, 1, 4)
        a = self._attention(q, k, v, alpha)
        x = x + self.o(a.transpose(1, 2).reshape(b, t, h * hd))
        return x + self.fc2(F.gelu(self.fc1(self.ln2(x))))


class TinyLM(nn.Module):
    """Pre-LN causal transformer with learned positions; ``alpha`` ``(layers, heads)`` or None."""

    def __init__(self, c: TinyLMConfig) -> None:
        super().__init__()
        self.c = c
        self.tok = nn.Embedding(c.vocab, c.d_model)
        self.pos = nn.Embedding(c.length, c.d_model)
        self.blocks = nn.ModuleList(_Block(c) for _ in range(c.layers))
        self.ln = nn.LayerNorm(c.d_model)
        self.head = nn.Linear(c.d_model, c.vocab, bias=False)

    def hidden(self, tok: torch.Tensor, alpha: torch.Tensor | None = None) -> torch.Tensor:
        """Final (normed) hidden states ``(batch, L, d_model)``."""
        x = self.tok(tok) + self.pos(torch.arange(tok.shape[1]))
        for i, blk in enumerate(self.blocks):
            x = blk(x, None if alpha is None else alpha[i])
        return self.ln(x)

    def forward(self, tok: torch.Tensor, alpha: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.hidden(tok, alpha))


@array_function("tok", "alpha", native="torch")
def passkey_accuracy(model: TinyLM, task: PasskeyTask, tok: ArrayLike,
                     alpha: ArrayLike | None = None, chunk: int = 256) -> float:
    """Fraction of sequences whose four digits are all argmax-correct (teacher forced)."""
    pos = task.answer_positions
    ok = []
    with torch.no_grad():
        for s in range(0, tok.shape[0], chunk):
            t = tok[s:s + chunk]
            pred = model(t, alpha)[:, pos].argmax(-1)
            ok.append((pred == t[:, pos + 1]).all(dim=1))
    return float(torch.cat(ok).float().mean())


def _loss(model: TinyLM, task: PasskeyTask, tok: torch.Tensor, lm_mask: torch.Tensor,
          alpha: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    logits = model(tok, alpha)
    pos = task.answer_positions
    ans = F.cross_entropy(logits[:, pos].flatten(0, 1), tok[:, pos + 1].flatten())
    lm = F.cross_entropy(logits[:, :-1][lm_mask], tok[:, 1:][lm_mask])
    return ans, lm


@dataclass(frozen=True)
class GateRecipe:
    """Hard head gates while training (see the module docstring); fractions are of all steps.

    ``l1`` weighs the mean gate probability, ``init`` is the gate logits' start, ``lr_mult`` their
    learning rate over the model's, ``full_frac`` the chance a sampled-gate step is full
    attention, ``start`` the full-attention-only lead-in, ``freeze`` the fixed-gate tail,
    ``budget`` the number of heads open in it (the largest logits; 0: every ``logit > 0``) and
    ``tail_full_frac`` the chance a tail step is full attention. Raises ValueError for a fraction
    outside ``[0, 1]``, ``start + freeze > 1`` or a negative ``budget``.
    """

    l1: float = 6.0
    init: float = 2.0
    lr_mult: float = 10.0
    full_frac: float = 0.5
    start: float = 0.35
    freeze: float = 0.4
    budget: int = 6
    tail_full_frac: float = 0.25

    def __post_init__(self) -> None:
        for name in ("full_frac", "start", "freeze", "tail_full_frac"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.start + self.freeze > 1.0:
            raise ValueError(f"start + freeze must be <= 1, got {self.start} + {self.freeze}")
        if self.budget < 0:
            raise ValueError(f"budget must be >= 0, got {self.budget}")


def _lr_factor(step: int, steps: int) -> float:
    warm = max(1, steps // 20)
    if step < warm:
        return (step + 1) / warm
    return max(0.02, 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, steps - warm))))


def _sample_gates(logits: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Hard 0/1 gates drawn from ``sigmoid(logits)`` with a straight-through gradient."""
    p = torch.sigmoid(logits)
    hard = (torch.rand(p.shape, generator=g) < p.detach()).float()
    return hard + p - p.detach(), p


def _frozen_gates(logits: torch.Tensor, budget: int) -> torch.Tensor:
    """Fixed gates for the tail: the ``budget`` largest logits (ties: lower index), or every
    ``logit > 0`` when ``budget`` is 0."""
    if not budget:
        return (logits > 0).float()
    top = torch.sort(logits.flatten(), descending=True, stable=True).indices[:budget]
    out = torch.zeros(logits.numel())
    out[top] = 1.0
    return out.reshape(logits.shape)


def train_tiny_lm(task: PasskeyTask, cfg: TinyLMConfig, steps: int, seed: int = 0,
                  batch: int = 32, lr: float = 3e-3, gates: GateRecipe | None = GateRecipe(),
                  log_every: int = 0) -> TinyLM:
    """Train on fresh batches (AdamW, warmup + cosine), with hard head gates when ``gates``.

    Deterministic for a given ``seed`` (model init and data). Returns the model in eval mode with
    frozen parameters; with ``log_every`` it prints losses, open gates and the final training
    gate probabilities.
    """
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed + 1)
    model = TinyLM(cfg)
    logits = nn.Parameter(torch.full((cfg.layers, cfg.heads), gates.init if gates else 0.0))
    groups = [{"params": list(model.parameters()), "lr": lr}]
    if gates:
        groups.append({"params": [logits], "lr": lr * gates.lr_mult, "weight_decay": 0.0})
    opt = torch.optim.AdamW(groups, lr=lr, weight_decay=0.01, betas=(0.9, 0.98))
    base = [grp["lr"] for grp in opt.param_groups]
    for step in range(steps):
        for grp, b in zip(opt.param_groups, base, strict=True):
            grp["lr"] = b * _lr_factor(step, steps)
        tok, lm_mask, _ = task.batch(batch, g)
        alpha, pen = None, torch.zeros(())
        draw = float(torch.rand((), generator=g)) if gates else 1.0
        if gates and step >= (1 - gates.freeze) * steps:
            if draw >= gates.tail_full_frac:
                alpha = _frozen_gates(logits.detach(), gates.budget)
        elif gates and step >= gates.start * steps and draw >= gates.full_frac:
            alpha, p = _sample_gates(logits, g)
            pen = gates.l1 * p.mean()
        ans, lm = _loss(model, task, tok, lm_mask, alpha)
        opt.zero_grad(set_to_none=True)
        (ans + lm + pen).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if log_every and (step % log_every == 0 or step == steps - 1):
            open_ = int((logits > 0).sum())
            print(f"step {step:5d} answer loss {ans.item():.4f} lm loss {lm.item():.4f} "
                  f"gates open {open_}", flush=True)
    if gates and log_every:
        print("training gate probabilities:")
        for row in torch.sigmoid(logits).tolist():
            print("  " + " ".join(f"{x:4.2f}" for x in row))
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model
