"""The README's set-up commands are the ones CI and users run."""

from __future__ import annotations

from tests.conftest import REPO


def test_ci_runs_the_readme_test_command():
    ci_command = (REPO / ".ci" / "run").read_text().strip().splitlines()[-1]
    readme = (REPO / "README.md").read_text()
    assert ci_command in readme.splitlines(), ci_command
    assert "python -m pytest" in ci_command


def test_readme_main_job_is_the_srcnn_recipe():
    assert (
        'pip install torch==2.13.0 -e ".[all]" && python -m recipes.srcnn_promote_input'
        in (REPO / "README.md").read_text()
    )
