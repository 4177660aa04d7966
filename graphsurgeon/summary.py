"""The before/after summary every writing verb prints: what changed in numbers, and why when nothing did."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from graphsurgeon.core.editor import Editor
from graphsurgeon.core.external_data import validate_external_data
from graphsurgeon.core.stats import ModelStats, model_stats
from graphsurgeon.core.units import format_bytes


def files_size(model: Editor, graph_file: Path | None) -> int | None:
    """Bytes on disk: the graph file plus every external data file it references (None if not on disk)."""
    if graph_file is None or not graph_file.exists():
        return None
    data = validate_external_data(model.proto, model.external_data_dir) if model.external_data_dir else {}
    return graph_file.stat().st_size + sum(p.stat().st_size for p in data.values())


@dataclass
class Summary:
    verb: str
    before: ModelStats
    after: ModelStats
    input_bytes: int | None
    output_bytes: int | None
    seconds: float
    notes: list[str] = field(default_factory=list)

    @classmethod
    def start(cls, verb: str, model: Editor) -> Summary:
        stats = model_stats(model.proto)
        return cls(verb, stats, stats, files_size(model, model.path), None, 0.0)

    def finish(self, model: Editor, output: Path | None, seconds: float) -> None:
        self.after = model_stats(model.proto)
        self.output_bytes = files_size(model, output)
        self.seconds = seconds
        self.notes = list(model.notes)

    def op_rows(self) -> list[tuple[str, int, int]]:
        """(op, before, after) for each op type whose count changed."""
        ops = sorted(set(self.before.nodes_by_op) | set(self.after.nodes_by_op))
        return [
            (op, self.before.nodes_by_op[op], self.after.nodes_by_op[op])
            for op in ops
            if self.before.nodes_by_op[op] != self.after.nodes_by_op[op]
        ]

    def rows(self) -> list[tuple[str, str, str]]:
        """What the table shows: (what, before, after)."""
        rows = [(f"{op} nodes", str(b), str(a)) for op, b, a in self.op_rows()]
        rows.append(("nodes", str(self.before.node_count), str(self.after.node_count)))
        rows.append(("initializers", str(self.before.initializer_count), str(self.after.initializer_count)))
        rows.append(
            (
                "initializer bytes",
                format_bytes(self.before.initializer_bytes),
                format_bytes(self.after.initializer_bytes),
            )
        )
        if self.input_bytes is not None or self.output_bytes is not None:
            rows.append(("file size", _maybe(self.input_bytes), _maybe(self.output_bytes)))
        return rows

    @property
    def changed(self) -> bool:
        return bool(self.op_rows()) or (
            self.before.initializer_count,
            self.before.initializer_bytes,
        ) != (self.after.initializer_count, self.after.initializer_bytes)

    def lines(self) -> list[str]:
        out = [f"{what}: {before} -> {after}" for what, before, after in self.rows()]
        out.append(f"wall time: {self.seconds:.2f} s")
        out += [f"note: {n}" for n in self.notes]
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "nodes": {"before": self.before.node_count, "after": self.after.node_count},
            "nodes_by_op": {op: {"before": b, "after": a} for op, b, a in self.op_rows()},
            "initializers": {"before": self.before.initializer_count, "after": self.after.initializer_count},
            "initializer_bytes": {"before": self.before.initializer_bytes, "after": self.after.initializer_bytes},
            "file_bytes": {"before": self.input_bytes, "after": self.output_bytes},
            "seconds": round(self.seconds, 4),
            "notes": self.notes,
        }


def _maybe(n: int | None) -> str:
    return "-" if n is None else format_bytes(n)
