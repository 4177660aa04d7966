"""Shared helpers for the fold/simplify tests: onnx's node conformance cases under onnxruntime."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort

RTOL, ATOL = 1e-3, 1e-5


def session(model: onnx.ModelProto) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.log_severity_level = 4
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def feeds_for(model: onnx.ModelProto, inputs: list) -> dict:
    names = [vi.name for vi in model.graph.input if vi.name not in {t.name for t in model.graph.initializer}]
    return dict(zip(names, inputs, strict=False))


def outputs_match(actual: list, expected: list) -> str | None:
    """None if every output matches (allclose for floats, NaN-equal; exact for ints, bools, strings)."""
    if len(actual) != len(expected):
        return f"{len(actual)} outputs, expected {len(expected)}"
    for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
        if isinstance(e, list) or isinstance(a, list):
            if not isinstance(a, list) or not isinstance(e, list) or len(a) != len(e):
                return f"output {i}: sequence mismatch"
            problem = outputs_match(a, e)
            if problem:
                return f"output {i}: {problem}"
            continue
        if e is None or a is None:
            if a is not e:
                return f"output {i}: optional mismatch"
            continue
        a, e = np.asarray(a), np.asarray(e)
        if a.shape != e.shape:
            return f"output {i}: shape {a.shape} != {e.shape}"
        if e.dtype.kind in "fc":
            try:
                np.testing.assert_allclose(a.astype(e.dtype), e, rtol=RTOL, atol=ATOL, equal_nan=True)
            except AssertionError as err:
                return f"output {i}: {str(err).strip().splitlines()[0]}"
        elif e.dtype.kind in "OUS":
            if a.tolist() != e.tolist():
                return f"output {i}: strings differ"
        elif not np.array_equal(a, e):
            return f"output {i}: values differ"
    return None


def run_case(model: onnx.ModelProto, inputs: list, expected: list) -> str | None:
    try:
        got = session(model).run(None, feeds_for(model, inputs))
    except Exception as e:  # onnxruntime raises many types
        return f"onnxruntime: {str(e).strip().splitlines()[0][:200]}"
    return outputs_match(got, expected)


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
