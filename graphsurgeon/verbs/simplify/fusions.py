"""Fusions simplify runs every round besides the patterns: layout chains that only permute dims become one
Transpose (or nothing), a Reshape of a reshape reads the source, and MatMul + Add becomes Gemm. One walk over
the nodes in topological order per pass; every surviving tensor name keeps its value."""

from __future__ import annotations

import numpy as np
from onnx import NodeProto, TensorProto

from graphsurgeon.core.editor import Editor
from graphsurgeon.core.index import Scope
from graphsurgeon.verbs.fold.shapes import ShapeInfo, _attr
from graphsurgeon.verbs.simplify.rewrites import NodeOrder, known_equal, nodes_in_order, small_constant

_STANDARD = ("", "ai.onnx")


_LAYOUT = ("Transpose", "Unsqueeze", "Squeeze")
_PURE_RESHAPES = ("Reshape", "Unsqueeze", "Squeeze", "Flatten")


def layout_axes(model: Editor, scope: Scope, node: NodeProto) -> list[int] | None:
    """Squeeze/Unsqueeze axes: the constant input (opset 13 on) or the attribute; None when not known."""
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
    axes = layout_axes(model, scope, node)
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


def fuse_layout_chains(model: Editor, shapes: ShapeInfo, order: NodeOrder | None = None) -> int:
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

        for node in nodes_in_order(scope, order):
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


_GEMM_TYPES = {TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.FLOAT16, TensorProto.BFLOAT16}


def fuse_matmul_add(model: Editor, shapes: ShapeInfo, order: NodeOrder | None = None) -> int:
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
        for node in nodes_in_order(scope, order):
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
                if not all(c == 1 or known_equal(c, o) for c, o in aligned):
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


def absorb_gemm_transposes(model: Editor, shapes: ShapeInfo) -> int:
    """Gemm(Transpose(A), B) -> Gemm(A, B, transA=1) (and so for B): the flag flips, no transposed copy is made.

    Runs before folding, so a Linear's transposed weight stays the stored weight (nothing to compute or
    write) instead of becoming a new constant. Only where the Transpose swaps the two dims of a matrix and
    its output feeds nothing but that Gemm input.
    """
    index = model.index
    absorbed = 0
    dead: dict[int, tuple[Scope, list[NodeProto]]] = {}  # per scope: the absorbed Transposes
    for node in list(index.by_op.get("Gemm", ())):  # no walk over the whole model
        scope = index.scope_of_node.get(id(node))
        if scope is None or node.domain not in _STANDARD or len(node.input) < 2:
            continue
        for position, flag in ((0, "transA"), (1, "transB")):
            name = node.input[position]
            transpose = scope.producer.get(name)
            if transpose is None or transpose.op_type != "Transpose" or transpose.domain not in _STANDARD:
                continue
            if name in scope.outputs or len(scope.readers(name)) != 1 or list(node.input).count(name) != 1:
                continue
            if _referenced(node, flag) or _referenced(transpose, "perm"):
                continue  # a function attribute's value is not known here
            dims = shapes.symbolic_dims(scope, transpose.input[0])
            perm = _attr(transpose, "perm")
            if dims is None or len(dims) != 2 or (perm is not None and list(perm) != [1, 0]):
                continue
            model.set_node_input(node, position, transpose.input[0])
            model.set_attribute(node, flag, 0 if _attr(node, flag) else 1)
            dead.setdefault(id(scope), (scope, []))[1].append(transpose)
            absorbed += 1
    for scope, transposes in dead.values():
        model.remove_nodes(transposes, scope=scope)
    return absorbed


def _referenced(node: NodeProto, name: str) -> bool:
    return any(a.name == name and a.ref_attr_name for a in node.attribute)
