"""The README's "define an op once" example runs as written and prints what it says."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "custom_ops" / "README.md"


def test_readme_example_runs(tmp_path):
    example = re.search(r"## Define an op once\n\n```python\n(.*?)```", README.read_text(), re.S).group(1)
    expected = re.findall(r"^# (\[.*)$", example, re.M)
    assert expected, "the example states its output in a comment"
    script = tmp_path / "example.py"
    script.write_text(example)  # onnxscript reads the body's source, so the example must be a real file
    repo = str(README.parents[1])
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": repo},
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == expected[-1]
    assert (tmp_path / "model.onnx").exists()
