"""Fusion and rewrite patterns simplify runs every round, one small module per pattern (as OnnxSlim's
core/pattern/), registered by decorator with the opset range of the default domain they apply to:

    @pattern("conv_bn", since=9)
    def fuse_conv_bn(ctx: Editor, shapes: ShapeInfo) -> int: ...   # returns how many nodes it removed

A pattern walks each scope once in topological order, edits only through the Editor API, and keeps every
surviving tensor name's value (so shape knowledge computed before it stays valid). Helpers shared by the
patterns live here too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from onnx import NodeProto, TensorProto

from graphsurgeon.core.constants import constant_behind
from graphsurgeon.core.editor import Editor
from graphsurgeon.core.external_data import read_tensor
from graphsurgeon.core.index import Scope
from graphsurgeon.core.names import NameAllocator
from graphsurgeon.verbs.fold.shapes import ShapeInfo

PatternFn = Callable[[Editor, ShapeInfo], int]
STANDARD = ("", "ai.onnx")


@dataclass(frozen=True)
class Pattern:
    name: str
    run: PatternFn
    since: int
    until: int
    default: bool  # off by default: only on request (a rewrite that is not always a win)


PATTERNS: list[Pattern] = []


def pattern(name: str, *, since: int = 1, until: int = 10**6, default: bool = True) -> Callable[[PatternFn], PatternFn]:
    """Register a pattern for models whose default-domain opset is in [since, until]."""

    def add(run: PatternFn) -> PatternFn:
        PATTERNS.append(Pattern(name, run, since, until, default))
        return run

    return add


def run_patterns(ctx: Editor, shapes: ShapeInfo, *, extra: tuple[str, ...] = ()) -> dict[str, int]:
    """Run every applicable pattern once (the defaults and those named in `extra`); nodes removed per pattern."""
    opset = ctx.opset_version() or 1
    done: dict[str, int] = {}
    if ctx.proto.ir_version < 4:
        return done  # every initializer is an overridable input there, and new constants would be nodes
    for p in PATTERNS:
        if (p.default or p.name in extra) and p.since <= opset <= p.until:
            count = p.run(ctx, shapes)
            if count:
                done[p.name] = done.get(p.name, 0) + count
    return done


# -- helpers ------------------------------------------------------------------------------------------------
def constant_value(ctx: Editor, scope: Scope, name: str, limit: int | None = None) -> np.ndarray | None:
    """The value of a constant (initializer no graph input overrides, or Constant node) or None; reads only
    this tensor (external data included) and nothing above `limit` bytes."""
    tensor = constant_behind(scope, name)
    if tensor is None or tensor.data_type in (TensorProto.STRING, TensorProto.UNDEFINED):
        return None
    if limit is not None:
        from graphsurgeon.core.external_data import declared_nbytes

        size = declared_nbytes(tensor)
        if size is None or size > limit:
            return None
    try:
        return read_tensor(tensor, ctx.external_data_dir)
    except Exception:
        return None


def nodes_of(ctx: Editor, *op_types: str) -> list[tuple[Scope, NodeProto]]:
    """The standard-domain nodes of these op types in graphs (not function bodies, whose constants would be
    nodes inserted before their readers), with their scopes: a snapshot, safe to edit while walking (a node
    removed meanwhile is skipped with `alive`; nodes are added only at the end of a graph, which keeps every
    stored node where it is). No walk over the whole model."""
    index = ctx.index
    found = []
    for op in op_types:
        for node in list(index.by_op.get(op, ())):
            scope = index.scope_of_node.get(id(node))
            if scope is not None and not scope.is_function and node.domain in STANDARD:
                found.append((scope, node))
    return found


def alive(ctx: Editor, node: NodeProto) -> bool:
    return id(node) in ctx.index.scope_of_node


def sole_reader(scope: Scope, name: str) -> NodeProto | None:
    """The only node reading `name` in this scope (not a graph output, not read from a subgraph), or None."""
    readers = scope.readers(name)
    if len(readers) != 1 or name in scope.outputs or scope.implicit_consumers.get(name):
        return None
    return readers[0]


def attr(node: NodeProto, name: str, default=None):
    from graphsurgeon.verbs.fold.shapes import _attr

    return _attr(node, name, default)


def only_output_used(scope: Scope, node: NodeProto) -> bool:
    """Does nothing read the node's outputs after the first?"""
    return all(not o or (not scope.readers(o) and o not in scope.outputs) for o in node.output[1:])


class Names:
    """Fresh names for one pass: the model-wide allocator is built once, on first use."""

    def __init__(self, ctx: Editor):
        self.ctx = ctx
        self._allocator: NameAllocator | None = None

    def fresh(self, wanted: str) -> str:
        if self._allocator is None:
            self._allocator = self.ctx.names()
        return self._allocator.fresh(wanted)


def take_over_output(ctx: Editor, scope: Scope, first: NodeProto, second: NodeProto, names: Names) -> None:
    """`first` now produces what `second` produced (the same value) and `second` goes; `first`'s own output
    must have been read by `second` alone."""
    out = second.output[0]
    ctx.rename_node_output(second, 0, names.fresh(f"{out}_fused"))
    ctx.remove_nodes([second], scope=scope)
    ctx.rename_node_output(first, 0, out)


def add_constant(ctx: Editor, scope: Scope, base: str, value: np.ndarray, names: Names) -> str:
    """A new initializer in `scope` (a graph of an IR >= 4 model: see `nodes_of`); returns its name."""
    name = names.fresh(base)
    ctx.add_initializer(name, np.asarray(value), scope=scope)
    return name


from graphsurgeon.verbs.simplify.patterns import (  # noqa: E402 - registration after the registry exists
    concat_flatten,
    conv_add_bias,
    conv_bn,
    layout_permutation,
    matmul_merge,
    nested_if,
    reshape_chain,
    reshape_elementwise,
    reshape_zero_minus_one,
    rnn_zero_state,
    slice_merge,
)

__all__ = ["PATTERNS", "Pattern", "pattern", "run_patterns"]
_REGISTERED = (
    concat_flatten,
    layout_permutation,
    conv_bn,
    conv_add_bias,
    nested_if,
    reshape_zero_minus_one,
    reshape_chain,
    reshape_elementwise,
    rnn_zero_state,
    slice_merge,
    matmul_merge,
)
