"""Typed attribute values from ``K=V`` spellings, with the type taken from the op's schema.

``--attr axis=1``, ``--attr perm=0,2,1``, ``--attr mode=linear``, ``--attr value=w.npy``: the schema of the
op at the model's opset says whether ``axis`` is an INT or a FLOAT, so ``1`` becomes what the op expects.
An op without a schema (a plugin op of a custom domain) takes the type of the attribute it already has, or
else the type the spelling reads as (integer, number, list of either, ``.npy`` tensor, string).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx.defs
from onnx import AttributeProto, NodeProto, TensorProto, numpy_helper

from graphsurgeon.errors import RewriteError

A = AttributeProto
_LIST_OF: dict[int, int] = {A.INTS: A.INT, A.FLOATS: A.FLOAT, A.STRINGS: A.STRING, A.TENSORS: A.TENSOR}
_TYPE_NAMES: dict[int, str] = {
    A.INT: "int",
    A.FLOAT: "float",
    A.STRING: "string",
    A.TENSOR: "tensor (.npy file)",
    A.INTS: "ints (1,2,3)",
    A.FLOATS: "floats (0.5,1.5)",
    A.STRINGS: "strings (a,b)",
    A.GRAPH: "graph",
    A.GRAPHS: "graphs",
    A.SPARSE_TENSOR: "sparse tensor",
    A.TYPE_PROTO: "type",
}


def op_schema(op_type: str, domain: str, opset: int | None) -> onnx.defs.OpSchema | None:
    """The op's schema at `opset` of its domain (None: no such op there, or no opset imported)."""
    if opset is None:
        return None
    try:
        return onnx.defs.get_schema(op_type, opset, "" if domain == "ai.onnx" else domain)
    except onnx.defs.SchemaError:
        return None


@dataclass(frozen=True)
class TypedValue:
    """One parsed attribute: the name, the Python value ``helper.make_attribute`` turns into `type`."""

    name: str
    value: Any
    type: int


def split_assignment(text: str, what: str = "attribute") -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise RewriteError(f"{what} {text!r} is not NAME=VALUE")
    return key.strip(), value


def _number(text: str, kind: int, name: str) -> int | float:
    try:
        return int(text, 0) if kind == A.INT else float(text)
    except ValueError:
        want = "an integer" if kind == A.INT else "a number"
        raise RewriteError(f"attribute {name!r} takes {want}, not {text!r}") from None


def _items(text: str) -> list[str]:
    inner = text.strip().removeprefix("[").removesuffix("]").strip()
    return [part.strip() for part in inner.split(",")] if inner else []


def load_npy(path: str, what: str) -> np.ndarray:
    """A numpy array from a ``.npy`` file (no pickles), with one clear error when it cannot be read."""
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise RewriteError(f"{what}: cannot read {path!r} as a .npy array ({e})") from None


def _tensor(text: str, name: str) -> TensorProto:
    if not text.endswith(".npy"):
        raise RewriteError(f"attribute {name!r} takes a tensor: give a .npy file, not {text!r}")
    return numpy_helper.from_array(load_npy(text, f"attribute {name!r}"), name)


def convert(name: str, text: str, kind: int) -> TypedValue:
    """`text` as a value of attribute type `kind` (refusing what cannot be set from a spelling)."""
    if kind in (A.INT, A.FLOAT):
        return TypedValue(name, _number(text, kind, name), kind)
    if kind == A.STRING:
        return TypedValue(name, text, kind)
    if kind == A.TENSOR:
        return TypedValue(name, _tensor(text, name), kind)
    if kind in (A.INTS, A.FLOATS, A.STRINGS):
        items = _items(text)
        if not items:
            raise RewriteError(f"attribute {name!r} needs at least one value (an empty list has no type)")
        element = _LIST_OF[kind]
        values = items if element == A.STRING else [_number(i, element, name) for i in items]
        return TypedValue(name, values, kind)
    raise RewriteError(f"attribute {name!r} is a {_TYPE_NAMES.get(kind, kind)}, which cannot be set from a spelling")


def guess_type(text: str) -> int:
    """The attribute type a spelling reads as, for ops without a schema."""
    if text.endswith(".npy") and os.path.exists(text):
        return A.TENSOR
    items = _items(text)
    if "," in text or text.strip().startswith("["):
        kinds = {guess_type(i) for i in items}
        return A.INTS if kinds == {A.INT} else A.FLOATS if kinds <= {A.INT, A.FLOAT} and kinds else A.STRINGS
    for kind in (A.INT, A.FLOAT):
        try:
            _number(text, kind, "")
            return kind
        except RewriteError:
            continue
    return A.STRING


def parse_attributes(
    spellings: Sequence[str],
    *,
    op_type: str,
    domain: str,
    opset: int | None,
    existing: NodeProto | None = None,
) -> list[TypedValue]:
    """Parse ``NAME=VALUE`` spellings for an op: typed by its schema at `opset`; an attribute the schema
    lacks is refused naming the valid ones. Without a schema: the existing attribute's type, else a guess."""
    schema = op_schema(op_type, domain, opset)
    where = f"{domain + '::' if domain not in ('', 'ai.onnx') else ''}{op_type}"
    if schema is not None:
        where += f" (opset {opset})"
    current = {a.name: a.type for a in existing.attribute} if existing is not None else {}
    parsed: dict[str, TypedValue] = {}
    for spelling in spellings:
        name, text = split_assignment(spelling)
        if name in parsed:
            raise RewriteError(f"attribute {name!r} is given twice")
        if schema is not None:
            if name not in schema.attributes:
                valid = ", ".join(sorted(schema.attributes)) or "none"
                raise RewriteError(f"{where} has no attribute {name!r}; its attributes: {valid}")
            # onnx's stub declares AttrType as a plain class; at runtime it is an IntEnum
            kind = int(schema.attributes[name].type)  # type: ignore[call-overload]
        else:
            kind = current.get(name) or guess_type(text)
        parsed[name] = convert(name, text, kind)
    return list(parsed.values())


def missing_required(op_type: str, domain: str, opset: int | None, given: Sequence[str]) -> list[str]:
    """Required attributes of the op's schema that `given` lacks."""
    schema = op_schema(op_type, domain, opset)
    if schema is None:
        return []
    return sorted(n for n, a in schema.attributes.items() if a.required and n not in given)


def is_file(text: str) -> bool:
    return text.endswith(".npy") and Path(text).is_file()
