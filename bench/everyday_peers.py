"""The everyday-surgery peers table, measured on real models: each task x each tool, run, loaded and checked.

    python bench/everyday_peers.py [--cache /tmp/gs_zoo] [--models bert_dynamo,...] [--workdir DIR] [--keep]

For each model (bench/zoo.py builds them: a dynamo- and a TorchScript-exported BERT from a transformers config
with random weights, PaddleOCR's detector from the rapidocr wheel, SqueezeNet from the onnx wheel's model zoo)
and each task (bench/everyday_peers_recipes.py: rename, add-outputs, extract, remove-node, insert, set-attr,
replace, freeze-input, convert-constants, strip), every tool that has the feature runs in its own scratch folder
(its current directory; files it leaves there are reported). Each cell records: ran / refused / crashed, whether
onnxruntime loads the result, whether the result computes what it should, and what survived of the input.

What "should" means: meaning-preserving tasks (rename, remove-node of a no-op, insert of an Identity, set-attr of
an equivalent spelling, replace by a fused op computing the same, convert-constants, strip) give the original's
outputs; add-outputs gives them plus the intermediate's value; extract gives the original's value at the cut's
end from its value at the cut's start; freeze-input gives the original's outputs for the frozen value. The
reference values come from the original run in onnxruntime with those tensors added as outputs.

To make survival observable on every model, the input carries markers: a model doc string, a metadata_props
entry, a doc string on every node, a metadata_props entry on nodes that had none (the dynamo export keeps its
own five per node: stack traces, class hierarchy...), and inferred value_info where the model had none. Writes
bench/everyday_peers.md (and prints it).
"""

from __future__ import annotations

import argparse
import datetime
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from everyday_peers_recipes import PREFIX, TASKS, TOOLS, Case, recipe
from onnx import helper, shape_inference
from zoo import MODELS, build_zoo
from zoo_bench import _session, feeds

HERE = Path(__file__).resolve().parent
DEFAULT_MODELS = ["bert_dynamo", "bert_ts", "ppocr_det_v4", "light_squeezenet"]
RTOL, ATOL = 1e-3, 1e-4
NOT_COMPUTED = {"Constant", "ConstantOfShape", "Shape", "Identity", "Dropout"}


# -- preparing a case ----------------------------------------------------------------------------------------------
def _mark(model: onnx.ModelProto, inferred: onnx.ModelProto) -> None:
    model.doc_string = "bench marker: the model's doc string"
    model.metadata_props.add(key="bench.marker", value="model metadata")
    for node in model.graph.node:
        node.doc_string = node.doc_string or f"bench marker: doc string of {node.name or node.op_type}"
        if not node.metadata_props:
            node.metadata_props.add(key="bench.node", value="node metadata")
    if not model.graph.value_info:
        model.graph.value_info.extend(inferred.graph.value_info)


def _typed(types: dict[str, onnx.ValueInfoProto], name: str) -> tuple[str, list[Any]] | None:
    info = types.get(name)
    t = info.type.tensor_type if info is not None and info.type.HasField("tensor_type") else None
    if t is None or t.elem_type != onnx.TensorProto.FLOAT or not t.HasField("shape"):
        return None
    dims = [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in t.shape.dim]
    return "float32", dims


def _reads_only(graph: onnx.GraphProto, end: str, start: str) -> bool:
    """Does `end` depend on the graph inputs only through `start`? (so extract(start -> end) is possible)"""
    producer = {o: n for n in graph.node for o in n.output}
    constants = {t.name for t in graph.initializer}
    stack, seen = [end], set()
    while stack:
        name = stack.pop()
        if name in seen or name in constants or not name:
            continue
        seen.add(name)
        if name == start:
            continue
        node = producer.get(name)
        if node is None:
            return False
        stack.extend(node.input)
    return start in seen


def _pick(graph: onnx.GraphProto, types, at: float, outputs: set[str], step: int = 1) -> tuple[int, str]:
    readers = {i for n in graph.node for i in n.input}
    nodes = list(graph.node)
    i = int(len(nodes) * at)
    while 0 <= i < len(nodes):
        node = nodes[i]
        name = node.output[0]
        if node.op_type not in NOT_COMPUTED and name in readers and name not in outputs and _typed(types, name):
            return i, name
        i += step
    raise RuntimeError("no intermediate float tensor to pick")


