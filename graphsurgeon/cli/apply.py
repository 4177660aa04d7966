"""`graphsurgeon apply RECIPE MODEL [MODEL ...]`: run a recipe on one model, or many in parallel processes.

The recipe is checked completely (verbs, options, types, variables) before any model is read. Each model is
loaded, patched in memory by every step and saved once, atomically: a failing step or a failed verify writes
nothing for that model, and the other models go on. The exit code is 0 only when every model passed.
"""

from __future__ import annotations

import argparse
import glob
import re
import sys
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import shtab

from graphsurgeon.cli._options import VerifyOptions, add_output_flags
from graphsurgeon.cli.render import Output
from graphsurgeon.core.changes import render
from graphsurgeon.core.numeric import load_feeds
from graphsurgeon.errors import GraphSurgeonError
from graphsurgeon.model import load
from graphsurgeon.recipe import Recipe, StepError, recipe_spelling
from graphsurgeon.summary import Summary

EXIT_OK, EXIT_USER = 0, 1
_GLOB = re.compile(r"[*?\[]")


def add_apply_command(subcommands: Any) -> None:
    """The `apply` subcommand (not a per-model verb: it takes a recipe and any number of models)."""
    sub = subcommands.add_parser(
        "apply",
        help="run a recipe (a YAML/JSON list of verb steps) on one model or many",
        description=__doc__,
    )
    sub.add_argument("recipe", metavar="RECIPE", help="the recipe file (YAML or JSON)").complete = shtab.FILE
    sub.add_argument("models", metavar="MODEL", nargs="*", help="models or globs").complete = shtab.FILE
    saving = sub.add_argument_group("saving (default: MODEL.RECIPE-NAME.onnx next to each model)")
    where = saving.add_mutually_exclusive_group()
    where.add_argument("-o", "--output", metavar="OUT", help="write the result to OUT (one model only)")
    where.add_argument("--output-dir", metavar="DIR", help="write each result into DIR under its model's file name")
    where.add_argument("--in-place", action="store_true", help="overwrite each MODEL (only the graph file)")
    sub.add_argument("--dry-run", action="store_true", help="print the plan (one model: what each step would change)")
    sub.add_argument(
        "--set", metavar="K=V", nargs="+", action="extend", default=[], help="set a recipe variable (repeatable)"
    )
    sub.add_argument("-j", "--jobs", type=int, default=1, metavar="N", help="models processed in parallel (default 1)")
    sub.add_argument("--json", action="store_true", help="print one machine-readable JSON document")
    VerifyOptions.add(sub)
    add_output_flags(sub, top=False)
    sub.set_defaults(command=run_apply, model=None)


@dataclass(frozen=True)
class Job:
    """One model to patch: everything a worker process needs (picklable)."""

    recipe: Recipe
    model: str
    output: str | None  # None: in place
    verify: bool
    runs: int
    rtol: float
    atol: float
    feeds: str | None
    dry_run: bool = False


@dataclass
class Outcome:
    """What happened to one model (status: ok, failed, verify failed, or dry run)."""

    model: str
    status: str
    output: str | None = None
    error: str | None = None
    nodes_before: int | None = None
    nodes_after: int | None = None
    verify: str | None = None  # equal, different, error; None when not verified
    seconds: float = 0.0
    changes: list[dict[str, str]] = field(default_factory=list)
    steps: list[dict[str, Any]] = field(default_factory=list)
    summary: Summary | None = None
    verify_report: dict[str, Any] | None = None
    traceback: str | None = None  # an internal error's (shown with --debug)

    @property
    def ok(self) -> bool:
        return self.status in ("ok", "dry run")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self) | {"summary": self.summary.to_dict() if self.summary is not None else None}
        return data


def process_model(job: Job) -> Outcome:
    """Load, run every step in memory, verify, save once. Never raises: a failure is the outcome's status."""
    started = time.perf_counter()
    outcome = Outcome(job.model, "failed")
    try:
        model = load(job.model)
        summary = Summary.start("apply", model)
        outcome.nodes_before = summary.before.node_count
        feeds = load_feeds(job.feeds) if job.feeds else None
        run = job.recipe.run(model, verify=job.verify or None, runs=job.runs, rtol=job.rtol, atol=job.atol, feeds=feeds)
        outcome.nodes_after = run.after.node_count
        outcome.changes = [c.to_dict() for c in model.changes]
        outcome.steps = [s.to_dict() for s in run.steps]
        if run.verify is not None:
            outcome.verify = run.verify.status
            outcome.verify_report = run.verify.to_dict()
        if job.dry_run:
            outcome.status = "dry run"
        elif run.verify is not None and not run.verify.ok:
            outcome.status, outcome.error = "verify failed", "the result differs from the original; nothing written"
        else:
            target = model.save(in_place=True) if job.output is None else model.save(job.output)
            outcome.output, outcome.status = str(target), "ok"
        summary.finish(model, Path(outcome.output) if outcome.output else None, time.perf_counter() - started)
        outcome.summary = summary
    except StepError as e:
        outcome.error = recipe_spelling(str(e))
        if e.report is not None:
            outcome.status, outcome.verify = "verify failed", e.report.status
    except GraphSurgeonError as e:
        outcome.error = recipe_spelling(str(e))
    except Exception as e:  # a bug on one model must not stop the others
        outcome.error = f"internal error: {type(e).__name__}: {e}"
        outcome.traceback = traceback.format_exc()
    outcome.seconds = time.perf_counter() - started
    return outcome


