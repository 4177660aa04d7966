"""cleanup and toposort preserve meaning on real models, measured with onnxruntime.

- onnx's node conformance suite: every case onnxruntime passes as-is still passes after the rewrite.
- the shared corpus and the onnx wheel's model files: outputs on random inputs match the original.
"""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest

import graphsurgeon as gs
from tests.conftest import corpus_models, external_data_dir, model_id, outputs_match, random_feeds
from tests.fold_conformance import transform_keeps_passing


def test_conformance_cases_keep_passing_after_cleanup_and_toposort(conformance_cases):
    def transform(data: bytes) -> bytes:
        return gs.load(data).cleanup().toposort().proto.SerializeToString()

    passing, failures = transform_keeps_passing(conformance_cases, transform)
    assert not failures, f"{len(failures)} cases regressed: {failures[:10]}"
    assert passing >= 1400, f"harness problem: only {passing} cases pass as-is"


RUNNABLE = []
for _path in corpus_models():
    if "bad_graph" in _path.name or "weightless" in _path.name:
        continue  # deliberately broken, or no weights to run with
    RUNNABLE.append(_path)


@pytest.mark.parametrize("path", RUNNABLE, ids=model_id)
def test_corpus_outputs_match_after_cleanup_and_toposort(path: Path):
    model = gs.load(path, external_data_dir=external_data_dir(path))
    original = onnx.load(str(path), load_external_data=False)
    feeds = random_feeds(original)
    if feeds is None:
        pytest.skip("inputs without a static tensor type")
    try:
        want = _run_with_data(original, feeds, model.external_data_dir)
    except Exception as e:
        pytest.skip(f"onnxruntime cannot run the original: {str(e)[:80]}")
    try:
        model.cleanup().toposort()
    except gs.GraphStructureError as e:
        pytest.fail(f"a model onnxruntime runs was refused: {e}")
    got = _run_with_data(model.proto, feeds, model.external_data_dir)
    assert outputs_match(got, want, rtol=1e-4, atol=1e-5)


def _run_with_data(model: onnx.ModelProto, feeds: dict, data_dir: Path | None) -> list:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    if data_dir is not None:
        options.add_session_config_entry("session.model_external_initializers_file_folder_path", str(data_dir))
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session.run(None, feeds)