def _set_attr(model: onnx.ModelProto, types) -> tuple[str, str, Any, str]:
    """An attribute respelt so the meaning stays: a negative axis made positive (or the reverse), else a
    Dropout ratio (no effect at inference)."""
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    for node in model.graph.node:
        axis = next((a.i for a in node.attribute if a.name == "axis"), None)
        typed = _typed(types, node.input[0]) if node.input else None
        if node.op_type not in ("Softmax", "Concat", "LayerNormalization") or axis is None or typed is None:
            continue
        rank = len(typed[1])
        if axis < 0:
            return node.name, "axis", axis + rank, f"{node.op_type} axis {axis} -> {axis + rank} (rank {rank})"
        if opset >= (11 if node.op_type == "Concat" else 13):
            return node.name, "axis", axis - rank, f"{node.op_type} axis {axis} -> {axis - rank} (rank {rank})"
    node = next(n for n in model.graph.node if n.op_type == "Dropout")
    return node.name, "ratio", 0.25, "Dropout ratio 0.5 -> 0.25 (no effect at inference)"


def _replace(graph: onnx.GraphProto, types) -> dict[str, Any]:
    """Two nodes -> one onnxruntime contrib op computing the same: Conv+Relu -> com.microsoft::FusedConv, or
    Add+LayerNormalization -> com.microsoft::SkipLayerNormalization."""
    readers: dict[str, list[onnx.NodeProto]] = {}
    for n in graph.node:
        for i in n.input:
            readers.setdefault(i, []).append(n)
    outputs = {o.name for o in graph.output}
    for node in graph.node:
        users = readers.get(node.output[0], [])
        if len(users) != 1 or node.output[0] in outputs:
            continue
        user = users[0]
        if node.op_type == "Conv" and user.op_type == "Relu":
            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            attrs = {k: v.decode() if isinstance(v, bytes) else v for k, v in attrs.items()} | {"activation": "Relu"}
            inputs = [i for i in node.input if i]
            what = f"Conv {node.name} + Relu -> com.microsoft::FusedConv"
            return dict(
                inputs=inputs, outputs=[user.output[0]], op="FusedConv", domain="com.microsoft", attrs=attrs, what=what
            )
        if node.op_type == "Add" and user.op_type == "LayerNormalization" and len(user.input) == 3:
            a, b = (_typed(types, x) for x in node.input)
            if a is None or a != b:
                continue
            eps = next((a.f for a in user.attribute if a.name == "epsilon"), 1e-5)
            inputs = [*node.input, *user.input[1:]]
            what = f"Add {node.name} + LayerNormalization -> com.microsoft::SkipLayerNormalization"
            attrs = {"epsilon": float(eps)}
            return dict(
                inputs=inputs,
                outputs=[user.output[0]],
                op="SkipLayerNormalization",
                domain="com.microsoft",
                attrs=attrs,
                what=what,
            )
    raise RuntimeError("no Conv+Relu or Add+LayerNormalization pair to fuse")


def _noop(model: onnx.ModelProto, tensor: str, folder: Path) -> tuple[Path, str, str]:
    """The model's own Identity/Dropout if it has one; else a copy with an Identity added on `tensor`."""
    for node in model.graph.node:
        if node.op_type in ("Identity", "Dropout") and node.name:
            return folder / "model.onnx", node.name, f"its own {node.op_type} {node.name}"
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    moved = f"{tensor}_bench_noop"
    at = 0
    for i, node in enumerate(copy.graph.node):
        node.input[:] = [moved if x == tensor else x for x in node.input]
        at = i + 1 if tensor in node.output else at
    noop = helper.make_node("Identity", [tensor], [moved], name="bench_noop", doc_string="bench marker: added")
    copy.graph.node.insert(at, noop)
    path = folder / "model_noop.onnx"
    onnx.save(copy, path)
    return path, "bench_noop", f"none of its own: an Identity added on {tensor}"