def expand_models(patterns: list[str]) -> list[Path]:
    """Paths and globs -> model files, in the order given, each once. Raises for a missing file or empty glob."""
    found: dict[Path, None] = {}
    for pattern in patterns:
        if _GLOB.search(pattern):
            matches = sorted(glob.glob(pattern, recursive=True))
            if not matches:
                raise GraphSurgeonError(f"no model matches {pattern!r}")
            found.update(dict.fromkeys(Path(m) for m in matches))
        elif not Path(pattern).is_file():
            raise GraphSurgeonError(f"no such model file: {pattern}")
        else:
            found[Path(pattern)] = None
    if not found:
        raise GraphSurgeonError("give at least one MODEL (a path or a glob)")
    return list(found)


def output_paths(models: list[Path], args: argparse.Namespace, recipe_name: str) -> list[str | None]:
    """Where each result goes (None: in place); refuses collisions and overwriting an input."""
    if args.in_place:
        return [None] * len(models)
    if args.output is not None:
        if len(models) > 1:
            raise GraphSurgeonError(f"`output` names one file but {len(models)} models were given; use `output_dir`")
        targets = [Path(args.output)]
    elif args.output_dir is not None:
        folder = Path(args.output_dir)
        if folder.exists() and not folder.is_dir():
            raise GraphSurgeonError(f"`output_dir` {folder} exists and is not a folder")
        targets = [folder / m.name for m in models]
    else:
        targets = [m.with_name(f"{m.name.removesuffix('.onnx')}.{recipe_name}.onnx") for m in models]
    inputs = {m.resolve() for m in models}
    seen: dict[Path, Path] = {}
    for model, target in zip(models, targets, strict=True):
        resolved = target.resolve()
        if resolved in inputs:
            raise GraphSurgeonError(f"{target} is an input model; pass `in_place` to overwrite the inputs")
        if resolved in seen:
            raise GraphSurgeonError(f"{seen[resolved]} and {model} would both be written to {target}")
        seen[resolved] = model
    return [str(t) for t in targets]


def parse_set(values: list[str]) -> dict[str, str]:
    pairs = {}
    for text in values:
        key, sep, value = text.partition("=")
        if not sep or not key.strip():
            raise GraphSurgeonError(f"`set` takes NAME=VALUE, not {text!r}")
        pairs[key.strip()] = value
    return pairs


def _rescue_models(args: argparse.Namespace) -> None:
    """`--set k=v model.onnx`: the model went into --set (it takes several values); take it back."""
    while args.set and "=" not in args.set[-1]:
        args.models.insert(0, args.set.pop())


def run_apply(args: argparse.Namespace) -> int:
    out = Output(quiet=args.quiet, verbose=args.verbose, as_json=args.json)
    _rescue_models(args)
    started = time.perf_counter()
    recipe = Recipe.load(args.recipe).resolve(parse_set(args.set))  # every check, before any model is read
    if args.jobs < 1:
        raise GraphSurgeonError(f"`jobs` must be at least 1, not {args.jobs}")
    models = expand_models(args.models)
    name = Path(args.recipe).name.removesuffix(".yaml").removesuffix(".yml").removesuffix(".json")
    targets = output_paths(models, args, name)
    if args.output_dir is not None and not args.dry_run:
        Path(args.output_dir).mkdir(parents=True, exist_ok=True)
    jobs = [
        Job(recipe, str(m), t, args.verify, args.verify_runs, args.rtol, args.atol, args.feeds, args.dry_run)
        for m, t in zip(models, targets, strict=True)
    ]
    if args.dry_run and len(jobs) > 1:
        return _print_plan(out, recipe, jobs)
    if len(jobs) == 1:
        return _single(out, recipe, process_model(jobs[0]), args)
    outcomes = _run_many(out, jobs, args.jobs)
    return _report_many(out, recipe, outcomes, time.perf_counter() - started, args.jobs)


def _print_plan(out: Output, recipe: Recipe, jobs: list[Job]) -> int:
    if out.as_json:
        out.document({"recipe": recipe.to_dict(), "models": [j.model for j in jobs], "dry_run": True, "exit_code": 0})
        return EXIT_OK
    for line in recipe.plan():
        print(line)
    print(f"on {len(jobs)} model(s):")
    for job in jobs:
        print(f"  {job.model} -> {job.output or job.model + ' (in place)'}")
    return EXIT_OK


