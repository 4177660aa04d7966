"""rewrite: replace every match of a small subgraph pattern by one op (a plugin op, or a custom op with its body).

Matching works on the model's own protobuf through the indexes (no conversion of the model): each node of the
pattern's root op is tried once, in model order; matches never overlap. A match's inner nodes must be read only
inside the match (their tensors are about to disappear), so a tensor also read elsewhere or a graph output
stops it. The root node is turned into the new op in place (its outputs, and so its readers and any graph
output, keep their names); the inner nodes go, and so do constants the match used that nothing reads any more.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any

import numpy as np
import onnx
from onnx import FunctionProto, NodeProto, helper

from graphsurgeon.core.attributes import missing_required, op_schema
from graphsurgeon.core.constants import STANDARD_DOMAINS, constant_tensor, is_constant_node
from graphsurgeon.core.editor import Editor
from graphsurgeon.core.external_data import read_tensor
from graphsurgeon.core.index import Scope
from graphsurgeon.core.verb import Opt, OptionError, verb
from graphsurgeon.errors import RewriteError
from graphsurgeon.verbs.pattern import Absent, Call, Name, Number, parse_pattern, parse_value, split_op

MAX_LITERAL_ELEMENTS = 4096  # a number in a pattern only matches constants this small (read from disk if external)


def _attribute_entry(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition(":")
    if not sep or not key:
        raise OptionError(f"`attribute` takes KEY:VALUE (e.g. mode:cubic, axes:2,3), not {text!r}")
    return key, parse_value(value)


@dataclass
class _Match:
    root: NodeProto
    nodes: list[NodeProto] = field(default_factory=list)  # the pattern's nodes, root first
    bindings: dict[str, str] = field(default_factory=dict)  # pattern name -> tensor
    literals: list[str] = field(default_factory=list)  # tensors matched by numbers


class _Matcher:
    """Tries the pattern at candidate roots of one scope; remembers why the most promising try failed."""

    def __init__(self, ctx: Editor, scope: Scope, pattern: Call, constants: set[str]):
        self.ctx, self.scope, self.pattern, self.constants = ctx, scope, pattern, constants
        self.claimed: set[int] = set()
        self.why: tuple[int, str] = (-1, "")  # (how many pattern nodes matched before failing, why)

    def fail(self, match: _Match, reason: str) -> bool:
        if len(match.nodes) > self.why[0]:
            self.why = (len(match.nodes), reason)
        return False

    def try_root(self, node: NodeProto) -> _Match | None:
        match = _Match(node)
        if not self.call(self.pattern, node, match):
            return None
        inside = {id(n) for n in match.nodes}
        produced_inside = {out for n in match.nodes[1:] for out in n.output if out}
        for name, tensor in match.bindings.items():
            if tensor in produced_inside:
                return None if self.fail(match, f"{name!r} is computed inside the match") else None
        for inner in match.nodes[1:]:
            for out in inner.output:
                if not out:
                    continue
                outside = [r for r in self.scope.readers(out) if id(r) not in inside]
                if out in self.scope.outputs or outside:
                    who = "is a graph output" if out in self.scope.outputs else f"is also read by {outside[0].name!r}"
                    self.fail(match, f"the inner tensor {out!r} {who}")
                    return None
        missing = [n for n in self.constants if n in match.bindings and not self.is_constant(match.bindings[n])]
        if missing:
            self.fail(match, f"{missing[0]!r} ({match.bindings[missing[0]]!r}) is not a constant")
            return None
        return match

    def call(self, pattern: Call, node: NodeProto, match: _Match) -> bool:
        where = f"{node.op_type} node {node.name!r}"
        if id(node) in self.claimed:
            return self.fail(match, f"{where} is already part of another match")
        if node.op_type != pattern.op or (node.domain or "") not in _domains(pattern.domain):
            return self.fail(match, f"{where} is not a {pattern.label}")
        if any(a.type in (a.GRAPH, a.GRAPHS) for a in node.attribute):
            return self.fail(match, f"{where} has subgraphs, which patterns do not match")
        if all(n is not node for n in match.nodes):
            match.nodes.append(node)
        for key, wanted in pattern.attributes.items():
            have = self.attribute(node, key)
            if not _same_value(have, wanted):
                return self.fail(match, f"{where} has {key}={_shown(have)}, not {wanted!r}")
        inputs = list(node.input)
        while inputs and not inputs[-1]:
            inputs.pop()
        wanted_count = len(pattern.args)
        while wanted_count and isinstance(pattern.args[wanted_count - 1], Absent):
            wanted_count -= 1
        if len(inputs) != wanted_count:
            return self.fail(match, f"{where} has {len(inputs)} input(s), the pattern {wanted_count}")
        for position, arg in enumerate(pattern.args):
            tensor = inputs[position] if position < len(inputs) else ""
            if not self.argument(arg, tensor, match, f"input {position} of {where}"):
                return False
        return True

    def argument(self, arg: Call | Name | Number | Absent, tensor: str, match: _Match, where: str) -> bool:
        if isinstance(arg, Absent):
            return not tensor or self.fail(match, f"{where} is set ({tensor!r}), the pattern has None")
        if not tensor:
            return self.fail(match, f"{where} is empty")
        if isinstance(arg, Name):
            if arg.name == "_":
                return True
            bound = match.bindings.setdefault(arg.name, tensor)
            return bound == tensor or self.fail(match, f"{where} is {tensor!r}, but {arg.name!r} is {bound!r}")
        if isinstance(arg, Number):
            if not self.constant_equals(tensor, arg.value):
                return self.fail(match, f"{where} ({tensor!r}) is not a constant equal to {arg.value:g}")
            match.literals.append(tensor)
            return True
        producer = self.scope.producer.get(tensor)
        if producer is None:
            return self.fail(match, f"{where} ({tensor!r}) is not computed by a node of this graph")
        return self.call(arg, producer, match)

    def attribute(self, node: NodeProto, key: str) -> Any:
        found = next((a for a in node.attribute if a.name == key), None)
        if found is not None:
            return helper.get_attribute_value(found)
        try:  # not set: the schema's default, when the op has one
            schema = onnx.defs.get_schema(node.op_type, self.ctx.opset_version(node.domain) or 1, node.domain)
            default = schema.attributes[key].default_value
            return helper.get_attribute_value(default) if default.name else None
        except Exception:
            return None

    def constant_value(self, tensor: str) -> np.ndarray | None:
        home = self.scope.resolve(tensor)
        if home is None:
            return None
        value = home.initializers.get(tensor)
        if value is None and tensor in home.producer and is_constant_node(home.producer[tensor]):
            value = constant_tensor(home.producer[tensor], tensor)
        if value is None or int(np.prod(value.dims)) > MAX_LITERAL_ELEMENTS:
            return None
        return read_tensor(value, self.ctx.external_data_dir)

    def is_constant(self, tensor: str) -> bool:
        home = self.scope.resolve(tensor)
        return home is not None and (
            tensor in home.initializers or (tensor in home.producer and is_constant_node(home.producer[tensor]))
        )

    def constant_equals(self, tensor: str, number: float) -> bool:
        value = self.constant_value(tensor)
        if value is None or value.size == 0 or value.dtype.kind not in "biuf":
            return False
        values = value.astype(np.float64)
        return bool(np.all(np.abs(values - number) <= 1e-6 * max(1.0, abs(number))))


def _domains(domain: str) -> tuple[str, ...]:
    return tuple(STANDARD_DOMAINS) if domain in STANDARD_DOMAINS else (domain,)


def _same_value(have: Any, wanted: Any) -> bool:
    if isinstance(have, bytes):
        have = have.decode("utf-8", "replace")
    if isinstance(have, list | tuple):
        if not isinstance(wanted, list) or len(have) != len(wanted):
            return False
        return all(_same_value(h, w) for h, w in zip(have, wanted, strict=True))
    if isinstance(have, int | float) and isinstance(wanted, int | float) and not isinstance(wanted, bool):
        return abs(have - wanted) <= 1e-6 * max(1.0, abs(wanted))
    return bool(have == wanted)


def _shown(value: Any) -> str:
    if isinstance(value, bytes):
        return repr(value.decode("utf-8", "replace"))
    return "unset" if value is None else repr(value)


def check_options(
    *, pattern: str, op: str | None, custom_op: str | None, inputs: list[str], constant: list[str], **_: Any
) -> Call:
    """What can be checked without a model (recipes call it before any work): syntax, names, the op."""
    parsed = parse_pattern(pattern)
    if (op is None) == (custom_op is None):
        raise OptionError("give the replacing op as `op` (DOMAIN::NAME or NAME) or `custom_op` (a custom_ops name)")
    if custom_op is not None and "::" not in custom_op:
        raise OptionError(
            f"`custom_op` is a custom_ops name DOMAIN::NAME (e.g. graphsurgeon::cumprod), not {custom_op!r}"
        )
    names = parsed.names()
    for given in [*inputs, *constant]:
        if given not in names:
            raise OptionError(f"{given!r} is not a name of the pattern; its names: {', '.join(names) or 'none'}")
    return parsed


def _custom_function(qualname: str, opset: int) -> tuple[FunctionProto, Any]:
    """The registered op's FunctionProto at the model's opset, and its schema (imports torch: only on demand)."""
    try:
        import custom_ops
        from custom_ops._export import _function_at
    except ImportError as e:
        raise RewriteError(f"`custom_op` needs the custom_ops library and torch (graphsurgeon[torch]): {e}") from None
    try:
        registered = custom_ops.get(qualname)
        return _function_at(registered, opset), registered.schema
    except custom_ops.CustomOpError as e:
        raise RewriteError(f"cannot bring {qualname}'s body into this model: {str(e).split(';')[0]}") from None


def _check_standard_op(ctx: Editor, op_type: str, inputs: int, attributes: Mapping[str, Any]) -> None:
    """An ONNX op (one with a schema at the model's opset) must take that many inputs and get its required
    attributes. A name without a schema is a plugin op in the default domain (TensorRT's style): not checked."""
    opset = ctx.opset_version("")
    schema = op_schema(op_type, "", opset)
    if schema is None:
        return
    if not schema.min_input <= inputs <= schema.max_input:
        raise RewriteError(
            f"{op_type} (opset {opset}) takes {schema.min_input} to {schema.max_input} inputs, not {inputs}; "
            "choose them with `inputs`"
        )
    missing = missing_required(op_type, "", opset, list(attributes))
    if missing:
        raise RewriteError(
            f"{op_type} (opset {opset}) needs the attribute(s) {', '.join(missing)}: give them with `attribute`"
        )


def _check_against_schema(schema: Any, qualname: str, inputs: list[str], attributes: Mapping[str, Any]) -> None:
    expected = [i.name for i in schema.inputs]
    if len(inputs) != len(expected):
        raise RewriteError(
            f"{qualname} takes {len(expected)} input(s) ({', '.join(expected)}), the rewrite gives {len(inputs)} "
            f"({', '.join(inputs)}); choose them with `inputs`"
        )
    unknown = sorted(set(attributes) - set(schema.attributes))
    missing = sorted(k for k, a in schema.attributes.items() if a.required and k not in attributes)
    if unknown or missing:
        valid = ", ".join(sorted(schema.attributes)) or "none"
        problem = f"has no attribute {unknown[0]!r}" if unknown else f"needs the attribute {missing[0]!r}"
        raise RewriteError(f"{qualname} {problem}; its attributes: {valid} (set them with `attribute`)")


@verb(writes=True)
def rewrite(
    ctx: Editor,
    *,
    pattern: Annotated[
        str,
        Opt(
            "the subgraph to match, as nested op calls: Mul(x, Sigmoid(x)); a name is any tensor (the same name, "
            "the same tensor), _ any tensor, a number a constant of that value, None an absent input, KEY=VALUE an "
            "attribute condition",
            metavar="PATTERN",
        ),
    ],
    op: Annotated[
        str | None, Opt("the op replacing each match: NAME or DOMAIN::NAME (a plugin op)", metavar="OP")
    ] = None,
    custom_op: Annotated[
        str | None,
        Opt("replace by this op of the custom_ops registry, with its function body (onnxruntime runs it)", metavar="Q"),
    ] = None,
    inputs: Annotated[
        list[str], Opt("pattern names that become the new op's inputs, in order (default: all, as they appear)")
    ] = [],  # noqa: B006
    attribute: Annotated[
        dict[str, Any],
        Opt("an attribute of the new op: KEY:VALUE (1, 0.5, 2,3 for a list, or text)", entry=_attribute_entry),
    ] = {},  # noqa: B006
    constant: Annotated[list[str], Opt("pattern names that must be constants (initializers or Constant nodes)")] = [],  # noqa: B006
    name: Annotated[str | None, Opt("name of the new node (default: the matched root's name)", metavar="NAME")] = None,
    domain_version: Annotated[int, Opt("version of the new op's domain, when the model does not import it yet")] = 1,
    optional: Annotated[bool, Opt("a model with no match is left as it is (with a note) instead of refused")] = False,
) -> None:
    """Replace every match of a subgraph pattern by one op (a TensorRT plugin, a fused op, or a custom op).

    The root node becomes the new op in place, so its output names, their readers and graph outputs stay; the
    pattern's inner nodes, and constants only they read, are removed. With `custom_op` the op's FunctionProto
    (from the custom_ops registry) and its domain come along, so onnxruntime still runs the model.
    """
    parsed = check_options(pattern=pattern, op=op, custom_op=custom_op, inputs=inputs, constant=constant)
    qualname = custom_op or op or ""
    domain, op_type = split_op(qualname)
    domain = "" if domain == "ai.onnx" else domain
    input_names = list(inputs) or parsed.names()
    function, schema = None, None
    if custom_op is not None:
        function, schema = _custom_function(custom_op, ctx.opset_version("") or 1)
        _check_against_schema(schema, custom_op, input_names, attribute)
    elif domain in STANDARD_DOMAINS:
        _check_standard_op(ctx, op_type, len(input_names), attribute)
    index = ctx.index
    matches: list[tuple[Scope, list[_Match]]] = []
    why = (-1, "")
    candidates = 0
    for scope in index.scopes:
        if _in_function(scope):
            continue
        matcher = _Matcher(ctx, scope, parsed, set(constant))
        found = []
        for node in list(scope.nodes):
            if node.op_type != parsed.op:
                continue
            candidates += 1
            match = matcher.try_root(node)
            if match is not None:
                matcher.claimed.update(id(n) for n in match.nodes)
                found.append(match)
        if matcher.why[0] > why[0]:
            why = matcher.why
        if found:
            matches.append((scope, found))
    if not matches:
        reason = (
            f"no {parsed.label} node in the model"
            if not candidates
            else f"{candidates} {parsed.label} node(s) tried; the closest: {why[1]}"
        )
        if optional:
            ctx.note(f"the pattern matched nothing ({reason})")
            return
        raise RewriteError(f"the pattern {pattern!r} matches nothing: {reason}")
    for scope, found in matches:
        _replace(ctx, scope, found, op_type, domain, input_names, attribute, name, qualname)
    if domain not in STANDARD_DOMAINS and ctx.opset_version(domain) is None:
        ctx.add_opset_import(domain, domain_version)
    if function is not None and (function.domain, function.name, "") not in ctx.index.functions:
        ctx.add_function(function)


def _replace(
    ctx: Editor,
    scope: Scope,
    matches: list[_Match],
    op_type: str,
    domain: str,
    input_names: list[str],
    attributes: Mapping[str, Any],
    name: str | None,
    label: str,
) -> None:
    """Every match of one scope: roots retyped and rewired in place, then the inner nodes removed in one pass."""
    inner: list[NodeProto] = []
    literal_tensors: dict[str, None] = {}
    for match in matches:
        root = match.root
        old = f"{len(match.nodes)} node(s) ({', '.join(n.op_type for n in match.nodes)}) from {root.name!r}"
        new_inputs = [match.bindings[n] for n in input_names]
        with ctx.quietly():
            ctx.set_op(root, op_type, domain=domain)
            ctx.replace_attributes(root, attributes)
            ctx.set_node_inputs(root, new_inputs)
            if name is not None:
                ctx.rename_node(root, _unused_node_name(ctx, name))
        inner += match.nodes[1:]
        literal_tensors.update(dict.fromkeys(match.literals))
        outputs = ", ".join(o for o in root.output if o)
        ctx.changes.record("replaced", "subgraph", root.name, f"{old} by {label}({', '.join(new_inputs)}) -> {outputs}")
    with ctx.quietly():
        ctx.remove_nodes(inner, scope=scope)
        ctx.remove_value_info({o for n in inner for o in n.output if o}, scope=scope)
        dead = [t for t in literal_tensors if not scope.readers(t) and t not in scope.outputs and t not in scope.inputs]
        constant_nodes = [scope.producer[t] for t in dead if t in scope.producer]
        ctx.remove_nodes(constant_nodes, scope=scope)
        ctx.remove_initializers({t for t in dead if t in scope.initializers}, scope=scope)


def _unused_node_name(ctx: Editor, wanted: str) -> str:
    candidate, number = wanted, 0
    while ctx.index.by_name.get(candidate):
        number += 1
        candidate = f"{wanted}_{number}"
    return candidate


def _in_function(scope: Scope) -> bool:
    while scope.parent is not None:
        scope = scope.parent
    return scope.is_function
