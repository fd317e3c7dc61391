"""The models of a sweep: a zoo model with its options, or a ``FILE.py:FUNCTION`` torch module,
as one string that a point's inputs carry and a worker rebuilds the graph from.

In a sweep file a model is a zoo name (``lego models``), ``NAME OPTION=VALUE ...`` (the
options as ``lego map --set`` reads them: int, float, true/false, else text),
``{name: NAME, options: {OPTION: VALUE}}`` or ``FILE.py:FUNCTION``. :func:`model_ref` checks
it without building it (the zoo's names and options; the file read and parsed, not run) and
gives a :class:`ModelRef` whose :attr:`~ModelRef.label` (``"llama3-8b-duo phase=decode"``,
options sorted) is the point's ``model``; :func:`parse_model` reads a label back. Every
failure is a :class:`ModelError` naming the field and the value.

Layer: flows.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hw.front.spec_model import SpecError, close_hint
from hw.front.yaml_fields import check_keys, mapping, require

__all__ = ["ModelError", "ModelRef", "build_graph", "model_ref", "parse_model"]


class ModelError(SpecError):
    """A sweep's model is malformed or unknown; the message names the field and the value."""


def _is_file(text: str) -> bool:
    return ":" in text and text.split(":", 1)[0].endswith(".py")


def _cast(text: str) -> Any:
    """An option's value as ``lego map --set`` reads it: int, float, true/false, else text."""
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def _spell(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def parse_model(text: str) -> tuple[str, dict[str, Any]]:
    """A point's ``model`` string as (name, options): ``"llama3-8b-duo phase=decode"`` ->
    ``("llama3-8b-duo", {"phase": "decode"})``; a ``FILE.py:FUNCTION`` has no options.
    ``ModelError`` for a word that is not ``OPTION=VALUE``."""
    if _is_file(text):
        return text, {}
    name, *words = text.split()
    options = {}
    for word in words:
        key, eq, value = word.partition("=")
        if not eq or not key or not value:
            raise ModelError(f"model {text!r}: expected NAME OPTION=VALUE ..., got {word!r}")
        options[key] = _cast(value)
    return name, options


@dataclass(frozen=True)
class ModelRef:
    """A model of the sweep: a zoo ``name`` with keyword ``options`` (sorted pairs), or a
    ``FILE.py:FUNCTION`` torch module (no options)."""

    name: str
    options: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ModelError(f"a model name must be a non-empty string, got {self.name!r}")
        if self.options and self.is_file:
            raise ModelError(f"model {self.name!r}: options apply to zoo models only")

    @property
    def is_file(self) -> bool:
        """Whether the model is a ``FILE.py:FUNCTION`` import."""
        return _is_file(self.name)

    @property
    def label(self) -> str:
        """The model as a point's ``model`` input: ``"llama3-8b-duo phase=decode"``."""
        return self.name + "".join(f" {k}={_spell(v)}" for k, v in self.options)


def model_ref(value: Any, where: str = "model") -> ModelRef:
    """The sweep file's model ``value`` (module docstring), checked; ``where``: its field
    path, for the messages."""
    options: dict = {}
    if isinstance(value, dict):
        check_keys(value, ("name", "options"), where)
        options = mapping(value.get("options", {}), f"{where}.options", "OPTION: VALUE")
        value = require(value, "name", where)
    if not isinstance(value, str) or not value.strip():
        raise ModelError(f"{where} must be a zoo name, FILE.py:FUNCTION or {{name, options}}, "
                         f"got {value!r}")
    if not options:
        try:
            value, options = parse_model(value.strip())
        except ModelError as exc:
            raise ModelError(f"{where}: {exc}") from None
    ref = ModelRef(value, tuple(sorted(options.items())))
    if parse_model(ref.label) != (value, options):
        raise ModelError(f"{where}.options: {options!r} cannot be written as OPTION=VALUE "
                         f"words that read back the same (lego map --set)")
    if ref.is_file:
        _check_file_model(where, value)
        return ref
    from mapping.zoo import MODELS
    from mapping.zoo import options as known_options

    if value not in MODELS:
        raise ModelError(f"{where}: unknown model {value!r}{close_hint(value, list(MODELS))} "
                         f"(see 'lego models')")
    known = known_options(value)
    for key, v in options.items():
        if key not in known:
            raise ModelError(f"{where}.options: model {value!r} has no option {key!r}"
                             f"{close_hint(key, list(known))} (options: {', '.join(known)})")
        if not isinstance(v, str | int | float | bool):
            raise ModelError(f"{where}.options.{key} must be a number, string or boolean, got "
                             f"{v!r}")
    return ref


def _check_file_model(where: str, spec: str) -> None:
    """``FILE.py:FUNCTION`` exists and defines FUNCTION at top level (read, not run)."""
    path, _, func = spec.rpartition(":")
    try:
        tree = ast.parse(Path(path).read_text(encoding="utf-8"), filename=path)
    except (OSError, UnicodeDecodeError, SyntaxError) as exc:
        raise ModelError(f"{where}: cannot read model file {path!r}: {exc}") from None
    defs = [s.name for s in tree.body if isinstance(s, ast.FunctionDef)]
    if func not in defs:
        raise ModelError(f"{where}: {path} defines no function {func!r}"
                         f"{close_hint(func, defs)}")


def build_graph(text: str):
    """The :class:`~mapping.ir.ModelGraph` of a point's ``model`` label (a zoo model with
    its options, or ``FILE.py:FUNCTION`` through the torch.fx import); what the builders
    raise for a model that does not build."""
    name, options = parse_model(text)
    if _is_file(name):
        from mapping.fx_import import import_module, load_user_model

        module, example = load_user_model(name)
        return import_module(module, example, name=Path(name.split(":")[0]).stem)
    from mapping.zoo import model

    return model(name, **options)
