"""The `graphsurgeon` command: one subcommand per declared verb, made from the declarations.

Exit codes: 0 success; 1 a user error (bad file, bad selector, impossible edit), a failed --verify, an
INVALID check, or models that differ (diff, compare); 2 a usage error; 3 an internal error (a bug);
130 interrupted. A closed pipe (``graphsurgeon inspect m.onnx | head -1``) ends quietly with 0.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

import shtab

import graphsurgeon
from graphsurgeon.cli._options import (
    GROUPS,
    LoadOptions,
    SaveOptions,
    ViewOptions,
    add_output_flags,
    add_verb_option,
    options_from,
)
from graphsurgeon.cli.apply import add_apply_command
from graphsurgeon.cli.render import Output
from graphsurgeon.core.batch_check import compare_edit
from graphsurgeon.core.numeric import Runnable, load_feeds
from graphsurgeon.core.verb import Verb
from graphsurgeon.errors import GraphSurgeonError
from graphsurgeon.model import Model
from graphsurgeon.summary import Summary
from graphsurgeon.verbs import registry

EXIT_OK, EXIT_USER, EXIT_USAGE, EXIT_INTERNAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


class _Parser(argparse.ArgumentParser):
    """Usage errors: the verb's usage line and one error line, exit 2."""

    def error(self, message: str) -> Any:
        usage = " ".join(self.format_usage().split())
        self.exit(EXIT_USAGE, f"{usage}\n{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="graphsurgeon", description="Lossless ONNX graph surgery.")
    parser.add_argument("--version", action="version", version=f"graphsurgeon {graphsurgeon.__version__}")
    shtab.add_argument_to(parser, ["--print-completion"], help="print a bash or zsh completion script")
    add_output_flags(parser, top=True)
    subcommands = parser.add_subparsers(dest="verb", required=True, metavar="VERB", parser_class=_Parser)
    for verb in registry().values():
        sub = subcommands.add_parser(verb.name, help=verb.summary, description=verb.doc)
        LoadOptions.add(sub)
        for option in verb.options:
            add_verb_option(sub, option)
        for group in verb.groups:
            if group != "load":
                GROUPS[group].add(sub)
        add_output_flags(sub, top=False)
    add_apply_command(subcommands)
    return parser


def _rescue_model(parser: argparse.ArgumentParser, args: argparse.Namespace, verb: Verb) -> None:
    """MODEL swallowed by an option taking several values (``--input-shape x:1,3 m.onnx``): take it back."""
    if args.model is not None:
        return
    candidates = [
        o.name
        for o in verb.options
        if o.kind in ("list", "mapping")
        and getattr(args, o.name)
        and (str(getattr(args, o.name)[-1]).endswith(".onnx") or Path(str(getattr(args, o.name)[-1])).is_file())
    ]
    if len(candidates) == 1:
        args.model = getattr(args, candidates[0]).pop()
        return
    _subparser(parser, verb.name).error(
        "MODEL is missing (an option taking several values takes everything after it: put MODEL before such "
        "options, or end their values with --)"
    )


def _subparser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices[name]


def _verify(model: Model, args: argparse.Namespace, original: Runnable, target: Path) -> Any:
    result = Runnable(target, model.external_data_dir, "the result")
    return compare_edit(  # a shape edit that freed the batch is checked per batch slice
        original,
        result,
        model.shape_edit,
        feeds=load_feeds(args.feeds) if args.feeds else None,
        runs=args.verify_runs,
        rtol=args.rtol,
        atol=args.atol,
        result_defaults=model.interface_defaults,
        renamed=model.interface_renames,
    )


def _run_writing(verb: Verb, model: Model, args: argparse.Namespace, out: Output, started: float) -> int:
    summary = Summary.start(verb.name, model)
    original = None
    if args.verify:  # a broken graph can crash onnxruntime rather than be refused by it: refuse it first
        model.index.check_references()
    if args.verify:  # the original as it is on disk now (in place, the graph file is about to be replaced)
        source = model.path.read_bytes() if args.in_place and model.path is not None else model.path
        original = Runnable(
            source if source is not None else model.proto.SerializeToString(), model.external_data_dir, "the original"
        )
    before = ViewOptions.original(model, args)
    planned = model.path if args.in_place else Path(args.output or SaveOptions.default_output(args.model, verb.name))
    if planned is not None and planned.parent.is_dir():  # a rewrite's new data files wait beside the output
        model.scratch_dir = planned.parent
        model.replaced_target = None if args.in_place else planned
    model.run_verb(verb.name, **options_from(args, verb))
    with model.progress.task("writing the model"):
        target = SaveOptions.save(model, args, verb.name)
    page = ViewOptions.write(before, model, args, target) if before is not None else None
    summary.finish(model, target, time.perf_counter() - started)
    report = _verify(model, args, original, target) if original is not None else None
    failed = report is not None and report.status == "different"
    out.changes(list(model.changes))
    out.summary(summary)
    if report is not None:
        out.verify(report)
    if out.as_json:
        out.document(
            {
                "verb": verb.name,
                "input": args.model,
                "output": str(target),
                "changes": [c.to_dict() for c in model.changes],
                "summary": summary.to_dict(),
                "verify": report.to_dict() if report is not None else None,
                "exit_code": EXIT_USER if failed else EXIT_OK,
            }
            | ({"view": str(page)} if page is not None else {})
        )
    elif failed:
        out.error(f"error: verify failed: the result differs from the original; kept as {target} (failing)")
    else:
        out.line(f"wrote {target}" + (f" and the before/after page {page}" if page is not None else ""))
    return EXIT_USER if failed else EXIT_OK


def _run_report(verb: Verb, model: Model, args: argparse.Namespace, out: Output) -> int:
    result = model.run_verb(verb.name, **options_from(args, verb))
    code = int(getattr(result, "exit_code", EXIT_OK))
    if out.as_json:
        out.document({"verb": verb.name, "input": args.model, "result": result.to_dict(), "exit_code": code})
    elif not out.quiet or code:
        print(result)
    return code


def run(args: argparse.Namespace) -> int:
    if args.verb not in registry():  # a command that is not a per-model verb (apply)
        return int(args.command(args))
    verb = registry()[args.verb]
    out = Output(quiet=args.quiet, verbose=args.verbose, as_json=args.json)
    started = time.perf_counter()
    model = LoadOptions.load(args)
    model.progress = out.progress()
    if verb.writes:
        return _run_writing(verb, model, args, out, started)
    return _run_report(verb, model, args, out)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args, unknown = parser.parse_known_args(argv)
        if unknown:  # reported by the verb's parser: its usage line, not the top-level one
            known = _subparser(parser, args.verb) if args.verb in registry() else parser
            known.error(f"unrecognized arguments: {' '.join(unknown)}")
        if args.model is None and args.verb in registry():
            _rescue_model(parser, args, registry()[args.verb])
    except SystemExit as e:  # --help, --version, usage errors
        return int(e.code or 0) if isinstance(e.code, int) or e.code is None else EXIT_USAGE
    try:
        return run(args)
    except GraphSurgeonError as e:
        if args.debug:
            raise
        print(f"graphsurgeon: error: {_as_flags(' '.join(str(e).split()))}", file=sys.stderr)
        return EXIT_USER
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_OK
    except Exception as e:  # a bug in graphsurgeon, not a user error: still one line unless --debug
        if args.debug:
            raise
        print(
            f"graphsurgeon: internal error: {type(e).__name__}: {e} (rerun with --debug for details)", file=sys.stderr
        )
        return EXIT_INTERNAL


def _as_flags(message: str) -> str:
    """Library messages name options as `name` or `name=True`; on the command line they are flags."""
    return re.sub(r"`(\w+)(?:=True)?`", lambda m: "--" + m.group(1).replace("_", "-"), message)


def _silence_stdout() -> None:
    """After the reader went away, Python's final flush of stdout must not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def entry() -> None:
    """The console script: exit with main's code."""
    code = main()
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _silence_stdout()
    sys.exit(code)