def _single(out: Output, recipe: Recipe, outcome: Outcome, args: argparse.Namespace) -> int:
    code = EXIT_OK if outcome.ok else EXIT_USER
    if out.as_json:
        out.document({"recipe": recipe.to_dict(), "models": [outcome.to_dict()], "exit_code": code})
        return code
    if outcome.status == "failed":
        out.error(f"error: {outcome.model}: {outcome.error}; nothing written")
        return code
    if args.dry_run:
        for line in recipe.plan():
            out.line(line)
    from graphsurgeon.core.changes import Change

    changes = [Change(**c) for c in outcome.changes]
    if not out.quiet:
        for line in render(changes, limit=10**9 if out.verbose else 10):
            print(line)
    if outcome.summary is not None:
        out.summary(outcome.summary)
    if outcome.verify_report is not None and not out.quiet:
        print(f"verify: {outcome.verify} over {outcome.verify_report['runs']} run(s)")
    if outcome.status == "verify failed":
        out.error(f"error: verify failed: {outcome.model}: the result differs from the original; nothing written")
    elif args.dry_run:
        out.line("dry run: nothing written")
    else:
        out.line(f"wrote {outcome.output}")
    return code


def _run_many(out: Output, jobs: list[Job], workers: int) -> list[Outcome]:
    """Every job, in `workers` processes (or this one); the progress bar advances as models finish."""
    done: dict[int, Outcome] = {}
    title = f"applying the recipe to {len(jobs)} models"
    if workers == 1:
        with out.progress().task(title, total=len(jobs)) as bar:
            for number, job in enumerate(jobs):
                done[number] = process_model(job)
                bar.advance()
        return [done[n] for n in range(len(jobs))]
    from concurrent.futures import ProcessPoolExecutor, as_completed  # only `apply` over several models

    with ProcessPoolExecutor(max_workers=min(workers, len(jobs))) as pool:
        # every job is submitted (so every worker started) before the bar's drawing thread exists
        futures = {pool.submit(process_model, job): number for number, job in enumerate(jobs)}
        with out.progress().task(title, total=len(jobs)) as bar:
            for future in as_completed(futures):
                done[futures[future]] = future.result()
                bar.advance()
    return [done[n] for n in range(len(jobs))]


def _report_many(out: Output, recipe: Recipe, outcomes: list[Outcome], seconds: float, workers: int) -> int:
    failed = [o for o in outcomes if not o.ok]
    code = EXIT_USER if failed else EXIT_OK
    if out.as_json:
        out.document(
            {
                "recipe": recipe.to_dict(),
                "models": [o.to_dict() for o in outcomes],
                "passed": len(outcomes) - len(failed),
                "failed": len(failed),
                "seconds": round(seconds, 3),
                "jobs": workers,
                "exit_code": code,
            }
        )
        return code
    rows: list[tuple[str, ...]] = [
        (o.model, o.status, _nodes(o), o.verify or "-", (o.output if o.ok else o.error) or "") for o in outcomes
    ]
    if not out.quiet or failed:
        _table(out, rows, quiet=out.quiet)
    verdict = f"{len(outcomes) - len(failed)} of {len(outcomes)} model(s) passed"
    timing = f"in {seconds:.2f} s with {workers} process(es)"
    if failed:
        out.error(f"error: {len(failed)} model(s) failed ({verdict}); nothing written for them")
    elif not out.quiet:
        print(f"{verdict} {timing}")
    return code


def _nodes(outcome: Outcome) -> str:
    if outcome.nodes_before is None:
        return "-"
    after = "-" if outcome.nodes_after is None else str(outcome.nodes_after)
    return f"{outcome.nodes_before} -> {after}"


def _table(out: Output, rows: list[tuple[str, ...]], *, quiet: bool) -> None:
    header = ("model", "status", "nodes", "verify", "output / error")
    shown = [r for r in rows if not quiet or r[1] not in ("ok", "dry run")]
    if out.fancy:
        from rich.table import Table

        table = Table(title="apply", title_justify="left")
        for column in header:
            table.add_column(column, justify="right" if column == "nodes" else "left", overflow="fold")
        for row in shown:
            style = None if row[1] in ("ok", "dry run") else "bold red"
            table.add_row(*row, style=style)
        out.stdout.print(table)
        return
    widths = [max(len(r[i]) for r in [header, *shown]) for i in range(4)]
    for row in [header, *shown]:
        print("  ".join(c.ljust(w) for c, w in zip(row[:4], widths, strict=True)) + "  " + row[4])


if __name__ == "__main__":  # pragma: no cover
    from graphsurgeon.cli import main

    sys.exit(main(["apply", *sys.argv[1:]]))
