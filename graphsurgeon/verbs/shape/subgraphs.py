"""How the analysis walks into subgraphs (If branches, Loop and Scan bodies) and function bodies.

If: both branches see the outer shapes; the outputs are what they agree on. Loop: the body sees its carried
state shaped like the initial values; a scan output gains the trip count as its leading axis, which follows
the batch when the trip count is computed from it. A trip count baked at the exported value of a changing dim
is refused: whether it counts the items cannot be told. Scan (opset 9+): scan inputs lose their scan axis
(`scan_input_axes`), scan outputs gain the scanned length at `scan_output_axes`. A function call: the body
sees the formals shaped like the actual inputs.
"""

from __future__ import annotations

from onnx import NodeProto

from graphsurgeon.core.index import Scope
from graphsurgeon.verbs.shape.analysis import Analysis, Shape, attr, refuse
from graphsurgeon.verbs.shape.dims import MaybeDim, Mono, fmt

__all__ = ["run_function", "run_subgraphs"]


def run_subgraphs(analysis: Analysis, scope: Scope, node: NodeProto) -> list[Shape | None]:
    """The output shapes of a node with subgraphs whose inputs (or outer-scope reads) carry a changed dim."""
    children = scope.children.get(id(node), [])
    if node.op_type == "If":
        return _if(analysis, node, children)
    if node.op_type == "Loop" and len(children) == 1:
        return _loop(analysis, scope, node, children[0])
    if node.op_type == "Scan" and len(children) == 1:
        return _scan(analysis, scope, node, children[0])
    raise refuse(scope, node, "graphsurgeon cannot follow changed dims into this op's subgraphs")


def _if(analysis: Analysis, node: NodeProto, branches: list[Scope]) -> list[Shape | None]:
    results: list[list[Shape | None]] = []
    for branch in branches:
        analysis.walk(branch)
        results.append([analysis.tensor_shape(branch, o) for o in branch.outputs])
    outs: list[Shape | None] = []
    for k in range(len(node.output)):
        found = [r[k] if k < len(r) else None for r in results]
        outs.append(found[0] if all(b == found[0] for b in found) else None)
    return outs


def _loop(analysis: Analysis, scope: Scope, node: NodeProto, body: Scope) -> list[Shape | None]:
    trip = analysis.value(scope, node, 0) if node.input and node.input[0] else None
    count: MaybeDim = trip.elems[0] if trip is not None and len(trip.elems) == 1 else None
    if isinstance(count, int):
        baked = sorted(s for s in analysis.changed if analysis.env.get(s) == count)
        if baked:
            raise refuse(
                scope,
                node,
                f"its trip count {count} is the exported value of {baked[0]!r}, so whether it counts the items "
                "cannot be told (compute it from the input's shape, or export at another size)",
            )
    carried = [analysis.shape(scope, node, i) for i in range(2, len(node.input))]
    for name, shape in zip(body.inputs, [(), (), *carried], strict=False):
        _seed(analysis, body, name, shape)
    analysis.walk(body)
    outs = [analysis.tensor_shape(body, o) for o in body.outputs]
    state = [o if o == c else None for o, c in zip(outs[1 : 1 + len(carried)], carried, strict=False)]
    if len(node.input) > 1 and node.input[1]:
        count = None  # a condition may end the loop early: the scan outputs' length is unknown
    scans = [None if s is None else (count, *s) for s in outs[1 + len(carried) :]]
    return state + scans


def _scan(analysis: Analysis, scope: Scope, node: NodeProto, body: Scope) -> list[Shape | None]:
    if analysis.opset < 9:
        raise refuse(scope, node, "a Scan before opset 9 (with a batch axis of its own) cannot be followed")
    n_scan = attr(node, "num_scan_inputs", 0)
    n_state = len(node.input) - n_scan
    in_axes = list(attr(node, "scan_input_axes", [0] * n_scan))
    out_axes = list(attr(node, "scan_output_axes", [0] * (len(node.output) - n_state)))
    length: MaybeDim = None
    for k, name in enumerate(body.inputs):
        shape = analysis.shape(scope, node, k)
        if k >= n_state and shape is not None:
            axis = in_axes[k - n_state] + (len(shape) if in_axes[k - n_state] < 0 else 0)
            if k == n_state:
                length = shape[axis]
            elif shape[axis] != length and (isinstance(shape[axis], Mono) or isinstance(length, Mono)):
                raise refuse(scope, node, f"scans lengths {fmt(length)} and {fmt(shape[axis])} together")
            shape = shape[:axis] + shape[axis + 1 :]
        _seed(analysis, body, name, shape)
    analysis.walk(body)
    outs = [analysis.tensor_shape(body, o) for o in body.outputs]
    scans: list[Shape | None] = []
    for j, shape in enumerate(outs[n_state:]):
        if shape is None:
            scans.append(None)
            continue
        axis = out_axes[j] + (len(shape) + 1 if out_axes[j] < 0 else 0)
        scans.append((*shape[:axis], length, *shape[axis:]))
    return outs[:n_state] + scans


def _seed(analysis: Analysis, body: Scope, name: str, shape: Shape | None) -> None:
    """A body input's shape; one that carries a changed dim is declared anew."""
    analysis.shapes[(id(body), name)] = shape
    if analysis.carries_change(shape):
        analysis.touched.add((id(body), name))


def run_function(analysis: Analysis, scope: Scope, node: NodeProto, function: Scope) -> list[Shape | None]:
    """A call: the body runs with the formals shaped like the actual inputs."""
    for k, formal in enumerate(str(name) for name in function.container.input):
        analysis.shapes[(id(function), formal)] = analysis.shape(scope, node, k)
        v = analysis.value(scope, node, k)
        if v is not None:
            analysis.values[(id(function), formal)] = v
        for axis, d in enumerate(analysis.shapes[(id(function), formal)] or ()):
            if isinstance(d, Mono) and d.symbol is not None:
                analysis.function_sources.setdefault((id(function), d.symbol), (formal, axis))
    analysis.walk(function)
    return [analysis.tensor_shape(function, str(o)) for o in function.container.output]
