"""`inspect --show nodes|tensors|initializers`: the names users pick for rename, add-outputs, extract and friends."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from onnx import NodeProto

from graphsurgeon.core.editor import Editor
from graphsurgeon.core.external_data import declared_nbytes, external_ref, is_external
from graphsurgeon.core.format import dtype_name, format_type
from graphsurgeon.core.index import Scope
from graphsurgeon.core.select import select_nodes
from graphsurgeon.core.stats import op_label
from graphsurgeon.core.units import format_bytes
from graphsurgeon.verbs._main_tensors import inferred_types

SHOW_CHOICES = ("nodes", "tensors", "initializers")


@dataclass
class Listing:
    """Rows of one kind (`show`), as plain dicts; `op` is the node selector that filtered them, if any."""

    show: str
    op: str | None
    rows: list[dict[str, Any]]

    def lines(self) -> list[str]:
        head = f"{self.show} ({len(self.rows)}" + (f", of nodes matching {self.op!r})" if self.op else ")") + ":"
        return [head, *(f"  {_row_text(self.show, row)}" for row in self.rows)]


def _row_text(show: str, row: dict[str, Any]) -> str:
    if show == "nodes":
        where = "" if row["scope"] == "main graph" else f"  [{row['scope']}]"
        reads, writes = ", ".join(row["inputs"]), ", ".join(row["outputs"])
        return f"{row['name'] or '<unnamed>'}: {row['op']}({reads}) -> {writes}{where}"
    if show == "tensors":
        producer = f" from {row['producer']!r}" if row["producer"] is not None else ""
        return f"{row['name']}: {row['type']} ({row['kind']}{producer}, {row['readers']} reader(s))"
    where = row["location"] or "inline"
    return f"{row['name']}: {row['type']}, {format_bytes(row['bytes'] or 0)} ({where})"


def _selected(ctx: Editor, op: str | None) -> list[tuple[Scope, NodeProto]] | None:
    return select_nodes(ctx.index, op) if op is not None else None


def listing(ctx: Editor, show: str, op: str | None) -> Listing:
    selected = _selected(ctx, op)
    main = ctx.index.main
    if show == "nodes":
        pairs = selected if selected is not None else list(ctx.index.find_nodes())
        rows: list[dict[str, Any]] = [
            {
                "name": node.name,
                "op": op_label(node.domain, node.op_type),
                "inputs": list(node.input),
                "outputs": list(node.output),
                "scope": scope.display_name,
            }
            for scope, node in pairs
        ]
        return Listing(show, op, rows)
    if selected is not None:  # the main-graph tensors the matching nodes read or write
        touched = {t for scope, node in selected if scope is main for t in (*node.input, *node.output) if t}
    else:
        touched = None
    if show == "tensors":
        names = [*main.inputs, *main.initializers, *main.producer]
        names = [n for n in dict.fromkeys(names) if touched is None or n in touched]
        types = inferred_types(ctx, names)
        rows = []
        for name in names:
            producer = main.producer.get(name)
            kind = "initializer" if name in main.initializers else "input" if name in main.inputs else "computed"
            if name in main.outputs:
                kind += ", graph output"
            rows.append(
                {
                    "name": name,
                    "type": format_type(types[name]) if name in types else "type unknown",
                    "kind": kind,
                    "producer": producer.name if producer is not None else None,
                    "readers": len(main.readers(name)),
                }
            )
        return Listing(show, op, rows)
    rows = []
    for name, tensor in main.initializers.items():
        if touched is not None and name not in touched:
            continue
        reference = external_ref(tensor) if is_external(tensor) else None
        rows.append(
            {
                "name": name,
                "type": f"{dtype_name(tensor.data_type)}[{', '.join(str(d) for d in tensor.dims)}]",
                "bytes": declared_nbytes(tensor),
                "location": reference.location if reference is not None else None,
            }
        )
    return Listing(show, op, rows)
