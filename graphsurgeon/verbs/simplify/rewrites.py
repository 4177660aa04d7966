"""The rewrites simplify runs besides folding: no-op elimination and common-subexpression elimination.

Both work the same way: decide, per scope, which tensors are *aliases* of others (a no-op's output is its
input; a duplicate's output is the original's), rewire every read of an alias — including reads from inside
nested subgraphs — to what it stands for, and drop the nodes that produced aliases. A graph output keeps its
name: when a no-op produces one, the tensor it passes through is renamed to the output instead (if that
tensor is produced by a node of the same graph and is not itself part of the interface); otherwise the
node stays. Each pass is one walk over the nodes in topological order.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from onnx import AttributeProto, NodeProto, TensorProto

from graphsurgeon.core.constants import constant_behind
from graphsurgeon.core.editor import Editor
from graphsurgeon.core.external_data import declared_nbytes, is_external
from graphsurgeon.core.index import Scope
from graphsurgeon.core.order import ordered_nodes
from graphsurgeon.core.rules import OpRules
from graphsurgeon.verbs.fold.plan import RANDOM_OPS
from graphsurgeon.verbs.fold.shapes import Partial, ShapeInfo, _attr

_STANDARD = ("", "ai.onnx")


class Aliases:
    """Per scope, alias -> replacement, with chains resolved."""

    def __init__(self) -> None:
        self.map: dict[str, str] = {}

    def add(self, alias: str, target: str) -> None:
        self.map[alias] = target

    def resolve(self, name: str) -> str:
        seen = []
        while name in self.map:
            seen.append(name)
            name = self.map[name]
        for s in seen:
            self.map[s] = name
        return name


# -- constants -------------------------------------------------------------------------------------------
def small_constant(model: Editor, scope: Scope, name: str, limit: int = 4096) -> np.ndarray | None:
    """The value of a small constant (initializer not overridable by an input, or Constant node)."""
    tensor = constant_behind(scope, name)
    if tensor is None or is_external(tensor) or tensor.data_type == TensorProto.STRING:
        return None
    size = declared_nbytes(tensor)
    if size is None or size > limit:
        return None
    from onnx import numpy_helper

    try:
        return numpy_helper.to_array(tensor)
    except Exception:
        return None


def _target(model: Editor, shapes: ShapeInfo, scope: Scope, name: str) -> list | None:
    """A 1-D int shape operand as a list of ints/symbols, from a constant or a partial value."""
    value = small_constant(model, scope, name)
    if value is not None:
        if value.ndim != 1 or value.dtype.kind not in "iu":
            return None
        return [int(v) for v in value]
    partial: Partial | None = shapes.value(scope, name)
    if partial is None or partial.scalar:
        return None
    return list(partial.elems)


def _same(a, b) -> bool:
    return a is not None and b is not None and a == b


# -- no-op detection -------------------------------------------------------------------------------------
NoopRule = Callable[[Editor, ShapeInfo, Scope, NodeProto], "int | None"]
NOOP_RULES: OpRules[NoopRule] = OpRules()  # op -> which input the node passes through unchanged, or None
_MULTI_OUTPUT = {"Identity", "Dropout", "Split"}  # rules that judge their extra outputs themselves


def passthrough(model: Editor, shapes: ShapeInfo, scope: Scope, node: NodeProto) -> int | None:
    """The index of the input a node passes through unchanged, or None if it is not a no-op."""
    if node.domain not in _STANDARD or not node.input or not node.input[0] or not node.output:
        return None
    rule = NOOP_RULES.lookup(node.op_type, model.opset_version())
    if rule is None:
        return None
    if node.op_type not in _MULTI_OUTPUT and (len(node.output) != 1 or _extra_outputs_used(scope, node)):
        return None
    return rule(model, shapes, scope, node)


def _extra_outputs_used(scope: Scope, node: NodeProto) -> bool:
    return any(o and (scope.readers(o) or o in scope.outputs) for o in node.output[1:])


@NOOP_RULES.register("Identity")
def _identity(model: Editor, shapes: ShapeInfo, scope: Scope, node: NodeProto) -> int | None:
    return 0


@NOOP_RULES.register("Dropout")
def _dropout(model: Editor, shapes: ShapeInfo, scope: Scope, node: NodeProto) -> int | None:
    if _extra_outputs_used(scope, node):
        return None
    opset = model.opset_version()
    if _attr(node, "is_test", 1) == 0 and opset is not None and opset < 7:
        return None
    if len(node.input) > 2 and node.input[2]:
        mode = small_constant(model, scope, node.input[2])
        if mode is None or bool(mode.reshape(-1)[0]):
            return None
    return 0


@NOOP_RULES.register("Split")
def _split(model: Editor, shapes: ShapeInfo, scope: Scope, node: NodeProto) -> int | None:
    return 0 if len(node.output) == 1 else None


@NOOP_RULES.register("Cast")
def _cast(model: Editor, shapes: ShapeInfo, scope: Scope, node: NodeProto) -> int | None:
    return 0 if _same(_attr(node, "to"), shapes.elem_type(scope, node.input[0])) else None


@NOOP_RULES.register("CastLike")
def _cast_like(model: Editor, shapes: ShapeInfo, scope: Scope, node: NodeProto) -> int | None:
    if len(node.input) < 2:
        return None
    return 0 if _same(shapes.elem_type(scope, node.input[0]), shapes.elem_type(scope, node.input[1])) else None


@NOOP_RULES.register("Sum", "Max", "Min", "Mean", "Concat")
def _single_operand(model: Editor, shapes: ShapeInfo, scope: Scope, node: NodeProto) -> int | None:
    return 0 if len([i for i in node.input if i]) == 1 else None


@NOOP_RULES.register("Transpose")
def _transpose(model: Editor, shapes: ShapeInfo, scope: Scope, node: NodeProto) -> int | None:
    perm = _attr(node, "perm")
    if perm is None:
        dims = shapes.dims(scope, node.input[0])
        return 0 if dims is not None and len(dims) <= 1 else None
    return 0 if list(perm) == list(range(len(perm))) else None


@NOOP_RULES.register("Reshape")
def _reshape(model: Editor, shapes: ShapeInfo, scope: Scope, node: NodeProto) -> int | None:
    dims = shapes.symbolic_dims(scope, node.input[0])
    if dims is None or len(node.input) < 2:
        return None
    target = _target(model, shapes, scope, node.input[1])
    if target is None or len(target) != len(dims) or sum(1 for t in target if t == -1) > 1:
        return None
    allowzero = _attr(node, "allowzero", 0)
    same = all(t == -1 or (t == 0 and not allowzero) or _same(t, d) for t, d in zip(target, dims, strict=True))
    return 0 if same else None


@NOOP_RULES.register("Expand")
def _expand(model: Editor, shapes: ShapeInfo, scope: Scope, node: NodeProto) -> int | None:
    dims = shapes.symbolic_dims(scope, node.input[0])
    if dims is None or len(node.input) < 2:
        return None
    target = _target(model, shapes, scope, node.input[1])
    if target is None or len(target) > len(dims):
        return None
    same = all(t == 1 or _same(t, d) for t, d in zip(reversed(target), reversed(dims), strict=False))
    return 0 if same else None


@NOOP_RULES.register("Tile")
def _tile(model: Editor, shapes: ShapeInfo, scope: Scope, node: NodeProto) -> int | None:
    dims = shapes.symbolic_dims(scope, node.input[0])
    if dims is None or len(node.input) < 2:
        return None
    reps = small_constant(model, scope, node.input[1])
    return 0 if reps is not None and reps.size == len(dims) and np.all(reps == 1) else None


def _axes_operand(model: Editor, scope: Scope, node: NodeProto) -> object:
    return _attr(node, "axes") if len(node.input) < 2 else small_constant(model, scope, node.input[1])


@NOOP_RULES.register("Unsqueeze")
def _unsqueeze(model: Editor, shapes: ShapeInfo, scope: Scope, node: NodeProto) -> int | None:
    if shapes.symbolic_dims(scope, node.input[0]) is None:
        return None
    axes = _axes_operand(model, scope, node)
    return 0 if axes is not None and np.asarray(axes).size == 0 else None


@NOOP_RULES.register("Squeeze")
def _squeeze(model: Editor, shapes: ShapeInfo, scope: Scope, node: NodeProto) -> int | None:
    if shapes.symbolic_dims(scope, node.input[0]) is None:
        return None
    # no axes (no attribute before opset 13, no input from 13 on) or empty ones: squeeze every unit dim
    given = len(node.input) >= 2 and bool(node.input[1]) or _attr(node, "axes") is not None
    axes = _axes_operand(model, scope, node)
    if not given or (axes is not None and np.asarray(axes).size == 0):
        static = shapes.dims(scope, node.input[0])
        return 0 if static is not None and all(d is not None and d != 1 for d in static) else None
    return None


@NOOP_RULES.register("Pad")
def _pad(model: Editor, shapes: ShapeInfo, scope: Scope, node: NodeProto) -> int | None:
    if shapes.symbolic_dims(scope, node.input[0]) is None or len(node.input) < 2:
        return None
    pads = small_constant(model, scope, node.input[1])
    return 0 if pads is not None and pads.size and np.all(pads == 0) else None


@NOOP_RULES.register("Slice", since=10)
def _slice(model: Editor, shapes: ShapeInfo, scope: Scope, node: NodeProto) -> int | None:
    dims = shapes.symbolic_dims(scope, node.input[0])
    if dims is None or len(node.input) < 3:
        return None
    return _slice_noop(model, shapes, scope, node, dims)


@NOOP_RULES.register("Slice", until=9)
def _slice_attributes(model: Editor, shapes: ShapeInfo, scope: Scope, node: NodeProto) -> int | None:
    static = shapes.dims(scope, node.input[0])
    starts, ends, axes = _attr(node, "starts"), _attr(node, "ends"), _attr(node, "axes")
    if static is None or starts is None or ends is None:
        return None
    return _whole_slice(static, np.asarray(starts), np.asarray(ends), None if axes is None else list(axes), None)


@NOOP_RULES.register("Add", "Sub", "Mul", "Div")
def _arithmetic(model: Editor, shapes: ShapeInfo, scope: Scope, node: NodeProto) -> int | None:
    dims = shapes.symbolic_dims(scope, node.input[0])
    if dims is None or len(node.input) != 2:
        return None
    return _arith_noop(model, shapes, scope, node, dims, node.output[0])


def _slice_noop(model, shapes, scope, node, dims) -> int | None:
    static = shapes.dims(scope, node.input[0])
    starts = small_constant(model, scope, node.input[1])
    ends = small_constant(model, scope, node.input[2])
    axes = small_constant(model, scope, node.input[3]) if len(node.input) > 3 and node.input[3] else None
    steps = small_constant(model, scope, node.input[4]) if len(node.input) > 4 and node.input[4] else None
    if static is None or starts is None or ends is None:
        return None
    if (
        len(node.input) > 3
        and node.input[3]
        and axes is None
        or len(node.input) > 4
        and node.input[4]
        and steps is None
    ):
        return None
    return _whole_slice(static, starts, ends, axes, steps)


def _whole_slice(static, starts, ends, axes, steps) -> int | None:
    """0 if slicing `static` dims this way keeps every element, else None."""
    rank = len(static)
    axes_list = [int(a) + rank if a < 0 else int(a) for a in (axes if axes is not None else range(len(starts)))]
    steps_list = [int(s) for s in (steps if steps is not None else [1] * len(starts))]
    for axis, s, e, st in zip(axes_list, starts.tolist(), ends.tolist(), steps_list, strict=False):
        if axis >= rank or st != 1 or static[axis] is None:
            return None
        d = static[axis]
        s = s + d if s < 0 else s
        e = e + d if e < 0 else e
        if max(0, s) != 0 or min(e, d) != d:
            return None
    return 0


def _arith_noop(model, shapes, scope, node, dims, out) -> int | None:
    op = node.op_type
    for keep_index, const_index in ((0, 1), (1, 0)):
        if const_index == 0 and op in ("Sub", "Div"):
            continue
        value = small_constant(model, scope, node.input[const_index])
        if value is None:
            continue
        neutral = 0 if op in ("Add", "Sub") else 1
        if not np.all(value == neutral):
            continue
        kept = node.input[keep_index]
        kept_dims = shapes.symbolic_dims(scope, kept)
        if kept_dims is None or value.ndim > len(kept_dims):
            continue
        if shapes.elem_type(scope, kept) is None or shapes.elem_type(scope, kept) != shapes.elem_type(
            scope, node.input[const_index]
        ):
            continue
        if all(c == 1 or _same(c, d) for c, d in zip(reversed(value.shape), reversed(kept_dims), strict=False)):
            return keep_index
    return None


def _interface_names(scope: Scope) -> set[str]:
    return set(scope.inputs) | set(scope.outputs) | set(scope.initializers)


def eliminate_noops(model: Editor, shapes: ShapeInfo) -> int:
    """Remove Identity, Dropout in inference, Cast/Reshape/Expand/Transpose/... that change nothing."""
    index = model.index
    removed = 0
    for scope in index.scopes:
        aliases = Aliases()
        dead: list[NodeProto] = []
        renamed: set[str] = set()
        for node in ordered_nodes(scope):
            if any(a.type in (AttributeProto.GRAPH, AttributeProto.GRAPHS) for a in node.attribute):
                continue
            try:
                keep = passthrough(model, shapes, scope, node)
            except (ValueError, TypeError, IndexError):
                keep = None
            if keep is None:
                continue
            source = aliases.resolve(node.input[keep])
            out = node.output[0]
            if out in scope.outputs:
                producer = scope.producer.get(source)
                if producer is None or source in _interface_names(scope) or source in renamed:
                    continue
                scope.rename_definition(source, out)
                aliases.add(source, out)
                renamed.add(out)
            else:
                aliases.add(out, source)
            dead.append(node)
        if dead:
            model.replace_uses(aliases.map, scope=scope)
            model.remove_nodes(dead, scope=scope)
            removed += len(dead)
    return removed


def _node_key(node: NodeProto, aliases: Aliases) -> tuple | None:
    if node.domain not in _STANDARD and node.domain != "ai.onnx.ml":
        return None
    if node.op_type in RANDOM_OPS or not node.output:
        return None
    attrs = []
    for a in sorted(node.attribute, key=lambda a: a.name):
        if a.type in (AttributeProto.GRAPH, AttributeProto.GRAPHS):
            return None
        attrs.append(a.SerializeToString(deterministic=True))
    return (node.domain, node.op_type, tuple(aliases.resolve(i) for i in node.input), tuple(attrs), len(node.output))


def eliminate_common_subexpressions(model: Editor) -> int:
    """Merge nodes computing the same op on the same inputs, and identical small initializers."""
    index = model.index
    merged = 0
    for scope in index.scopes:
        aliases = Aliases()
        protected = set(scope.outputs)
        if not scope.is_function:
            seen_init: dict[tuple, str] = {}
            for tensor in scope.graph.initializer:
                if tensor.name in scope.inputs or tensor.name in protected or is_external(tensor):
                    continue
                if tensor.ByteSize() > 4096 or tensor.data_type == TensorProto.STRING:
                    continue
                probe = TensorProto()
                probe.CopyFrom(tensor)
                probe.name = ""
                probe.doc_string = ""
                init_key = (probe.SerializeToString(deterministic=True),)
                if init_key in seen_init:
                    aliases.add(tensor.name, seen_init[init_key])
                    merged += 1
                else:
                    seen_init[init_key] = tensor.name
        seen: dict[tuple, NodeProto] = {}
        dead: list[NodeProto] = []
        for node in ordered_nodes(scope):
            key = _node_key(node, aliases)
            if key is None:
                continue
            first = seen.get(key)
            if first is None:
                seen[key] = node
                continue
            if any(o in protected for o in node.output if o) or any(
                not f and o for f, o in zip(first.output, node.output, strict=True)
            ):
                continue
            for f, o in zip(first.output, node.output, strict=True):
                if o:
                    aliases.add(o, f)
            dead.append(node)
        if aliases.map:
            model.replace_uses(aliases.map, scope=scope)
        if dead:
            model.remove_nodes(dead, scope=scope)
            merged += len(dead)
    return merged


# -- layout chains ---------------------------------------------------------------------------------------
_LAYOUT = ("Transpose", "Unsqueeze", "Squeeze")
_PURE_RESHAPES = ("Reshape", "Unsqueeze", "Squeeze", "Flatten")


def _axes(model: Editor, scope: Scope, node: NodeProto) -> list[int] | None:
    if len(node.input) > 1 and node.input[1]:
        value = small_constant(model, scope, node.input[1])
        return None if value is None else [int(v) for v in value.reshape(-1)]
    value = _attr(node, "axes")
    return None if value is None else list(value)


def _track(model: Editor, scope: Scope, node: NodeProto, ids: list) -> list | None:
    """Dim identities after one layout op: original dims keep theirs, inserted unit dims get None."""
    op = node.op_type
    if op == "Transpose":
        perm = _attr(node, "perm")
        perm = list(range(len(ids)))[::-1] if perm is None else list(perm)
        return [ids[p] for p in perm] if sorted(perm) == list(range(len(ids))) else None
    axes = _axes(model, scope, node)
    if axes is None:
        return None
    if op == "Unsqueeze":
        rank = len(ids) + len(axes)
        axes = sorted(a + rank if a < 0 else a for a in axes)
        out, it = [], iter(ids)
        for i in range(rank):
            out.append(None if i in axes else next(it))
        return out
    rank = len(ids)
    drop = {a + rank if a < 0 else a for a in axes}
    if not drop or any(ids[a] is not None for a in drop):  # only inserted unit dims may go
        return None
    return [d for i, d in enumerate(ids) if i not in drop]


def fuse_layout_chains(model: Editor, shapes: ShapeInfo) -> int:
    """Chains that only permute dims become one Transpose (or nothing); Reshape after a reshape reads the source.

    Unsqueeze -> Transpose -> Squeeze that moves a unit dim in and out (as exporters write a q/k/v split),
    Transpose -> Transpose, Unsqueeze -> Squeeze: each intermediate must have this chain as its only reader.
    And Reshape(Reshape|Unsqueeze|Squeeze|Flatten(x), t) is Reshape(x, t) when t is a constant without zeros.
    """
    index = model.index
    changed = 0
    for scope in index.scopes:
        dead: list[NodeProto] = []
        gone: set[int] = set()

        def sole_reader(name: str, scope: Scope = scope) -> NodeProto | None:
            readers = scope.readers(name)
            if len(readers) != 1 or name in scope.outputs or not scope.producer.get(name):
                return None
            return readers[0]

        for node in ordered_nodes(scope):
            if id(node) in gone or node.domain not in _STANDARD or not node.input or len(node.output) != 1:
                continue
            if node.op_type == "Reshape" and len(node.input) > 1:
                target = small_constant(model, scope, node.input[1])
                source = scope.producer.get(node.input[0])
                if (
                    target is not None
                    and not np.any(target == 0)
                    and source is not None
                    and source.op_type in _PURE_RESHAPES
                    and source.domain in _STANDARD
                    and sole_reader(node.input[0]) is node
                    and id(source) not in gone
                ):
                    model.set_node_input(node, 0, source.input[0])
                    dead.append(source)
                    gone.add(id(source))
                    changed += 1
                continue
            if node.op_type not in _LAYOUT:
                continue
            out = node.output[0]
            nxt = sole_reader(out)
            if nxt is not None and nxt.op_type in _LAYOUT and nxt.domain in _STANDARD:
                continue  # not the end of a chain
            chain = [node]
            while True:
                producer = scope.producer.get(chain[0].input[0])
                if (
                    producer is None
                    or producer.op_type not in _LAYOUT
                    or producer.domain not in _STANDARD
                    or id(producer) in gone
                    or sole_reader(producer.output[0]) is not chain[0]
                ):
                    break
                chain.insert(0, producer)
            if len(chain) < 2:
                continue
            dims = shapes.dims(scope, chain[0].input[0])
            if dims is None:
                continue
            ids: list | None = list(range(len(dims)))
            for link in chain:
                ids = _track(model, scope, link, ids) if ids is not None else None
            if ids is None or sorted(i for i in ids if i is not None) != list(range(len(dims))) or None in ids:
                continue
            head = chain[0]
            source_name = head.input[0]
            for link in chain[:-1]:
                dead.append(link)
                gone.add(id(link))
            last = chain[-1]
            model.set_node_inputs(last, [source_name])
            model.set_op(last, "Transpose")
            model.replace_attributes(last, {"perm": [int(i) for i in ids]})
            changed += len(chain) - 1
        if dead:
            model.remove_nodes(dead, scope=scope)
    return changed


def merge_equal_shape_values(model: Editor, shapes: ShapeInfo) -> int:
    """Value numbering for shape arithmetic: nodes whose partial values are provably equal (same ints, same
    symbols) compute the same tensor, so later ones read the first one instead (the rest dies in cleanup)."""
    from graphsurgeon.verbs.fold.shapes import Sym

    index = model.index
    merged = 0
    for scope in index.scopes:
        seen: dict[tuple, str] = {}
        aliases = Aliases()
        dead: list[NodeProto] = []
        for node in ordered_nodes(scope):
            if len(node.output) != 1 or not node.output[0] or node.domain not in _STANDARD:
                continue
            value = shapes.value(scope, node.output[0])
            if value is None or value.is_static() or any(not isinstance(e, int | Sym) for e in value.elems):
                continue
            key = (value.dtype, value.scalar, value.elems)
            first = seen.get(key)
            if first is None:
                seen[key] = node.output[0]
            elif node.output[0] not in scope.outputs:
                aliases.add(node.output[0], first)
                dead.append(node)
        if dead:
            model.replace_uses(aliases.map, scope=scope)
            model.remove_nodes(dead, scope=scope)
            merged += len(dead)
    return merged


_GEMM_TYPES = {TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.FLOAT16, TensorProto.BFLOAT16}


def fuse_matmul_add(model: Editor, shapes: ShapeInfo) -> int:
    """MatMul(A, B) + C -> Gemm(A, B, C) when A and B are matrices and C broadcasts onto the product.

    Only where the product feeds nothing but that Add, C never enlarges it, and the types are Gemm's floats.
    """
    opset = model.opset_version() or 0
    if opset < 11:
        return 0
    index = model.index
    fused = 0
    for scope in index.scopes:
        dead: list[NodeProto] = []
        for node in ordered_nodes(scope):
            if node.op_type != "Add" or node.domain not in _STANDARD or len(node.input) != 2:
                continue
            for side in (0, 1):
                product, bias = node.input[side], node.input[1 - side]
                matmul = scope.producer.get(product)
                if matmul is None or matmul.op_type != "MatMul" or matmul.domain not in _STANDARD:
                    continue
                readers = scope.readers(product)
                if len(readers) != 1 or product in scope.outputs or bias == product:
                    continue
                a, b = matmul.input[0], matmul.input[1]
                dims_a, dims_b = shapes.symbolic_dims(scope, a), shapes.symbolic_dims(scope, b)
                out_dims, bias_dims = shapes.symbolic_dims(scope, product), shapes.symbolic_dims(scope, bias)
                if dims_a is None or dims_b is None or bias_dims is None or out_dims is None:
                    continue
                if len(dims_a) != 2 or len(dims_b) != 2 or len(out_dims) != 2 or len(bias_dims) > 2:
                    continue
                types = {shapes.elem_type(scope, n) for n in (a, b, bias)}
                if len(types) != 1 or not types <= _GEMM_TYPES:
                    continue
                aligned = list(zip(reversed(bias_dims), reversed(out_dims), strict=False))
                if not all(c == 1 or _same(c, o) for c, o in aligned):
                    continue
                gemm_inputs = [a, b, bias]
                model.set_node_inputs(node, gemm_inputs)
                model.set_op(node, "Gemm")
                dead.append(matmul)
                fused += 1
                break
        if dead:
            model.remove_nodes(dead, scope=scope)
    return fused
