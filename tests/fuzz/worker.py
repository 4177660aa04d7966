"""A long-lived process running CLI commands in-process, one JSON request per line (fast: no import per run).

Request: {"argv": [...], "cwd": "..."}; reply: {"code": int, "stdout": str, "stderr": str}. The parent kills
and restarts the worker when a command outlives its timeout (a hang is a finding, not a stuck test).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import warnings


def serve() -> None:
    warnings.simplefilter("ignore")  # library warnings are not the CLI's error lines
    os.environ.setdefault("ORT_LOGGING_LEVEL", "3")
    from graphsurgeon.cli import main

    replies = os.fdopen(os.dup(1), "w")  # the protocol gets its own fd: native code printing to fd 1 can't mix in
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    replies.write(json.dumps({"ready": True}) + "\n")
    replies.flush()
    for line in sys.stdin:
        request = json.loads(line)
        out, err = io.StringIO(), io.StringIO()
        os.chdir(request["cwd"])
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = main(request["argv"])
        except SystemExit as e:  # main() should never exit by itself
            code = 100 + (e.code if isinstance(e.code, int) else 0)
        except BaseException as e:  # noqa: BLE001 - anything escaping main() is a finding
            code = 99
            err.write(f"escaped main(): {type(e).__name__}: {e}\n")
        replies.write(json.dumps({"code": code, "stdout": out.getvalue(), "stderr": err.getvalue()}) + "\n")
        replies.flush()


if __name__ == "__main__":
    serve()
