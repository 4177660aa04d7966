"""How results reach the terminal: rich tables and progress on a terminal, plain lines when piped, one JSON
document with --json."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from functools import cached_property
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # rich is imported on first use: a quiet or piped command never draws with it
    from rich.console import Console

from graphsurgeon.core.changes import Change, render
from graphsurgeon.core.numeric import CompareReport
from graphsurgeon.core.progress import Progress as ProgressHook
from graphsurgeon.core.progress import Task
from graphsurgeon.summary import Summary


class Output:
    """Everything the CLI prints goes through here (stdout for results, stderr for progress and errors)."""

    def __init__(self, *, quiet: bool = False, verbose: bool = False, as_json: bool = False):
        self.quiet, self.verbose, self.as_json = quiet, verbose, as_json

    @cached_property
    def stdout(self) -> Console:
        from rich.console import Console

        return Console(file=sys.stdout, highlight=False, soft_wrap=True)

    @cached_property
    def stderr(self) -> Console:
        from rich.console import Console

        return Console(file=sys.stderr, highlight=False, soft_wrap=True)

    @property
    def fancy(self) -> bool:
        return self.stdout.is_terminal and not self.as_json

    def line(self, text: str) -> None:
        if not self.quiet and not self.as_json:
            print(text, flush=False)

    def changes(self, changes: list[Change]) -> None:
        if self.quiet or self.as_json:
            return
        for text in render(changes, limit=10**9 if self.verbose else 10):
            print(text)

    def summary(self, summary: Summary) -> None:
        if self.quiet or self.as_json:
            return
        if not self.fancy:
            for text in summary.lines():
                print(text)
            return
        from rich.table import Table

        table = Table(title=f"{summary.verb}: before -> after", title_justify="left")
        table.add_column("")
        table.add_column("before", justify="right")
        table.add_column("after", justify="right")
        for what, before, after in summary.rows():
            style = "bold" if before != after else None
            table.add_row(what, before, after, style=style)
        self.stdout.print(table)
        self.stdout.print(f"wall time {summary.seconds:.2f} s")
        for note in summary.notes:
            self.stdout.print(f"note: {note}")

    def verify(self, report: CompareReport) -> None:
        if self.as_json:
            return
        if report.error is not None:
            print(f"verify: could not verify: {report.error}")
            return
        if self.quiet and report.ok:
            return
        print(f"verify: {report.status} over {report.runs} run(s) (rtol {report.rtol:g}, atol {report.atol:g})")
        for output in report.outputs:
            print(f"  {output}")
        for note in report.notes:
            print(f"  note: {note}")

    def document(self, document: dict[str, Any]) -> None:
        print(json.dumps(document, indent=2, default=str))

    def error(self, text: str) -> None:
        print(f"graphsurgeon: {text}", file=sys.stderr)

    def progress(self) -> ProgressHook:
        if self.quiet or not self.stderr.is_terminal:
            return ProgressHook()
        return _RichProgress(self.stderr)


class _RichTask(Task):
    def __init__(self, bar: Any, task_id: Any):
        self.bar, self.task_id = bar, task_id

    def advance(self, amount: float = 1) -> None:
        self.bar.advance(self.task_id, amount)


class _RichProgress(ProgressHook):
    def __init__(self, console: Console):
        self.console = console

    @contextlib.contextmanager
    def task(self, description: str, total: float | None = None) -> Iterator[Task]:
        from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn())
        with Progress(*columns, console=self.console, transient=True) as bar:
            yield _RichTask(bar, bar.add_task(description, total=total))
