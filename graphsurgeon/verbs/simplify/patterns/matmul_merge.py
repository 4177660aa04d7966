"""MatMuls reading the same tensor with constant 2-D weights become one MatMul and a Split (as onnxsim's
fuse_matmul does for q/k/v projections): A @ [B1 | B2 | ...] split along the last axis.

Off by default (register default=False): onnxruntime runs the merged form slower (bench/zoo_matmul_merge.py:
BERT and ViT, both exporters, batch 1 and 8, 1 thread: 0.9-2.7 % slower in all eight cases, every 95 %
interval above 1; 2 threads: within noise), the Split costing more than the one larger MatMul saves. Fewer
nodes must never mean a slower model, so `simplify` runs it only on request.
"""

from __future__ import annotations

import numpy as np
from onnx import NodeProto, helper

from graphsurgeon.core.editor import Editor
from graphsurgeon.core.index import Scope
from graphsurgeon.core.order import sorted_nodes
from graphsurgeon.verbs.fold.shapes import ShapeInfo
from graphsurgeon.verbs.simplify.patterns import Names, add_constant, constant_value, nodes_of, pattern

_LIMIT = 64 << 20


@pattern("matmul_merge", default=False)
def merge_sibling_matmuls(ctx: Editor, shapes: ShapeInfo) -> int:
    opset = ctx.opset_version() or 0
    names = Names(ctx)
    merged = 0
    by_scope: dict[int, tuple[Scope, list[NodeProto]]] = {}
    for scope, node in nodes_of(ctx, "MatMul"):
        by_scope.setdefault(id(scope), (scope, []))[1].append(node)
    for scope, matmuls in by_scope.values():
        groups: dict[tuple[str, int, int], list] = {}
        for node in matmuls:
            if len(node.input) != 2:
                continue
            if len(node.output) != 1:
                continue
            a_dims = shapes.symbolic_dims(scope, node.input[0])
            weight = constant_value(ctx, scope, node.input[1], limit=_LIMIT)
            if a_dims is None or len(a_dims) < 2 or weight is None or weight.ndim != 2:
                continue
            key = (node.input[0], weight.shape[0], shapes.elem_type(scope, node.input[1]) or 0)
            groups.setdefault(key, []).append((node, weight))
        for (source, _, _), members in groups.items():
            if len(members) < 2:
                continue
            first = members[0][0]
            widths = [int(w.shape[1]) for _, w in members]
            joined = np.concatenate([w for _, w in members], axis=1)
            weight_name = add_constant(ctx, scope, f"{first.input[1]}_merged", joined, names)
            product = names.fresh(f"{first.output[0]}_merged")
            outputs = [node.output[0] for node, _ in members]
            for node, _ in members:
                ctx.rename_node_output(node, 0, names.fresh(f"{node.output[0]}_unmerged"))
            ctx.remove_nodes([node for node, _ in members], scope=scope)
            matmul = helper.make_node("MatMul", [source, weight_name], [product], name=f"{first.name}_merged")
            if opset >= 13:
                sizes = add_constant(ctx, scope, f"{product}_sizes", np.array(widths, dtype=np.int64), names)
                split = helper.make_node("Split", [product, sizes], outputs, name=f"{first.name}_split", axis=-1)
            else:
                split = helper.make_node("Split", [product], outputs, name=f"{first.name}_split", axis=-1, split=widths)
            ctx.insert_nodes(scope, len(scope.container.node), [matmul, split])  # at the end: no node moves
            merged += len(members) - 1
        if merged:
            ctx.reorder_nodes(scope, sorted_nodes(scope))
    return merged
