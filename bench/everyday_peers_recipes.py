"""How each tool does each everyday-surgery task (bench/everyday_peers.py runs them).

A recipe is what a user of that tool would type: the CLI where the tool has a command, else the few lines of
Python its documentation shows. `recipe(tool, task, case)` returns a `Cell`: a command to run in a scratch
folder that writes ``out.onnx``, or `None` with the reason when the tool has no such feature. Recipes marked
`side_effect` are not a targeted edit: the tool does the task only as part of a whole-model rewrite.
"""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PY = sys.executable
TOOLS = ["graphsurgeon", "Polygraphy surgeon", "onnx-graphsurgeon", "onnxslim", "onnx.utils / onnx.compose"]
TASKS = [
    "rename",
    "add-outputs",
    "extract",
    "remove-node",
    "insert",
    "set-attr",
    "replace",
    "freeze-input",
    "convert-constants",
    "strip",
]
PREFIX = "p_"  # onnx.compose.add_prefix renames every name with this prefix


@dataclass
class Case:
    """One prepared real model and the concrete task parameters chosen on it (see everyday_peers.prepare)."""

    name: str
    source: str
    path: Path  # the input model (with the bench's markers)
    noop_path: Path  # the input for remove-node (the model itself when it has a no-op node)
    noop_node: str
    noop_note: str
    inputs: list[str]  # graph inputs that are fed (not initializers)
    outputs: list[str]
    tensor: str  # an intermediate tensor (rename, add-outputs, insert)
    cut: tuple[str, str]  # extract: from A to B
    types: dict[str, tuple[str, list[Any]]]  # tensor -> (numpy dtype name, dims) for A, B, tensor
    set_attr: tuple[str, str, Any, str]  # node, attribute, value, why it keeps the meaning
    replace: dict[str, Any]  # inputs, outputs, op, domain, attrs, what
    freeze: tuple[str, Path]  # input name, .npy with its value
    constants_to: str  # "initializers" (the model has Constant nodes) or "nodes"
    feeds: dict[str, Any] = field(default_factory=dict)
    reference: dict[str, Any] = field(default_factory=dict)  # original outputs and the values at tensor, A, B


@dataclass
class Cell:
    argv: list[str] | None
    reason: str = ""  # why there is no command (no such feature)
    side_effect: bool = False
    note: str = ""  # how the tool gets there, when not by a command of that name


def _spell(value: Any) -> str:
    """An attribute value as both CLIs read it: [1,2] for lists, floats always with a point or exponent."""
    if isinstance(value, list):
        return "[" + ",".join(_spell(v) for v in value) + "]"
    return repr(value) if isinstance(value, float) else str(value)


# -- onnx-graphsurgeon: the Python its docs show (import_onnx, edit the Graph, cleanup, export_onnx) --------------
_OGS_HEAD = (
    "import json, sys\nimport numpy as np, onnx, onnx_graphsurgeon as gs\n"
    "P = json.loads(sys.argv[1])\ngraph = gs.import_onnx(onnx.load(P['src']))\ntensors = graph.tensors()\n"
)
_OGS_TAIL = "\nonnx.save(gs.export_onnx(graph), 'out.onnx')\n"
_OGS = {
    "rename": "tensors[P['old']].name = P['new']",
    "add-outputs": "graph.outputs.append(tensors[P['t']].to_variable(dtype=np.dtype(P['dtype'])))",
    "extract": (
        "graph.inputs = [tensors[P['a']].to_variable(dtype=np.dtype(P['a_dtype']), shape=P['a_shape'])]\n"
        "graph.outputs = [tensors[P['b']].to_variable(dtype=np.dtype(P['b_dtype']))]\ngraph.cleanup()"
    ),
    "remove-node": (
        "node = next(n for n in graph.nodes if n.name == P['node'])\nsrc, out = node.inputs[0], node.outputs[0]\n"
        "for reader in list(out.outputs):\n"
        "    for i, t in enumerate(reader.inputs):\n"
        "        if t is out:\n            reader.inputs[i] = src\n"
        "graph.outputs = [src if t is out else t for t in graph.outputs]\nnode.outputs.clear()\ngraph.cleanup()"
    ),
    "insert": (
        "t = tensors[P['t']]\nreaders = list(t.outputs)\n"
        "new = gs.Variable(P['t'] + '_identity', dtype=t.dtype, shape=t.shape)\n"
        "graph.nodes.append(gs.Node('Identity', inputs=[t], outputs=[new]))\n"
        "for reader in readers:\n    for i, x in enumerate(reader.inputs):\n"
        "        if x is t:\n            reader.inputs[i] = new\n"
        "graph.toposort()"
    ),
    "set-attr": "next(n for n in graph.nodes if n.name == P['node']).attrs[P['attr']] = P['value']",
    "replace": (
        "inputs = [tensors[n] for n in P['inputs']]\noutputs = [tensors[n] for n in P['outputs']]\n"
        "for t in outputs:\n    t.inputs.clear()\n"
        "graph.nodes.append(gs.Node(P['op'], domain=P['domain'] or None, attrs=P['attrs'], inputs=inputs, "
        "outputs=outputs))\ngraph.cleanup().toposort()"
    ),
    "freeze-input": (
        "t = next(t for t in graph.inputs if t.name == P['input'])\nt.to_constant(np.load(P['npy']))\n"
        "graph.inputs.remove(t)\ngraph.cleanup()"
    ),
    "convert-constants": (
        "for node in [n for n in graph.nodes if n.op == 'Constant']:\n"
        "    out, value = node.outputs[0], node.attrs['value'].values\n"
        "    node.outputs.clear()\n    out.to_constant(value)\ngraph.cleanup()"
    ),
    "strip": "pass  # no strip: the import/export round trip is all there is",
}


