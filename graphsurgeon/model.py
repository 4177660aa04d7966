"""The model facade: the editing API of :class:`~graphsurgeon.core.editor.Editor` plus one method per verb.

The verb methods are made from the verb declarations (``graphsurgeon.verbs``): same name as the CLI verb in
snake_case, the same keyword options, typed, with the verb's docstring. Rewrites return the model, so calls
chain; report verbs (inspect, check, diff, compare) return their report.

    model = graphsurgeon.load("srcnn.onnx")
    model.promote_input(node="Resize", attr="scales").cleanup().save("srcnn_dynamic.onnx")
"""

from __future__ import annotations

import inspect
import os
from typing import Any

from graphsurgeon.core.editor import Editor, Source
from graphsurgeon.core.format import format_type
from graphsurgeon.core.verb import Verb
from graphsurgeon.verbs import registry


def load(source: Source, *, external_data_dir: str | os.PathLike[str] | None = None) -> Model:
    """Open a model for editing, from a path, serialized bytes, or a ModelProto (edited in place).

    Weights in external data are not read: their files are only checked (existence, bounds, and that they
    stay inside the model's folder). `external_data_dir` is where they live if not beside the model.

    Raises:
        ModelLoadError: not a readable ONNX model. ExternalDataError: bad external data references.
    """
    model = Model.open(source, external_data_dir=external_data_dir)
    assert isinstance(model, Model)
    return model


class Model(Editor):
    """An ONNX model being edited: the editing API, and every verb as a method (see :func:`load`).

    What each edit changed is recorded in :attr:`changes` (structured :class:`Change` records).
    """

    def run_verb(self, name: str, /, *args: Any, **options: Any) -> Any:
        """Run a verb by its CLI name with keyword options (what the generated methods call)."""
        verb = registry()[name]
        positional = [o.name for o in verb.options if o.opt.positional]
        if len(args) > len(positional):
            raise TypeError(f"{verb.method_name}() takes {len(positional)} positional option(s)")
        for option_name, value in zip(positional, args, strict=False):
            if option_name in options:
                raise TypeError(f"{verb.method_name}() got {option_name!r} twice")
            options[option_name] = value
        values = verb.normalize(options)
        with self.running(verb.name):
            result = verb.run(self, **values)
        return self if verb.writes else result

    def __repr__(self) -> str:
        index = self.index
        where = str(self.path) if self.path is not None else "in memory"
        main = index.main
        inputs = ", ".join(f"{n}: {format_type(vi.type)}" for n in self.graph_inputs[:4] if (vi := main.inputs[n]))
        outputs = ", ".join(f"{n}: {format_type(v.type)}" for n, v in list(main.outputs.items())[:4] if v)
        nodes = sum(len(list(s.nodes)) for s in index.scopes)
        opset = self.opset_version()
        return (
            f"<graphsurgeon.Model {where}: {nodes} nodes, opset {opset}, ({inputs}) -> ({outputs}), "
            f"{len(self.changes)} change(s)>"
        )


def _make_method(verb: Verb) -> Any:
    def method(self: Model, *args: Any, **options: Any) -> Any:
        return self.run_verb(verb.name, *args, **options)

    parameters = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_ONLY)]
    for option in verb.options:
        kind = inspect.Parameter.POSITIONAL_OR_KEYWORD if option.opt.positional else inspect.Parameter.KEYWORD_ONLY
        parameters.append(inspect.Parameter(option.name, kind, default=option.default, annotation=option.type))
    returns = "Model" if verb.writes else inspect.signature(verb.run).return_annotation
    method.__name__ = method.__qualname__ = verb.method_name
    method.__doc__ = verb.doc + _options_doc(verb)
    method.__signature__ = inspect.Signature(parameters, return_annotation=returns)  # type: ignore[attr-defined]
    method.__annotations__ = {p.name: p.annotation for p in parameters[1:]} | {"return": returns}
    return method


def _options_doc(verb: Verb) -> str:
    if not verb.options:
        return ""
    lines = ["", "", "Args:"]
    lines += [f"    {o.name}: {o.opt.help}" for o in verb.options]
    lines += ["", "Raises:", "    GraphSurgeonError: the verb cannot be applied as asked (nothing is changed then)."]
    return "\n".join(lines)


for _verb in registry().values():
    if hasattr(Editor, _verb.method_name):  # a verb must not shadow the editing API
        raise RuntimeError(f"verb {_verb.name!r} would replace the editing method Editor.{_verb.method_name}")
    setattr(Model, _verb.method_name, _make_method(_verb))
