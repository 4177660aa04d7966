"""Verb declarations: a verb is its function, and its signature is its option list.

A verb module writes one function::

    @verb(writes=True, preserves_meaning=False)
    def promote_input(
        ctx: Editor,
        *,
        node: Annotated[str, Opt("node name, op type, or a glob over either", metavar="SEL")],
        name: Annotated[str | None, Opt("name of the new graph input (default: NAME)")] = None,
        ...
    ) -> None:
        '''Turn a node's constant operand into a graph input.'''

From that one declaration come the CLI subcommand (``promote-input``, flags ``--node``, ``--name``), the
``Model.promote_input`` method with the same keyword options, the ``--json`` document and the recipe schema.
Types, defaults and help are written once, here. The shared option groups (load, save, verify, json) are
named by ``groups``; the layers above render them.
"""

from __future__ import annotations

import inspect
import os
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Union, get_args, get_origin

from graphsurgeon.core.units import parse_size
from graphsurgeon.errors import GraphSurgeonError

REQUIRED: Any = inspect.Parameter.empty


class OptionError(GraphSurgeonError):
    """An option value of the wrong type or form (raised before any work)."""


@dataclass(frozen=True)
class Opt:
    """How one option is presented: help, CLI metavar, and how a string spelling of it is parsed."""

    help: str
    metavar: str | None = None
    positional: bool = False  # given without a flag: a second model path (diff A B), or a list (add-outputs M T...)
    size: bool = False  # an integer byte count: "1MiB", "512KB" and plain integers are accepted
    choices: tuple[str, ...] | None = None
    entry: Callable[[str], tuple[str, Any]] | None = None  # a mapping option: parses one "KEY:VALUE" spelling
    short: str | None = None  # a one-letter CLI alias as well as --name, e.g. "-o"
    const: Any = None  # a scalar whose value may be left out on the CLI (--serve alone) takes this value then


class Size(int):
    """Marker type: a byte count (``Annotated[int, Opt(..., size=True)]`` spells the same)."""


@dataclass(frozen=True)
class Option:
    """One keyword option of a verb, read from its function's signature."""

    name: str
    type: Any
    default: Any
    opt: Opt

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def base(self) -> Any:
        """The type without ``| None``."""
        args = [a for a in get_args(self.type) if a is not type(None)]
        if _is_union(self.type) and len(args) == 1:
            return args[0]
        return self.type

    @property
    def kind(self) -> str:
        """``flag`` (bool), ``list`` (of str), ``mapping`` (name -> value), or ``scalar``."""
        base = self.base
        if base is bool:
            return "flag"
        origin = get_origin(base)
        if origin in (list, tuple, Sequence) or (
            _is_union(base) and any(get_origin(a) in (list, tuple) for a in get_args(base))
        ):
            return "list"
        if origin in (dict, Mapping) or (
            _is_union(base) and any(get_origin(a) in (dict, Mapping) for a in get_args(base))
        ):
            return "mapping"
        return "scalar"

    @property
    def scalar_type(self) -> type:
        """int, float or str: what a single CLI token becomes."""
        base = self.base
        if self.opt.size:
            return int
        for candidate in (base, *get_args(base)):
            if candidate in (int, float, str):
                return candidate
        return str

    def coerce(self, value: Any) -> Any:
        """The library's accepted spellings, normalized: one string for a list, a size with units, ..."""
        if value is None or (value is self.default and not self.required):
            return value
        if self.opt.positional and self.kind != "list" and not isinstance(value, str):  # another model
            if isinstance(value, os.PathLike) or hasattr(value, "proto"):
                return value
            raise OptionError(f"option {self.name!r} takes a model path or a loaded model, not {value!r}")
        kind = self.kind
        if kind == "flag":
            if not isinstance(value, bool):
                raise OptionError(f"option {self.name!r} takes True or False, not {value!r}")
            return value
        if kind == "list":
            if isinstance(value, str):
                return [value]
            if not isinstance(value, Sequence) or not all(isinstance(v, str) for v in value):
                raise OptionError(f"option {self.name!r} takes a string or a list of strings, not {value!r}")
            return list(value)
        if kind == "mapping":
            if isinstance(value, Mapping):
                if self.opt.entry is None:
                    return dict(value)
                return dict(self.opt.entry(f"{k}:{_spelled(v)}") for k, v in value.items())
            entries = [value] if isinstance(value, str) else value
            if (
                self.opt.entry is None
                or not isinstance(entries, Sequence)
                or not all(isinstance(e, str) for e in entries)
            ):
                raise OptionError(f"option {self.name!r} takes a dict or a list of KEY:VALUE strings, not {value!r}")
            return dict(self.opt.entry(e) for e in entries)
        if self.opt.size:
            return parse_size(value, what=f"option {self.name!r}")
        wanted = self.scalar_type
        if wanted is float and isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if wanted is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if wanted is str and isinstance(value, str):
            return value
        if not isinstance(value, wanted) or isinstance(value, bool):
            raise OptionError(f"option {self.name!r} takes a {wanted.__name__}, not {value!r}")
        if self.opt.choices and value not in self.opt.choices:
            raise OptionError(f"option {self.name!r} is one of {', '.join(self.opt.choices)}, not {value!r}")
        return value

    def json_schema(self) -> dict[str, Any]:
        """The option as JSON Schema (recipe files, editors' completion)."""
        kind = self.kind
        schema: dict[str, Any]
        if kind == "flag":
            schema = {"type": "boolean"}
        elif kind == "list":
            schema = {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}
        elif kind == "mapping":
            schema = {"oneOf": [{"type": "object"}, {"type": "array", "items": {"type": "string"}}]}
        elif self.opt.size:
            schema = {"oneOf": [{"type": "integer", "minimum": 0}, {"type": "string"}]}
        else:
            schema = {"type": {int: "integer", float: "number", str: "string"}[self.scalar_type]}
            if self.opt.choices:
                schema["enum"] = list(self.opt.choices)
        schema["description"] = self.opt.help
        if not self.required and self.default is not None:
            schema["default"] = self.default
        return schema


