"""Progress of long work (big saves, folding many batches): a hook the CLI fills with a progress bar.

The core reports through :class:`Progress`; the default does nothing, so library calls stay silent.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


class Task:
    def advance(self, amount: float = 1) -> None:
        """Count `amount` more units of work done."""


class Progress:
    """Does nothing; the CLI installs one that draws on stderr when that is a terminal."""

    @contextlib.contextmanager
    def task(self, description: str, total: float | None = None) -> Iterator[Task]:
        yield Task()


SILENT = Progress()
