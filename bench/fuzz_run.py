"""The long fuzz run (issue 12): mutated corpus, onnx-wheel and conformance models through every verb of the
registry against hostile save targets, for a wall-clock budget. Prints the counts the README quotes.

    python bench/fuzz_run.py --minutes 10 --seed 1
    python bench/fuzz_run.py --minutes 15 --seed 12000 --keep /tmp/bad --json counts.json

Chunks of --chunk cases run with seeds --seed, --seed+1, ... until the time is up, so a run is reproducible
up to where it stopped. --keep writes each bad case (the mutated model, its side files, the command and the
verdict) to DIR/bad-N/ to replay without the run.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fuzz.engine import BAD, Finding, Stats, fuzz, seed_models  # noqa: E402
from tests.fuzz.mutate import Case  # noqa: E402


def keeper(folder: Path | None):
    """An on_finding hook writing each bad case (model bytes, side files that are bytes, the command) to
    folder/bad-N/, so it can be replayed without the run; None: keep nothing."""
    count = 0

    def keep(finding: Finding, case: Case) -> None:
        nonlocal count
        if folder is None:
            return
        count += 1
        where = folder / f"bad-{count}"
        where.mkdir(parents=True, exist_ok=True)
        (where / "model.onnx").write_bytes(case.serialized())
        for name, spec in case.files.items():
            if isinstance(spec, bytes):
                (where / name).parent.mkdir(parents=True, exist_ok=True)
                (where / name).write_bytes(spec)
        record = {"verdict": finding.verdict, "seed": finding.seed, "labels": finding.labels, "argv": finding.argv}
        record["detail"], record["files"] = finding.detail, {k: str(v)[:80] for k, v in case.files.items()}
        (where / "finding.json").write_text(json.dumps(record, indent=2) + "\n")

    return keep


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--chunk", type=int, default=100, help="cases per fuzz call (a fresh seed each)")
    parser.add_argument("--json", metavar="FILE", help="also write the counts as JSON")
    parser.add_argument("--skip-verb", action="append", default=[], help="leave this verb out (repeatable)")
    parser.add_argument("--keep", metavar="DIR", type=Path, help="write each bad case to DIR/bad-N/ for replay")
    args = parser.parse_args()
    seeds = seed_models(conformance=True)
    total = Stats()
    deadline = time.monotonic() + args.minutes * 60
    chunk_seed = args.seed
    started = time.perf_counter()
    keep = keeper(args.keep)
    while time.monotonic() < deadline:
        stats = fuzz(
            chunk_seed, args.chunk, seeds=seeds, timeout=60, skip_verbs=frozenset(args.skip_verb), on_finding=keep
        )
        chunk_seed += 1
        total.runs += stats.runs
        total.models += stats.models
        total.outcomes.update(stats.outcomes)
        total.skipped.update(stats.skipped)
        total.verbs.update(stats.verbs)
        total.findings += stats.findings
        for f in stats.findings:
            print(
                f"BAD {f.verdict}: {' '.join(f.argv[:1] + f.argv[2:])} on {f.seed} {f.labels}: {f.detail}", flush=True
            )
        print(f"{total.runs} runs, {total.models} models, {total.bad} bad", flush=True)
    seconds = time.perf_counter() - started
    summary = {
        "runs": total.runs,
        "mutated_models": total.models,
        "seed_models": len(seeds),
        "verbs": len(total.verbs),
        "runs_per_verb": dict(sorted(total.verbs.items())),
        "skipped_verbs": sorted(args.skip_verb),
        "bad": total.bad,
        "outcomes": dict(total.outcomes.most_common()),
        "skipped": sum(total.skipped.values()),
        "skip_reasons": dict(total.skipped.most_common()),
        "seconds": round(seconds),
    }
    print(json.dumps(summary, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2) + "\n")
    return 1 if total.bad else 0


if __name__ == "__main__":
    assert BAD
    sys.exit(main())
