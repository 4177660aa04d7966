"""Shared bits of the benchmarks: measure one whole command, drop the page cache, print a markdown table.

Each tool runs as its own child process; its wall time is taken around spawn..reap, and its peak RSS is that
command's own maximum resident set size, read by GNU time (``/usr/bin/time -f %M``). Python start-up and
imports are included: that is what a user waits for.

Why GNU time and not ``os.wait4`` on a child forked from this script: Linux folds the RSS the forked child had
*before* exec (a copy of this script's page tables) into the child's ``ru_maxrss``, so a child of a 300 MB
parent reports >= 300 MB even for ``python -c pass``. GNU time is a small C process, so what it forks is tiny.
Without /usr/bin/time we fall back to ``os.wait4`` and say so (figures are then upper bounds).
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"


@dataclass
class Run:
    label: str
    cmd: list[str]
    wall: float = 0.0  # seconds, spawn to exit
    peak_rss_mb: float = 0.0  # the child's ru_maxrss, in MiB
    returncode: int | None = None
    timed_out: bool = False
    sync_s: float = 0.0  # time `sync` took right after the run (dirty pages the tool left for the kernel)
    cpu_s: float = float("nan")  # the command's user + sys CPU seconds (GNU time %U + %S)
    background_cpu: float = 0.0  # CPU cores busy with other processes during the run, on average
    stdout: str = ""
    stderr: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out

    def error_line(self) -> str:
        """The last meaningful stderr line (the exception), for the table."""
        lines = [ln.strip() for ln in self.stderr.splitlines() if ln.strip()]
        return lines[-1] if lines else f"exit code {self.returncode}"


GNU_TIME = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None


def rss_method() -> str:
    return "GNU time %M" if GNU_TIME else "os.wait4 ru_maxrss (includes this script's RSS at fork: upper bound)"


def run_measured(
    label: str,
    cmd: list[str],
    *,
    timeout: float | None = None,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    log_dir: Path | None = None,
) -> Run:
    """Run `cmd` in its own process group; measure wall time and the command's peak RSS. `sync` afterwards.

    Without `cwd` the command runs in a scratch folder removed afterwards: some tools write scratch files
    into the current folder (onnxruntime's symbolic shape inference, run by a peer, wrote a model there once).
    """
    if cwd is None:
        with tempfile.TemporaryDirectory(prefix="bench-cwd-") as scratch:
            return run_measured(label, cmd, timeout=timeout, cwd=Path(scratch), env=env, log_dir=log_dir)
    run = Run(label, [str(c) for c in cmd])
    log_dir = log_dir or Path(os.environ.get("TMPDIR", "/tmp"))
    log_dir.mkdir(parents=True, exist_ok=True)
    slug = "".join(c if c.isalnum() else "_" for c in label)[:60]
    out_path, err_path, time_path = (log_dir / f"{slug}.{ext}" for ext in ("stdout", "stderr", "time"))
    time_path.unlink(missing_ok=True)
    full = [GNU_TIME, "-o", str(time_path), "-f", "%e %U %S %M", *run.cmd] if GNU_TIME else run.cmd
    busy_before = _busy_seconds()
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(
            full, stdout=out, stderr=err, stdin=subprocess.DEVNULL, cwd=cwd, env=env, start_new_session=True
        )
        deadline = None if timeout is None else start + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG if deadline is not None else 0)
            if pid == proc.pid:
                run.wall = time.perf_counter() - start
                break
            if deadline is not None and time.perf_counter() > deadline:
                run.timed_out = True
                os.killpg(proc.pid, signal.SIGKILL)  # the group created for this child only
                pid, status, usage = os.wait4(proc.pid, 0)
                run.wall = time.perf_counter() - start
                break
            time.sleep(0.02)
        proc.returncode = os.waitstatus_to_exitcode(status)  # keep Popen from waiting again
    run.returncode = proc.returncode
    ours = usage.ru_utime + usage.ru_stime  # GNU time's and, through it, the command's CPU time
    run.cpu_s = ours
    run.background_cpu = max(0.0, (_busy_seconds() - busy_before - ours) / run.wall) if run.wall > 0 else 0.0
    run.peak_rss_mb = usage.ru_maxrss / 1024  # Linux: KiB
    if run.timed_out:
        run.peak_rss_mb = float("nan")  # killed: GNU time wrote nothing, and wait4's figure is not the tool's
    elif GNU_TIME and time_path.exists():
        fields = time_path.read_text().split()
        try:  # last line is "%e %U %S %M"; a "Command exited with non-zero status" line may precede it
            run.peak_rss_mb = int(fields[-1]) / 1024
            run.cpu_s = float(fields[-3]) + float(fields[-2])
        except (ValueError, IndexError):
            pass
    run.stdout = out_path.read_text(errors="replace")
    run.stderr = err_path.read_text(errors="replace")
    t = time.perf_counter()
    os.sync()
    run.sync_s = time.perf_counter() - t
    return run


def _busy_seconds() -> float:
    """CPU seconds all cores spent not idle since boot (/proc/stat), or 0 where unavailable."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return 0.0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def wait_for_quiet(max_busy: float = 0.25, max_wait: float = 90, window: float = 2.0) -> float:
    """Wait (up to `max_wait` s) until other processes use under `max_busy` cores over `window` s.

    Other people share this machine; a benchmark started while they compile or test measures them too.
    Returns the background load seen last (cores).
    """
    deadline = time.monotonic() + max_wait
    while True:
        before = _busy_seconds()
        time.sleep(window)
        load = (_busy_seconds() - before) / window
        if load < max_busy or time.monotonic() > deadline:
            return load


def drop_caches() -> bool:
    """sync and drop the page cache (needs root). Returns whether it worked."""
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return True
    except OSError:
        return False


def warm_imports(modules: list[str]) -> None:
    """Import `modules` once in a throw-away process, so their files are in the page cache again."""
    code = (
        "import importlib, sys\nfor m in sys.argv[1:]:\n    try: importlib.import_module(m)\n    except Exception: pass"
    )
    subprocess.run([sys.executable, "-c", code, *modules], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def python() -> str:
    return sys.executable


def graphsurgeon_cmd() -> list[str]:
    """The installed console script if there is one (what users type), else `python -m graphsurgeon`."""
    exe = shutil.which("graphsurgeon")
    return [exe] if exe else [python(), "-m", "graphsurgeon"]


def versions(*modules: str) -> str:
    parts = [f"Python {platform.python_version()}"]
    for name in modules:
        try:
            from importlib.metadata import version

            parts.append(f"{name} {version(name)}")
        except Exception:
            parts.append(f"{name} (not installed)")
    return ", ".join(parts)


def machine() -> str:
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores ({cpu}), {mem_gib:.0f} GiB RAM, {platform.system()} {platform.release()}"


def fmt_seconds(s: float) -> str:
    return f"{s:.2f} s" if s < 10 else f"{s:.1f} s"


def fmt_mb(mib: float) -> str:
    if mib != mib:
        return "n/a"
    return f"{mib:,.0f} MiB" if mib < 1024 else f"{mib / 1024:,.2f} GiB"


def median(values) -> float:
    ordered = sorted(values)
    n = len(ordered)
    if not n:
        return float("nan")
    return ordered[n // 2] if n % 2 else (ordered[n // 2 - 1] + ordered[n // 2]) / 2


def stat_label(n: int) -> str:
    return "one run" if n == 1 else "median (min-max, runs)"


def summarize(runs: list[Run]) -> tuple[str, str, str]:
    """(wall, peak RSS, sync) cells: median wall with its range, the largest peak RSS, median sync time."""
    if any(r.timed_out for r in runs):
        return f"killed after {fmt_seconds(max(r.wall for r in runs))} (timeout)", "n/a", "-"
    walls = [r.wall for r in runs]
    wall = fmt_seconds(median(walls))
    if len(runs) > 1:
        wall += f" ({min(walls):.2f}-{max(walls):.2f}, n={len(walls)})"
    return wall, fmt_mb(max(r.peak_rss_mb for r in runs)), f"{median(r.sync_s for r in runs):.2f} s"


def background(runs: list[Run]) -> str:
    """The busiest background seen during these runs (other people's processes), in cores."""
    return f"{max((r.background_cpu for r in runs), default=0):.2f}"


def markdown_table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines)


def write_report(name: str, text: str) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.md"
    path.write_text(text)
    return path


def git_rev() -> str:
    """The commit measured, and whether graphsurgeon/ had uncommitted changes (others share this checkout)."""
    root = BENCH_DIR.parent
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "graphsurgeon"], cwd=root, capture_output=True, text=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "graphsurgeon (not a git checkout)"
    return f"graphsurgeon at {rev}" + (" + uncommitted changes in graphsurgeon/" if dirty else "")


def header() -> str:
    return f"{now()} - {machine()}\n\n{git_rev()}; {versions('onnx', 'onnxruntime', 'onnx-ir', 'onnx-graphsurgeon')}"


def now() -> str:
    return _dt.datetime.now().strftime("%Y-%m-%d %H:%M")


def disk_free_gb(path: Path) -> float:
    return shutil.disk_usage(path).free / 1e9
