"""Strict reading of YAML specs: known keys, typed fields, one error line naming the file.

The design-spec reader (:mod:`.spec_yaml`) and the architecture reader (:mod:`.arch`) share
these checks. Every failure is a :class:`~.spec_model.SpecError` naming the field path and the
offending value; :func:`read_yaml` adds the file (YAML syntax errors: ``FILE:LINE:COL``) and
rejects a key given twice in one mapping (PyYAML keeps the last one silently).

Layer: hw.front, the planning layer (plain Python, no Amaranth).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from .spec_model import SpecError, close_hint, in_file

__all__ = ["as_list", "check_keys", "is_int", "mapping", "positive_int", "read_yaml",
           "require"]

T = TypeVar("T")


def is_int(value: Any) -> bool:
    """An int that is not a bool (YAML ``true`` is not a size)."""
    return isinstance(value, int) and not isinstance(value, bool)


def mapping(value: Any, where: str, what: str) -> dict:
    """``value`` if it is a mapping, else an error saying what ``where`` should hold."""
    if not isinstance(value, dict):
        raise SpecError(f"{where} must be a mapping ({what}), got {value!r}")
    return value


def check_keys(d: dict, known: Sequence[str], where: str = "") -> None:
    """Every key of ``d`` is one of ``known``; else name it (with its path) and the closest."""
    for key in d:
        if key not in known:
            path = f"{where}.{key}" if where else str(key)
            raise SpecError(f"{path}: unknown key {key!r}{close_hint(key, known)} "
                            f"(known keys{' in ' + where if where else ''}: {', '.join(known)})")


def require(d: dict, key: str, where: str) -> Any:
    """``d[key]``, or an error naming the missing key and where it is missing."""
    if key not in d:
        raise SpecError(f"{where}: missing '{key}'")
    return d[key]


def as_list(value: Any, where: str, example: str) -> list:
    """``value`` if it is a YAML list, else an error with an ``example`` of one."""
    if not isinstance(value, list):
        raise SpecError(f"{where} must be a list, e.g. {example}, got {value!r}")
    return value


def positive_int(value: Any, where: str) -> int:
    """``value`` if it is an integer >= 1, else an error naming ``where`` and the value."""
    if not is_int(value) or value < 1:
        raise SpecError(f"{where} must be a positive integer, got {value!r}")
    return value


def _yaml_loader():
    """A safe YAML loader that rejects a key given twice in one mapping."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    def construct(loader, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            key = loader.construct_object(key_node, deep=deep)
            try:
                first = seen.get(key)
            except TypeError:       # an unhashable key: construct_mapping reports it
                continue
            if first is not None and key != "<<":
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (first given on line {first})",
                    key_node.start_mark)
            seen[key] = key_node.start_mark.line + 1
        return loader.construct_mapping(node, deep)

    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct)
    return Loader


def _yaml(p: Path, what: str) -> Any:
    """The YAML data of file ``p``; every failure one SpecError line naming the file."""
    import yaml

    def fail(message: str) -> SpecError:
        exc = SpecError(message)
        exc.file = str(p)
        return exc

    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise fail(f"cannot read {what} {p}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise fail(f"cannot read {what} {p}: not UTF-8 text") from None
    try:
        return yaml.load(text, Loader=_yaml_loader())
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{p}:{mark.line + 1}:{mark.column + 1}" if mark else str(p)
        problem = exc.problem or exc.context or type(exc).__name__
        context = f" ({exc.context})" if exc.context and exc.problem else ""
        raise fail(f"{where}: not valid YAML: {problem}{context}") from None
    except yaml.YAMLError as exc:
        raise fail(f"{p}: not valid YAML: {' '.join(str(exc).split())}") from None


def read_yaml(path: str | Path, parse: Callable[[Any], T], what: str = "spec") -> T:
    """The YAML file at ``path`` through ``parse``; every failure a SpecError naming the
    file (``what``: the kind of file, for the messages)."""
    p = Path(path)
    data = _yaml(p, what)
    try:
        return parse(data)
    except SpecError as exc:
        raise in_file(exc, p) from None