def _ogs(task: str, case: Case) -> Cell:
    a, b = case.cut
    params: dict[str, Any] = {"src": str(case.noop_path if task == "remove-node" else case.path)}
    if task == "rename":
        params |= {"old": case.tensor, "new": case.tensor + "_renamed"}
    elif task in ("add-outputs", "insert"):
        params |= {"t": case.tensor, "dtype": case.types[case.tensor][0]}
    elif task == "extract":
        params |= {"a": a, "b": b, "a_dtype": case.types[a][0], "a_shape": case.types[a][1]}
        params |= {"b_dtype": case.types[b][0]}
    elif task == "remove-node":
        params["node"] = case.noop_node
    elif task == "set-attr":
        params |= dict(zip(("node", "attr", "value"), case.set_attr[:3], strict=True))
    elif task == "replace":
        params |= {k: case.replace[k] for k in ("inputs", "outputs", "op", "domain", "attrs")}
    elif task == "freeze-input":
        params |= {"input": case.freeze[0], "npy": str(case.freeze[1])}
    elif task == "convert-constants" and case.constants_to == "nodes":
        return Cell(None, "Python by hand: a Constant node per initializer (no helper, none in its docs; not run)")
    code = _OGS_HEAD + _OGS[task] + _OGS_TAIL
    return Cell([PY, "-c", code, json.dumps(params)], side_effect=task in ("strip",))


# -- Polygraphy: `polygraphy surgeon extract | insert | sanitize` ------------------------------------------------
def _polygraphy(task: str, case: Case) -> Cell:
    exe = shutil.which("polygraphy") or "polygraphy"
    src, out = str(case.path), ["-o", "out.onnx"]
    a, b = case.cut
    if task == "add-outputs":
        outputs = [f"{name}:auto" for name in (*case.outputs, case.tensor)]
        return Cell([exe, "surgeon", "extract", src, "--outputs", *outputs, *out], note="extract listing every output")
    if task == "extract":
        return Cell([exe, "surgeon", "extract", src, "--inputs", f"{a}:auto:auto", "--outputs", f"{b}:auto", *out])
    if task == "insert":
        return Cell(
            [exe, "surgeon", "insert", src, "--inputs", case.tensor, "--outputs", case.tensor, "--op", "Identity"] + out
        )
    if task == "replace":
        r = case.replace
        attrs = [f"{k}={_spell(v)}" for k, v in r["attrs"].items()]
        cmd = [exe, "surgeon", "insert", src, "--inputs", *r["inputs"], "--outputs", *r["outputs"], "--op", r["op"]]
        return Cell(cmd + ["--attrs", *attrs, *out], note="insert; no option for the op's domain")
    if task == "convert-constants" and case.constants_to == "initializers":
        return Cell([exe, "surgeon", "sanitize", src, "--fold-constants", *out], side_effect=True)
    if task == "strip":
        return Cell([exe, "surgeon", "sanitize", src, *out], side_effect=True)
    reasons = {
        "rename": "no command",
        "remove-node": "no command (sanitize --cleanup removes only dead nodes)",
        "set-attr": "no command",
        "freeze-input": "no command (sanitize --override-input-shapes sets shapes, not values)",
        "convert-constants": "no command",
    }
    return Cell(None, reasons[task])


