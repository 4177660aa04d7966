"""simplify's layout_permutation pattern: Reshape/Transpose chains that only permute dims become one Transpose."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper

from tests.test_simplify_patterns import I64, assert_same, init, make_model, ops, simplified, vi

RNG = np.random.default_rng(3)


def _chain(source_dims, links, out_dims, *, extra_output: str | None = None) -> onnx.ModelProto:
    """x -> links (op, attrs or Reshape target) -> y; `extra_output` also exposes an intermediate."""
    nodes, inits, prev = [], [], "x"
    for i, (op, arg) in enumerate(links):
        out = "y" if i == len(links) - 1 else f"t{i}"
        if op == "Reshape":
            inits.append(init(f"shape{i}", arg, np.int64))
            nodes.append(helper.make_node("Reshape", [prev, f"shape{i}"], [out], name=f"n{i}"))
        else:
            nodes.append(helper.make_node(op, [prev], [out], name=f"n{i}", **arg))
        prev = out
    outputs = [vi("y", out_dims)]
    if extra_output:
        outputs.append(vi(extra_output, None))
    return make_model(nodes, [vi("x", source_dims)], outputs, inits)


def _feeds(dims) -> dict:
    return {"x": RNG.standard_normal([3 if isinstance(d, str) else d for d in dims]).astype(np.float32)}


def _perm(result) -> list[int]:
    (node,) = result.proto.graph.node
    assert node.op_type == "Transpose"
    return list(helper.get_attribute_value(node.attribute[0]))


# An exporter's key transpose: heads merged into the batch for a rank-3 transpose, then split out again.
KEY_T = [
    ("Transpose", {"perm": [0, 2, 1, 3]}),
    ("Reshape", [8, 5, 6]),
    ("Transpose", {"perm": [0, 2, 1]}),
    ("Reshape", [2, 4, 6, 5]),
]


def test_an_attention_key_transpose_becomes_one_transpose():
    model = _chain([2, 5, 4, 6], KEY_T, [2, 4, 6, 5])
    result = simplified(model)
    assert _perm(result) == [0, 2, 3, 1]
    assert_same(model, result, _feeds([2, 5, 4, 6]))


def test_unit_dims_are_placed_where_the_chain_puts_them():
    links = [("Reshape", [6, 4]), ("Transpose", {"perm": [1, 0]}), ("Reshape", [1, 4, 6, 1])]
    model = _chain([1, 6, 1, 4], links, [1, 4, 6, 1])
    result = simplified(model)
    assert ops(result) == ["Transpose"]
    assert_same(model, result, _feeds([1, 6, 1, 4]))


def test_a_symbolic_dim_is_followed_when_it_stays_one_dim():
    model = make_model(
        [
            helper.make_node("Transpose", ["x"], ["t0"], perm=[0, 2, 1]),
            helper.make_node("Unsqueeze", ["t0", "axes"], ["t1"]),
            helper.make_node("Reshape", ["t1", "shape"], ["y"]),
        ],
        [vi("x", ["N", 4, 5])],
        [vi("y", ["N", 5, 4])],
        [init("axes", [1], np.int64), init("shape", [0, 5, 4], np.int64)],
    )
    result = simplified(model)
    assert _perm(result) == [0, 2, 1]
    assert_same(model, result, _feeds(["N", 4, 5]))


def test_a_reshape_that_splits_a_source_dim_is_no_permutation():
    links = [("Reshape", [2, 5, 4, 6]), ("Transpose", {"perm": [0, 2, 1, 3]}), ("Reshape", [2, 4, 30])]
    model = _chain([2, 5, 24], links, [2, 4, 30])
    result = simplified(model)
    assert "Reshape" in ops(result)
    assert_same(model, result, _feeds([2, 5, 24]))


def test_an_intermediate_read_elsewhere_keeps_the_chain():
    model = _chain([2, 5, 4, 6], KEY_T, [2, 4, 6, 5], extra_output="t1")
    result = simplified(model)
    assert ops(result).count("Reshape") >= 1
    assert_same(model, result, _feeds([2, 5, 4, 6]))


def test_a_chain_that_regroups_dims_for_good_stays():
    links = [("Transpose", {"perm": [0, 2, 1, 3]}), ("Reshape", [2, 4, 30])]
    model = _chain([2, 5, 4, 6], links, [2, 4, 30])
    result = simplified(model)
    assert ops(result) == ["Transpose", "Reshape"]
    assert_same(model, result, _feeds([2, 5, 4, 6]))


def test_an_opset_7_chain_is_fused_too():
    model = _chain([2, 5, 4, 6], KEY_T, [2, 4, 6, 5])
    model.opset_import[0].version = 7
    result = simplified(model)
    assert _perm(result) == [0, 2, 3, 1]
    assert_same(model, result, _feeds([2, 5, 4, 6]))


def test_a_target_known_only_from_declared_shapes_is_not_trusted():
    """The rewrite rests on what each op computes (its constant target), not on declared shapes a model may have
    wrong: a Reshape whose target is fed at run time stays, whatever its output is declared as."""
    model = make_model(
        [
            helper.make_node("Transpose", ["x"], ["t0"], perm=[0, 2, 1, 3]),
            helper.make_node("Reshape", ["t0", "target"], ["t1"]),
            helper.make_node("Transpose", ["t1"], ["t2"], perm=[0, 2, 1]),
            helper.make_node("Reshape", ["t2", "back"], ["y"]),
        ],
        [vi("x", [2, 5, 4, 6]), vi("target", [3], I64)],
        [vi("y", [2, 4, 6, 5])],
        [init("back", [2, 4, 6, 5], np.int64)],
    )
    model.graph.value_info.append(vi("t1", [8, 5, 6]))
    result = simplified(model)
    assert ops(result).count("Reshape") == 2
    feeds = {**_feeds([2, 5, 4, 6]), "target": np.array([8, 5, 6], np.int64)}
    assert_same(model, result, feeds)
