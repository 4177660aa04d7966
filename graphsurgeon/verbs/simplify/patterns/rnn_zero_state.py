"""An RNN / GRU / LSTM whose initial state is built as zeros (``ConstantOfShape(Concat(num_directions,
Shape(x)[batch], hidden))`` with value 0, maybe sliced per layer: how exporters write a dynamic-batch zero
state) omits that input: an omitted initial_h / initial_c is zero by definition, so the state's shape
arithmetic dies."""

from __future__ import annotations

import numpy as np
from onnx import numpy_helper

from graphsurgeon.core.editor import Editor
from graphsurgeon.verbs.fold.shapes import ShapeInfo
from graphsurgeon.verbs.simplify.patterns import STANDARD, attr, constant_value, nodes_of, pattern

_STATES = {"RNN": (5,), "GRU": (5,), "LSTM": (5, 6)}  # input positions of initial_h (and initial_c)


_MOVES = ("Slice", "Gather", "Reshape", "Squeeze", "Unsqueeze", "Expand", "Transpose", "Identity", "Cast")


def _is_zeros(ctx: Editor, scope, name: str) -> bool:
    """Is `name` all zeros: a zero constant, or elements of one that ops selecting or moving data pass on?"""
    producer = scope.producer.get(name)
    for _ in range(16):
        if producer is None or producer.op_type not in _MOVES or producer.domain not in STANDARD:
            break
        name = producer.input[0]
        producer = scope.producer.get(name)
    if producer is not None and producer.op_type == "ConstantOfShape" and producer.domain in STANDARD:
        value = attr(producer, "value")
        return value is None or not np.any(numpy_helper.to_array(value))
    value = constant_value(ctx, scope, name, limit=1 << 20)
    return value is not None and value.size > 0 and not np.any(value)


@pattern("rnn_zero_state", since=7)
def drop_zero_rnn_states(ctx: Editor, shapes: ShapeInfo) -> int:
    dropped = 0
    for scope, node in nodes_of(ctx, *_STATES):
        inputs = list(node.input)
        changed = False
        for position in _STATES[node.op_type]:
            if position < len(inputs) and inputs[position] and _is_zeros(ctx, scope, inputs[position]):
                inputs[position] = ""
                changed = True
        if changed:
            while inputs and not inputs[-1]:
                inputs.pop()
            ctx.set_node_inputs(node, inputs)
            dropped += 1
    return dropped
