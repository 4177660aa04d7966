"""Benchmark: topologically sort a 100,000-node graph stored in exactly reversed order.

    python bench/toposort_large.py [--workdir DIR] [--nodes 100000] [--repeat 3] [--timeout 600] [--keep]

The generated model: a chain X -> Relu -> Add(+c) -> Identity -> ... (N nodes), an `If` whose then/else bodies
read values of the chain from the outer scope (the If's only explicit input is the graph input `cond`, so a
sort that ignores outer-scope reads puts it too early), and a final Add of the chain's end and the If's result.
`ordered.onnx` has the nodes in a valid order (the reference); `model.onnx` has the same nodes reversed.

Each tool sorts model.onnx and writes the result, as one whole command in its own process (wall time and peak
RSS measured, Python start-up and imports included). Every output is checked: same nodes, every tensor
produced before it is read (subgraph outer-scope reads included), and onnxruntime computes the same as on
the reference for cond = true and false.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import _harness as H

WIDTH = 16  # X is float[1, WIDTH]

GS_TOOL = "graphsurgeon CLI"
OGS = r"""
import sys
import onnx, onnx_graphsurgeon as gs
src, dst = sys.argv[1:3]
graph = gs.import_onnx(onnx.load(src))
graph.toposort()
onnx.save(gs.export_onnx(graph), dst)
"""
OGS_DEEP = (
    "import sys, threading\nsys.setrecursionlimit(1_000_000)\nthreading.stack_size(512 << 20)\n"
    + "t = threading.Thread(target=lambda: exec(compile("
    + repr(OGS)
    + ", 'ogs', 'exec'), {}))\nt.start(); t.join()\n"
)
ONNX_IR = r"""
import sys
import onnx_ir as ir
src, dst = sys.argv[1:3]
model = ir.load(src)
model.graph.sort()
ir.save(model, dst)
"""
ONNX_COPY = r"""
import sys
import onnx
src, dst = sys.argv[1:3]
onnx.save(onnx.load(src), dst)
"""


# --- generator -----------------------------------------------------------------------------------------------
def generate(folder: Path, n: int) -> tuple[Path, Path]:
    """ordered.onnx (valid order) and model.onnx (the same nodes in reverse)."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    folder.mkdir(parents=True, exist_ok=True)
    ops = ("Relu", "Add", "Identity")
    nodes = []
    for i in range(n):
        op = ops[i % 3]
        src = "X" if i == 0 else f"t{i - 1}"
        inputs = [src, "c"] if op == "Add" else [src]
        nodes.append(helper.make_node(op, inputs, [f"t{i}"], name=f"n{i}"))
    mid, late = f"t{n // 2}", f"t{(4 * n) // 5}"
    vi = lambda name: helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, WIDTH])  # noqa: E731
    then_g = helper.make_graph(
        [helper.make_node("Add", [mid, "c"], ["then_out"], name="then_add")], "then_body", [], [vi("then_out")]
    )
    else_g = helper.make_graph(
        [helper.make_node("Sub", [late, mid], ["else_out"], name="else_sub")], "else_body", [], [vi("else_out")]
    )
    nodes.append(helper.make_node("If", ["cond"], ["if_out"], name="if", then_branch=then_g, else_branch=else_g))
    nodes.append(helper.make_node("Add", [f"t{n - 1}", "if_out"], ["Y"], name="final_add"))
    c = numpy_helper.from_array(np.array(0.001, np.float32), "c")

    def model_of(node_list, name):
        graph = helper.make_graph(
            node_list,
            name,
            [vi("X"), helper.make_tensor_value_info("cond", TensorProto.BOOL, [])],
            [vi("Y")],
            initializer=[c],
        )
        return helper.make_model(
            graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10, producer_name="graphsurgeon-bench"
        )

    ordered, reversed_ = folder / "ordered.onnx", folder / "model.onnx"
    reference = model_of(nodes, "toposort_large")
    onnx.checker.check_model(reference)
    onnx.save(reference, ordered)
    onnx.save(model_of(nodes[::-1], "toposort_large"), reversed_)
    return ordered, reversed_


# --- verification --------------------------------------------------------------------------------------------
def _subgraphs(node):
    from onnx import AttributeProto

    for attr in node.attribute:
        if attr.type == AttributeProto.GRAPH:
            yield attr.g
        elif attr.type == AttributeProto.GRAPHS:
            yield from attr.graphs


