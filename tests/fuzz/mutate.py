"""Protobuf-level mutations of a ModelProto: each takes the model (edited in place), a random generator and the
case's side files, and returns a short label of what it did (or None when it does not apply to this model).

Side files (external data, FIFOs, symlinks, folders) live beside the model: ``Case.files`` maps a relative path
to bytes, ``FIFO``, ``DIRECTORY`` or ``Symlink(target)``. Non-UTF-8 text is made on the wire: a name becomes a
placeholder of the same length, replaced by invalid UTF-8 bytes after serialization.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

import onnx
from onnx import AttributeProto, GraphProto, ModelProto, NodeProto, TensorProto, helper

FIFO = "fifo"
DIRECTORY = "directory"
PLACEHOLDER = "ZQXNONUTF8QZ"  # replaced on the wire by invalid UTF-8 of the same length
_NON_UTF8 = b"\xff\xfe\xc3\x28\x80NONUTF"


@dataclass(frozen=True)
class Symlink:
    target: str


FileSpec = bytes | str | Symlink


@dataclass
class Case:
    """One mutated model and the files beside it."""

    labels: list[str]
    model: ModelProto
    files: dict[str, FileSpec] = field(default_factory=dict)

    def serialized(self) -> bytes:
        data = self.model.SerializeToString()
        return data.replace(PLACEHOLDER.encode(), _NON_UTF8[: len(PLACEHOLDER)].ljust(len(PLACEHOLDER), b"\xff"))


ODD_NAMES = ["", " ", "a/b", "é", "x" * 300, "0", "-", "a:b", "..", "%d", "\n", "name with spaces", "../x", "\\"]
ODD_DIM_PARAMS = ["", " ", "1", "-1", "N+1", "a b", "?", "unk__0", "0", "é", "x" * 200, "batch", "N/2", "\t"]


def graphs(model: ModelProto) -> list[GraphProto]:
    """The main graph and every subgraph (iterative)."""
    found, stack = [], [model.graph]
    while stack:
        graph = stack.pop()
        found.append(graph)
        for node in graph.node:
            for attr in node.attribute:
                if attr.type == AttributeProto.GRAPH:
                    stack.append(attr.g)
                stack.extend(attr.graphs)
    return found


def _nodes(model: ModelProto) -> list[tuple[GraphProto, NodeProto]]:
    return [(g, n) for g in graphs(model) for n in g.node]


def _tensor_names(model: ModelProto) -> list[str]:
    g = model.graph
    names = [vi.name for vi in g.input] + [t.name for t in g.initializer] + [o for n in g.node for o in n.output]
    return [n for n in names if n]


def _rename_everywhere(model: ModelProto, old: str, new: str) -> None:
    for graph in graphs(model):
        for node in graph.node:
            for seq in (node.input, node.output):
                for i, name in enumerate(seq):
                    if name == old:
                        seq[i] = new
        for seq in (graph.input, graph.output, graph.value_info):
            for vi in seq:
                if vi.name == old:
                    vi.name = new
        for t in graph.initializer:
            if t.name == old:
                t.name = new


def drop_node(model, rng, files):
    nodes = _nodes(model)
    if not nodes:
        return None
    graph, node = rng.choice(nodes)
    graph.node.remove(node)
    return "drop-node"


def duplicate_node(model, rng, files):
    nodes = _nodes(model)
    if not nodes:
        return None
    graph, node = rng.choice(nodes)
    graph.node.add().CopyFrom(node)
    return "duplicate-node"


def dangling_name(model, rng, files):
    nodes = [(g, n) for g, n in _nodes(model) if n.input]
    if not nodes:
        return None
    _, node = rng.choice(nodes)
    node.input[rng.randrange(len(node.input))] = rng.choice(["nowhere", "", node.output[0] if node.output else "x"])
    return "dangling-name"


def odd_name(model, rng, files):
    names = _tensor_names(model)
    if not names:
        return None
    _rename_everywhere(model, rng.choice(names), rng.choice(ODD_NAMES + [PLACEHOLDER]))
    return "odd-name"


def non_utf8(model, rng, files):
    choices: list[Callable[[], None]] = []
    if model.graph.node:
        choices.append(lambda: setattr(rng.choice(model.graph.node), "name", PLACEHOLDER))
    names = _tensor_names(model)
    if names:
        choices.append(lambda: _rename_everywhere(model, rng.choice(names), PLACEHOLDER))
    choices.append(lambda: setattr(model, "producer_name", PLACEHOLDER))
    choices.append(lambda: setattr(model.graph, "doc_string", PLACEHOLDER))
    rng.choice(choices)()
    return "non-utf8"


def drop_graph_io(model, rng, files):
    seq = rng.choice([model.graph.input, model.graph.output])
    if not seq:
        return None
    del seq[rng.randrange(len(seq))]
    return "drop-graph-io"


def duplicate_graph_io(model, rng, files):
    seq = rng.choice([model.graph.input, model.graph.output, model.graph.value_info])
    if not seq:
        return None
    seq.add().CopyFrom(rng.choice(list(seq)))
    return "duplicate-graph-io"


def drop_initializer(model, rng, files):
    if not model.graph.initializer:
        return None
    del model.graph.initializer[rng.randrange(len(model.graph.initializer))]
    return "drop-initializer"


def bad_dims(model, rng, files):
    infos = [vi for g in graphs(model) for vi in (*g.input, *g.output, *g.value_info)]
    dims = [d for vi in infos if vi.type.HasField("tensor_type") for d in vi.type.tensor_type.shape.dim]
    if rng.random() < 0.5 and model.graph.initializer:
        t = rng.choice(model.graph.initializer)
        if t.dims:
            t.dims[rng.randrange(len(t.dims))] = rng.choice([-1, 0, 1 << 40, 7])
        else:
            t.dims.append(rng.choice([0, 2, -3]))
        return "bad-initializer-dims"
    if not dims:
        return None
    dim = rng.choice(dims)
    if rng.random() < 0.5:
        dim.dim_value = rng.choice([-5, 0, 1 << 62, 3])
    else:
        dim.dim_param = rng.choice(ODD_DIM_PARAMS)
    return "bad-dims"


def bad_dtype(model, rng, files):
    value = rng.choice([0, 99, TensorProto.STRING, TensorProto.DOUBLE, TensorProto.INT8, TensorProto.BOOL, 23])
    if rng.random() < 0.5 and model.graph.initializer:
        rng.choice(model.graph.initializer).data_type = value
        return "bad-initializer-dtype"
    infos = [vi for vi in (*model.graph.input, *model.graph.output) if vi.type.HasField("tensor_type")]
    if not infos:
        return None
    rng.choice(infos).type.tensor_type.elem_type = value
    return "bad-dtype"


def drop_type(model, rng, files):
    infos = [vi for g in graphs(model) for vi in (*g.input, *g.output, *g.value_info)]
    if not infos:
        return None
    vi = rng.choice(infos)
    if rng.random() < 0.5:
        vi.ClearField("type")
    elif vi.type.HasField("tensor_type"):
        vi.type.tensor_type.ClearField("shape")
    return "drop-type"


def truncate_data(model, rng, files):
    raw = [t for t in model.graph.initializer if t.HasField("raw_data") and t.raw_data]
    if not raw:
        return None
    t = rng.choice(raw)
    t.raw_data = t.raw_data[: rng.randrange(len(t.raw_data))]
    return "truncate-raw-data"


def cycle(model, rng, files):
    nodes = [n for n in model.graph.node if n.output and n.output[0]]
    if len(nodes) < 1:
        return None
    i = rng.randrange(len(nodes))
    j = rng.randrange(i, len(nodes))
    if not nodes[i].input:
        nodes[i].input.append(nodes[j].output[0])
    else:
        nodes[i].input[0] = nodes[j].output[0]
    return "cycle"


def huge_declared(model, rng, files):
    t = model.graph.initializer.add() if not model.graph.initializer else rng.choice(model.graph.initializer)
    name, dtype = t.name or "huge", t.data_type or TensorProto.FLOAT
    t.Clear()
    t.name, t.data_type = name, dtype
    t.dims.extend([1 << 25, 1 << 25])
    return "huge-declared"


def _externalize_one(model, rng):
    inits = [t for t in model.graph.initializer if t.HasField("raw_data")]
    if not inits:
        return None
    t = rng.choice(inits)
    data = t.raw_data
    t.ClearField("raw_data")
    t.data_location = TensorProto.EXTERNAL
    return t, data


def _entry(t, key, value):
    e = t.external_data.add()
    e.key, e.value = key, value


def hostile_external(model, rng, files):
    picked = _externalize_one(model, rng)
    if picked is None:
        return None
    t, data = picked
    kind = rng.choice(
        [
            "ok",
            "escape",
            "absolute",
            "nul",
            "dup-location",
            "past-end",
            "negative",
            "missing",
            "symlink-loop",
            "fifo",
            "directory",
            "non-utf8",
            "length-mismatch",
            "symlink-out",
            "no-location",
            "bad-offset",
        ]
    )
    location, offset, length = "w.data", 0, len(data)
    files["w.data"] = data
    if kind == "escape":
        location = "../w.data"
    elif kind == "absolute":
        location = "/etc/hostname"
    elif kind == "nul":
        location = "w\0.data"
    elif kind == "dup-location":
        _entry(t, "location", "../escape.data")
    elif kind == "past-end":
        offset = len(data) + 16
    elif kind == "negative":
        length = -4
    elif kind == "missing":
        location = "missing.data"
    elif kind == "symlink-loop":
        location = "loop.data"
        files["loop.data"], files["loop2.data"] = Symlink("loop2.data"), Symlink("loop.data")
    elif kind == "fifo":
        location = "pipe.data"
        files["pipe.data"] = FIFO
    elif kind == "directory":
        location = "folder.data"
        files["folder.data"] = DIRECTORY
    elif kind == "non-utf8":
        location = PLACEHOLDER
    elif kind == "length-mismatch":
        length = max(len(data) - 1, 0)
    elif kind == "symlink-out":
        location = "out.data"
        files["out.data"] = Symlink("/etc/hostname")
    if kind != "no-location":
        _entry(t, "location", location)
    _entry(t, "offset", "x1" if kind == "bad-offset" else str(offset))
    _entry(t, "length", str(length))
    return f"external-{kind}"


def deep_nesting(model, rng, files):
    """If nodes nested `depth` deep (the then branch holds the next level; the else branch is flat)."""
    depth = rng.choice([3, 20, 25, 200])
    if depth > 25:  # deeper than protobuf lets Python build: written on the wire (a side file named model.onnx)
        files["model.onnx"] = _too_deep_on_the_wire(depth)
        return f"deep-nesting-{depth}"

    def branch(level: int, nodes: list) -> onnx.GraphProto:
        out = helper.make_value_info(f"o{level}", helper.make_tensor_type_proto(TensorProto.BOOL, []))
        return helper.make_graph(nodes, f"b{level}", [], [out])

    inner = branch(0, [helper.make_node("Identity", ["c"], ["o0"])])
    for level in range(1, depth):
        flat = branch(level, [helper.make_node("Identity", ["c"], [f"o{level}"])])
        node = helper.make_node("If", ["c"], [f"o{level}"], then_branch=inner, else_branch=flat, name=f"if{level}")
        inner = branch(level, [node])
    model.graph.node.extend(inner.node)
    model.graph.input.append(helper.make_tensor_value_info("c", TensorProto.BOOL, []))
    model.graph.output.append(helper.make_tensor_value_info(f"o{depth - 1}", TensorProto.BOOL, []))
    return f"deep-nesting-{depth}"


def _length_delimited(field_number: int, payload: bytes) -> bytes:
    def varint(n: int) -> bytes:
        out = bytearray()
        while True:
            byte, n = n & 0x7F, n >> 7
            out.append(byte | (0x80 if n else 0))
            if not n:
                return bytes(out)

    return varint(field_number << 3 | 2) + varint(len(payload)) + payload


def _too_deep_on_the_wire(depth: int) -> bytes:
    graph = b""
    for _ in range(depth):
        attribute = _length_delimited(1, b"then_branch") + b"\xa0\x01\x05" + _length_delimited(6, graph)
        graph = _length_delimited(1, _length_delimited(4, b"If") + _length_delimited(5, attribute))
    return b"\x08\x08" + _length_delimited(7, graph) + _length_delimited(8, b"\x10\x11")


def opsets(model, rng, files):
    kind = rng.choice(["drop-default", "version-1", "version-999", "unknown-domain-node", "duplicate"])
    default = [o for o in model.opset_import if o.domain in ("", "ai.onnx")]
    if kind == "drop-default":
        for o in default:
            model.opset_import.remove(o)
    elif kind in ("version-1", "version-999"):
        for o in default:
            o.version = 1 if kind == "version-1" else 999
    elif kind == "unknown-domain-node" and model.graph.node:
        rng.choice(model.graph.node).domain = rng.choice(["weird.domain", "com.microsoft", "ai.onnx.ml"])
    elif kind == "duplicate" and model.opset_import:
        model.opset_import.add().CopyFrom(model.opset_import[0])
    return f"opset-{kind}"


def ir_version(model, rng, files):
    model.ir_version = rng.choice([1, 2, 3, 4, 99])
    return f"ir-{model.ir_version}"


def sparse_dense_same_name(model, rng, files):
    if not model.graph.initializer:
        return None
    dense = rng.choice(model.graph.initializer)
    sparse = model.graph.sparse_initializer.add()
    sparse.values.CopyFrom(helper.make_tensor(dense.name, TensorProto.FLOAT, [1], [1.0]))
    sparse.indices.CopyFrom(helper.make_tensor(dense.name + "_idx", TensorProto.INT64, [1], [0]))
    sparse.dims.extend([4])
    return "sparse-dense-same-name"


def attributes(model, rng, files):
    nodes = [n for _, n in _nodes(model) if n.attribute]
    if not nodes:
        return None
    node = rng.choice(nodes)
    attr = rng.choice(node.attribute)
    kind = rng.choice(["drop", "huge", "type", "empty-name", "duplicate"])
    if kind == "drop":
        node.attribute.remove(attr)
    elif kind == "huge":
        if attr.type == AttributeProto.INT:
            attr.i = rng.choice([1 << 62, -(1 << 62), -1])
        elif attr.type == AttributeProto.INTS:
            attr.ints.extend([1 << 40])
        elif attr.type == AttributeProto.FLOAT:
            attr.f = float("nan")
    elif kind == "type":
        attr.type = rng.choice([AttributeProto.STRING, AttributeProto.GRAPH, 0, AttributeProto.TENSORS])
    elif kind == "empty-name":
        attr.name = ""
    else:
        node.attribute.add().CopyFrom(attr)
    return f"attribute-{kind}"


def functions(model, rng, files):
    if model.functions:
        del model.functions[rng.randrange(len(model.functions))]
        return "drop-function"
    if model.graph.node:
        node = rng.choice(model.graph.node)
        node.domain = "local.fn"
        model.functions.add().CopyFrom(
            helper.make_function("local.fn", node.op_type, list(node.input), list(node.output), [node], [], [])
        )
        return "function-self-call"
    return None


MUTATIONS: list[Callable] = [
    drop_node, duplicate_node, dangling_name, odd_name, non_utf8, drop_graph_io, duplicate_graph_io,
    drop_initializer, bad_dims, bad_dtype, drop_type, truncate_data, cycle, huge_declared, hostile_external,
    deep_nesting, opsets, ir_version, sparse_dense_same_name, attributes, functions,
]  # fmt: skip


def mutate(seed: ModelProto, rng: random.Random, count: int) -> Case:
    """A copy of `seed` with `count` mutations applied (0: the seed as it is, to test hostile save targets)."""
    model = ModelProto()
    model.CopyFrom(seed)
    case = Case([], model)
    for _ in range(count):
        for _attempt in range(5):
            label = rng.choice(MUTATIONS)(model, rng, case.files)
            if label:
                case.labels.append(label)
                break
    return case
