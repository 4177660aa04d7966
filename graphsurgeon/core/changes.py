"""Structured change records: what each edit did, as data that also reads as a sentence.

Every edit made through the editing API (by a verb or a user's patch script) appends a :class:`Change` to the
model's :class:`ChangeLog`. A record is ``(verb, action, kind, name, detail)``; :func:`render` turns a list of
them into readable lines, folding long runs of the same action ("removed 312 nodes: a, b, c, ...").
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Change:
    """One edit: `verb` did `action` to the `kind` named `name`; `detail` says the rest in words.

    Examples: ``Change("promote-input", "promoted", "input", "scales", "operand 'scales' of Resize ...")``,
    ``Change("cleanup", "removed", "node", "/conv/Conv_3")``.
    """

    verb: str
    action: str
    kind: str
    name: str = ""
    detail: str = ""

    def __str__(self) -> str:
        if self.action == "summary":  # a verb's own account of its work, in its words
            return f"{self.verb}: {self.detail}"
        subject = f"{self.kind} {self.name!r}" if self.name else self.kind
        text = f"{self.verb}: {self.action} {subject}"
        return f"{text}: {self.detail}" if self.detail else text

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


class ChangeLog:
    """The records of one model, in order; the verb that is running is stamped on each new record."""

    def __init__(self) -> None:
        self.records: list[Change] = []
        self.verb = "edit"  # a patch script's own edits are recorded as "edit"

    def record(self, action: str, kind: str, name: str = "", detail: str = "") -> Change:
        change = Change(self.verb, action, kind, name, detail)
        self.records.append(change)
        return change

    def __iter__(self) -> Iterator[Change]:
        return iter(self.records)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> Change:
        return self.records[index]

    def since(self, mark: int) -> list[Change]:
        return self.records[mark:]

    def lines(self) -> list[str]:
        return render(self.records)


_FOLD_AFTER = 8  # more records than this with the same (verb, action, kind) and no detail fold into one line


def render(changes: Iterable[Change], *, limit: int = 10) -> list[str]:
    """Readable lines: runs of detail-less records of one (verb, action, kind) become one counted line."""
    lines: list[str] = []
    run: list[Change] = []

    def flush() -> None:
        if not run:
            return
        if len(run) <= _FOLD_AFTER:
            lines.extend(str(c) for c in run)
        else:
            first = run[0]
            shown = ", ".join(repr(c.name) for c in run[:limit] if c.name)
            more = f", ... ({len(run) - limit} more)" if len(run) > limit else ""
            lines.append(f"{first.verb}: {first.action} {len(run)} {first.kind}s: {shown}{more}")
        run.clear()

    for change in changes:
        if change.detail:
            flush()
            lines.append(str(change))
        elif run and (run[0].verb, run[0].action, run[0].kind) != (change.verb, change.action, change.kind):
            flush()
            run.append(change)
        else:
            run.append(change)
    flush()
    return lines