# -- onnxslim: its CLI (the optimiser, with --inputs / --outputs to cut the model) -------------------------------
def _onnxslim(task: str, case: Case) -> Cell:
    exe = shutil.which("onnxslim") or "onnxslim"
    a, b = case.cut
    if task == "add-outputs":
        cmd = [exe, str(case.path), "out.onnx", "--outputs", *case.outputs, case.tensor]
        return Cell(cmd, note="--outputs; optimises the whole model too")
    if task == "extract":
        return Cell([exe, str(case.path), "out.onnx", "--inputs", a, "--outputs", b], note="optimises it too")
    if task == "remove-node":
        return Cell([exe, str(case.noop_path), "out.onnx"], side_effect=True)
    if task == "convert-constants" and case.constants_to == "initializers":
        return Cell([exe, str(case.path), "out.onnx"], side_effect=True)
    if task == "strip":
        return Cell([exe, str(case.path), "out.onnx"], side_effect=True)
    reasons = {"freeze-input": "no (--input-shapes sets shapes only)", "convert-constants": "no"}
    return Cell(None, reasons.get(task, "no"))


# -- onnx itself: onnx.utils.extract_model, onnx.compose.add_prefix -------------------------------------------------
def _onnx(task: str, case: Case) -> Cell:
    src = str(case.path)
    if task == "rename":
        code = "import sys, onnx, onnx.compose as c\n"
        code += "onnx.save(c.add_prefix(onnx.load(sys.argv[1]), sys.argv[2]), 'out.onnx')"
        return Cell([PY, "-c", code, src, PREFIX], note="add_prefix: every name, not one")
    extract = "import json, sys, onnx.utils as u; u.extract_model(sys.argv[1], 'out.onnx', *json.loads(sys.argv[2]))"
    if task == "add-outputs":
        argv = [PY, "-c", extract, src, json.dumps([case.inputs, [*case.outputs, case.tensor]])]
        return Cell(argv, note="extract_model with every output")
    if task == "extract":
        return Cell([PY, "-c", extract, src, json.dumps([[case.cut[0]], [case.cut[1]]])])
    return Cell(None, "no")


# -- graphsurgeon: its CLI --------------------------------------------------------------------------------------------
def _graphsurgeon(task: str, case: Case) -> Cell:
    exe = [PY, "-m", "graphsurgeon"]
    src, out = str(case.path), ["-o", "out.onnx", "-q"]
    a, b = case.cut
    commands = {
        "rename": ["rename", src, "--tensor", f"{case.tensor}={case.tensor}_renamed"],
        "add-outputs": ["add-outputs", src, case.tensor],
        "extract": ["extract", src, "--inputs", a, "--outputs", b],
        "remove-node": ["remove-node", str(case.noop_path), "--node", case.noop_node],
        "insert": ["insert", src, "--op", "Identity", "--inputs", case.tensor, "--outputs", case.tensor],
        "set-attr": [
            "set-attr",
            src,
            "--node",
            case.set_attr[0],
            "--attr",
            f"{case.set_attr[1]}={_spell(case.set_attr[2])}",
        ],
        "freeze-input": ["freeze-input", src, "--input", f"{case.freeze[0]}={case.freeze[1]}"],
        "convert-constants": ["convert-constants", src, "--to", case.constants_to],
        "strip": ["strip", src],
    }
    if task == "replace":
        r = case.replace
        cmd = ["replace", src, "--inputs", *r["inputs"], "--outputs", *r["outputs"], "--op", r["op"]]
        cmd += ["--domain", r["domain"]] if r["domain"] else []
        commands[task] = cmd + ["--attr", *(f"{k}={_spell(v)}" for k, v in r["attrs"].items())]
    return Cell([*exe, *commands[task], *out])


_BY_TOOL = {
    "graphsurgeon": _graphsurgeon,
    "Polygraphy surgeon": _polygraphy,
    "onnx-graphsurgeon": _ogs,
    "onnxslim": _onnxslim,
    "onnx.utils / onnx.compose": _onnx,
}


def recipe(tool: str, task: str, case: Case) -> Cell:
    return _BY_TOOL[tool](task, case)
