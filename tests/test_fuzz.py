"""The structured fuzzer (tests/fuzz) on a small fixed-seed budget: every verb of the registry over mutated
corpus, onnx-wheel and conformance models against hostile save targets; zero bad outcomes allowed.
bench/fuzz_run.py runs the long version."""

from __future__ import annotations

import time

from tests.fuzz.engine import BAD, fuzz, seed_models


def test_fuzz_fixed_seed_has_no_bad_outcome():
    started = time.perf_counter()
    stats = fuzz(seed=20261123, cases=200, verbs_per_case=6, timeout=30, seeds=seed_models(conformance=True))
    findings = "\n".join(
        f"{f.verdict}: {' '.join(f.argv[:1] + f.argv[2:])} on {f.seed} {f.labels}: {f.detail}" for f in stats.findings
    )
    assert stats.bad == 0, findings
    assert stats.runs >= 800, stats.runs
    assert not set(stats.outcomes) & BAD
    assert {"ok", "refused"} <= set(stats.outcomes)
    assert time.perf_counter() - started < 120
