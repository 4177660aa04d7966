"""Option groups shared by every verb (load, save, verify, json, output), and a verb's own options as flags.

A verb subscribes to groups by its declaration (``Verb.groups``); each group is written once here.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any, Protocol

import shtab

from graphsurgeon.core.numeric import ATOL, RTOL, RUNS
from graphsurgeon.core.units import parse_size
from graphsurgeon.core.verb import Option, Verb
from graphsurgeon.errors import GraphSurgeonError, SaveError
from graphsurgeon.model import Model, load


def _size(text: str) -> int:
    try:
        return parse_size(text, what="size")
    except GraphSurgeonError as e:
        raise argparse.ArgumentTypeError(str(e).removeprefix("size: ")) from None


def add_output_flags(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """-q / -v / --debug, accepted before or after the verb (a subcommand's own copy does not reset them)."""
    default = (lambda value: value) if top else (lambda value: argparse.SUPPRESS)
    group = parser.add_argument_group("output")
    group.add_argument("-q", "--quiet", action="store_true", default=default(False), help="print only errors")
    group.add_argument("-v", "--verbose", action="store_true", default=default(False), help="list every change")
    group.add_argument("--debug", action="store_true", default=default(False), help="show tracebacks")


def add_verb_option(parser: argparse.ArgumentParser | Any, option: Option) -> None:
    """One declared option as a flag (or a positional), typed and with its help, from the declaration."""
    help_text = option.opt.help
    if option.opt.positional and option.kind == "list":  # the rest of the positionals (add-outputs MODEL T ...)
        parser.add_argument(option.name, metavar=option.opt.metavar or option.name.upper(), nargs="*", help=help_text)
        return
    if option.opt.positional:
        action = parser.add_argument(option.name, metavar=option.opt.metavar or option.name.upper(), help=help_text)
        action.complete = shtab.FILE  # type: ignore[union-attr]
        return
    kwargs: dict[str, Any] = {"dest": option.name, "help": help_text}
    kind = option.kind
    if kind == "flag":  # a flag on by default gets its --no- form (--keep-io / --no-keep-io)
        kwargs["action"] = argparse.BooleanOptionalAction if option.default is True else "store_true"
    else:
        kwargs["metavar"] = option.opt.metavar or option.name.upper()
        kwargs["type"] = _size if option.opt.size else option.scalar_type
        if option.opt.const is not None:
            kwargs.update(nargs="?", const=option.opt.const)
        if option.opt.choices:
            kwargs["choices"] = option.opt.choices
        if kind in ("list", "mapping"):
            kwargs["nargs"] = "+"
            kwargs["action"] = "extend"
            kwargs["type"] = str
        if option.required:
            kwargs["required"] = True
        elif option.default not in (None, [], {}, ()) and not isinstance(option.default, bool):
            kwargs["help"] = f"{help_text} (default: {option.default})"
    kwargs.setdefault("default", None)
    parser.add_argument(*filter(None, (option.opt.short, option.flag)), **kwargs)


def options_from(args: argparse.Namespace, verb: Verb) -> dict[str, Any]:
    """The verb's keyword options from parsed args (absent ones left to the declaration's defaults)."""
    return {o.name: getattr(args, o.name) for o in verb.options if getattr(args, o.name, None) is not None}


class LoadOptions:
    """MODEL and where its external data lives."""

    @staticmethod
    def add(parser: argparse.ArgumentParser) -> None:
        action = parser.add_argument("model", metavar="MODEL", nargs="?", help="the ONNX model file")
        action.complete = shtab.FILE  # type: ignore[attr-defined]
        group = parser.add_argument_group("loading")
        group.add_argument(
            "--external-data-dir",
            metavar="DIR",
            help="folder holding the model's external data (default: the model's folder)",
        )

    @staticmethod
    def load(args: argparse.Namespace) -> Model:
        return load(args.model, external_data_dir=args.external_data_dir)


class JsonOptions:
    @staticmethod
    def add(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--json", action="store_true", help="print one machine-readable JSON document")


class SaveOptions:
    """Where and how a rewritten model is written."""

    @staticmethod
    def add(parser: argparse.ArgumentParser) -> None:
        group = parser.add_argument_group("saving (default: a new file next to MODEL, whose path is printed)")
        where = group.add_mutually_exclusive_group()
        where.add_argument("-o", "--output", metavar="OUT", help="write the result to OUT")
        where.add_argument("--in-place", action="store_true", help="overwrite MODEL (only the graph file)")
        group.add_argument(
            "--external-data",
            metavar="FILE",
            help="move inline initializers into the data file FILE next to the output "
            "(models over 2 GB get OUT.data automatically)",
        )
        group.add_argument(
            "--external-data-threshold",
            metavar="SIZE",
            type=_size,
            default=1024,
            help="smallest initializer moved by --external-data (default: 1KiB; units accepted)",
        )

    @staticmethod
    def default_output(model_path: str, verb: str) -> Path:
        path = Path(model_path)
        return path.with_name(f"{path.name.removesuffix('.onnx')}.{verb}.onnx")

    @classmethod
    def save(cls, model: Model, args: argparse.Namespace, verb: str) -> Path:
        output = None if args.in_place else Path(args.output or cls.default_output(args.model, verb))
        if output is not None and output.exists() and os.path.samefile(output, args.model):
            raise SaveError(f"{output} is the input model; pass --in-place to overwrite it")
        return model.save(
            output,
            in_place=args.in_place,
            external_data=args.external_data,
            external_data_threshold=args.external_data_threshold,
        )


class VerifyOptions:
    """--verify: after saving, run the original and the result in onnxruntime and compare every output."""

    @staticmethod
    def add(parser: argparse.ArgumentParser) -> None:
        group = parser.add_argument_group("verifying (onnxruntime, original vs result, weights read from disk)")
        group.add_argument(
            "--verify",
            action="store_true",
            help="compare the result's outputs with the original's (an edit that freed the batch, exported as B: "
            "the result at batch 1 and 2B+1 against the original run on batch-B slices, concatenated)",
        )
        group.add_argument(
            "--verify-runs",
            type=int,
            default=RUNS,
            metavar="N",
            help=f"input sets to run, each at every batch size checked (default: {RUNS})",
        )
        group.add_argument(
            "--feeds",
            metavar="FILE.npz",
            help="inputs to use, at the original's shape (the rest are random but sane; per batch slice, later "
            "slices roll the given items)",
        )
        group.add_argument(
            "--rtol", type=float, default=RTOL, metavar="R", help=f"relative tolerance (default: {RTOL:g})"
        )
        group.add_argument(
            "--atol", type=float, default=ATOL, metavar="A", help=f"absolute tolerance (default: {ATOL:g})"
        )


class ViewOptions:
    """--view: after saving, write the before/after page of the edit (the `view` verb with `diff`)."""

    @staticmethod
    def add(parser: argparse.ArgumentParser) -> None:
        group = parser.add_argument_group("viewing")
        group.add_argument(
            "--view",
            metavar="PAGE.html",
            nargs="?",
            const="",
            help="also write a before/after HTML page of this edit (default: next to the output)",
        )

    @staticmethod
    def original(model: Model, args: argparse.Namespace) -> bytes | Path | None:
        """The model before the edit, when --view asks for it (bytes in place: the file is about to change)."""
        if getattr(args, "view", None) is None:
            return None
        if args.in_place or model.path is None:
            return model.path.read_bytes() if model.path is not None else model.proto.SerializeToString()
        return model.path

    @staticmethod
    def write(original: bytes | Path, model: Model, args: argparse.Namespace, target: Path) -> Path:
        page = Path(args.view) if args.view else target.with_name(target.name.removesuffix(".onnx") + ".view-diff.html")
        before = load(original, external_data_dir=model.external_data_dir)
        before.run_verb("view", diff=str(target), output=str(page))
        return page


class OptionGroup(Protocol):
    """An option group class: its ``add`` puts the group's options on a (sub)command's parser."""

    def add(self, parser: argparse.ArgumentParser) -> None: ...


GROUPS: dict[str, OptionGroup] = {
    "load": LoadOptions,
    "json": JsonOptions,
    "save": SaveOptions,
    "verify": VerifyOptions,
    "view": ViewOptions,
}
