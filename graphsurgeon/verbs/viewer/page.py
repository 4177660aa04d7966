"""The view page: one self-contained HTML file (layout library, script, style and graph data inline; it opens
from disk with no network), and a localhost server for it."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Iterator
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from onnx import ModelProto

from graphsurgeon.verbs.diff import DiffReport
from graphsurgeon.verbs.viewer.diff_data import union_graphs
from graphsurgeon.verbs.viewer.graph_data import single_graphs

_ASSETS = ("page.html", "style.css", "app.js", "dagre.min.js")


@cache
def _asset(name: str) -> str:
    return (resources.files("graphsurgeon.verbs.viewer") / "assets" / name).read_text(encoding="utf-8")


def page_data(a: ModelProto, title: str, b: ModelProto | None = None, report: DiffReport | None = None) -> dict:
    """What the page draws: one model's graphs, or (with `b` and the diff `report`) both versions in one."""
    if b is None or report is None:
        return {"mode": "single", "title": title, "graphs": single_graphs(a)}
    graphs, changes = union_graphs(a, b, report)
    a_name, b_name = Path(report.a).name, Path(report.b).name
    return {"mode": "diff", "title": title, "a": a_name, "b": b_name, "graphs": graphs, "changes": changes}


def _script_safe(text: str) -> str:
    """JSON inside <script>: no way to close the element early."""
    return text.replace("</", "<\\/").replace("<!--", "<\\!--")


def render_page(data: dict[str, Any]) -> str:
    """The HTML page for `data` (see :func:`page_data`)."""
    page = _asset("page.html")
    parts = {
        "{{TITLE}}": _html_escape(data["title"]),
        "{{STYLE}}": _asset("style.css"),
        "{{LAYOUT}}": _asset("dagre.min.js"),
        "{{DATA}}": _script_safe(json.dumps(data, separators=(",", ":"))),
        "{{APP}}": _asset("app.js"),
    }
    out = []
    rest = page
    for marker, value in parts.items():  # each marker once, in page order; values are not rescanned
        head, _, rest = rest.partition(marker)
        out += [head, value]
    out.append(rest)
    return "".join(out)


def _html_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


@contextlib.contextmanager
def serving(html: bytes, port: int) -> Iterator[str]:
    """Serve `html` at http://127.0.0.1:PORT/ (0 = any free port) in a background thread; yields the URL."""
    import http.server  # here, not at the top: every command imports this module, few serve a page

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 -- the http.server spelling
            if self.path.split("?")[0] not in ("/", "/index.html"):
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(html)))
            self.end_headers()
            self.wfile.write(html)

        def log_message(self, format: str, *args: Any) -> None:  # quiet: the CLI prints what matters
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def serve_until_interrupted(html: bytes, port: int, announce: Callable[[str], None], wait: Callable[[], None]) -> str:
    """Serve until `wait` returns or Ctrl-C; `announce` gets the URL once the server listens."""
    with serving(html, port) as url:
        announce(url)
        with contextlib.suppress(KeyboardInterrupt):
            wait()
    return url
