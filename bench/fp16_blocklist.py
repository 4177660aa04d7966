"""How to-fp16's default block list was chosen: every onnx node conformance case with float32 data, converted
with no op blocked, run in onnxruntime's CPU provider against the case's expected outputs.

Per op: cases that run and match within float16 tolerance (rtol 1e-2, atol 1e-2 relative to the output's
scale), cases onnxruntime cannot run in float16, and cases that run but lose more. Ops whose cases mostly fail
either way are the default block list. Run: python bench/fp16_blocklist.py [--bf16]
"""

from __future__ import annotations

import json
import sys
import warnings
from collections import defaultdict
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import graphsurgeon as gs  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def session(model: onnx.ModelProto) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.log_severity_level = 4
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def close(got, expected) -> bool:
    for a, e in zip(got, expected, strict=True):
        a, e = np.asarray(a), np.asarray(e)
        if a.shape != e.shape:
            return False
        if e.dtype.kind == "f":
            scale = float(np.nanmax(np.abs(e))) if e.size and np.isfinite(e).any() else 1.0
            a64, e64 = a.astype(np.float64), e.astype(np.float64)
            if not np.allclose(a64, e64, rtol=1e-2, atol=1e-2 * max(scale, 1e-6), equal_nan=True):
                return False
        elif not np.array_equal(a, e):
            return False
    return True


def main() -> None:
    bf16 = "--bf16" in sys.argv
    from onnx.backend.test.case.node import collect_testcases

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cases = [c for c in collect_testcases(None) if c.data_sets]
    per_op: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for case in cases:
        model = onnx.ModelProto()
        model.CopyFrom(case.model)
        model.ir_version = min(model.ir_version, 10)
        if not any(vi.type.tensor_type.elem_type == onnx.TensorProto.FLOAT for vi in model.graph.input):
            continue
        inputs, expected = case.data_sets[0]
        names = [vi.name for vi in model.graph.input]
        feeds = dict(zip(names, inputs, strict=False))
        try:
            if not close(session(model).run(None, feeds), expected):
                continue  # onnxruntime does not pass it in float32 either
        except Exception:
            continue
        ops = {n.op_type for n in model.graph.node}
        op = case.model.graph.node[0].op_type if len(ops) > 1 else next(iter(ops))
        try:
            converted = gs.load(model).to_fp16(bf16=bf16, no_default_block=True).proto
        except Exception as e:
            per_op[op]["graphsurgeon"].append(f"{case.name}: {e}")
            continue
        try:
            got = session(converted).run(None, feeds)
        except Exception as e:
            per_op[op]["no kernel"].append(f"{case.name}: {str(e).splitlines()[0][:160]}")
            continue
        per_op[op]["ok" if close(got, expected) else "loses"].append(case.name)
    table = {op: {k: len(v) for k, v in kinds.items()} for op, kinds in sorted(per_op.items())}
    bad = {
        op: kinds
        for op, kinds in table.items()
        if (kinds.get("no kernel", 0) + kinds.get("loses", 0)) > kinds.get("ok", 0)
    }
    RESULTS.mkdir(exist_ok=True)
    name = "bf16" if bf16 else "fp16"
    (RESULTS / f"{name}_blocklist.json").write_text(
        json.dumps(
            {"per_op": table, "details": {op: dict(v) for op, v in per_op.items()}, "block": sorted(bad)}, indent=1
        )
    )
    print(f"{len(table)} ops with float32 cases; {len(bad)} mostly fail in {name}:")
    print("| op | ok | no kernel | loses |")
    print("|---|---|---|---|")
    for op, kinds in bad.items():
        print(f"| {op} | {kinds.get('ok', 0)} | {kinds.get('no kernel', 0)} | {kinds.get('loses', 0)} |")
    print("suggested block list:", ", ".join(sorted(bad)))


if __name__ == "__main__":
    main()
