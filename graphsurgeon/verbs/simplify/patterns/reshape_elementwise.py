"""A Reshape pair around elementwise ops goes: ``Reshape(f(Reshape(x, B)), A)`` is ``f(x)`` when x has shape A
and f is elementwise (as onnxsim leaves the GELU between two Gemms of a GPT-2 MLP).

The region starts at a Reshape's output and takes every node reading it (and what those produce) while they
are elementwise ops whose other operands are size-1 tensors (scalars: they broadcast the same onto any
shape); it must end only in Reshapes back to x's shape (dims known, equal symbol for symbol) and nothing else
may read inside it. Then the region reads x, its values get new names (their shape changed), the closing
Reshapes' readers read the region's results, and every Reshape of the pair goes. Regions are capped in size,
so the pass stays linear.
"""

from __future__ import annotations

from onnx import NodeProto

from graphsurgeon.core.editor import Editor
from graphsurgeon.core.index import Scope
from graphsurgeon.verbs.fold.shapes import ShapeInfo
from graphsurgeon.verbs.simplify.patterns import STANDARD, Names, alive, nodes_of, pattern

_MAX_REGION = 256
_ELEMENTWISE = frozenset(
    (
        "Abs Acos Acosh Add And Asin Asinh Atan Atanh BitShift BitwiseAnd BitwiseNot BitwiseOr BitwiseXor Cast "
        "Ceil Celu Clip Cos Cosh Div Elu Equal Erf Exp Floor Gelu Greater GreaterOrEqual HardSigmoid HardSwish "
        "Identity IsInf IsNaN LeakyRelu Less LessOrEqual Log Max Mean Min Mish Mod Mul Neg Not Or Pow PRelu "
        "Reciprocal Relu Round Selu Sigmoid Sign Sin Sinh Softplus Softsign Sqrt Sub Sum Tan Tanh "
        "ThresholdedRelu Where Xor"
    ).split()
)


class _Region:
    """The elementwise nodes between an opening Reshape and the Reshapes that undo it."""

    def __init__(self, shapes: ShapeInfo, scope: Scope, opening: NodeProto):
        self.shapes, self.scope, self.opening = shapes, scope, opening
        self.nodes: list[NodeProto] = []
        self.closing: list[NodeProto] = []

    def find(self) -> bool:
        """Collect the region; False when it is not one this rewrite may take."""
        shapes, scope = self.shapes, self.scope
        source, start = self.opening.input[0], self.opening.output[0]
        outer = shapes.symbolic_dims(scope, source)
        inner = shapes.symbolic_dims(scope, start)
        if outer is None or inner is None or outer == inner or None in outer or None in inner:
            return False
        self.outer, self.inner = outer, inner
        values = {start}
        members: dict[int, NodeProto] = {}
        stack = [start]
        while stack:
            value = stack.pop()
            if value in scope.outputs or scope.implicit_consumers.get(value):
                return False  # the interface, or a subgraph, reads a value whose shape would change
            for reader in scope.consumers.get(value, []):
                key = id(reader)
                if key in members:
                    continue
                if self._closes(reader, value):
                    members[key] = reader
                    self.closing.append(reader)
                    continue
                if reader.op_type not in _ELEMENTWISE or reader.domain not in STANDARD or len(members) > _MAX_REGION:
                    return False
                members[key] = reader
                self.nodes.append(reader)
                for out in reader.output:
                    if not out or shapes.symbolic_dims(scope, out) != inner:
                        return False  # an output of another shape: not elementwise on this region
                    values.add(out)
                    stack.append(out)
        # every operand from outside must broadcast as a scalar would, whatever the region's shape
        rank = min(len(outer), len(inner))
        for node in self.nodes:
            for name in node.input:
                if name and name not in values and not self._scalar_like(name, rank):
                    return False
        return bool(self.closing)

    def _closes(self, reader: NodeProto, value: str) -> bool:
        """A Reshape of a region value back to the source's shape."""
        if reader.op_type != "Reshape" or reader.domain not in STANDARD or reader.input[0] != value:
            return False
        if value in reader.input[1:]:
            return False  # the region's value is also the target: its shape is what changes
        out = reader.output[0]
        return self.shapes.symbolic_dims(self.scope, out) == self.outer and not (
            out in self.scope.outputs and not self._can_take_over(reader)
        )

    def _can_take_over(self, closing: NodeProto) -> bool:
        """Can the region node feeding a closing Reshape produce its (graph output) name itself?"""
        value = closing.input[0]
        producer = self.scope.producer.get(value)
        return (
            producer is not None
            and producer is not self.opening
            and len(self.scope.readers(value)) == 1
            and value not in self.scope.outputs
        )

    def _scalar_like(self, name: str, rank: int) -> bool:
        dims = self.shapes.symbolic_dims(self.scope, name)
        return dims is not None and len(dims) <= rank and all(d == 1 for d in dims)


@pattern("reshape_elementwise", since=5)
def drop_reshapes_around_elementwise(ctx: Editor, shapes: ShapeInfo) -> int:
    names = Names(ctx)
    removed = 0
    for scope, opening in nodes_of(ctx, "Reshape"):
        if not alive(ctx, opening) or len(opening.input) < 1 or len(opening.output) != 1:
            continue
        region = _Region(shapes, scope, opening)
        if not region.find():
            continue
        renamed = {opening.output[0]: opening.input[0]}
        for node in region.nodes:
            for i, out in enumerate(node.output):
                if out:
                    renamed[out] = names.fresh(f"{out}_unreshaped")
                    ctx.rename_node_output(node, i, renamed[out])
        ctx.replace_uses(renamed, scope=scope)
        for closing in region.closing:
            value, out = closing.input[0], closing.output[0]
            if out in scope.outputs:  # the region node takes the graph output's name (checked: it may)
                producer = scope.producer[value]
                ctx.rename_node_output(closing, 0, names.fresh(f"{out}_reshaped"))
                ctx.remove_nodes([closing], scope=scope)
                ctx.rename_node_output(producer, list(producer.output).index(value), out)
                ctx.replace_uses({value: out}, scope=scope)
            else:
                ctx.replace_uses({out: value}, scope=scope)
                ctx.remove_nodes([closing], scope=scope)
        ctx.remove_nodes([opening], scope=scope)
        removed += 1 + len(region.closing)
    return removed
