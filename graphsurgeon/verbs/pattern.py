"""The pattern language of `rewrite`: a small subgraph written as nested op calls, parsed once, checked early.

    Mul(Mul(x, Add(Erf(Div(x, 1.4142135)), 1.0)), 0.5)     # erf-GELU as exported by TorchScript
    Resize(x, None, scales, mode="cubic")                  # None: an absent input; KEY=VALUE: an attribute
    com.microsoft::FusedMatMul(a, b)                       # DOMAIN::OP

A call ``Op(arg, ...)`` matches a node of that op whose inputs match the arguments in order; an argument is a
call (that input is computed by a matching node), a name (any tensor; the same name twice is the same tensor),
``_`` (any tensor), a number (a constant whose every element is that number), or ``None`` (no input there).
``key=value`` arguments are attribute conditions (a number, text, or a list ``[0, 2, 1]``). The design follows
onnxscript's rewriter patterns (``op.Mul(x, 0.5)``), written as text so it fits a recipe step.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from graphsurgeon.core.verb import OptionError

MAX_PATTERN_CHARS = 4000
MAX_DEPTH = 32
_TOKEN = re.compile(
    r"\s*(?:(?P<number>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)"
    r"|(?P<name>[A-Za-z_][\w.]*(?:::[A-Za-z_]\w*)?)"
    r"|(?P<text>\"[^\"]*\"|'[^']*')"
    r"|(?P<punct>[(),=\[\]]))"
)


@dataclass(frozen=True)
class Name:
    """A tensor variable (``_``: any tensor, not bound)."""

    name: str


@dataclass(frozen=True)
class Number:
    """A constant whose every element equals `value`."""

    value: float


@dataclass(frozen=True)
class Absent:
    """An empty (omitted) optional input."""


@dataclass
class Call:
    """A node of op `op` in `domain` whose inputs match `args`, with attribute conditions."""

    op: str
    domain: str
    args: list[Call | Name | Number | Absent]
    attributes: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.domain}::{self.op}" if self.domain else self.op

    def calls(self) -> list[Call]:
        """Every call of the pattern, root first (breadth first)."""
        found, queue = [], [self]
        while queue:
            call = queue.pop(0)
            found.append(call)
            queue += [a for a in call.args if isinstance(a, Call)]
        return found

    def names(self) -> list[str]:
        """The variables, in order of first appearance (depth first, left to right)."""
        seen: dict[str, None] = {}
        stack: list[Any] = [self]
        while stack:
            item = stack.pop()
            if isinstance(item, Call):
                stack += reversed(item.args)
            elif isinstance(item, Name) and item.name != "_":
                seen.setdefault(item.name, None)
        return list(seen)


def split_op(text: str) -> tuple[str, str]:
    """``DOMAIN::OP`` -> (domain, op); ``OP`` -> ("", op)."""
    domain, sep, op = text.rpartition("::")
    return (domain if sep else ""), op


class _Parser:
    def __init__(self, text: str):
        if len(text) > MAX_PATTERN_CHARS:
            raise OptionError(f"the `pattern` is {len(text)} characters long; at most {MAX_PATTERN_CHARS}")
        self.text = text
        self.tokens: list[tuple[str, str, int]] = []
        position = 0
        while position < len(text):
            found = _TOKEN.match(text, position)
            if found is None or found.end() == position:
                if not text[position:].strip():
                    break
                column = position + len(text[position:]) - len(text[position:].lstrip())
                raise self.error(f"unexpected {text[column]!r}", column)
            kind = found.lastgroup or ""
            self.tokens.append((kind, found.group(kind), found.start(kind)))
            position = found.end()
        self.at = 0

    def error(self, problem: str, column: int | None = None) -> OptionError:
        if column is None:
            column = self.tokens[self.at][2] if self.at < len(self.tokens) else len(self.text)
        return OptionError(f"the `pattern` {self.text!r} has a syntax error at column {column + 1}: {problem}")

    def peek(self) -> tuple[str, str, int] | None:
        return self.tokens[self.at] if self.at < len(self.tokens) else None

    def next_is(self, value: str) -> bool:
        token = self.peek()
        return token is not None and token[0] == "punct" and token[1] == value

    def take(self, value: str | None = None) -> tuple[str, str, int]:
        token = self.peek()
        if token is None or (value is not None and token[1] != value):
            wanted = repr(value) if value else "more"
            raise self.error(f"expected {wanted}, found {repr(token[1]) if token else 'the end'}")
        self.at += 1
        return token

    def parse(self) -> Call:
        root = self.argument(0)
        extra = self.peek()
        if extra is not None:
            raise self.error(f"unexpected {extra[1]!r} after the pattern")
        if not isinstance(root, Call):
            raise OptionError(f"the `pattern` {self.text!r} must be an op call such as Relu(x)")
        return root

    def argument(self, depth: int) -> Call | Name | Number | Absent:
        if depth > MAX_DEPTH:
            raise self.error(f"nested deeper than {MAX_DEPTH} calls")
        kind, value, column = self.take()
        if kind == "number":
            return Number(float(value))
        if kind != "name":
            raise self.error(f"expected an op call, a name, a number or None, found {value!r}", column)
        if not self.next_is("("):
            if "::" in value or "." in value:
                raise self.error(f"{value!r} looks like an op: write {value}(...)", column)
            return Absent() if value == "None" else Name(value)
        self.take("(")
        domain, op = split_op(value)
        call = Call(op, "" if domain == "ai.onnx" else domain, [])
        while self.peek() is not None and not self.next_is(")"):
            token = self.peek()
            after = self.tokens[self.at + 1] if self.at + 1 < len(self.tokens) else None
            if token is not None and token[0] == "name" and after is not None and after[1] == "=":
                self.at += 2
                if token[1] in call.attributes:
                    raise self.error(f"attribute {token[1]!r} is given twice", token[2])
                call.attributes[token[1]] = self.value()
            elif call.attributes:
                raise self.error("inputs come before attribute conditions (KEY=VALUE)")
            else:
                call.args.append(self.argument(depth + 1))
            if self.next_is(","):
                self.take(",")
            elif not self.next_is(")"):
                raise self.error("expected ',' or ')'")
        self.take(")")
        return call

    def value(self) -> Any:
        kind, value, column = self.take()
        if kind == "number":
            return float(value) if any(c in value for c in ".eE") else int(value)
        if kind == "text":
            return value[1:-1]
        if kind == "name":
            return value
        if value == "[":
            items = []
            while self.peek() is not None and not self.next_is("]"):
                items.append(self.value())
                if self.next_is(","):
                    self.take(",")
            self.take("]")
            return items
        raise self.error(f"expected an attribute value, found {value!r}", column)


def parse_pattern(text: str) -> Call:
    """Parse a pattern; OptionError (with the column) for a syntax error."""
    return _Parser(text).parse()


def parse_value(text: str) -> Any:
    """An attribute value as written on the command line: 1 -> int, 0.5 -> float, 1,2 -> list, else text."""
    parts = [p.strip() for p in text.split(",")] if "," in text else [text.strip()]
    values: list[Any] = []
    for part in parts:
        for kind in (int, float):
            try:
                values.append(kind(part))
                break
            except ValueError:
                continue
        else:
            values.append(part)
    if "," in text:
        return values
    return values[0]