def prepare(name: str, source: Path, folder: Path) -> Case:
    folder.mkdir(parents=True, exist_ok=True)
    model = onnx.load(str(source))
    inferred = shape_inference.infer_shapes(model)
    types = {vi.name: vi for vi in (*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output)}
    _mark(model, inferred)
    path = folder / "model.onnx"
    onnx.save(model, path)
    graph, outputs = model.graph, [o.name for o in model.graph.output]
    _, tensor = _pick(graph, types, 0.5, set(outputs))
    end_at, end = _pick(graph, types, 0.65, set(outputs))
    start = next(
        n.output[0]
        for n in reversed(graph.node[int(len(graph.node) * 0.1) : end_at])
        if n.op_type not in NOT_COMPUTED and _typed(types, n.output[0]) and _reads_only(graph, end, n.output[0])
    )
    fed = feeds(path, MODELS[name], "random")
    frozen = next(iter(fed))
    np.save(folder / "frozen.npy", fed[frozen])
    noop_path, noop_node, noop_note = _noop(model, tensor, folder)
    case = Case(
        name=name,
        source=MODELS[name].source,
        path=path,
        noop_path=noop_path,
        noop_node=noop_node,
        noop_note=noop_note,
        inputs=list(fed),
        outputs=outputs,
        tensor=tensor,
        cut=(start, end),
        types={n: _typed(types, n) for n in (tensor, start, end)},  # type: ignore[misc]
        set_attr=_set_attr(model, types),
        replace=_replace(graph, types),
        freeze=(frozen, folder / "frozen.npy"),
        constants_to="initializers" if any(n.op_type == "Constant" for n in graph.node) else "nodes",
        feeds=fed,
    )
    reference = onnx.ModelProto()
    reference.CopyFrom(model)
    for extra in (tensor, start, end):
        reference.graph.output.append(types[extra])
    onnx.save(reference, folder / "reference.onnx")
    session = _session(folder / "reference.onnx")
    names = [o.name for o in session.get_outputs()]
    case.reference = dict(zip(names, session.run(None, fed), strict=True))
    return case


# -- running and judging a cell ------------------------------------------------------------------------------------
def run_cell(argv: list[str], cwd: Path, timeout: float = 600) -> dict[str, Any]:
    cwd.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    try:
        done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return {"status": "timeout", "seconds": timeout}
    seconds = time.perf_counter() - start
    stray = sorted(p.name for p in cwd.iterdir() if not p.name.startswith("out.onnx"))
    lines = [ln.strip() for ln in done.stderr.splitlines() if ln.strip()]
    last = next((ln for ln in reversed(lines) if "Error" in ln or "error" in ln), lines[-1] if lines else "")
    if done.returncode == 0 and (cwd / "out.onnx").exists():
        status = "ran"
    elif "Traceback" in done.stderr:
        status = "crashed"
    else:
        status = "refused"
    last = re.sub(r"^(?:[A-Za-z_][\w]*\.)+(\w+(?:Error|Exception))\b", r"\1", last)  # drop the module path
    return {"status": status, "error": last[:160], "seconds": seconds, "stray": stray}


def _strip(name: str, known: dict[str, Any]) -> str:
    return name[len(PREFIX) :] if name not in known and name.startswith(PREFIX) else name


def check(case: Case, task: str, out: Path) -> dict[str, Any]:
    """Load the result in onnxruntime, feed it, compare with the expectation."""
    start, end = case.cut
    given = {start: case.reference[start]} if task == "extract" else dict(case.feeds)
    if task == "freeze-input":
        given.pop(case.freeze[0])
    expected = {o: case.reference[o] for o in case.outputs}
    if task == "add-outputs":
        expected[case.tensor] = case.reference[case.tensor]
    elif task == "extract":
        expected = {end: case.reference[end]}
    try:
        session = _session(out)
    except Exception as e:  # onnxruntime refuses the file
        why = " ".join(str(e).split()).split(" failed:", 1)[-1]
        why = why.split(" Error ", 1)[-1] if " Error " in why else why.removeprefix("This is an invalid model. ")
        return {"loads": False, "verdict": f"onnxruntime refuses it: {why[:150]}"}
    inits = {t.name for t in onnx.load(str(out), load_external_data=False).graph.initializer}
    feed = {}
    for i in session.get_inputs():
        key = _strip(i.name, given)
        if key in given:
            feed[i.name] = given[key]
        elif i.name not in inits:
            return {"loads": True, "verdict": f"needs an input {i.name!r} the task does not give"}
    try:
        values = dict(
            zip((_strip(o.name, expected) for o in session.get_outputs()), session.run(None, feed), strict=True)
        )
    except Exception as e:
        return {"loads": True, "verdict": f"onnxruntime fails to run it: {' '.join(str(e).split())[:140]}"}
    worst = 0.0
    for name, want in expected.items():
        got = values.get(name)
        if got is None:
            return {"loads": True, "verdict": f"no output {name!r}"}
        if got.shape != want.shape or not np.allclose(got, want, rtol=RTOL, atol=ATOL):
            diff = float(np.max(np.abs(got - want))) if got.shape == want.shape else float("nan")
            return {"loads": True, "verdict": f"differs from the expectation (max |diff| {diff:.3g}, {name})"}
        worst = max(worst, float(np.max(np.abs(got - want))) if want.size else 0.0)
    return {"loads": True, "verdict": "as expected", "max_diff": worst}


