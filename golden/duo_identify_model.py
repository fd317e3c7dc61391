"""The synthetic passkey task, the tiny causal transformer and its head-gated training recipe.

Token layout of one sequence of ``length`` tokens (ids: 0 BOS, 1 passkey marker ``PK``, then the
``symbols`` passkey "digits" (default 10: ids 2..11), then the filler alphabet)::

    BOS  filler ... PK d1 d2 d3 d4  filler ...  PK d1 d2 d3 d4
         ^ order-2 Markov chain      ^ key at a random depth       ^ query: the last 5 tokens

The ``key_len`` (default four) digits are distinct. The filler is an order-2 Markov chain (next
token a deterministic function of the previous two with probability ``p_markov``, otherwise
uniform): predictable from *local* context, so under a language-modelling loss heads learn local
jobs. Loss while training: mean cross-entropy on the answer positions (the query ``PK``, d1, d2,
d3 predicting d1..d4) plus mean cross-entropy on every filler-predicts-filler position whose
order-2 context is filler.

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
  0.5) and mostly gated (``tail_full_frac`` 0.25), so the budget heads alone learn to answer.
* *Supersets of the budget*: with probability ``tail_open`` a gated tail step also opens each
  other head with a probability ``u`` drawn uniformly per step (from none of them to all), so
  the model answers with the budget plus any other heads too: deploying the top 12 of the
  optimised gates must not cost accuracy that the top 6 had.
* *Knockout steps*: with probability ``knockout`` a tail step is such a gated step with one
  budget head (drawn uniformly) streaming, and the answer loss ``ce`` is replaced by
  ``relu(ln(symbols) - ce)``, pushing the answer towards chance. Every budget head is then
  needed whatever the other heads do, so retrieval can neither collapse into two of the six
  (a random 6 of 24 holds two given heads 5.4% of the time) nor lean on a seventh head outside
  the budget. :attr:`TinyLM.budget_heads` records the six; the gate optimisation of
  :mod:`golden.duo_identify` does not see them, and its table counts how many it found.

How each part of the recipe was chosen, with the measurements on seeds 0-9 that ruled out the
alternatives (wider heads, a larger passkey alphabet, shorter tails, no knockout), is in
``docs/duo_identify.md``.

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

_BOS, _PK, _DIGIT0 = 0, 1, 2


@dataclass(frozen=True)
class PasskeyTask:
    """Sequence length, filler alphabet and Markov predictability; see module docstring."""

    length: int = 128
    n_filler: int = 16
    p_markov: float = 0.9
    table_seed: int = 1234
    symbols: int = 10
    key_len: int = 4

    def __post_init__(self) -> None:
        if self.length < 40:
            raise ValueError(f"length must be >= 40, got {self.length}")
        if not 1 <= self.key_len <= self.symbols:
            raise ValueError(f"key_len must be in 1..symbols ({self.symbols}), "
                             f"got {self.key_len}")

    @property
    def _fill0(self) -> int:
        return _DIGIT0 + self.symbols

    @property
    def vocab(self) -> int:
        return self._fill0 + self.n_filler

    @property
    def answer_positions(self) -> torch.Tensor:
        """Positions whose next-token prediction is a passkey digit (query ``PK``, d1..)."""
        return torch.arange(self.length - self.key_len - 1, self.length - 1)

    def _table(self) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.table_seed)
        return torch.randint(0, self.n_filler, (self.n_filler, self.n_filler), generator=g)

    def batch(self, n: int, g: torch.Generator, min_gap: int = 22
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``n`` sequences: ``(tokens (n, L), lm_mask (n, L-1), key_pos (n,))``.

        ``lm_mask[b, t]`` marks the filler positions whose next-token loss is used. The key block
        (``PK`` and ``key_len`` symbols) starts at ``key_pos`` in
        ``[5, L - 2 (key_len + 1) - min_gap]``, so every answer position is at least ``min_gap``
        tokens after the key's last symbol.
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
        nk = self.key_len
        tok = x + self._fill0
        tok[:, 0] = _BOS
        digits = torch.argsort(torch.rand(n, self.symbols, generator=g), dim=1)[:, :nk] + _DIGIT0
        hi = L - nk - 1 - min_gap - nk - 1
        if hi < 5:
            raise ValueError(f"length {L} is too short for a {nk}-symbol key at least "
                             f"{min_gap} tokens before the query: needs >= {L + 5 - hi}")
        key_pos = torch.randint(5, hi + 1, (n,), generator=g)
        block = torch.cat([torch.full((n, 1), _PK), digits], dim=1)
        rows = torch.arange(n).unsqueeze(1)
        tok[rows, key_pos.unsqueeze(1) + torch.arange(nk + 1)] = block
        tok[:, L - nk - 1:] = block
        filler = tok >= self._fill0
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
    """Pre-LN causal transformer with learned positions; ``alpha`` ``(layers, heads)`` or None.

    The buffer ``budget_heads`` ``(layers, heads)`` holds the 0/1 gates of the training recipe's
    frozen tail (all zero without one): the heads the model was trained to retrieve with, saved
    with the weights so that a loaded model can be scored against them.
    """

    def __init__(self, c: TinyLMConfig) -> None:
        super().__init__()
        self.c = c
        self.register_buffer("budget_heads", torch.zeros(c.layers, c.heads))
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
    """Fraction of sequences whose passkey symbols are all argmax-correct (teacher forced)."""
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
    ``budget`` the number of heads open in it (the largest logits; 0: every ``logit > 0``),
    ``tail_full_frac`` the chance a tail step is full attention, ``knockout`` the chance it is a
    knockout step and ``tail_open`` the chance a gated tail step also opens other heads. Raises
    ValueError for a fraction outside ``[0, 1]``, ``start + freeze > 1``,
    ``tail_full_frac + knockout > 1`` or a negative ``budget``.
    """

    l1: float = 6.0
    init: float = 2.0
    lr_mult: float = 10.0
    full_frac: float = 0.5
    start: float = 0.35
    freeze: float = 0.5
    budget: int = 6
    tail_full_frac: float = 0.25
    knockout: float = 0.25
    tail_open: float = 0.5

    def __post_init__(self) -> None:
        for name in ("full_frac", "start", "freeze", "tail_full_frac", "knockout", "tail_open"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.start + self.freeze > 1.0:
            raise ValueError(f"start + freeze must be <= 1, got {self.start} + {self.freeze}")
        if self.budget < 0:
            raise ValueError(f"budget must be >= 0, got {self.budget}")
        if self.tail_full_frac + self.knockout > 1.0:
            raise ValueError(f"tail_full_frac + knockout must be <= 1, got "
                             f"{self.tail_full_frac} + {self.knockout}")


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


def _tail_gates(frozen: torch.Tensor, open_frac: float, knock: bool,
                g: torch.Generator) -> torch.Tensor:
    """A gated tail step: the heads open in ``frozen``; with probability ``open_frac`` also each
    other head with probability ``u``, ``u`` uniform in ``[0, 1)`` (so from none to all of them);
    with ``knock`` one head of ``frozen`` (drawn uniformly) streaming."""
    widen = float(torch.rand((), generator=g)) < open_frac
    u = float(torch.rand((), generator=g)) if widen else 0.0
    out = torch.maximum(frozen, (torch.rand(frozen.shape, generator=g) < u).float())
    if knock:
        budget = frozen.flatten().nonzero().flatten()
        out.view(-1)[budget[torch.randint(0, budget.numel(), (1,), generator=g)]] = 0.0
    return out


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
    frozen = None
    for step in range(steps):
        for grp, b in zip(opt.param_groups, base, strict=True):
            grp["lr"] = b * _lr_factor(step, steps)
        tok, lm_mask, _ = task.batch(batch, g)
        alpha, pen, knock = None, torch.zeros(()), False
        draw = float(torch.rand((), generator=g)) if gates else 1.0
        if gates and step >= (1 - gates.freeze) * steps:
            if frozen is None:  # the logits get no gradient from here on
                frozen = _frozen_gates(logits.detach(), gates.budget)
                model.budget_heads.copy_(frozen)
            if draw >= gates.tail_full_frac:
                knock = draw < gates.tail_full_frac + gates.knockout and bool(frozen.any())
                alpha = _tail_gates(frozen, gates.tail_open, knock, g)
        elif gates and step >= gates.start * steps and draw >= gates.full_frac:
            alpha, p = _sample_gates(logits, g)
            pen = gates.l1 * p.mean()
        ans, lm = _loss(model, task, tok, lm_mask, alpha)
        if knock:
            ans = torch.relu(math.log(task.symbols) - ans)
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
