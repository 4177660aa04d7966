"""The set-shape engine shared by set-shape, make-dynamic and simplify's input_shape.

``change_shapes(ctx, inputs=..., outputs=..., dims=...)`` validates everything first, then:

* a static input dim that becomes a symbol, another value or unknown is *re-batched*: the analysis follows it
  through the graph (analysis.py, rules.py, reshape.py), every constant that carried its exported value is
  rewritten so the model runs at any value (backtrack.py, rewrite.py), and the shapes declared downstream
  (graph outputs, value_info, subgraph outputs) are recomputed;
* a named dim (dim_param) fixed to a value or renamed changes wherever it is declared.

Nothing is written when anything is refused; weights are never read (only small shape constants, and a
constant that must follow the dim, are).
"""

from __future__ import annotations

from onnx import ValueInfoProto

from graphsurgeon.core.batch_check import ResizedDim
from graphsurgeon.core.collector import collector_paused
from graphsurgeon.core.editor import Editor
from graphsurgeon.core.index import Scope
from graphsurgeon.core.inference import refused_input_shapes
from graphsurgeon.core.shapes import light_copy
from graphsurgeon.errors import RewriteError
from graphsurgeon.verbs.shape.analysis import Analysis, Shape
from graphsurgeon.verbs.shape.batch import record_edit, shape_edit
from graphsurgeon.verbs.shape.dims import (
    MaybeDim,
    Mono,
    Spec,
    parse_dim_assignment,
    parse_dims,
    parse_name_dims,
)
from graphsurgeon.verbs.shape.rewrite import apply_plans, spell, write_shape

__all__ = ["change_shapes", "parse_dim_assignment", "parse_dims", "parse_name_dims", "real_inputs"]


def real_inputs(ctx: Editor) -> dict[str, ValueInfoProto]:
    main = ctx.index.main
    return {n: vi for n, vi in main.inputs.items() if vi is not None and n not in main.initializers}


def _declared(info: ValueInfoProto) -> list[int | str | None] | None:
    if not info.type.HasField("tensor_type") or not info.type.tensor_type.HasField("shape"):
        return None
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in info.type.tensor_type.shape.dim]


def _fmt(dims: list) -> str:
    return "[" + ", ".join("?" if d is None else str(d) for d in dims) + "]"


def _named_dims(ctx: Editor) -> set[str]:
    found: set[str] = set()
    for scope in ctx.index.graph_scopes():
        for info in (*scope.graph.input, *scope.graph.output, *scope.graph.value_info):
            for d in _declared(info) or ():
                if isinstance(d, str):
                    found.add(d)
    return found


def change_shapes(
    ctx: Editor,
    *,
    inputs: dict[str, list[Spec]] | None = None,
    outputs: dict[str, list[Spec]] | None = None,
    dims: dict[str, Spec] | None = None,
    leading: bool = False,
) -> list[str]:
    """Give inputs new dims (re-batching constants), declare output dims, fix or rename named dims.

    Returns the rewritten nodes, one line each. Raises RewriteError (nothing changed) when refused.
    """
    with collector_paused():
        return _change_shapes(ctx, inputs or {}, outputs or {}, dims or {}, leading)


