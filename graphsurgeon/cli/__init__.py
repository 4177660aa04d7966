"""The `graphsurgeon` command: a thin layer over the editor, one verb per method of the same name."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field

from graphsurgeon.cli._options import LoadOptions, SaveOptions
from graphsurgeon.errors import GraphSurgeonError
from graphsurgeon.model import Model


@dataclass
class Verb:
    help: str
    options: Callable[[argparse.ArgumentParser], None] = lambda parser: None
    writes: bool = True
    kwargs: list[str] = field(default_factory=list)


def _promote_input_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--node", required=True, metavar="SEL", help="node name, op type, or a glob over either")
    parser.add_argument(
        "--attr", required=True, metavar="NAME", help="operand name in the op's schema (Resize: roi, scales, sizes)"
    )
    parser.add_argument("--name", metavar="INPUT_NAME", help="name of the new graph input (default: NAME)")
    parser.add_argument("--keep-default", action="store_true", help="keep the old value as the input's default")
    parser.add_argument("--all", action="store_true", help="promote the operand of every matching node")


def _inspect_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def _size_limit_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--size-limit",
        type=int,
        default=1 << 20,
        metavar="BYTES",
        help="never materialise a new tensor above BYTES unless the inputs it frees are as big (default: 1 MiB)",
    )


def _fold_constants_options(parser: argparse.ArgumentParser) -> None:
    _size_limit_option(parser)
    parser.add_argument("--exclude", nargs="+", default=[], metavar="SEL", help="nodes never to fold (name, op, glob)")
    parser.add_argument("--strict", action="store_true", help="fail if a node with constant inputs cannot be folded")
    parser.add_argument("--fold-qdq", action="store_true", help="fold QuantizeLinear/DequantizeLinear too")


def _simplify_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--input-shape",
        nargs="+",
        default=[],
        metavar="NAME:DIMS",
        help="fix an input's dims first, e.g. x:1,3,224,224",
    )
    _size_limit_option(parser)


VERBS: dict[str, Verb] = {
    "promote-input": Verb(
        "turn a node's constant operand into a graph input",
        _promote_input_options,
        kwargs=["node", "attr", "name", "keep_default", "all"],
    ),
    "cleanup": Verb("remove nodes, initializers, value_info, functions and opset imports nothing uses"),
    "toposort": Verb("sort nodes topologically (stable, linear, subgraph-aware)"),
    "fold-constants": Verb(
        "evaluate nodes whose inputs are all known (incl. static shape arithmetic); outputs become initializers",
        _fold_constants_options,
        kwargs=["size_limit", "exclude", "strict", "fold_qdq"],
    ),
    "simplify": Verb(
        "shape inference, constant folding, dead code, no-op elimination and CSE, to a fixed point",
        _simplify_options,
        kwargs=["input_shape", "size_limit"],
    ),
    "inspect": Verb("summarize inputs, outputs, opsets, ops, weights, functions, subgraphs", _inspect_options, False),
    "check": Verb("run onnx's full checker and load the model in onnxruntime", writes=False),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="graphsurgeon", description="Lossless ONNX graph surgery.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    for name, verb in VERBS.items():
        sub = verbs.add_parser(name, help=verb.help, description=verb.help)
        LoadOptions.add(sub)
        verb.options(sub)
        if verb.writes:
            SaveOptions.add(sub)
    return parser


def run(args: argparse.Namespace) -> int:
    verb = VERBS[args.verb]
    model: Model = LoadOptions.load(args)
    method = getattr(model, args.verb.replace("-", "_"))
    result = method(**{key: getattr(args, key) for key in verb.kwargs})
    if args.verb == "inspect":
        print(json.dumps(result.to_dict(), indent=2) if args.json else result)
        return 0
    if args.verb == "check":
        print(result)
        return 0 if result.ok else 1
    for change in model.changes:
        print(change)
    print(f"wrote {SaveOptions.save(model, args, args.verb)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except GraphSurgeonError as e:
        if args.debug:
            raise
        print(f"graphsurgeon: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # a bug in graphsurgeon, not a user error: still one line unless --debug
        if args.debug:
            raise
        print(
            f"graphsurgeon: internal error: {type(e).__name__}: {e} (rerun with --debug for details)", file=sys.stderr
        )
        return 2