def survival(source: Path, out: Path, prefix: str = "") -> dict[str, float]:
    """What of the input is still in the result: doc string, metadata_props, and over the nodes still there
    (matched by their first output tensor) their doc strings, metadata and names; value_info of the tensors
    still there. `prefix`: what the tool put before every name."""

    def _strip(name: str, _: object) -> str:
        return name.removeprefix(prefix)

    a = onnx.load(str(source), load_external_data=False)
    b = onnx.load(str(out), load_external_data=False)
    by_output = {n.output[0]: n for n in a.graph.node if n.output}
    pairs = [(n, by_output.get(_strip(n.output[0], {}))) for n in b.graph.node if n.output]
    matched = [(new, old) for new, old in pairs if old is not None and new.op_type == old.op_type]
    named = [(new, old) for new, old in matched if old.name]
    docs = sum(bool(old.doc_string) for _, old in matched)
    metas = sum(len(old.metadata_props) for _, old in matched)
    kept_meta = sum(sum(p in list(new.metadata_props) for p in old.metadata_props) for new, old in matched)
    kept_docs = sum(new.doc_string == old.doc_string for new, old in matched if old.doc_string)
    produced = {_strip(o, {}) for n in b.graph.node for o in n.output} - {_strip(o.name, {}) for o in b.graph.output}
    wanted = {vi.name for vi in a.graph.value_info} & produced
    have = {_strip(vi.name, {}) for vi in b.graph.value_info}
    return {
        "doc": float(b.doc_string == a.doc_string),
        "meta": float(all(p in list(b.metadata_props) for p in a.metadata_props)),
        "node doc": kept_docs / docs if docs else 1.0,
        "node meta": kept_meta / metas if metas else 1.0,
        "value_info": len(wanted & have) / len(wanted) if wanted else 1.0,
        "names": sum(_strip(new.name, {}) == old.name for new, old in named) / len(named) if named else 1.0,
    }


def measure(case: Case, task: str, tool: str, folder: Path) -> dict[str, Any]:
    cell = recipe(tool, task, case)
    if cell.argv is None:
        return {"status": "none", "reason": cell.reason, "task": task}
    result = run_cell(cell.argv, folder) | {"side_effect": cell.side_effect, "note": cell.note, "task": task}
    if result["status"] == "ran":
        result |= check(case, task, folder / "out.onnx")
        source = case.noop_path if task == "remove-node" else case.path
        prefix = PREFIX if (task, tool) == ("rename", "onnx.utils / onnx.compose") else ""
        result["survival"] = survival(source, folder / "out.onnx", prefix)
    return result


# -- the report -------------------------------------------------------------------------------------------------------
def _share(v: float) -> str:
    return f"{int(v * 1000) / 10:g}%"  # rounded down: 99.6% never shows as 100%


def _survived(task: str, s: dict[str, float]) -> str:
    """What a result lost (for strip: what it removed, which is the point)."""
    lost = [k if v == 0 else f"{k} ({_share(v)} kept)" for k, v in s.items() if v < 1]
    if task == "strip":
        return "removed " + ", ".join(lost) if lost else "removed nothing (no strip)"
    return "keeps all" if not lost else "lost " + ", ".join(lost)


def cell_text(r: dict[str, Any]) -> str:
    if r["status"] == "none":
        return f"— {r['reason']}"
    note = f" ({r['note']})" if r.get("note") else ""
    if r["status"] != "ran":
        return f"**{r['status']}**{note}: {r.get('error', '')}".replace("|", "/")
    text = ("side effect of a whole-model rewrite; " if r["side_effect"] else "") + r["verdict"] + note
    if r.get("verdict") == "as expected":
        text += "; " + _survived(r["task"], r["survival"])
    if r.get("stray"):
        text += f"; left {', '.join(r['stray'])} in its folder"
    return text.replace("|", "/")


