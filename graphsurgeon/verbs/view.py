"""view: the graph in a browser, as one self-contained HTML page; with `diff`, both versions in one picture."""

from __future__ import annotations

import importlib
import sys
import tempfile
import threading
import webbrowser
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from graphsurgeon.core.editor import Editor
from graphsurgeon.core.units import format_bytes
from graphsurgeon.core.verb import Opt, verb
from graphsurgeon.errors import GraphSurgeonError, SaveError
from graphsurgeon.verbs.diff import diff as structural_diff
from graphsurgeon.verbs.viewer.page import page_data, render_page, serve_until_interrupted


class ViewError(GraphSurgeonError):
    """The page cannot be shown as asked (a missing optional viewer, a folder that does not exist)."""


@dataclass
class ViewReport:
    """Where the page went, and how much it draws."""

    page: str | None
    url: str | None
    nodes: int
    edges: int
    graphs: int
    size: int
    changes: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))

    def __str__(self) -> str:
        what = f"{self.nodes} nodes, {self.edges} edges, {self.graphs} graph(s)"
        if self.changes is not None:
            what += f", {self.changes} difference(s)"
        where = f"wrote {self.page}" if self.page else f"served {self.url}"
        return f"{where} ({what}; {format_bytes(self.size)})"


def _wait_forever() -> None:
    threading.Event().wait()


_wait = _wait_forever  # how long --serve serves: until Ctrl-C (tests replace it)


def _default_page(ctx: Editor, diffing: bool) -> Path:
    suffix = ".view-diff.html" if diffing else ".view.html"
    if ctx.path is not None:
        return ctx.path.with_name(ctx.path.name.removesuffix(".onnx") + suffix)
    return Path(tempfile.mkdtemp(prefix="graphsurgeon-view-")) / ("model" + suffix)


def _netron(ctx: Editor, browse: bool) -> ViewReport:
    try:
        netron: Any = importlib.import_module("netron")
    except ImportError:
        raise ViewError("`netron=True` needs the netron package: pip install netron") from None
    path = ctx.path
    if path is None or ctx.changes:
        path = Path(tempfile.mkdtemp(prefix="graphsurgeon-netron-")) / "model.onnx"
        path.write_bytes(ctx.proto.SerializeToString())
    address = netron.start(str(path), browse=browse)
    url = f"http://{address[0]}:{address[1]}/" if isinstance(address, tuple) else str(address)
    print(f"netron serves {path} at {url} (Ctrl-C stops)", file=sys.stderr)
    try:
        _wait()
    except KeyboardInterrupt:
        pass
    finally:
        netron.stop()
    return ViewReport(None, url, sum(1 for _ in ctx.proto.graph.node), 0, 1, path.stat().st_size)


@verb(writes=False)
def view(
    ctx: Editor,
    *,
    diff: Annotated[
        str | None, Opt("another version of the model: draw both in one picture, changes coloured", metavar="OTHER")
    ] = None,
    output: Annotated[
        str | None, Opt("write the page to PAGE.html (default: next to MODEL)", metavar="PAGE.html", short="-o")
    ] = None,
    serve: Annotated[
        int | None, Opt("serve the page on localhost until Ctrl-C (no PORT: any free one)", metavar="PORT", const=0)
    ] = None,
    open: Annotated[bool, Opt("open the page in the default web browser")] = False,
    netron: Annotated[bool, Opt("hand the model to Netron instead (needs the netron package)")] = False,
) -> ViewReport:
    """Draw the graph in a browser: one self-contained HTML page, or both versions of a model with `diff`.

    The page holds its layout library, script and graph data, and opens from disk with no network: nodes by op
    type and name, edges by type, a panel with a node's attributes, inputs, outputs and initializer summaries
    (dtype, shape, bytes; weights are never read), search by name or op type, If/Loop/Scan bodies and
    functions as nested views, and name scopes (/encoder/layer.0/...) as groups that open on click. With
    `diff`, added, removed and changed elements are coloured and the change list jumps to each. With `serve`,
    the page is served at http://127.0.0.1:PORT/ (written too only if `output` is given).
    """
    if netron:
        return _netron(ctx, open)
    other = Editor.open(diff) if diff is not None else None
    page = Path(output) if output is not None else None
    if page is None and serve is None:
        page = _default_page(ctx, other is not None)
    if page is not None and not page.parent.is_dir():
        raise SaveError(f"cannot write the page {page}: folder {page.parent} does not exist")
    title = ctx.path.name if ctx.path is not None else "model"
    if other is not None:
        report = structural_diff(ctx, other=other)
        title = f"{title} → {other.path.name if other.path is not None else 'B'}"
        data = page_data(ctx.proto, title, other.proto, report)
    else:
        data = page_data(ctx.proto, title)
    html = render_page(data).encode("utf-8")
    if page is not None:
        page.write_bytes(html)
    graphs = data["graphs"]
    result = ViewReport(
        page=str(page) if page is not None else None,
        url=None,
        nodes=sum(1 for g in graphs for n in g["nodes"] if n["k"] == "n"),
        edges=sum(len(g["edges"]) for g in graphs),
        graphs=len(graphs),
        size=len(html),
        changes=len(data["changes"]) if "changes" in data else None,
    )
    if serve is not None:

        def announce(url: str) -> None:
            result.url = url
            print(f"serving {url} (Ctrl-C stops)", file=sys.stderr, flush=True)
            if open:
                webbrowser.open(url)

        serve_until_interrupted(html, serve, announce, _wait)
    elif open and page is not None:
        webbrowser.open(page.resolve().as_uri())
    return result
