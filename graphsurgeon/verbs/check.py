"""check: is the model valid? onnxruntime decides; onnx's checker adds warnings (errors with `strict`).

Findings have a severity: *error* (onnxruntime cannot load the model: INVALID, exit 1), *warning* (onnx's
full checker complains but onnxruntime loads it; an error with `strict`), *note* (custom-domain ops that
have no kernel here: the model is not invalid, it needs its custom-op library to run).
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated, Any

import onnx

from graphsurgeon.core.constants import ONNX_DOMAINS
from graphsurgeon.core.editor import Editor
from graphsurgeon.core.external_data import validate_external_data
from graphsurgeon.core.inference import full_check
from graphsurgeon.core.runtime import first_line, make_session
from graphsurgeon.core.verb import Opt, verb
from graphsurgeon.core.walk import model_graphs


@dataclass
class Finding:
    severity: str  # "error", "warning" or "note"
    source: str  # "onnxruntime", "onnx checker"
    message: str

    def __str__(self) -> str:
        return f"{self.severity}: {self.source}: {self.message}"


@dataclass
class CheckReport:
    """What `check` found; `ok` is False when any finding is an error."""

    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(f.severity == "error" for f in self.findings)

    @property
    def verdict(self) -> str:
        if not self.ok:
            return "INVALID"
        return "valid" + (" with warnings" if any(f.severity == "warning" for f in self.findings) else "")

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def to_dict(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "ok": self.ok, "findings": [asdict(f) for f in self.findings]}

    def __str__(self) -> str:
        return "\n".join([*(str(f) for f in self.findings), f"verdict: {self.verdict}"])


def _run_checker(data: bytes, data_files: dict[str, Path]) -> None:
    """onnx's full checker on the serialized graph. It wants external data files beside the model and refuses
    symlinks, so it gets a scratch folder of same-size sparse stand-ins (the real files were already
    validated on load: existence, bounds, no escape from the model's folder)."""
    if not data_files:
        full_check(data)
        return
    with tempfile.TemporaryDirectory() as scratch:
        for location, real in data_files.items():
            stand_in = Path(scratch, location)
            stand_in.parent.mkdir(parents=True, exist_ok=True)
            with open(stand_in, "wb") as f:
                f.truncate(real.stat().st_size)
        graph_file = Path(scratch, "model.onnx")
        graph_file.write_bytes(data)
        full_check(str(graph_file))


def _custom_ops(ctx: Editor) -> set[str]:
    """domain::op of every node outside the ONNX domains that no model-local function defines."""
    functions = {(f.domain, f.name) for f in ctx.proto.functions}
    found = set()
    graphs: list[onnx.GraphProto | onnx.FunctionProto] = [*model_graphs(ctx.proto), *ctx.proto.functions]
    for graph in graphs:
        for node in graph.node:
            if node.domain not in ONNX_DOMAINS and (node.domain, node.op_type) not in functions:
                found.add(f"{node.domain}::{node.op_type}")
    return found


_NO_KERNEL = re.compile(r"(not a registered function/op|Could not find an implementation for)")


@verb(writes=False)
def check(
    ctx: Editor, *, strict: Annotated[bool, Opt("treat onnx checker complaints as errors")] = False
) -> CheckReport:
    """Check the model: onnxruntime must load it (else INVALID); onnx's full checker adds warnings.

    A custom-domain op without a kernel here is reported as such, not as an invalid model.
    """
    report = CheckReport()
    data = ctx.proto.SerializeToString()  # graph only: external weights stay on disk
    try:
        _run_checker(data, validate_external_data(ctx.proto, ctx.external_data_dir))
    except Exception as e:  # the checker raises several types; all are findings here
        report.findings.append(Finding("error" if strict else "warning", "onnx checker", first_line(e, 2000)))
    try:
        make_session(data, data_dir=ctx.external_data_dir)
    except Exception as e:  # onnxruntime raises several unrelated types
        message = first_line(e, 2000)
        custom = _custom_ops(ctx)
        if custom and _NO_KERNEL.search(message) and any(op.split("::")[1] in message for op in custom):
            report.findings.append(
                Finding(
                    "note",
                    "onnxruntime",
                    "custom op(s) without a kernel here: "
                    + ", ".join(sorted(custom))
                    + " (register their custom-op library to run the model)",
                )
            )
        else:
            report.findings.append(Finding("error", "onnxruntime", f"cannot load the model: {message}"))
    return report
