"""Names for the files graphsurgeon writes before renaming them into place, and the clean-up of those a killed
process left behind.

Every temporary file is ``.graphsurgeon-<host>-<pid>-<n>-<final name>.tmp``: beside its final name (a save's
graph and data files) or in the scratch folder (a rewrite's new data file). A SIGKILL can leave one, never a
partial file under a final name; the next save into that folder removes those whose process is gone (same
host tag, and ``kill(pid, 0)`` finds no such process). Nothing else is ever removed: only names of this form.
"""

from __future__ import annotations

import itertools
import os
import re
import socket
import zlib
from pathlib import Path

PREFIX = ".graphsurgeon-"
_HOST = f"{zlib.crc32(socket.gethostname().encode(errors='replace')) & 0xFFFFFF:06x}"
_PATTERN = re.compile(r"\.graphsurgeon-([0-9a-f]{6})-(\d+)-\d+-.*\.tmp", re.DOTALL)
_MAX_NAME_BYTES = 255
_counter = itertools.count(1)


def temp_name(final_name: str) -> str:
    """A temporary name for a file to be renamed `final_name` (unique in this process; at most 255 bytes)."""
    head = f"{PREFIX}{_HOST}-{os.getpid()}-{next(_counter)}-"
    room = _MAX_NAME_BYTES - len(head) - len(".tmp")
    name = final_name.encode(errors="surrogateescape")[:room].decode(errors="ignore")
    return f"{head}{name}.tmp"


def temp_path(final: Path) -> Path:
    """Where `final` is written before `os.replace` puts it in place: a temporary name beside it."""
    return final.with_name(temp_name(final.name))


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True  # another user's process (or a pid we cannot ask about): keep its files
    return True


def remove_stale(folder: Path) -> list[Path]:
    """Delete the temporary files in `folder` that a dead graphsurgeon process of this host left behind;
    returns them. Best effort: a folder that cannot be listed, or a file that cannot be removed, is left."""
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        match = _PATTERN.fullmatch(entry.name) if entry.name.startswith(PREFIX) else None
        if match is None or match.group(1) != _HOST or _alive(int(match.group(2))):
            continue
        try:
            if entry.is_file(follow_symlinks=False):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
        except OSError:
            pass
    return removed
