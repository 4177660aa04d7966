"""The load-time UTF-8 check: the C fast path (a strict re-parse) agrees with the Python walk, and a bad name is
still refused, naming where it is, whichever path looked."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import ModelProto, TensorProto, helper, numpy_helper

from graphsurgeon.core import utf8
from graphsurgeon.core.io import parse_model
from graphsurgeon.errors import ModelLoadError


def _model(names: tuple[str, str] = ("NNNNN", "nnnnn"), weight: np.ndarray | None = None) -> bytes:
    tensor, node = names
    inits = [numpy_helper.from_array(weight, "w")] if weight is not None else []
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], [tensor], name=node, doc_string="a doc")],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info(tensor, TensorProto.FLOAT, [1])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.metadata_props.add(key="k", value="v")
    return model.SerializeToString()


def test_valid_text_passes_the_fast_path():
    data = _model()
    assert utf8.text_is_utf8(parse_model(data, "m"), data)


@pytest.mark.parametrize("bad", [b"\xff\xfeQQ\x80", b"\xc3\x28aaa"])
def test_bad_text_fails_the_fast_path_and_the_walk_says_where(bad: bytes):
    data = _model().replace(b"NNNNN", bad[:5].ljust(5, b"Q"))
    with pytest.raises(ModelLoadError, match="not UTF-8"):
        parse_model(data, "m")
    proto = ModelProto()
    proto.ParseFromString(data)
    assert not utf8.text_is_utf8(proto, data)
    where = utf8.find_non_utf8(proto) or ""
    assert where.startswith(("NodeProto.", "ValueInfoProto."))


def test_mostly_weights_goes_to_the_walk():
    """Above 64 MiB of mostly inline weights the bytes are not parsed twice; the walk still refuses bad text."""
    weight = np.zeros(17 << 20, np.float32)  # 68 MiB
    data = _model(weight=weight)
    proto = parse_model(data, "m")
    assert not utf8.text_is_utf8(proto, data)  # not shown by the fast path: left to the walk (which passes it)
    bad = _model(weight=weight).replace(b"nnnnn", b"\xc3\x28aaa")
    with pytest.raises(ModelLoadError, match="not UTF-8"):
        parse_model(bad, "m")
