"""convert-opset over onnx's node conformance cases: each case (that onnxruntime passes as it is) converted from
its opset to the latest one onnxruntime runs, by onnx's version converter alone and by graphsurgeon, then run
in onnxruntime against the case's expected outputs. Run: python bench/convert_opset_bench.py [--opset N]"""

from __future__ import annotations

import json
import sys
import warnings
from collections import Counter
from pathlib import Path

import onnx
import onnx.version_converter

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import graphsurgeon as gs  # noqa: E402
from tests.fold_conformance import run_case  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    target = int(sys.argv[sys.argv.index("--opset") + 1]) if "--opset" in sys.argv else onnx.defs.onnx_opset_version()
    from onnx.backend.test.case.node import collect_testcases

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cases = [c for c in collect_testcases(None) if c.data_sets]
    tally: dict[str, Counter] = {"onnx converter": Counter(), "graphsurgeon": Counter()}
    failures: dict[str, list[str]] = {"onnx converter": [], "graphsurgeon": []}
    total = 0
    for case in cases:
        model = onnx.ModelProto()
        model.CopyFrom(case.model)
        model.ir_version = min(model.ir_version, 10)
        inputs, expected = case.data_sets[0]
        if run_case(model, list(inputs), list(expected)) is not None:
            continue  # onnxruntime does not pass it as it is
        total += 1
        for tool in tally:
            try:
                if tool == "onnx converter":
                    converted = onnx.version_converter.convert_version(model, target)
                else:
                    converted = gs.load(model.SerializeToString()).convert_opset(opset=target).proto
            except Exception as e:
                tally[tool]["refused / raised"] += 1
                failures[tool].append(
                    f"{case.name}: raised {str(e).splitlines()[0][:120] if str(e) else type(e).__name__}"
                )
                continue
            converted.ir_version = min(converted.ir_version, 10) if target <= 21 else converted.ir_version
            problem = run_case(converted, list(inputs), list(expected))
            tally[tool]["passes" if problem is None else "converted, fails in onnxruntime"] += 1
            if problem is not None:
                failures[tool].append(f"{case.name}: {problem[:120]}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "convert_opset.json").write_text(
        json.dumps({"target": target, "cases": total, "tally": tally, "failures": failures}, indent=1)
    )
    print(f"{total} conformance cases onnxruntime passes as they are, converted to opset {target}:")
    print("| tool | still pass | converted, fail in onnxruntime | refused / raised |")
    print("|---|---|---|---|")
    for tool, counts in tally.items():
        failed, refused = counts["converted, fails in onnxruntime"], counts["refused / raised"]
        print(f"| {tool} | {counts['passes']} | {failed} | {refused} |")


if __name__ == "__main__":
    main()
