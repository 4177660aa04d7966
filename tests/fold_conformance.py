"""Shared helpers for the fold/simplify tests: onnx's node conformance cases under onnxruntime."""

from __future__ import annotations

import onnx
import onnxruntime as ort

from tests.conftest import output_mismatch

RTOL, ATOL = 1e-3, 1e-5


def session(model: onnx.ModelProto) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.log_severity_level = 4
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def feeds_for(model: onnx.ModelProto, inputs: list) -> dict:
    names = [vi.name for vi in model.graph.input if vi.name not in {t.name for t in model.graph.initializer}]
    return dict(zip(names, inputs, strict=False))


def run_case(model: onnx.ModelProto, inputs: list, expected: list) -> str | None:
    try:
        got = session(model).run(None, feeds_for(model, inputs))
    except Exception as e:  # onnxruntime raises many types
        return f"onnxruntime: {str(e).strip().splitlines()[0][:200]}"
    return output_mismatch(got, expected, RTOL, ATOL)


_PASSING: list = []


def passing_cases(cases) -> list:
    """(name, model bytes, inputs, expected) for every case with data that onnxruntime passes as it is.

    `cases` are onnx's conformance cases with data (the session fixture of conftest); computed once.
    """
    if not _PASSING:
        for case in cases:
            inputs, expected = case.data_sets[0]
            model = onnx.ModelProto()
            model.CopyFrom(case.model)
            if model.ir_version > 10:
                model.ir_version = 10
            if run_case(model, list(inputs), list(expected)) is None:
                _PASSING.append((case.name, model.SerializeToString(), list(inputs), list(expected)))
    return _PASSING


def transform_keeps_passing(cases, transform) -> tuple[int, list[tuple[str, str]]]:
    """Apply `transform(model_bytes) -> bytes` to every passing case; (count still passing, failures)."""
    failures = []
    passing = passing_cases(cases)
    for name, data, inputs, expected in passing:
        try:
            out = transform(data)
        except Exception as e:  # a crash is a failure of the case
            failures.append((name, f"raised {type(e).__name__}: {e}"))
            continue
        if out == data:
            continue  # unchanged: still passes
        problem = run_case(onnx.load_from_string(out), inputs, expected)
        if problem:
            failures.append((name, problem))
    return len(passing) - len(failures), failures