def summary_text(models: list[str], results: list[dict[str, Any]]) -> str:
    """One cell over all models: on how many the result loaded and gave what it should (of those the tool could
    take on), what it lost, and the first failure."""
    tried = [(m, r) for m, r in zip(models, results, strict=True) if r["status"] != "none"]
    if not tried:
        return "—"
    good = [r for _, r in tried if r.get("verdict") == "as expected"]
    text = f"{len(good)}/{len(tried)}" + (" (side effect)" if any(r.get("side_effect") for _, r in tried) else "")
    if len(tried) < len(results):
        text += f" (— on {len(results) - len(tried)})"
    worst: dict[str, float] = {}
    for r in good:
        for k, v in r["survival"].items():
            worst[k] = min(worst.get(k, 1.0), v)
    if good:
        text += "; " + _survived(results[0]["task"], worst)
    failed = next(((m, r) for m, r in tried if r.get("verdict") != "as expected"), None)
    if failed is not None:
        model, r = failed
        why = r.get("verdict") or f"{r['status']}: {r.get('error', '')}"
        text += f"; {model}: {why[:90]}"
    return text.replace("|", "/")


def report(cases: list[Case], table: dict[tuple[str, str, str], dict[str, Any]]) -> str:
    versions = ", ".join(
        f"{p} {version(p)}" for p in ("onnx", "onnxruntime", "polygraphy", "onnx-graphsurgeon", "onnxslim")
    )
    lines = [
        "# Everyday surgery: graphsurgeon vs peers, measured on real models",
        "",
        f"Generated by `python bench/everyday_peers.py` on {datetime.date.today()} "
        f"(Python {platform.python_version()}, {versions}). Every cell was run; a dash is a tool without the feature.",
        "",
        "Models (bench/zoo.py): " + "; ".join(f"`{c.name}` ({c.source})" for c in cases) + ".",
        "Each input carries markers so survival shows: a model doc string and `metadata_props` entry, a doc string",
        "on every node, a `metadata_props` entry on nodes without one (the dynamo export has its own five: stack",
        "trace, class hierarchy...), inferred `value_info` where the model had none. What is lost is counted over",
        "the nodes and tensors still in the result (nodes matched by their first output); `names`: nodes that kept",
        f"their name. For strip, what is removed is the point. Outputs compared with rtol {RTOL:g}, atol {ATOL:g}.",
        "A cell `a/b`: on a of the b models the tool could take on, the result loaded in onnxruntime and computed",
        "what it should; `(— on k)`: k models where the tool has no way (e.g. no Constant nodes to convert).",
        "",
        "## Summary: models where the result loaded in onnxruntime and computed what it should",
        "",
        "| task | " + " | ".join(TOOLS) + " |",
        "|" + "---|" * (len(TOOLS) + 1),
    ]
    for task in TASKS:
        cells = [summary_text([c.name for c in cases], [table[(c.name, task, tool)] for c in cases]) for tool in TOOLS]
        lines.append(f"| {task} | " + " | ".join(cells) + " |")
    for case in cases:
        a, b = case.cut
        lines += [
            "",
            f"## `{case.name}` — {case.source}",
            "",
            f"Tensor for rename / add-outputs / insert: `{case.tensor}`; extract: `{a}` -> `{b}`; remove-node: "
            f"{case.noop_note}; set-attr: {case.set_attr[3]} on `{case.set_attr[0]}`; replace: {case.replace['what']}; "
            f"freeze-input: `{case.freeze[0]}`; convert-constants: to {case.constants_to}.",
            "",
            "| task | " + " | ".join(TOOLS) + " |",
            "|" + "---|" * (len(TOOLS) + 1),
        ]
        for task in TASKS:
            lines.append(f"| {task} | " + " | ".join(cell_text(table[(case.name, task, t)]) for t in TOOLS) + " |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cache", type=Path, default=Path("/tmp/gs_zoo"))
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS))
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--out", type=Path, default=HERE / "everyday_peers.md")
    args = parser.parse_args()
    names = args.models.split(",")
    built = build_zoo(args.cache, names)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="gs-peers-"))
    table: dict[tuple[str, str, str], dict[str, Any]] = {}
    cases = []
    try:
        for name in names:
            case = prepare(name, built[name], work / name)
            cases.append(case)
            for task in TASKS:
                for i, tool in enumerate(TOOLS):
                    table[(name, task, tool)] = result = measure(case, task, tool, work / name / task / str(i))
                    print(f"{name:18s} {task:18s} {tool:26s} {cell_text(result)[:150]}", file=sys.stderr, flush=True)
        text = report(cases, table)
        args.out.write_text(text)
        print(text)
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
