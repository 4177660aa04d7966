"""Both versions of a model in one picture: the main graph of B with A's removed nodes, inputs, outputs and
initializers put back, each element marked added / removed / changed as the `diff` verb reports it, and the
diff's change list with each entry pointing at the node it concerns."""

from __future__ import annotations

from typing import Any

from onnx import ModelProto, TensorProto

from graphsurgeon.verbs.diff import DiffReport, node_keys
from graphsurgeon.verbs.viewer.graph_data import (
    STATUS,
    GraphBuilder,
    Item,
    _types_of,
    inferred_model,
)


def _first_by(keys: list[tuple[str, str]]) -> dict[str, int]:
    found: dict[str, int] = {}
    for i, (key, _) in enumerate(keys):
        found.setdefault(key, i)
    return found


def _status_of(report: DiffReport, section: str) -> dict[str, str]:
    return {d.name: STATUS[d.action] for d in report.differences if d.section == section}


def union_graphs(a: ModelProto, b: ModelProto, report: DiffReport) -> tuple[list[dict[str, Any]], list[dict]]:
    """The union graph (graph 0), B's functions and bodies (A's for removed nodes), and the change list."""
    inferred_a, inferred_b = inferred_model(a), inferred_model(b)
    graph_a, graph_b = a.graph, b.graph
    twins_a = list(inferred_a.graph.node) if inferred_a is not None else []
    twins_b = list(inferred_b.graph.node) if inferred_b is not None else []
    nodes_a, nodes_b = list(graph_a.node), list(graph_b.node)
    keys_a, keys_b = node_keys(nodes_a), node_keys(nodes_b)
    first_a, first_b = _first_by(keys_a), _first_by(keys_b)
    details: dict[str, list[str]] = {}
    for d in report.differences:
        if d.section == "node" and d.action == "changed":
            details.setdefault(d.name, []).append(d.detail)

    items: list[Item] = []
    for j, node in enumerate(nodes_b):
        twin = twins_b[j] if len(twins_b) == len(nodes_b) else None
        key, label = keys_b[j]
        i = first_a.get(key)
        if i is None:
            items.append(Item(node, "a", twin=twin))
        elif first_b[key] == j and keys_a[i][1] in details:
            items.append(Item(node, "c", nodes_a[i], details[keys_a[i][1]], twin=twin))
        else:
            items.append(Item(node, twin=twin))
    removed = [i for i, (key, _) in enumerate(keys_a) if key not in first_b and first_a[key] == i]
    for i in removed:
        twin = twins_a[i] if len(twins_a) == len(nodes_a) else None
        items.append(Item(nodes_a[i], "r", twin=twin))

    inits_a = {t.name: t for t in graph_a.initializer}
    inits_b = {t.name: t for t in graph_b.initializer}
    init_status = _status_of(report, "initializer")
    initializers: list[tuple[TensorProto, str | None]] = [(t, init_status.get(n)) for n, t in inits_b.items()]
    initializers += [(t, "r") for n, t in inits_a.items() if n not in inits_b]

    def interface(values_a, values_b, section: str, skip_a: set[str], skip_b: set[str]):
        status = _status_of(report, section)
        names_b = [v.name for v in values_b if v.name not in skip_b]
        listed = set(names_b)
        union = [(n, status.get(n)) for n in names_b]
        union += [(v.name, "r") for v in values_a if v.name not in skip_a and v.name not in listed]
        return union

    inputs = interface(graph_a.input, graph_b.input, "input", set(inits_a), set(inits_b))
    outputs = interface(graph_a.output, graph_b.output, "output", set(), set())

    # where A produced each tensor, as indices into the union's node list (inputs, then items, then outputs)
    old_producers: dict[str, int] = {}
    input_index = {name: k for k, (name, _) in enumerate(inputs)}
    for v in graph_a.input:
        if v.name in input_index:
            old_producers.setdefault(v.name, input_index[v.name])
    item_index_a: dict[int, int] = {}
    b_index_of_key = {key: len(inputs) + j for key, j in first_b.items()}
    for i, (key, _) in enumerate(keys_a):
        if key in b_index_of_key and first_a[key] == i:
            item_index_a[i] = b_index_of_key[key]
    for position, i in enumerate(removed):
        item_index_a[i] = len(inputs) + len(nodes_b) + position
    for i, node in enumerate(nodes_a):
        if i in item_index_a:
            for out in node.output:
                if out:
                    old_producers.setdefault(out, item_index_a[i])

    types = _types_of(graph_a, inferred_a.graph if inferred_a is not None else None)
    types.update(_types_of(graph_b, inferred_b.graph if inferred_b is not None else None))
    builder = GraphBuilder(b.functions)
    builder.graphs[0] = builder.entry(
        0,
        graph_b,
        "main",
        graph_b.name or "main graph",
        None,
        items,
        types=types,
        inputs=inputs,
        outputs=outputs,
        initializers=initializers,
        old_producers=old_producers,
    )
    graphs = builder.finish()
    return graphs, _change_list(report, graphs[0], builder.functions, keys_a, keys_b, removed, len(inputs))


def _change_list(report, main, functions, keys_a, keys_b, removed, first_op) -> list[dict[str, Any]]:
    """The diff's entries, each with the node it jumps to (graph 0, node index) where there is one."""
    nodes = main["nodes"]
    by_label: dict[str, int] = {}
    for j, (_, label) in enumerate(keys_b):
        by_label.setdefault(label, first_op + j)
    for position, i in enumerate(removed):
        by_label.setdefault(keys_a[i][1], first_op + len(keys_b) + position)
    for j, (_, label) in enumerate(keys_a):  # changed nodes are reported by A's label
        if label not in by_label:
            match = next((k for k, (key, _) in enumerate(keys_b) if key == keys_a[j][0]), None)
            if match is not None:
                by_label[label] = first_op + match
    interface = {(n["k"], n["n"]): k for k, n in enumerate(nodes) if n["k"] in ("i", "o")}
    readers: dict[str, int] = {}
    for k, n in enumerate(nodes):
        for tensor in n.get("in", ()):
            readers.setdefault(tensor, k)
    for k, n in enumerate(nodes):
        for tensor in n.get("was", {}).get("in", ()):
            readers.setdefault(tensor, k)
    function_graph = {f"{domain}::{name}": gid for (domain, name), gid in functions.items()}
    entries = []
    for d in report.differences:
        target: list[int] | None = None
        if d.section == "node" and d.name in by_label:
            target = [0, by_label[d.name]]
        elif d.section in ("input", "output") and (d.section[0], d.name) in interface:
            target = [0, interface[(d.section[0], d.name)]]
        elif d.section == "initializer" and d.name in readers:
            target = [0, readers[d.name]]
        elif d.section == "function" and d.name.rsplit("::", 1)[0] in function_graph:
            target = [function_graph[d.name.rsplit("::", 1)[0]], -1]
        entry: dict[str, Any] = {"s": STATUS[d.action], "sec": d.section, "n": d.name, "d": d.detail}
        if target is not None:
            entry["t"] = target
        entries.append(entry)
    return entries
