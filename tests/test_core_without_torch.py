"""The graphsurgeon core imports and runs with torch (and onnxscript) made unimportable."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import onnx

from tests.test_promote_input import resize_model

SCRIPT = """
import sys
sys.modules["torch"] = None        # `import torch` now raises ImportError
sys.modules["onnxscript"] = None
from graphsurgeon.cli import main
model = sys.argv[1]
for verb in (["inspect"], ["check"], ["cleanup", "-o", "c.onnx"], ["toposort", "-o", "t.onnx"],
             ["promote-input", "--node", "Resize", "--attr", "scales", "-o", "p.onnx"]):
    assert main([verb[0], model, *verb[1:]]) == 0, verb
assert not {"torch", "onnxscript"} & {m.split(".")[0] for m, v in sys.modules.items() if v is not None}
print("ok")
"""


def test_every_verb_runs_without_torch(tmp_path: Path):
    onnx.save(resize_model(), tmp_path / "m.onnx")
    done = subprocess.run([sys.executable, "-c", SCRIPT, "m.onnx"], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("ok")
