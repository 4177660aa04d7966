"""The oracle's own questions to onnx and onnxruntime, answered in a long-lived child process (the same protocol
as tests/fuzz/worker.py): onnxruntime can kill the process that loads a hostile model, and that must end only
this child, never the fuzz run. Request argv: [question, model path, ...]; the reply's stdout is the answer.

Questions: ``checker`` / ``full`` (onnx's checker, plain or full: the problem or ""), ``ort`` (onnxruntime's
load problem or ""), ``kernel`` ("yes" when onnxruntime lacks a kernel for a model onnx's full checker passes),
``frozen NAME=V,V...`` ("fails" when the model cannot run on those input values).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import warnings
from pathlib import Path


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0][:200] if text else type(e).__name__


def checker(path: Path, full: bool = False) -> str:
    import onnx

    from graphsurgeon.core.inference import full_check  # onnx's, minus its segfaults

    try:
        full_check(str(path)) if full else onnx.checker.check_model(str(path))
    except Exception as e:  # noqa: BLE001
        return _first_line(e)
    return ""


def loads_in_ort(path: Path) -> str:
    import onnxruntime as ort

    from graphsurgeon.core.runtime import CRASHING_OPTIMIZERS

    options = ort.SessionOptions()
    options.log_severity_level = 4
    try:  # (without the optimizer known to kill onnxruntime, as graphsurgeon's own sessions: core/runtime.py)
        ort.InferenceSession(
            str(path), options, providers=["CPUExecutionProvider"], disabled_optimizers=CRASHING_OPTIMIZERS
        )
    except Exception as e:  # noqa: BLE001
        return _first_line(e)
    return ""


def lacks_kernel(path: Path) -> str:
    problem = loads_in_ort(path)
    if "Could not find an implementation for" not in problem:
        return ""
    return "yes" if not checker(path, full=True) else ""


def frozen_values_fail(path: Path, assignments: list[str]) -> str:
    """ "fails" when the model cannot run on these input values (NAME=V,V,... shaped like the input)."""
    import numpy as np
    import onnx

    from graphsurgeon.core.numeric import random_feeds
    from graphsurgeon.core.runtime import make_session

    try:
        model = onnx.load(str(path), load_external_data=False)
        given = {}
        for spelling in assignments:
            name, _, text = spelling.partition("=")
            info = next(vi for vi in model.graph.input if vi.name == name)
            dims = [d.dim_value for d in info.type.tensor_type.shape.dim]
            dtype = onnx.helper.tensor_dtype_to_np_dtype(info.type.tensor_type.elem_type)
            given[name] = np.array([float(v) for v in text.split(",")]).astype(dtype).reshape(dims)
        feeds = random_feeds(model, given=given)
        session = make_session(str(path), data_dir=path.parent)
    except Exception:  # noqa: BLE001 - the values cannot be rebuilt, or the original not loaded: no excuse
        return ""
    try:
        session.run(None, feeds)
    except Exception:  # noqa: BLE001 - the original fails on these values
        return "fails"
    return ""


def answer(argv: list[str]) -> str:
    question, path = argv[0], Path(argv[1])
    if question in ("checker", "full"):
        return checker(path, full=question == "full")
    if question == "ort":
        return loads_in_ort(path)
    if question == "kernel":
        return lacks_kernel(path)
    if question == "frozen":
        return frozen_values_fail(path, argv[2:])
    raise ValueError(f"unknown question {question!r}")


def serve() -> None:
    warnings.simplefilter("ignore")
    replies = os.fdopen(os.dup(1), "w")  # the protocol gets its own fd: native code printing to fd 1 can't mix in
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    replies.write(json.dumps({"ready": True}) + "\n")
    replies.flush()
    for line in sys.stdin:
        request = json.loads(line)
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            try:
                text, code = answer(request["argv"]), 0
            except Exception as e:  # noqa: BLE001 - a broken question, not an answer
                text, code = f"oracle error: {type(e).__name__}: {e}", 3
        replies.write(json.dumps({"code": code, "stdout": text, "stderr": ""}) + "\n")
        replies.flush()


if __name__ == "__main__":
    serve()
