"""Replacing an If whose condition is a constant by the nodes of the branch it takes.

The branch's own names keep their spelling unless they clash with a name used elsewhere in the model (then
they get a fresh one); what the branch outputs takes the If's output names, so readers need no rewiring.
A branch output that is an outer-scope value (or listed twice) becomes an Identity, which simplify removes.
"""

from __future__ import annotations

import numpy as np
from onnx import GraphProto, NodeProto, helper

from graphsurgeon.core.editor import Editor
from graphsurgeon.core.index import Scope
from graphsurgeon.core.select import describe
from graphsurgeon.core.walk import graphs_under, model_graphs, node_subgraphs
from graphsurgeon.errors import RewriteError


def _condition(model: Editor, scope: Scope, node: NodeProto) -> bool | None:
    if not node.input or not node.input[0]:
        return None
    name = node.input[0]
    home = scope.resolve(name)
    if home is None or name in home.inputs or name not in home.initializers:
        return None
    from graphsurgeon.verbs.fold.materialize import ValueReader

    try:
        value = ValueReader(model.external_data_dir).read(home.initializers[name])
    except Exception:
        return None
    if np.asarray(value).size != 1:
        return None
    return bool(np.asarray(value).reshape(-1)[0])


def _names_outside(model: Editor, branch: GraphProto) -> set[str]:
    inside = {id(g) for g in graphs_under(branch)}
    names: set[str] = set()
    for graph in model_graphs(model.proto):
        if id(graph) in inside:
            continue
        names.update(vi.name for vi in (*graph.input, *graph.output, *graph.value_info))
        names.update(t.name for t in graph.initializer)
        for node in graph.node:
            names.update(node.input)
            names.update(node.output)
    for function in model.proto.functions:
        names.update(function.input)
        names.update(function.output)
        for node in function.node:
            names.update(node.input)
            names.update(node.output)
    return names


def _rename_under(branch: GraphProto, mapping: dict[str, str]) -> None:
    if not mapping:
        return
    for graph in graphs_under(branch):
        for node in graph.node:
            for i, n in enumerate(node.input):
                if n in mapping:
                    node.input[i] = mapping[n]
            for i, n in enumerate(node.output):
                if n in mapping:
                    node.output[i] = mapping[n]
        for coll in (graph.output, graph.value_info, graph.initializer):
            for item in coll:
                if item.name in mapping:
                    item.name = mapping[item.name]


def inline_if(model: Editor, scope: Scope, node: NodeProto, take_then: bool) -> None:
    branch_name = "then_branch" if take_then else "else_branch"
    branch = next((g for name, g in node_subgraphs(node) if name == branch_name), None)
    if branch is None:  # a model onnx's checker refuses: the If cannot be the branch it lacks
        raise RewriteError(f"{describe(scope, node)} has no {branch_name}, the branch its constant condition takes")
    taken = GraphProto()
    taken.CopyFrom(branch)
    outside = _names_outside(model, branch) - set(node.output)
    defined = [o for n in taken.node for o in n.output if o] + [t.name for t in taken.initializer]
    mapping: dict[str, str] = {}
    outputs = [vi.name for vi in taken.output]
    identities: list[NodeProto] = []
    used_targets: set[str] = set()
    defined_set = set(defined)
    for i, out in enumerate(outputs):
        target = node.output[i] if i < len(node.output) else ""
        if not target:
            continue
        if out in defined_set and out not in mapping:
            mapping[out] = target
            used_targets.add(target)
    taken_names = set(outside) | set(node.output)
    for d in defined:
        if d in mapping:
            continue
        if d in taken_names:
            base = f"{node.name or 'If'}/{d}"
            fresh, k = base, 0
            while fresh in taken_names or fresh in defined_set:
                k += 1
                fresh = f"{base}_{k}"
            mapping[d] = fresh
            taken_names.add(fresh)
    _rename_under(taken, mapping)
    for i, out in enumerate(outputs):
        target = node.output[i] if i < len(node.output) else ""
        if not target or target in used_targets and mapping.get(out) == target:
            continue
        source = mapping.get(out, out)
        identities.append(helper.make_node("Identity", [source], [target], name=f"{node.name or 'If'}/out{i}"))
    new_nodes = list(taken.node) + identities
    constants_as_nodes = scope.is_function or model.proto.ir_version < 4  # IR < 4: initializers are inputs
    if constants_as_nodes:
        new_nodes = [helper.make_node("Constant", [], [t.name], value=t) for t in taken.initializer] + new_nodes
    model.replace_node(node, new_nodes)  # first: the If's outputs may be the branch's initializers' names
    if not scope.is_function:
        for tensor in [] if constants_as_nodes else taken.initializer:
            model.add_initializer(tensor.name, tensor, scope=scope)
        for sparse in taken.sparse_initializer:
            model.add_sparse_initializer(sparse, scope=scope)
        for info in taken.value_info:
            model.add_value_info(info, scope=scope)


def inline_constant_ifs(model: Editor) -> int:
    """Inline every If (in any graph or function) whose condition is a constant initializer."""
    count = 0
    while True:
        index = model.index
        found = None
        for scope, node in index.find_nodes():
            if node.op_type == "If" and node.domain in ("", "ai.onnx"):
                cond = _condition(model, scope, node)
                if cond is not None:
                    found = (scope, node, cond)
                    break
        if found is None:
            return count
        inline_if(model, *found)
        count += 1