def _change_shapes(
    ctx: Editor, inputs: dict[str, list[Spec]], outputs: dict[str, list[Spec]], dims: dict[str, Spec], leading: bool
) -> list[str]:
    available = real_inputs(ctx)
    if not available:
        raise RewriteError("the model has no graph inputs, so there is no shape to set")
    if ctx.opset_version("") is None and any(n.domain in ("", "ai.onnx") for n in ctx.proto.graph.node):
        raise RewriteError("the model imports no ai.onnx opset, so which version its standard ops are is unknown")
    seeds: dict[str, Shape] = {}
    env: dict[str, int] = {}
    final: dict[str, int | str] = {}
    anonymous: set[str] = set()
    resized: list[ResizedDim] = []
    named = _named_dims(ctx)
    unchecked: dict[str, list[Spec]] = {}
    for name, value in dims.items():
        if name not in named:
            shown = ", ".join(sorted(named)) or "none"
            raise RewriteError(f"dim: the model has no dim named {name!r}; its named dims: {shown}")
        final[name] = value  # type: ignore[assignment]
    for name, spec in inputs.items():
        info = available.get(name)
        if info is None:
            raise RewriteError(f"input: the model has no input {name!r}; its inputs: {', '.join(available)}")
        if not info.type.HasField("tensor_type"):
            raise RewriteError(f"input: {name!r} is not a tensor")
        old = _declared(info)
        if old is not None and len(old) != len(spec):
            raise RewriteError(f"input: {name!r} has rank {len(old)} ({_fmt(old)}), not {len(spec)} as given")
        if old is None or any(isinstance(n, int) and n != w for n, w in zip(spec, old, strict=True)):
            unchecked[name] = spec  # a rank nothing declared, or dims pinned: onnx's inference checks them below
        seed: list[MaybeDim] = []
        for axis, new in enumerate(spec):
            was = old[axis] if old is not None else None
            seed.append(_seed_dim(name, axis, was, new, env, final, anonymous))
            if new != was and (isinstance(was, int) or isinstance(new, int)):  # what the input may be fed changes
                resized.append(ResizedDim(name, axis, was, new))
        seeds[name] = tuple(seed)
    for name, info in available.items():  # inputs whose named dims `dim` pins: checked with them
        declared = _declared(info) if name not in inputs else None
        if declared and any(isinstance(d, str) and isinstance(final.get(d), int) for d in declared):
            unchecked[name] = [final[d] if isinstance(d, str) and d in final else d for d in declared]
    problem = refused_input_shapes(light_copy(ctx.proto), unchecked) if unchecked else None
    if problem is not None:
        shown = ", ".join(f"{n}:{_fmt(s)}" for n, s in unchecked.items())
        raise RewriteError(f"input: as {shown} the model does not fit together: {problem}")
    resized += _fixed_by_name(ctx, dims, {(d.input, d.axis) for d in resized})
    lines: list[str] = []
    edit = None
    input_infos = {name: ctx.index.main.inputs[name] for name in seeds}  # rewiring drops the index
    if env:
        analysis = Analysis(ctx, seeds, env, leading=leading)
        analysis.run()
        _check_outputs(ctx, analysis, outputs)
        edit = shape_edit(ctx, resized, analysis, seeds)  # before rewiring: it reads the analysis' scopes
        _declare(ctx, analysis, final)  # before rewiring: inserting nodes rebuilds the index the keys refer to
        with ctx.quietly():
            lines = apply_plans(ctx, analysis)
    for name, shape in seeds.items():
        info = input_infos[name]
        assert info is not None
        before = _declared(info)
        write_shape(info, shape, final)
        _blank(info, anonymous)
        ctx.changes.record("set", "input shape", name, f"{_fmt(_declared(info) or [])} (was {_fmt(before or [])})")
    for name, spec in outputs.items():
        _declare_output(ctx, name, spec)
    if final:
        _apply_final(ctx, final, anonymous)
    for line in lines:
        ctx.changes.record("rewrote", "node", "", line)
    if resized:
        record_edit(ctx, edit or shape_edit(ctx, resized, None, seeds))
    return lines


def _fixed_by_name(ctx: Editor, dims: dict[str, Spec], seen: set[tuple[str, int]]) -> list[ResizedDim]:
    """Input dims a named dim fixed to a value reaches (a rename changes nothing an input is fed)."""
    out = []
    for name, info in real_inputs(ctx).items():
        for axis, d in enumerate(_declared(info) or ()):
            if isinstance(d, str) and isinstance(dims.get(d), int) and (name, axis) not in seen:
                out.append(ResizedDim(name, axis, d, dims[d]))
    return out


def _seed_dim(
    name: str, axis: int, was: int | str | None, new: Spec, env: dict[str, int], final: dict, anonymous: set[str]
) -> MaybeDim:
    """The input dim as the analysis sees it; a static dim that changes becomes a symbol with its old value."""
    if isinstance(was, int):
        if new == was:
            return was
        if isinstance(new, str):
            symbol = new
        elif new is None:
            symbol = f"unk__{was}"
            anonymous.add(symbol)
        else:
            symbol = f"gs__{was}_to_{new}"
            final[symbol] = new
        if env.get(symbol, was) != was:
            raise RewriteError(
                f"input: {symbol!r} would stand for both {env[symbol]} and {was} (axis {axis} of {name!r}); "
                "use two names"
            )
        env[symbol] = was
        return Mono.of(symbol)
    if isinstance(was, str):
        if new is None or new == was:
            return Mono.of(was)
        final.setdefault(was, new)
        if final[was] != new:
            raise RewriteError(f"input: dim {was!r} is given both {final[was]} and {new}")
        return Mono.of(was)
    if new is None:
        return None
    return new if isinstance(new, int) else Mono.of(new)


