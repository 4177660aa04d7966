"""Running one CLI command in the long-lived worker (tests/fuzz/worker.py) with a timeout; a hang kills and
restarts the worker."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Result:
    code: int | None  # None: timed out (a hang)
    stdout: str
    stderr: str
    seconds: float


class Worker:
    """A `python -m tests.fuzz.worker` process (or another `module` speaking its protocol: tests/fuzz/oracle.py);
    restarted after a hang or every `recycle` runs."""

    def __init__(self, recycle: int = 150, module: str = "tests.fuzz.worker"):
        self.recycle = recycle
        self.module = module
        self.process: subprocess.Popen[str] | None = None
        self.runs = 0

    def _start(self, attempts: int = 5) -> subprocess.Popen[str]:
        """A fresh worker; a failed start is retried (the tree may be mid-edit: an import failing for a moment
        must not end a long run)."""
        for attempt in range(attempts):
            try:
                return self._start_once()
            except RuntimeError:
                if attempt == attempts - 1:
                    raise
                time.sleep(15)
        raise AssertionError("unreachable")

    def _start_once(self) -> subprocess.Popen[str]:
        env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONWARNINGS="ignore")
        process = subprocess.Popen(
            [sys.executable, "-m", self.module],
            cwd=REPO,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,  # native libraries' logs (onnxruntime warnings)
            text=True,
            start_new_session=True,
        )
        ready = self._read(process, 120)
        if ready is None or not ready.get("ready"):
            process.kill()
            process.wait()
            raise RuntimeError("the fuzz worker did not start")
        return process

    @staticmethod
    def _read(process: subprocess.Popen[str], timeout: float) -> dict | None:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], timeout)
        if not ready:
            return None
        line = process.stdout.readline()
        return json.loads(line) if line else {"code": 98, "stdout": "", "stderr": "the worker died"}

    def run(self, argv: list[str], cwd: Path, timeout: float) -> Result:
        if self.process is None or self.process.poll() is not None or self.runs >= self.recycle:
            self.close()
            self.process = self._start()
            self.runs = 0
        self.runs += 1
        assert self.process.stdin is not None
        started = time.perf_counter()
        self.process.stdin.write(json.dumps({"argv": argv, "cwd": str(cwd)}) + "\n")
        self.process.stdin.flush()
        reply = self._read(self.process, timeout)
        seconds = time.perf_counter() - started
        if reply is None:
            self.close()
            return Result(None, "", "", seconds)
        if reply.get("stderr") == "the worker died":
            self.close()
        return Result(reply["code"], reply["stdout"], reply["stderr"], seconds)

    def close(self) -> None:
        if self.process is not None:
            try:
                os.killpg(self.process.pid, 9)  # the worker and anything it started (its own session)
            except (ProcessLookupError, PermissionError):
                pass
            self.process.wait()
            self.process = None
