"""Command lines for any verb of the registry: plausible values for its required options, read from the model
(a node name, a tensor, an operand that is a constant...), and a save target, plain or hostile.

Options are found by the declaration (kind, required, positional), never by a list of verbs, so verbs other
engineers add are fuzzed too; a required option this module has no idea for is a counted skip, not a guess.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import onnx
from onnx import ModelProto, NodeProto, TensorProto

from tests.fuzz.mutate import graphs

NEVER_SET = {"serve", "open", "netron", "feeds"}  # would wait on a browser or a server, or need a file
OPTIONAL_RATE = 0.35  # how often an optional option the declaration gives an idea for is set
SAVE_TARGETS = [
    "plain", "plain", "plain", "plain", "in-place", "fifo", "directory", "under-file", "the-input",
    "ext-ok", "ext-escape", "ext-input", "ext-existing", "ext-absolute", "ext-threshold-0", "ext-subdir",
    "ext-target", "new-folder",
]  # fmt: skip


@dataclass(frozen=True)
class Skip:
    reason: str


class Facts:
    """What plausible option values can be picked from (main graph only; a broken model gives fewer)."""

    def __init__(self, model: ModelProto):
        self.model = model
        graph = model.graph
        self.nodes = [n for n in graph.node if n.name or n.op_type]
        self.outputs = [o for n in graph.node for o in n.output if o]
        self.constants = {t.name for t in graph.initializer} - {vi.name for vi in graph.input}
        self.constants |= {n.output[0] for n in graph.node if n.op_type == "Constant" and n.output}
        self.inputs = [vi for vi in graph.input if vi.name not in {t.name for t in graph.initializer}]
        self.graph_outputs = list(graph.output)
        self.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
        infos = [*graph.input, *graph.output, *graph.value_info]
        params = {d.dim_param for vi in infos if vi.type.HasField("tensor_type") for d in vi.type.tensor_type.shape.dim}
        self.dim_params = sorted(p for p in params if p)

    def operand(self, rng: random.Random) -> tuple[NodeProto, str] | None:
        """A node and the schema name of one of its constant operands (promote-input's --node/--attr)."""
        options = []
        for node in self.nodes:
            if node.domain not in ("", "ai.onnx") or self.opset is None:
                continue
            try:
                schema = onnx.defs.get_schema(node.op_type, self.opset, "")
            except Exception:  # noqa: BLE001 - no schema: not a candidate
                continue
            for i, name in enumerate(node.input):
                if name in self.constants and i < len(schema.inputs):
                    options.append((node, schema.inputs[i].name))
        return rng.choice(options) if options else None


def _selector(node: NodeProto) -> str:
    return node.name or node.op_type


def _input_value(vi) -> str | None:
    t = vi.type.tensor_type
    if not vi.type.HasField("tensor_type") or not t.HasField("shape"):
        return None
    count = 1
    for d in t.shape.dim:
        if not d.HasField("dim_value") or d.dim_value < 0:
            return None
        count *= d.dim_value
    if count > 4096 or t.elem_type in (TensorProto.STRING, TensorProto.UNDEFINED):
        return None
    return f"{vi.name}=" + ",".join(["1"] * count) if count else None


def _same_everywhere(model: ModelProto, selector: str, attribute: str) -> bool:
    """Whether every node the selector may match (by name or op type, in any graph) has `attribute` set to one
    value: with `all`, set-attr sets it on each of them."""
    values = set()
    for graph in graphs(model):
        for n in graph.node:
            if selector in (n.name, n.op_type):
                found = [a.SerializeToString() for a in n.attribute if a.name == attribute]
                values.add(found[0] if found else None)
    return len(values) == 1 and None not in values


def _attr_assignment(node: NodeProto) -> str | None:
    for a in node.attribute:
        value = onnx.helper.get_attribute_value(a)
        if isinstance(value, bool | int | float):
            return f"{a.name}={value}"
        if isinstance(value, bytes):
            return f"{a.name}={value.decode(errors='replace')}"
        if isinstance(value, list) and value and all(isinstance(v, int | float) for v in value):
            return f"{a.name}={','.join(str(v) for v in value)}"
    return None


def _value_for(option, facts: Facts, rng: random.Random, root: Path, picked: dict) -> list[str] | Skip:
    """Values (as CLI words) for one required or positional option."""
    name, kind = option.name, option.kind
    if name == "other":
        other = onnx.load(str(root / "in" / "other.onnx"), load_external_data=False)
        picked["other_inputs"] = [vi.name for vi in Facts(other).inputs]
        return [str(root / "in" / "other.onnx")]
    if name == "node":
        if "node" not in picked:
            if not facts.nodes:
                return Skip("the model has no node")
            picked["node"] = rng.choice(facts.nodes)
        return [_selector(picked["node"])]
    if name == "attr" and kind == "scalar":  # an operand name (promote-input)
        found = facts.operand(rng)
        if found is None:
            return Skip("no node reads a constant operand")
        picked["node"], operand = found
        return [operand]
    if name == "attr":  # NAME=VALUE assignments (set-attr): the value the node has, so nothing changes
        node = picked.get("node")
        assignment = _attr_assignment(node) if node is not None else None
        if assignment is None:
            return Skip("the node has no plain attribute")
        if not _same_everywhere(facts.model, _selector(node), assignment.split("=")[0]):
            return Skip("the nodes the selector matches differ in that attribute (setting it would change them)")
        return [assignment]
    if name in ("outputs", "tensors", "inputs"):  # inputs = outputs: an Identity inserted after it (insert)
        if "tensor" not in picked:
            if not facts.outputs:
                return Skip("no node output")
            picked["tensor"] = rng.choice(facts.outputs)
        return [picked["tensor"]]
    if name == "op":
        return ["Identity"]
    if name == "input" and option.opt.metavar == "NAME":  # a graph input's name (add-preprocess)
        return [rng.choice(facts.inputs).name] if facts.inputs else Skip("no graph input")
    if name == "input":
        values = [v for v in (_input_value(vi) for vi in facts.inputs) if v]
        return [rng.choice(values)] if values else Skip("no static graph input to freeze")
    if name == "graph_output":
        outputs = [vi.name for vi in facts.graph_outputs]
        return [rng.choice(outputs)] if outputs else Skip("no graph output")
    if name == "opset":
        return [str(rng.choice([7, 9, 11, 13, 15, 17, 19, 21, 23]))]
    if name == "connect":  # A_OUT:B_IN, the model merged with a copy of its unmutated seed
        b_inputs = picked.get("other_inputs") or []
        if not facts.graph_outputs or not b_inputs:
            return Skip("no graph output or no input of the other model to connect")
        return [f"{rng.choice(facts.graph_outputs).name}:{rng.choice(b_inputs)}"]
    if name == "pattern":
        # the op replaced by itself with no attribute means the same only if no node the pattern matches has one
        with_attributes = {n.op_type for g in graphs(facts.model) for n in g.node if n.attribute}
        plain = [
            n
            for n in facts.nodes
            if n.domain in ("", "ai.onnx")
            and len(n.input) == 1
            and n.op_type not in with_attributes
            and n.op_type.isidentifier()
        ]
        if not plain:
            return Skip("no single-input node for a pattern")
        picked["pattern_op"] = rng.choice(plain).op_type
        return [f"{picked['pattern_op']}(x)"]
    return Skip(f"no plausible value for required option {option.flag}")


def _dims_of(vi, rng: random.Random) -> str:
    """The value's dims as NAME:DIMS wants them, one perhaps freed (a symbol or unknown; empty: a scalar).
    Never pinned to another number: whether 1 fits where 3 was exported depends on the other inputs (a loss'
    target), which a user knows and the fuzzer does not; freeing a dim is the engine's to follow or refuse."""
    t = vi.type.tensor_type if vi.type.HasField("tensor_type") else None
    dims = [str(d.dim_value) if d.HasField("dim_value") else (d.dim_param or "?") for d in t.shape.dim] if t else []
    shape_like = t is not None and len(dims) <= 1 and t.elem_type in (TensorProto.INT64, TensorProto.INT32)
    if dims and not shape_like and rng.random() < 0.5:  # (a Resize's sizes has the length its axes need)
        dims[rng.randrange(len(dims))] = rng.choice(["N", "?"])
    return ",".join(dims)


_DTYPES = ["int32", "int64", "float16", "float", "uint8", "double", "bool"]


def _optional_value(verb_name: str, option, facts: Facts, rng: random.Random, picked: dict) -> list[str] | None:
    """A plausible value for an optional option, read from its declaration (choices, metavar) and the model;
    None when there is no idea (the option is left out)."""
    if option.opt.choices:
        return [str(rng.choice(option.opt.choices))]
    metavar, name = option.opt.metavar, option.name
    inputs = [vi for vi in facts.inputs if vi.name]
    node = rng.choice(facts.nodes) if facts.nodes else None
    tensor = rng.choice(facts.outputs) if facts.outputs else None
    simple = {
        "BYTES": rng.choice(["0", "16", "1KiB", "1MiB"]),
        "SYMBOL": "B",
        "N": str(rng.choice([0, 1, -1])),
        "INPUT_NAME": "promoted",
        "I": "0",
        "PATTERN=REPL": r"(.+)=\1_r",
        "M,M,M": "0.5,0.5,0.5",
        "S,S,S": "0.25,0.25,0.25",
        "F": "0.00392",
        "H,W": "8,8",
        "AXIS": str(rng.choice([-1, 0, 1])),
        "K": str(rng.choice([1, 2])),
        "V": str(rng.choice([3, 7, 8, 10, 11])),
        "PATTERN": rng.choice(["w.data", "shard{n}.data", "sub/w.data"]),
    }
    if metavar in simple and not (verb_name == "make-dynamic" and name == "axis" and rng.random() < 0.5):
        return [simple[metavar]]
    if metavar == "NAME:DIMS":
        infos = facts.graph_outputs if name == "graph_output" else inputs
        return [f"{vi.name}:{_dims_of(vi, rng)}" for vi in rng.sample(infos, 1)] if infos else None
    if metavar == "NAME:DTYPE":
        infos = facts.graph_outputs if name == "graph_output" else inputs
        return [f"{rng.choice(infos).name}:{rng.choice(_DTYPES)}"] if infos else None
    if metavar == "NAME=VALUE" and verb_name == "freeze-input":  # optional since --initializers exists
        values = [v for v in (_input_value(vi) for vi in facts.inputs) if v]
        return [rng.choice(values)] if values else None
    if metavar == "PARAM=VALUE":  # renamed, never pinned to a number (see _dims_of)
        return [f"{facts.dim_params[0] if facts.dim_params else 'N'}=M"]
    if metavar == "NAME" and inputs:  # make-dynamic's inputs
        return [rng.choice(inputs).name]
    if metavar == "SEL" and node is not None:
        return [rng.choice([node.name or node.op_type, node.op_type, "*"]) if verb_name != "inline" else "*"]
    if metavar == "OLD=NEW" and name == "tensor" and tensor:
        return [f"{tensor}={tensor}_renamed"]
    if metavar == "OLD=NEW" and name == "node" and node is not None and node.name:
        return [f"{node.name}={node.name}_renamed"]
    if metavar in ("TENSOR", "T") and tensor:
        return [tensor]
    if verb_name == "externalize" and name == "threshold":
        return [rng.choice(["0", "1KiB"])]
    if verb_name == "externalize" and name == "shard_size":
        return [rng.choice(["4KiB", "1MiB"])]
    if verb_name == "add-preprocess" and name == "dtype":
        return [rng.choice(["uint8", "float"])]
    if verb_name == "merge" and name.startswith("prefix"):
        return [f"{name[-1]}_"]
    if verb_name == "to-fp16" and name == "block" and node is not None:
        return [node.op_type]
    return None


def _save_args(target: str, root: Path, rng: random.Random) -> tuple[list[str], Path | None, bool]:
    """Save flags for one target kind, preparing out/ as that kind needs; (flags, output path, in place)."""
    out = root / "out"
    result = out / "result.onnx"
    if target == "in-place":
        return ["--in-place"], root / "in" / "model.onnx", True
    if target == "fifo":
        import os

        os.mkfifo(out / "pipe.onnx")
        return ["-o", str(out / "pipe.onnx")], out / "pipe.onnx", False
    if target == "directory":
        (out / "folder.onnx").mkdir()
        return ["-o", str(out / "folder.onnx")], out / "folder.onnx", False
    if target == "under-file":
        (out / "file").write_bytes(b"keep")
        return ["-o", str(out / "file" / "result.onnx")], out / "file" / "result.onnx", False
    if target == "the-input":
        return ["-o", str(root / "in" / "model.onnx")], root / "in" / "model.onnx", False
    if target == "new-folder":
        return ["-o", str(out / "a" / "b" / "result.onnx")], out / "a" / "b" / "result.onnx", False
    if target.startswith("ext-"):
        flags = ["-o", str(result), "--external-data"]
        if target == "ext-ok":
            flags.append("weights.data")
        elif target == "ext-escape":
            flags.append("../escape.data")
        elif target == "ext-input":  # the data file named like the input model, output beside it
            result = root / "in" / "result.onnx"
            flags = ["-o", str(result), "--external-data", "model.onnx"]
        elif target == "ext-existing":
            (out / "keep.bin").write_bytes(b"keep")
            flags.append("keep.bin")
        elif target == "ext-absolute":
            flags.append(str(root / "abs.data"))
        elif target == "ext-threshold-0":
            flags += ["weights.data", "--external-data-threshold", "0"]
        elif target == "ext-subdir":
            flags.append("sub/weights.data")
        elif target == "ext-target":
            flags.append("result.onnx")
        return flags, result, False
    return ["-o", str(result)], result, False


def _rate(verb_name: str, option_name: str) -> float:
    """How often an optional option is set: freeze-input's values nearly always (without them or --initializers
    the run is a refusal)."""
    return 0.9 if (verb_name, option_name) == ("freeze-input", "input") else OPTIONAL_RATE


def verb_argv(verb, model: ModelProto, rng: random.Random, root: Path, target: str):
    """(argv, output path or None, in place) for one run, or Skip(reason)."""
    facts = Facts(model)
    picked: dict = {}
    argv = [verb.name, str(root / "in" / "model.onnx")]
    # the operand picks the node; the other model comes before what connects to it
    options = sorted(
        verb.options, key=lambda o: 0 if (o.name, o.kind) == ("attr", "scalar") else int(o.name != "other") + 1
    )
    words: list[str] = []
    for option in options:
        if option.name in NEVER_SET and not option.required:
            continue
        if option.required or (option.opt.positional and option.kind != "list"):
            values = _value_for(option, facts, rng, root, picked)
        elif option.opt.positional:  # an optional positional list (add-outputs MODEL T...)
            values = _value_for(option, facts, rng, root, picked) if rng.random() < 0.7 else []
            values = [] if isinstance(values, Skip) else values
        elif option.kind == "flag" and rng.random() < 0.25:
            values = [option.flag]
        elif option.kind != "flag" and rng.random() < _rate(verb.name, option.name):
            found = _optional_value(verb.name, option, facts, rng, picked)
            if found is None:
                continue
            values = found
        else:
            continue
        if isinstance(values, Skip):
            return values
        if option.opt.positional:
            words = [*words, *values] if option.kind == "list" else [*values, *words]
        elif option.kind == "flag":
            words += values
        else:
            words += [option.flag, *values]
    if "pattern_op" in picked and any(o.name == "op" for o in verb.options):
        words += ["--op", picked["pattern_op"]]
    if not verb.writes:
        page = [o for o in verb.options if o.name in ("page", "output")]
        if page:
            words += [page[0].flag, str(root / "out" / "page.html")]
        return [*argv, *words], None, False
    flags, output, in_place = _save_args(target, root, rng)
    if verb.preserves_meaning and "verify" in verb.groups:
        flags.append("--verify")
    return [*argv, *words, *flags, "-q"], output, in_place
