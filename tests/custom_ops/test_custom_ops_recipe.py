"""The export-time SRCNN recipe runs end to end and reports a pass."""

from __future__ import annotations

from recipes import srcnn_export_time


def test_recipe_exports_four_models_and_passes(tmp_path, capsys):
    assert srcnn_export_time.main(["--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "PASS" in printed and "torchscript / function" in printed
    assert sorted(p.name for p in tmp_path.glob("*.onnx")) == [
        "srcnn_dynamo_function.onnx",
        "srcnn_dynamo_standard.onnx",
        "srcnn_torchscript_function.onnx",
        "srcnn_torchscript_standard.onnx",
    ]
    assert not list(tmp_path.glob("*.data"))  # weights inline, no external data