@dataclass(frozen=True)
class Verb:
    """A declared verb: its function, options, and what kind of verb it is."""

    name: str  # kebab-case, the CLI spelling
    run: Callable[..., Any]
    options: tuple[Option, ...]
    writes: bool  # rewrites the model (then it gets the save and verify groups)
    preserves_meaning: bool  # the result computes what the input did (then --verify is expected to pass)
    summary: str  # first line of the docstring
    doc: str
    groups: tuple[str, ...] = field(default=())

    @property
    def method_name(self) -> str:
        return self.name.replace("-", "_")

    def option(self, name: str) -> Option:
        return next(o for o in self.options if o.name == name)

    def normalize(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        """Every option's value (defaults filled in), type-checked and normalized; unknown names refused."""
        known = {o.name for o in self.options}
        unknown = sorted(set(kwargs) - known)
        if unknown:
            valid = ", ".join(sorted(known)) or "none"
            raise OptionError(f"{self.name} has no option {', '.join(map(repr, unknown))}; its options: {valid}")
        values: dict[str, Any] = {}
        for option in self.options:
            if option.name in kwargs:
                values[option.name] = option.coerce(kwargs[option.name])
            elif option.required:
                raise OptionError(f"{self.name} needs the option {option.name!r}: {option.opt.help}")
            else:
                values[option.name] = option.default
        return values


def _spelled(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ",".join("?" if v is None else str(v) for v in value)
    return str(value)


def _is_union(tp: Any) -> bool:
    return get_origin(tp) in (Union, types.UnionType)


def verb(*, writes: bool, preserves_meaning: bool = False) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare a function ``fn(ctx, *, option: Annotated[type, Opt(...)] = default, ...)`` as a verb."""

    def declare(fn: Callable[..., Any]) -> Callable[..., Any]:
        hints = typing.get_type_hints(fn, include_extras=True)
        options = []
        for parameter in list(inspect.signature(fn).parameters.values())[1:]:
            hint = hints.get(parameter.name)
            if get_origin(hint) is not Annotated:
                raise TypeError(f"{fn.__name__}: option {parameter.name!r} needs Annotated[type, Opt(help)]")
            base, *extras = get_args(hint)
            opt = next((e for e in extras if isinstance(e, Opt)), None)
            if opt is None:
                raise TypeError(f"{fn.__name__}: option {parameter.name!r} has no Opt(...)")
            options.append(Option(parameter.name, base, parameter.default, opt))
        doc = inspect.cleandoc(fn.__doc__ or fn.__name__)
        groups = ("load", "json") + (("save", "verify", "view") if writes else ())
        fn.__verb__ = Verb(  # type: ignore[attr-defined]
            name=fn.__name__.replace("_", "-"),
            run=fn,
            options=tuple(options),
            writes=writes,
            preserves_meaning=preserves_meaning,
            summary=doc.splitlines()[0].rstrip("."),
            doc=doc,
            groups=groups,
        )
        return fn

    return declare


def declaration(fn: Callable[..., Any]) -> Verb:
    found = getattr(fn, "__verb__", None)
    if not isinstance(found, Verb):
        raise TypeError(f"{fn!r} is not declared with @verb")
    return found
