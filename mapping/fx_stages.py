"""Stages of an imported graph (see :mod:`mapping.fx_import`): layers folded, names from paths.

The importer emits operators in execution order, each an :class:`Item` tagged with the module
path that ran it. :func:`fold_stages` groups them:

* a **pass** over an ``nn.ModuleList`` / ``nn.Sequential`` (its children's operators, in index
  order) becomes one stage named after the list's path, ``repeat`` = ``layers`` = the number of
  children, when every child ran the same operators (fields and names relative to the child);
  children that differ split the pass into runs of identical ones (stages ``<list>_<first>``),
  and children unlike their neighbours share one stage (an ``nn.Sequential`` of different
  layers is one stage named after it);
* consecutive operators outside lists form stages: those under one top-level module with
  submodules (an embedder, a head) one named after it, the others (the root's own calls and
  top-level layers) one named after their module when they share one, else ``main``;
* stages of one name with the same operators (the same layers run again, as a decode loop's
  steps) merge into one, their repeats summed; different ones (the same layers at another
  context length) get suffixes ``_2``, ``_3``... and share weights (``Stage.weights``).

Operator names are module paths relative to the stage's block, dots as ``_``, with the IR
operator's local name appended for function calls and multi-operator leaves.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from torch import nn

from .fx_compare import canonical_op
from .ir import Op, Stage

__all__ = ["Item", "fold_stages"]


@dataclass(frozen=True)
class Item:
    """The operators one traced call emitted, the module ``path`` it ran in, and whether it was
    a module's call (``module_call``: a lone operator takes the module's name)."""

    path: str
    ops: tuple[Op, ...]
    module_call: bool


def _lists(root: nn.Module) -> list[str]:
    return [p for p, m in root.named_modules()
            if p and isinstance(m, (nn.ModuleList, nn.Sequential)) and len(m)]


def _locate(path: str, lists: Sequence[str]) -> tuple[str, int, str] | None:
    """(list path, child index, path inside the child) of the outermost list holding ``path``."""
    for lst in lists:
        if path.startswith(lst + "."):
            head, _, rest = path[len(lst) + 1:].partition(".")
            if head.isdigit():
                return lst, int(head), rest
    return None


def _named(items: Sequence[tuple[str, Item]]) -> tuple[Op, ...]:
    """The items' operators named by their relative paths, unique."""
    out: list[Op] = []
    used: set[str] = set()
    for rel, item in items:
        prefix = rel.replace(".", "_")
        lone = item.module_call and len(item.ops) == 1
        for op in item.ops:
            base = (prefix if lone else f"{prefix}_{op.name}") if prefix else op.name
            name, n = base, 1
            while name in used:
                n += 1
                name = f"{base}_{n}"
            used.add(name)
            out.append(replace(op, name=name))
    return tuple(out)


def _signature(ops: tuple[Op, ...]) -> tuple:
    return tuple((op.name, canonical_op(op)) for op in ops)


def _segments(items: Sequence[Item], lists: Sequence[str],
              composite: set[str]) -> list[tuple[str, list]]:
    """Consecutive items as (list path, [(index, rel, item)]) passes over a list, or
    ("", [(0, path, item)]) runs outside lists: under one ``composite`` top-level module, or
    under none (the root's own calls and top-level layers)."""
    def group(rel: str) -> str:
        head = rel.split(".")[0]
        return head if head in composite else ""

    segs: list[tuple[str, list]] = []
    for item in items:
        where = _locate(item.path, lists)
        lst, idx, rel = where if where else ("", 0, item.path)
        last = segs[-1] if segs else None
        if last and last[0] == lst and (
                idx >= last[1][-1][0] if lst else group(rel) == group(last[1][-1][1])):
            last[1].append((idx, rel, item))
        else:
            segs.append((lst, [(idx, rel, item)]))
    return segs


def _list_stages(lst: str, members: list) -> list[tuple[str, tuple[Op, ...], int]]:
    """(base name, ops, children) of a pass: runs of identical children fold; the children
    between such runs form one stage (their operators named with their index)."""
    children: dict[int, list] = {}
    for idx, rel, item in members:
        children.setdefault(idx, []).append((rel, item))
    runs: list[list] = []
    for i, group in children.items():
        ops = _named(group)
        if runs and _signature(runs[-1][1]) == _signature(ops):
            runs[-1][2] += 1
        else:
            runs.append([i, ops, 1, group])
    base = lst.replace(".", "_")
    out: list[tuple[str, tuple[Op, ...], int]] = []
    mixed: list[tuple[int, list]] = []
    for i, ops, n, group in [*runs, [None, (), 2, []]]:
        if n == 1:
            mixed.append((i, group))
            continue
        if mixed:
            ops_mixed = _named([(f"{j}.{rel}".rstrip("."), item) for j, g in mixed
                                for rel, item in g])
            out.append((f"{base}_{mixed[0][0]}", ops_mixed, 1))
            mixed = []
        if i is not None:
            out.append((f"{base}_{i}", ops, n))
    if len(out) == 1:
        out = [(base, out[0][1], out[0][2])]
    return out


def _plain_stage(members: list) -> tuple[str, tuple[Op, ...], int]:
    heads = {rel.split(".")[0] for _, rel, _ in members}
    head = heads.pop() if len(heads) == 1 else ""
    if not head:
        return "main", _named([(rel, item) for _, rel, item in members]), 1
    cut = len(head) + 1
    own = head if members[0][2].module_call else ""
    return head, _named([(rel[cut:] if rel != head else own if item.module_call else "", item)
                         for _, rel, item in members]), 1


def fold_stages(root: nn.Module, items: Sequence[Item]) -> list[Stage]:
    """The stages of ``items`` (see the module docstring); items without operators are
    ignored."""
    lists = sorted(_lists(root), key=len)
    composite = {name for name, m in root.named_children() if next(m.children(), None)}
    parts: list[tuple[str, tuple[Op, ...], int]] = []
    for lst, members in _segments([i for i in items if i.ops], lists, composite):
        parts += _list_stages(lst, members) if lst else [_plain_stage(members)]
    stages: list[Stage] = []
    seen: dict[tuple[str, tuple], int] = {}
    names: set[str] = set()
    for base, ops, layers in parts:
        key = (base, _signature(ops))
        if key in seen:
            old = stages[seen[key]]
            stages[seen[key]] = replace(old, repeat=old.repeat + layers)
            continue
        name, n = base, 1
        while name in names:
            n += 1
            name = f"{base}_{n}"
        names.add(name)
        seen[key] = len(stages)
        stages.append(Stage(name, ops, layers, layers, base))
    return stages