def order_problems(graph, outer: frozenset[str] | set[str] = frozenset(), limit: int = 5) -> list[str]:
    """Every tensor read before it is produced, in this graph and (recursively) its subgraphs."""
    defined = set(outer)
    defined.update(vi.name for vi in graph.input)
    defined.update(t.name for t in graph.initializer)
    defined.update(s.values.name for s in graph.sparse_initializer)
    problems: list[str] = []
    for position, node in enumerate(graph.node):
        for name in node.input:
            if name and name not in defined:
                problems.append(f"{graph.name}: node #{position} {node.name!r} reads {name!r} before it is produced")
        for sub in _subgraphs(node):  # a subgraph sees what is defined when its node runs
            problems += order_problems(sub, defined, limit)
        defined.update(o for o in node.output if o)
        if len(problems) >= limit:
            return problems[:limit]
    for vi in graph.output:
        if vi.name not in defined:
            problems.append(f"{graph.name}: output {vi.name!r} is never produced")
    return problems[:limit]


def node_signature(graph) -> Counter:
    return Counter((n.name, n.op_type, tuple(n.input), tuple(n.output)) for n in graph.node)


def verify(out: Path, reference: Path) -> tuple[bool, str]:
    import onnx

    model, ref = onnx.load(out), onnx.load(reference)
    problems = order_problems(model.graph)
    if node_signature(model.graph) != node_signature(ref.graph):
        problems.append("the node set differs from the input's")
    if len(model.graph.node) != len(ref.graph.node):
        problems.append(f"{len(model.graph.node)} nodes instead of {len(ref.graph.node)}")
    try:  # a second opinion: onnx's checker also requires topological order, outer-scope reads included
        onnx.checker.check_model(model)
        checker = "onnx.checker passes"
    except onnx.checker.ValidationError as e:
        checker = "onnx.checker fails: " + " ".join(str(e).split())[:160]
    if problems:
        return False, "; ".join(problems[:2]) + f"; {checker}"
    return checker == "onnx.checker passes", f"valid order, {len(model.graph.node):,} nodes; {checker}"


ORT_RUN = r"""
import sys, numpy as np, onnxruntime as ort
so = ort.SessionOptions()
so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
sess = ort.InferenceSession(sys.argv[1], so, providers=["CPUExecutionProvider"])
x = np.random.default_rng(0).standard_normal((1, WIDTH), dtype=np.float32)
np.save(sys.argv[2], np.stack([sess.run(None, {"X": x, "cond": np.array(c)})[0] for c in (True, False)]))
""".replace("WIDTH", str(WIDTH))


def ort_outputs(model: Path, npy: Path) -> tuple[object | None, str]:
    import numpy as np

    r = subprocess.run([sys.executable, "-c", ORT_RUN, str(model), str(npy)], capture_output=True, text=True)
    if r.returncode != 0:
        return None, (r.stderr.strip().splitlines() or [f"exit {r.returncode}"])[-1][:300]
    return np.load(npy), ""


