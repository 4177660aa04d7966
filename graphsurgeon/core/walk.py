"""Iterative traversal of everything a ModelProto holds: graphs, subgraphs, functions, tensors.

No recursion anywhere, so nesting depth is limited only by what protobuf itself parsed.
"""

from __future__ import annotations

from collections.abc import Iterator

from onnx import AttributeProto, GraphProto, ModelProto, NodeProto, TensorProto


def node_subgraphs(node: NodeProto) -> Iterator[tuple[str, GraphProto]]:
    """The subgraphs a node holds directly (If branches, Loop/Scan bodies...), with their attribute names."""
    for attr in node.attribute:
        if attr.type == AttributeProto.GRAPH:
            yield attr.name, attr.g
        elif attr.type == AttributeProto.GRAPHS:
            for g in attr.graphs:
                yield attr.name, g


_GRAPH, _GRAPHS = AttributeProto.GRAPH, AttributeProto.GRAPHS
_TENSOR, _TENSORS = AttributeProto.TENSOR, AttributeProto.TENSORS
_SPARSE, _SPARSES = AttributeProto.SPARSE_TENSOR, AttributeProto.SPARSE_TENSORS


def graphs_under(*roots: GraphProto) -> Iterator[GraphProto]:
    """The given graphs and every subgraph nested in them, outer before inner (depth first, in node order)."""
    stack = list(reversed(roots))
    while stack:
        graph = stack.pop()
        yield graph
        for node in graph.node:
            for attr in node.attribute:  # inlined node_subgraphs: this loop runs once per node of the model
                kind = attr.type
                if kind == _GRAPH:
                    stack.append(attr.g)
                elif kind == _GRAPHS:
                    stack.extend(attr.graphs)


def _function_subgraphs(model: ModelProto) -> list[GraphProto]:
    return [g for function in model.functions for node in function.node for _, g in node_subgraphs(node)]


def model_graphs(model: ModelProto) -> Iterator[GraphProto]:
    """Every graph in the model: function subgraphs, the main graph and its subgraphs, training graphs."""
    yield from graphs_under(*_function_subgraphs(model))
    if model.HasField("graph"):
        yield from graphs_under(model.graph)
    for info in model.training_info:
        yield from graphs_under(info.initialization, info.algorithm)


def _attribute_tensors(node: NodeProto) -> Iterator[TensorProto]:
    for attr in node.attribute:
        if attr.type == AttributeProto.TENSOR:
            yield attr.t
        elif attr.type == AttributeProto.TENSORS:
            yield from attr.tensors
        elif attr.type == AttributeProto.SPARSE_TENSOR:
            yield attr.sparse_tensor.values
            yield attr.sparse_tensor.indices
        elif attr.type == AttributeProto.SPARSE_TENSORS:
            for sparse in attr.sparse_tensors:
                yield sparse.values
                yield sparse.indices


def _tensors_under(*roots: GraphProto) -> Iterator[TensorProto]:
    """The tensors of graphs_under(*roots), in the same order, in one pass over the nodes."""
    stack = list(reversed(roots))
    while stack:
        graph = stack.pop()
        yield from graph.initializer
        for sparse in graph.sparse_initializer:
            yield sparse.values
            yield sparse.indices
        for node in graph.node:
            for attr in node.attribute:
                kind = attr.type
                if kind == _GRAPH:
                    stack.append(attr.g)
                elif kind == _GRAPHS:
                    stack.extend(attr.graphs)
                elif kind == _TENSOR:
                    yield attr.t
                elif kind == _TENSORS:
                    yield from attr.tensors
                elif kind == _SPARSE:
                    yield attr.sparse_tensor.values
                    yield attr.sparse_tensor.indices
                elif kind == _SPARSES:
                    for sparse in attr.sparse_tensors:
                        yield sparse.values
                        yield sparse.indices


def model_tensors(model: ModelProto) -> Iterator[TensorProto]:
    """Every TensorProto in the model: initializers, sparse initializers and tensor attributes, at any depth."""
    for function in model.functions:
        for node in function.node:
            yield from _attribute_tensors(node)
    yield from _tensors_under(*_function_subgraphs(model))
    if model.HasField("graph"):
        yield from _tensors_under(model.graph)
    for info in model.training_info:
        yield from _tensors_under(info.initialization, info.algorithm)
