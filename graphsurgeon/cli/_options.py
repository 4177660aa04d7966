"""Option groups shared by every verb, so all of them load and save models the same way."""

from __future__ import annotations

import argparse
from pathlib import Path

from graphsurgeon.model import Model, load


class LoadOptions:
    """MODEL and where its external data lives."""

    @staticmethod
    def add(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("model", metavar="MODEL", help="the ONNX model file")
        group = parser.add_argument_group("loading")
        group.add_argument(
            "--external-data-dir",
            metavar="DIR",
            help="folder holding the model's external data (default: the model's folder)",
        )

    @staticmethod
    def load(args: argparse.Namespace) -> Model:
        return load(args.model, external_data_dir=args.external_data_dir)


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
            metavar="BYTES",
            type=int,
            default=1024,
            help="smallest initializer moved by --external-data (default: %(default)s)",
        )

    @staticmethod
    def default_output(model_path: str, verb: str) -> Path:
        path = Path(model_path)
        return path.with_name(f"{path.name.removesuffix('.onnx')}.{verb}.onnx")

    @classmethod
    def save(cls, model: Model, args: argparse.Namespace, verb: str) -> Path:
        output = None if args.in_place else (args.output or cls.default_output(args.model, verb))
        return model.save(
            output,
            in_place=args.in_place,
            external_data=args.external_data,
            external_data_threshold=args.external_data_threshold,
        )