def _check_outputs(ctx: Editor, analysis: Analysis, outputs: dict[str, list[Spec]]) -> None:
    main = ctx.index.main
    for name, spec in outputs.items():
        if name not in main.outputs:
            raise RewriteError(
                f"graph_output: the model has no output {name!r}; its outputs: {', '.join(main.outputs)}"
            )
        shape = analysis.tensor_shape(main, name)
        if shape is not None and len(shape) != len(spec):
            raise RewriteError(f"graph_output: {name!r} has rank {len(shape)}, not {len(spec)} as given")
        for axis, (mine, given) in enumerate(zip(shape or (), spec, strict=False)):
            if isinstance(given, int) and isinstance(mine, Mono) and analysis.carries_change((mine,)):
                raise RewriteError(
                    f"graph_output: axis {axis} of {name!r} follows {mine}, so it cannot be declared {given}"
                )


def _declare_output(ctx: Editor, name: str, spec: list[Spec]) -> None:
    main = ctx.index.main
    info = main.outputs.get(name)
    if info is None:
        raise RewriteError(f"graph_output: the model has no output {name!r}; its outputs: {', '.join(main.outputs)}")
    before = _declared(info)
    shape = tuple(Mono.of(d) if isinstance(d, str) else d for d in spec)
    write_shape(info, shape, {})
    ctx.changes.record("set", "output shape", name, f"{_fmt(before or [])} -> {_fmt(spec)}")


def _declare(ctx: Editor, analysis: Analysis, final: dict) -> None:
    """Outputs, value_info and subgraph outputs the change reached get the shapes the analysis found."""
    for scope in ctx.index.graph_scopes():
        infos: list[tuple[ValueInfoProto, bool]] = [(vi, False) for vi in scope.graph.value_info]
        if scope.parent is not None:  # a body's inputs (Loop state, Scan slices) follow the outer tensors
            infos += [(vi, False) for vi in scope.graph.input]
        infos += [(vi, True) for vi in scope.graph.output]
        relaxed = 0
        for info, is_output in infos:
            key = (id(scope), info.name)
            if key not in analysis.touched:
                continue
            before = _declared(info) if is_output else None
            if not write_shape(info, analysis.shapes.get(key), final):
                continue
            if is_output and scope.parent is None:
                after = _fmt(_declared(info) or [])
                ctx.changes.record("declared", "output shape", info.name, f"{after} (was {_fmt(before or [])})")
            elif not is_output:
                relaxed += 1
        if relaxed and scope.parent is None:
            ctx.changes.record("updated", "value_info", "", f"{relaxed} shape(s) in {scope.display_name}")


def _blank(info: ValueInfoProto, anonymous: set[str]) -> None:
    if not info.type.HasField("tensor_type"):
        return
    for d in info.type.tensor_type.shape.dim:
        if d.HasField("dim_param") and any(a in d.dim_param for a in anonymous):
            d.ClearField("dim_param")


def _apply_final(ctx: Editor, final: dict[str, int | str], anonymous: set[str]) -> None:
    """Named dims fixed or renamed everywhere they are declared (inputs, outputs, value_info, subgraphs)."""
    for scope in ctx.index.graph_scopes():
        for info in (*scope.graph.input, *scope.graph.output, *scope.graph.value_info):
            if not info.type.HasField("tensor_type"):
                continue
            for d in info.type.tensor_type.shape.dim:
                if d.HasField("dim_param") and d.dim_param in final:
                    value = final[d.dim_param]
                    if isinstance(value, int):
                        d.dim_value = value
                    else:
                        d.dim_param = value
            _blank(info, anonymous)
    for name, value in final.items():
        if not name.startswith("gs__"):
            ctx.changes.record("set", "dim", name, str(value))


def scope_is_main(scope: Scope) -> bool:
    return scope.parent is None and not scope.is_function


_ = spell
