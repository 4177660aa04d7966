"""`graphsurgeon view`: the page's data, the CLI and library, and the page itself in a real headless Chromium.

Browser tests skip (with the reason) when playwright or a Chromium is missing; screenshots of what they check
go to tests/artifacts/view/ for people to look at.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

import graphsurgeon as gs
from graphsurgeon.cli import main
from graphsurgeon.errors import GraphSurgeonError
from graphsurgeon.verbs import view as view_module
from tests.browser import chromium, unavailable
from tests.conftest import CORPUS, REPO
from tests.test_promote_input import resize_model

ARTIFACTS = REPO / "tests" / "artifacts" / "view"
IF_MODEL = CORPUS / "polygraphy" / "bad_graph_conditionally_invalid.onnx"
needs_browser = pytest.mark.skipif(unavailable() is not None, reason=f"no browser test: {unavailable()}")


def corpus() -> list[Path]:
    found = []
    for path in sorted(CORPUS.rglob("*.onnx")):
        try:
            gs.load(path)
        except GraphSurgeonError:
            continue
        found.append(path)
    return found


def expected_counts(graph: onnx.GraphProto) -> tuple[int, int]:
    """Nodes drawn (ops, graph inputs that are not initializers, graph outputs) and distinct edges
    (producer, reader, tensor), worked out from the proto independently of the page builder."""
    initializers = {t.name for t in graph.initializer}
    inputs = [v.name for v in graph.input if v.name not in initializers]
    producer: dict[str, tuple[str, int | str]] = {}
    for name in inputs:
        producer.setdefault(name, ("i", name))
    for j, node in enumerate(graph.node):
        for out in node.output:
            if out:
                producer.setdefault(out, ("n", j))
    edges = set()
    for j, node in enumerate(graph.node):
        edges.update((producer[t], ("n", j), t) for t in node.input if t in producer)
    edges.update((producer[v.name], ("o", k), v.name) for k, v in enumerate(graph.output) if v.name in producer)
    return len(inputs) + len(graph.node) + len(graph.output), len(edges)


def scoped_model(layers: int = 6, per_block: int = 12) -> onnx.ModelProto:
    """A chain in name scopes /encoder/layer.N/{attn,ffn}/Op_k, as the torch exporter names nodes."""
    nodes, prev = [], "x"
    for layer in range(layers):
        for block in ("attn", "ffn"):
            for k in range(per_block):
                out = f"/encoder/layer.{layer}/{block}/t{k}"
                nodes.append(helper.make_node("Relu", [prev], [out], name=f"/encoder/layer.{layer}/{block}/Relu_{k}"))
                prev = out
    graph = helper.make_graph(
        nodes,
        "scoped",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info(prev, TensorProto.FLOAT, [1, 4])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def promoted_pair(tmp_path: Path, source: str) -> tuple[Path, Path]:
    before = tmp_path / f"resize_{source}.onnx"
    onnx.save(resize_model(source), before)
    after = tmp_path / f"resize_{source}.promoted.onnx"
    gs.load(before).promote_input(node="Resize", attr="scales").save(after)
    return before, after


# -- the data and the files, no browser ------------------------------------------------------------------------
DATA_TAG = '<script type="application/json" id="gs-data">'


def page_data(html: str) -> dict:
    start = html.index(DATA_TAG) + len(DATA_TAG)
    return json.loads(html[start : html.index("</script>", start)])


@pytest.mark.parametrize("source", ["initializer", "constant"])
def test_promote_input_diff_marks_exactly_the_change(tmp_path, source):
    before, after = promoted_pair(tmp_path, source)
    report = gs.load(before).view(diff=str(after), output=str(tmp_path / "page.html"))
    data = page_data((tmp_path / "page.html").read_text())
    main_graph = data["graphs"][0]
    marked = {(n["k"], n["n"], n["s"]) for n in main_graph["nodes"] if "s" in n}
    removed = {("n", "const", "r")} if source == "constant" else set()
    assert marked == {("n", "resize", "c"), ("i", "scales", "a"), ("o", "y", "c")} | removed
    names = [n["n"] for n in main_graph["nodes"]]
    edges = {(names[e[0]], names[e[1]], e[2], e[3]) for e in main_graph["edges"] if len(e) > 3}
    removed_edge = {("const", "resize", "baked", "r")} if source == "constant" else set()
    assert edges == {("scales", "resize", "scales", "a"), ("relu", "y", "y", "c")} | removed_edge
    resize = next(n for n in main_graph["nodes"] if n["n"] == "resize")
    assert resize["was"]["in"] == ["x", "", "baked"] and resize["dd"] == ["input 2 'baked' -> 'scales'"]
    assert report.changes == 4 and all("t" in c for c in data["changes"])
    if source == "initializer":
        assert main_graph["inits"]["baked"]["s"] == "r" and main_graph["inits"]["baked"]["v"] == "[1., 1., 3., 3.]"


def test_cli_writes_next_to_the_model_and_prints_its_path(tmp_path, capsys):
    model = tmp_path / "conv.onnx"
    model.write_bytes((CORPUS / "polygraphy" / "conv.onnx").read_bytes())
    assert main(["view", str(model)]) == 0
    page = tmp_path / "conv.view.html"
    assert page.exists() and str(page) in capsys.readouterr().out
    assert main(["view", str(model), "-o", str(tmp_path / "p.html"), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["result"]["page"] == str(tmp_path / "p.html") and doc["result"]["nodes"] == 1


def test_the_page_is_self_contained(tmp_path):
    gs.load(CORPUS / "polygraphy" / "conv.onnx").view(output=str(tmp_path / "p.html"))
    html = (tmp_path / "p.html").read_text()
    assert "<script src" not in html and "<link" not in html and "@import" not in html
    assert "default-src 'none'" in html  # and the page's policy forbids fetching anything


def test_big_external_weights_stay_out_of_the_page(tmp_path):
    """~2.7 GB of weights in external data (a sparse file): the page holds their summaries, not their bytes."""
    size, layers = 8192, 10
    nbytes = size * size * 4
    weights, nodes, prev = [], [], "x"
    for i in range(layers):
        tensor = TensorProto(name=f"w{i}", data_type=TensorProto.FLOAT, dims=[size, size])
        tensor.data_location = TensorProto.EXTERNAL
        for key, value in (("location", "model.onnx.data"), ("offset", str(i * nbytes)), ("length", str(nbytes))):
            tensor.external_data.add(key=key, value=value)
        weights.append(tensor)
        nodes.append(helper.make_node("MatMul", [prev, f"w{i}"], [f"h{i}"], name=f"/layers.{i}/MatMul"))
        prev = f"h{i}"
    graph = helper.make_graph(
        nodes,
        "big",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, size])],
        [helper.make_tensor_value_info(prev, TensorProto.FLOAT, [1, size])],
        weights,
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "model.onnx")
    with open(tmp_path / "model.onnx.data", "wb") as data:
        data.truncate(nbytes * layers)
    report = gs.load(tmp_path / "model.onnx").view()
    assert report.size < 200_000  # the page's own code is ~90 KB
    init = page_data(Path(report.page).read_text())["graphs"][0]["inits"]["w3"]
    assert init == {"t": "float[8192, 8192]", "x": "model.onnx.data", "b": nbytes}


def test_bad_input_is_one_line_and_nothing_is_written(tmp_path, capsys):
    model = CORPUS / "polygraphy" / "conv.onnx"
    assert main(["view", str(model), "--diff", str(tmp_path / "missing.onnx"), "-o", str(tmp_path / "p.html")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("graphsurgeon: error:") and "\n" not in err and not (tmp_path / "p.html").exists()
    assert main(["view", str(model), "-o", str(tmp_path / "nowhere" / "p.html")]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_netron_is_optional_and_says_so(tmp_path, capsys):
    try:
        import netron  # noqa: F401

        pytest.skip("netron is installed here")
    except ImportError:
        pass
    assert main(["view", str(CORPUS / "polygraphy" / "conv.onnx"), "--netron"]) == 1
    assert "pip install netron" in capsys.readouterr().err


def test_open_hands_the_file_to_the_web_browser(tmp_path, monkeypatch):
    opened = []
    monkeypatch.setattr(view_module.webbrowser, "open", opened.append)
    report = gs.load(CORPUS / "polygraphy" / "conv.onnx").view(output=str(tmp_path / "p.html"), open=True)
    assert opened == [Path(report.page).resolve().as_uri()]


def test_serve_until_interrupted(tmp_path):
    """`--serve` in a real process: the page over HTTP on 127.0.0.1, Ctrl-C stops it with exit 0."""
    command = [sys.executable, "-m", "graphsurgeon", "view", str(CORPUS / "polygraphy" / "conv.onnx"), "--serve"]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        line = process.stderr.readline()
        assert line.startswith("serving http://127.0.0.1:"), line
        url = line.split()[1]
        with urllib.request.urlopen(url, timeout=10) as response:
            assert b'id="gs-data"' in response.read()
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=20) == 0
        assert "served http://127.0.0.1:" in process.stdout.read()
    finally:
        if process.poll() is None:
            process.kill()


def test_writing_verbs_view_their_own_edit(tmp_path, capsys):
    model = tmp_path / "resize.onnx"
    onnx.save(resize_model("constant"), model)
    out = tmp_path / "out.onnx"
    assert main(["promote-input", str(model), "--node", "Resize", "--attr", "scales", "-o", str(out), "--view"]) == 0
    page = tmp_path / "out.view-diff.html"
    assert str(page) in capsys.readouterr().out
    data = page_data(page.read_text())
    assert {(n["n"], n["s"]) for n in data["graphs"][0]["nodes"] if "s" in n} >= {("resize", "c"), ("scales", "a")}
    assert main(["cleanup", str(out), "--in-place", "--view", str(tmp_path / "c.html"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["view"] == str(tmp_path / "c.html")
    assert page_data((tmp_path / "c.html").read_text())["mode"] == "diff"


# -- in the browser ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def browser():
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with chromium() as open_page:
        yield open_page


def opened(browser, page: Path):
    result = browser(page)
    assert not result.errors, result.errors
    assert not result.requests, f"the page tried the network: {result.requests}"
    return result


@needs_browser
def test_corpus_models_render_every_node_and_edge(browser, tmp_path):
    for path in corpus():
        page = tmp_path / (path.stem + ".html")
        gs.load(path).view(output=str(page))
        result = opened(browser, page)
        result.api("v.expandAll()")
        nodes, edges = expected_counts(onnx.load(path, load_external_data=False).graph)
        assert result.api("return v.counts()") == {"nodes": nodes, "groups": 0, "edges": edges}, path
        if path.name in ("residual_block.onnx", "loop.onnx", "multi_attention.onnx"):
            result.page.screenshot(path=str(ARTIFACTS / f"corpus_{path.stem}.png"))
        result.page.close()


@needs_browser
def test_search_and_node_panel(browser, tmp_path):
    page = tmp_path / "conv.html"
    gs.load(CORPUS / "polygraphy" / "conv.onnx").view(output=str(page))
    p = opened(browser, page).page
    p.fill("#search", "conv")
    p.press("#search", "Enter")
    p.wait_for_selector("#panel-title")
    assert p.text_content("#panel-title") == "Conv"
    assert "initializer float[" in p.text_content("#panel-inputs") and "bytes" in p.text_content("#panel-inputs")
    assert p.locator(".node.sel").get_attribute("data-name") == "conv"
    p.click("#back-overview")
    p.click(".node.k-i")  # clicking a node opens its panel too
    assert p.text_content("#side h2").startswith("graph input")
    p.screenshot(path=str(ARTIFACTS / "search_and_panel.png"))
    p.close()


@needs_browser
@pytest.mark.parametrize("source", ["initializer", "constant"])
def test_promote_input_diff_in_the_browser(browser, tmp_path, source):
    before, after = promoted_pair(tmp_path, source)
    page = tmp_path / "diff.html"
    gs.load(before).view(diff=str(after), output=str(page))
    p = opened(browser, page).page
    changed = p.eval_on_selector_all(".node.s-c", "els => els.map(e => e.dataset.name)")
    added = p.eval_on_selector_all(".node.s-a", "els => els.map(e => e.dataset.name)")
    removed = p.eval_on_selector_all(".node.s-r", "els => els.map(e => e.dataset.name)")
    assert sorted(changed) == ["resize", "y"] and added == ["scales"]
    assert removed == (["const"] if source == "constant" else [])
    assert p.eval_on_selector_all(".edge.s-a", "els => els.map(e => e.dataset.t)") == ["scales"]
    assert p.locator("#changes [data-change]").count() == 4
    p.click("#changes >> text=resize")  # the change list jumps to the node
    assert p.locator(".node.sel").get_attribute("data-name") == "resize"
    assert "baked" in p.text_content("#side") and "scales" in p.text_content("#panel-inputs")
    p.screenshot(path=str(ARTIFACTS / f"promote_input_diff_{source}.png"))
    p.close()


@needs_browser
def test_nested_if_body_opens(browser, tmp_path):
    page = tmp_path / "if.html"
    gs.load(IF_MODEL).view(output=str(page))
    p = opened(browser, page).page
    p.click(".node[data-op='If']")
    p.click("button.open >> text=then_branch")
    assert p.locator("#crumbs button").count() == 2 and "then_branch" in p.text_content("#crumbs")
    body = next(a.g for a in onnx.load(IF_MODEL).graph.node[0].attribute if a.name == "then_branch")
    result_counts = p.evaluate("window.gsView.counts()")
    assert (result_counts["nodes"], result_counts["edges"]) == expected_counts(body)
    p.screenshot(path=str(ARTIFACTS / "nested_if_body.png"))
    p.click("#crumbs button >> nth=0")  # and back out
    assert p.locator("#crumbs button").count() == 1
    p.close()


@needs_browser
def test_name_scopes_collapse_into_groups(browser, tmp_path):
    model = tmp_path / "scoped.onnx"
    onnx.save(scoped_model(layers=40), model)
    page = tmp_path / "scoped.html"
    gs.load(model).view(output=str(page))
    result = opened(browser, page)
    p = result.page
    first = result.api("return v.counts()")
    assert first["groups"] > 0 and first["nodes"] < 300
    result.api("v.centerOn('g:' + document.querySelector('.group').dataset.p)")
    name, x, y = p.evaluate(
        """() => { const box = document.getElementById('canvas').getBoundingClientRect();
        for (const g of document.querySelectorAll('.group')) { const r = g.getBoundingClientRect();
          if (r.top > box.top && r.bottom < box.bottom && r.left > box.left && r.right < box.right)
            return [g.dataset.p, r.x + r.width / 2, r.y + r.height / 2]; } }"""
    )
    p.mouse.click(x, y)  # a real click on a collapsed scope in view
    assert p.locator(f".cluster[data-p='{name}']").count() == 1  # now an open scope, its nodes inside
    assert result.api("return v.counts()")["nodes"] > first["nodes"]
    p.fill("#search", "layer.39/ffn/Relu_11")
    p.press("#search", "Enter")  # search reveals a node inside collapsed scopes
    assert p.locator(".node.sel").get_attribute("data-name") == "/encoder/layer.39/ffn/Relu_11"
    p.screenshot(path=str(ARTIFACTS / "scopes.png"))
    p.close()


@needs_browser
def test_srcnn_promote_input_before_after(browser, tmp_path):
    """The README's picture: SRCNN exported by torch, its Resize scales promoted to an input."""
    torch = pytest.importorskip("torch")
    from recipes.srcnn_model import make_srcnn
    from recipes.srcnn_promote_input import export

    before = export(make_srcnn(), tmp_path / "srcnn.onnx", dynamo=False)
    after = tmp_path / "srcnn.promote-input.onnx"
    assert main(["promote-input", str(before), "--node", "Resize", "--attr", "scales", "-o", str(after), "-q"]) == 0
    page = tmp_path / "srcnn.html"
    gs.load(before).view(diff=str(after), output=str(page))
    p = opened(browser, page).page
    assert p.eval_on_selector_all(".node.s-c.k-n", "els => els.map(e => e.dataset.op)") == ["Resize"]
    assert p.eval_on_selector_all(".node.s-a", "els => els.map(e => e.dataset.name)") == ["scales"]
    p.screenshot(path=str(ARTIFACTS / "srcnn_promote_input.png"))
    p.close()
    del torch


def test_artifacts_folder_is_ignored():
    assert "tests/artifacts/" in (REPO / ".gitignore").read_text().split()


if os.environ.get("CI") and unavailable():  # CI installs the browser: never skip there silently
    raise RuntimeError(f"CI must run the browser tests: {unavailable()}")
