"""A real headless browser for the view tests and bench: Debian's chromium-headless-shell driven by Playwright.

Never downloads a browser (no `playwright install`): the system binary is used, or the caller skips.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CANDIDATES = ("chromium-headless-shell", "chromium", "chromium-browser", "google-chrome")
FLAGS = (
    "--no-sandbox",  # CI runs as root
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def browser_binary() -> str | None:
    """The Chromium to drive: $GRAPHSURGEON_CHROMIUM, else the first one on PATH."""
    configured = os.environ.get("GRAPHSURGEON_CHROMIUM")
    if configured:
        return configured if Path(configured).exists() else None
    return next((found for name in CANDIDATES if (found := shutil.which(name))), None)


def unavailable() -> str | None:
    """Why no browser test can run here (None when one can)."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install playwright; no browser download needed)"
    if browser_binary() is None:
        return "no Chromium found: apt-get install -y --no-install-recommends chromium-headless-shell"
    return None


@dataclass
class Page:
    """An open page, with what it logged and every network request it tried."""

    page: Any
    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    def api(self, script: str, arg: Any = None) -> Any:
        """Evaluate `script` (a JS function body over `window.gsView` as `v`)."""
        return self.page.evaluate(f"(arg) => {{ const v = window.gsView; {script} }}", arg)


@contextlib.contextmanager
def chromium(width: int = 1400, height: int = 900) -> Iterator[Any]:
    """A headless Chromium with a fresh profile, network blocked: yields an ``open(path) -> Page`` function."""
    from playwright.sync_api import sync_playwright

    profile = tempfile.mkdtemp(prefix="gs-chromium-")
    try:
        with sync_playwright() as p:
            context = p.chromium.launch_persistent_context(
                profile,
                executable_path=browser_binary(),
                headless=True,
                args=list(FLAGS),
                viewport={"width": width, "height": height},
                offline=True,
            )
            try:

                def open_page(path: Path, timeout_ms: int = 30_000) -> Page:
                    page = context.new_page()
                    opened = Page(page)
                    page.on("console", lambda m: opened.errors.append(m.text) if m.type == "error" else None)
                    page.on("pageerror", lambda e: opened.errors.append(str(e)))

                    def route(r: Any) -> None:
                        if not r.request.url.startswith("file://"):
                            opened.requests.append(r.request.url)
                            r.abort()
                        else:
                            r.continue_()

                    page.route("**/*", route)
                    page.goto(Path(path).resolve().as_uri())
                    page.wait_for_function("window.gsView && window.gsView.ready", timeout=timeout_ms)
                    return opened

                yield open_page
            finally:
                context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)
