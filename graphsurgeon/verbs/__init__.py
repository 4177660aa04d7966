"""Every verb graphsurgeon has. A verb is one module holding one ``@verb`` function; registering it is one
line here. The CLI subcommands, the ``Model`` methods and the recipe schema are all made from this list."""

from __future__ import annotations

import importlib
from functools import cache

from graphsurgeon.core.verb import Verb

_MODULES = (
    "promote_input",
    "set_shape",
    "make_dynamic",
    "fold",
    "simplify",
    "cleanup",
    "toposort",
    "inspect",
    "check",
    "diff",
    "compare",
    "rewrite",
    "view",
    "rename",
    "add_outputs",
    "extract",
    "remove_node",
    "insert",
    "set_attr",
    "replace",
    "freeze_input",
    "convert_constants",
    "strip",
    "externalize",
    "internalize",
    "to_fp16",
    "add_preprocess",
    "add_postprocess",
    "merge",
    "convert_opset",
    "inline",
    "retype",
)


@cache
def registry() -> dict[str, Verb]:
    """Verb name (kebab-case) -> declaration, in the order above."""
    verbs: dict[str, Verb] = {}
    for name in _MODULES:
        module = importlib.import_module(f"{__name__}.{name}")
        declared = [
            value.__verb__
            for value in vars(module).values()
            if isinstance(getattr(value, "__verb__", None), Verb) and value.__module__ == module.__name__
        ]
        if len(declared) != 1:
            raise RuntimeError(f"{module.__name__} must declare exactly one @verb, not {len(declared)}")
        verbs[declared[0].name] = declared[0]
    return verbs
