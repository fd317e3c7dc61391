"""Physical banks of one array that serves one or several dataflows (plans).

Fusion matches tensors by role (input 0, input 1, output): the k-th bank of each role in every
plan is one physical memory, as deep as the deepest of them (and at least 2 words deep).
Physical banks are numbered role by role (all input-0 banks, then input-1, then output banks).

Layer: hw.front, the planning layer (plain Python, no Amaranth).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .plan import ArrayPlan

__all__ = ["BankLayout", "bank_layout", "roles"]


def roles(plan: ArrayPlan):
    """(input 0, input 1, output) tensors of a plan."""
    return plan.inputs[0].tensor, plan.inputs[1].tensor, plan.output.tensor


@dataclass(frozen=True)
class BankLayout:
    """``banks[p] = (role, depth)`` per physical bank; ``bank_of[i][b]``: plan i's bank b."""

    banks: tuple[tuple[int, int], ...]
    bank_of: tuple[dict[int, int], ...]

    @property
    def word_bits(self) -> int:
        """Address bits of a word inside a bank (at least 1)."""
        return max(1, (max(d for _, d in self.banks) - 1).bit_length())


def bank_layout(plans: Sequence[ArrayPlan]) -> BankLayout:
    """The physical banks of ``plans`` (see the module docstring)."""
    per_role: list[list[int]] = [[], [], []]      # depth of each physical bank per role
    remaps = []
    for plan in plans:
        names = [t.name for t in roles(plan)]
        seen = [0, 0, 0]
        remap = {}
        for b, bank in enumerate(plan.banks):
            r = names.index(bank.tensor)
            k = seen[r]
            seen[r] += 1
            if k == len(per_role[r]):
                per_role[r].append(0)
            # at least 2 words: a 1-word memory has a 0-bit address, which Verilog cannot carry
            per_role[r][k] = max(per_role[r][k], bank.depth, 2)
            remap[b] = (r, k)
        remaps.append(remap)
    offsets = [0, len(per_role[0]), len(per_role[0]) + len(per_role[1])]
    banks = tuple((r, d) for r in range(3) for d in per_role[r])
    bank_of = tuple({b: offsets[r] + k for b, (r, k) in remap.items()} for remap in remaps)
    return BankLayout(banks, bank_of)