# --- the benchmark -------------------------------------------------------------------------------------------
def main() -> int:
    import numpy as np

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/gsbench/toposort_large"))
    ap.add_argument("--nodes", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3, help="rounds (default 3); the table shows medians")
    ap.add_argument("--timeout", type=float, default=600, help="seconds before a tool is killed (default 600)")
    ap.add_argument("--keep", action="store_true", help="keep the generated models and outputs")
    ap.add_argument("--only", nargs="*", help="run only the tools whose label contains one of these words")
    args = ap.parse_args()
    work = args.workdir / f"n{args.nodes}"
    shutil.rmtree(work, ignore_errors=True)
    reference, model = generate(work, args.nodes)
    print(
        f"generated {model} ({model.stat().st_size / 1e6:.1f} MB, {args.nodes + 2:,} nodes, reversed) "
        f"and {reference.name}"
    )

    ref_out, why = ort_outputs(reference, work / "ref.npy")
    if ref_out is None:
        print(f"onnxruntime cannot run the reference: {why}", file=sys.stderr)
        return 1
    unsorted_out, why = ort_outputs(model, work / "unsorted.npy")
    unsorted_note = (
        "onnxruntime runs the reversed input as is (it sorts internally)"
        if unsorted_out is not None
        else f"onnxruntime refuses the reversed input: {why}"
    )
    print(unsorted_note)

    py = H.python()
    tools = [
        (GS_TOOL, [*H.graphsurgeon_cmd(), "toposort", model, "-o", work / "out_gs.onnx"], work / "out_gs.onnx"),
        (
            "onnx-graphsurgeon: toposort() + export",
            [py, "-c", OGS, model, work / "out_ogs.onnx"],
            work / "out_ogs.onnx",
        ),
        (
            "onnx-graphsurgeon, recursion limit 1e6 + 512 MB stack",
            [py, "-c", OGS_DEEP, model, work / "out_ogs2.onnx"],
            work / "out_ogs2.onnx",
        ),
        ("onnx-ir: Graph.sort() + save", [py, "-c", ONNX_IR, model, work / "out_ir.onnx"], work / "out_ir.onnx"),
        (
            "onnx.load + onnx.save, no sort (I/O floor)",
            [py, "-c", ONNX_COPY, model, work / "out_copy.onnx"],
            work / "out_copy.onnx",
        ),
    ]
    if args.only:
        tools = [t for t in tools if any(w.lower() in t[0].lower() for w in args.only)]

    runs: dict[str, list[H.Run]] = {label: [] for label, *_ in tools}
    checks: dict[str, str] = {}
    H.warm_imports(["numpy", "onnx", "onnx_ir", "onnx_graphsurgeon", "graphsurgeon.cli", "graphsurgeon.verbs.toposort"])
    for round_ in range(args.repeat):
        shift = round_ % len(tools)
        for label, cmd, out in tools[shift:] + tools[:shift]:
            if label in checks and checks[label].startswith(("FAILED", "killed")):
                continue  # a tool that failed once fails the same way: do not wait for it again
            out.unlink(missing_ok=True)
            quiet = H.wait_for_quiet()
            print(f"[{round_ + 1}/{args.repeat}] {label} (background load before: {quiet:.2f} cores) ...", flush=True)
            run = H.run_measured(label, cmd, timeout=args.timeout, log_dir=work / "logs")
            runs[label].append(run)
            if run.timed_out:
                checks[label] = f"killed after {args.timeout:.0f} s timeout"
            elif not run.ok:
                checks[label] = f"FAILED (exit {run.returncode}): {_error(run)}"
            elif label not in checks:
                valid, detail = verify(out, reference)
                if "no sort" in label:
                    detail = "order unchanged (reversed): " + ("valid" if valid else "invalid, as expected")
                else:
                    got, why = ort_outputs(out, work / "got.npy")
                    if got is None:
                        detail += f"; ORT fails: {why}"
                    else:
                        diff = float(np.max(np.abs(got - ref_out)))
                        same = "==" if diff == 0 else "!="
                        detail += f"; ORT {same} reference (max abs diff {diff:g}, both branches)"
                        valid = valid and diff == 0
                checks[label] = ("ok: " if valid else "WRONG: ") + detail
            print(f"  {H.fmt_seconds(run.wall)}, peak RSS {H.fmt_mb(run.peak_rss_mb)}; {checks[label]}", flush=True)
            if not args.keep:
                out.unlink(missing_ok=True)

    rows = []
    for label, *_ in tools:
        wall, rss, _ = H.summarize(runs[label])
        rows.append([label, wall, rss, H.background(runs[label]), checks.get(label, "-")])
    headers = [
        "tool (one whole command)",
        f"wall ({H.stat_label(args.repeat)})",
        "peak RSS (max)",
        "other load (cores, max)",
        "result",
    ]
    table = H.markdown_table(headers, rows)
    verdict = ""
    if runs.get(GS_TOOL) and all(r.ok for r in runs[GS_TOOL]):
        median = H.median(r.wall for r in runs[GS_TOOL])
        verdict = f"Target for graphsurgeon: whole command under 5 s: {H.fmt_seconds(median)} (median) - " + (
            "met" if median < 5 else f"MISSED by {median - 5:.2f} s"
        )
    text = (
        f"# toposort_large\n\n{H.header()}\n\n"
        f"Model: {args.nodes:,}-node chain (Relu/Add/Identity) + If reading the chain from both branches + Add, "
        f"stored in exactly reversed order ({model.stat().st_size / 1e6:.1f} MB); {args.repeat} round(s), tool "
        f"order rotated each round; warm page cache; peak RSS by {H.rss_method()}. {unsorted_note}.\n\n"
        f"{table}\n\n{verdict}\n\nCommands:\n\n"
        + "\n".join(
            f"- {label}: `{' '.join('SCRIPT' if chr(10) in str(c) else str(c) for c in cmd)}`"
            for label, cmd, _ in tools
        )
        + "\n\nScripts (`python -c SCRIPT SRC DST`):\n\n"
        + "".join(
            f"{title}:\n```python{body}```\n\n"
            for title, body in (
                ("onnx-graphsurgeon", OGS),
                ("onnx-graphsurgeon, deep", "\n" + OGS_DEEP),
                ("onnx-ir", ONNX_IR),
                ("onnx copy", ONNX_COPY),
            )
        )
    )
    print("\n" + table + "\n\n" + verdict)
    print(f"\nwritten to {H.write_report('toposort_large', text)}")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if runs.get(GS_TOOL) and all(r.ok for r in runs[GS_TOOL]) and checks[GS_TOOL].startswith("ok") else 1


def _error(run: H.Run) -> str:
    """The exception line, or the signal that killed the process."""
    if run.returncode is not None and run.returncode < 0:
        return f"killed by signal {-run.returncode}"
    lines = [ln.strip() for ln in run.stderr.splitlines() if ln.strip() and not ln.startswith("Command ")]
    exc = [ln for ln in lines if "Error" in ln.split(":")[0] or "Exception" in ln.split(":")[0]]
    text = (exc or lines or [f"exit code {run.returncode}"])[-1]
    return text[:200]


if __name__ == "__main__":
    sys.exit(main())
