"""Materializing the plans: new operands for the constants that must follow a dim, and the declared shapes.

A Reshape target takes the cheapest legal form: 0 where the input has that very dim on that axis (and
``allowzero`` is off), -1 for one remaining symbolic entry, else the value computed from ``Shape``. Other
operands get ``Shape``-derived values (``Shape(x)[axis]``, times a factor, concatenated with the static
entries, cast to the operand's type). A constant tensor that repeats (or counts) along a batch axis becomes
its first slice expanded (or a Range). New nodes go at the start of the main graph (subgraphs read them from
there) or of the function body; a constant nothing reads any more is removed. Weights are never read.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from onnx import NodeProto, TensorProto, TensorShapeProto, ValueInfoProto, helper, numpy_helper

from graphsurgeon.core.editor import Editor
from graphsurgeon.core.index import Scope
from graphsurgeon.core.select import describe
from graphsurgeon.errors import RewriteError
from graphsurgeon.verbs.shape.analysis import Analysis, Shape, TensorPlan, Value, affine_along, attr
from graphsurgeon.verbs.shape.dims import MaybeDim, Mono, evaluate, fmt_shape


def _root(scope: Scope) -> Scope:
    """Where new nodes for `scope` go: the function body it belongs to, else the main graph."""
    while scope.parent is not None and not scope.is_function:
        scope = scope.parent
    return scope


# the opset from which the ops this rewrite emits exist in the form it uses them (inputs, broadcasting)
_SINCE = {"Range": 11, "Expand": 8, "Mul": 7, "Add": 7, "Reshape": 5, "Concat": 4}


class Materializer:
    def __init__(self, ctx: Editor, analysis: Analysis) -> None:
        self.ctx = ctx
        self.analysis = analysis
        self.names = ctx.names()
        self.nodes: dict[int, list[NodeProto]] = {}
        self.scopes: dict[int, Scope] = {}
        self.cache: dict[tuple, str] = {}
        self.initializers: list[tuple[Scope, str, np.ndarray]] = []
        self.opset = analysis.opset

    # -- building blocks -------------------------------------------------------------------------------
    def _fresh(self, wanted: str) -> str:
        return self.names.fresh(wanted)

    def _emit(self, root: Scope, op: str, inputs: list[str], hint: str, **attrs) -> str:
        needed = _SINCE.get(op, 1)
        if self.opset is not None and self.opset < needed:  # (this rewrite's form of the op)
            raise RewriteError(
                f"following the new dims needs a {op} node, which this rewrite makes as of ai.onnx opset {needed}; "
                f"the model imports opset {self.opset} (convert-opset first)"
            )
        out = self._fresh(hint)
        node = helper.make_node(op, inputs, [out], name=self._fresh(f"{hint}/{op}"), **attrs)
        self.nodes.setdefault(id(root), []).append(node)
        self.scopes[id(root)] = root
        return out

    def const(self, root: Scope, array: np.ndarray, hint: str) -> str:
        key = (id(root), "const", array.dtype.str, array.shape, array.tobytes())
        if key in self.cache:
            return self.cache[key]
        if root.is_function or self.ctx.proto.ir_version < 4:  # IR 3 would have to list an initializer as an input
            name = self._emit(root, "Constant", [], hint, value=numpy_helper.from_array(array, hint))
        else:
            name = self._fresh(hint)
            self.initializers.append((root, name, array))
        self.cache[key] = name
        return name

    def symbol(self, root: Scope, sym: str) -> str:
        """A 1-element int64 tensor holding the symbol's runtime value, read from an input that carries it."""
        key = (id(root), "sym", sym)
        if key in self.cache:
            return self.cache[key]
        if root.is_function:
            source = self.analysis.function_sources.get((id(root), sym))
        else:
            source = self.analysis.sources.get(sym)
        if source is None:
            raise RewriteError(f"no input of {root.display_name} carries {sym!r} on an axis of its own to read it from")
        name, axis = source
        if self.opset >= 15:
            out = self._emit(root, "Shape", [name], f"{sym}_dim", start=axis, end=axis + 1)
        else:
            shape = self._emit(root, "Shape", [name], f"{name}_shape")
            index = self.const(root, np.array([axis], np.int64), f"{sym}_axis")
            out = self._emit(root, "Gather", [shape, index], f"{sym}_dim", axis=0)
        self.cache[key] = out
        return out

    def dim(self, root: Scope, d: Mono) -> str:
        key = (id(root), "dim", d)
        if key in self.cache:
            return self.cache[key]
        atoms = d.atoms()
        out = self.symbol(root, atoms[0])
        for s in atoms[1:]:
            out = self._emit(root, "Mul", [out, self.symbol(root, s)], "dims")
        if d.coef != 1:
            out = self._emit(root, "Mul", [out, self.const(root, np.array([d.coef], np.int64), "factor")], str(d))
        self.cache[key] = out
        return out

    def value(self, root: Scope, v: Value, hint: str) -> str:
        dtype = helper.tensor_dtype_to_np_dtype(v.dtype)
        if v.is_static():
            ints = [int(e) for e in v.elems]  # type: ignore[arg-type]
            limits = np.iinfo(dtype) if np.dtype(dtype).kind in "iu" else None
            if limits is not None and any(not limits.min <= e <= limits.max for e in ints):
                raise RewriteError(f"{hint}: the new value {ints[:8]} does not fit {np.dtype(dtype).name}")
            array = np.array(ints, dtype=dtype)
            return self.const(root, array.reshape(()) if v.scalar else array, hint)
        key = (id(root), "value", v)
        if key in self.cache:
            return self.cache[key]
        pieces: list[str] = []
        run: list[int] = []
        for e in v.elems:
            if isinstance(e, int):
                run.append(e)
                continue
            if e is None:
                raise RewriteError(f"internal: an unknown dim in {fmt_shape(v.elems)}")
            if run:
                pieces.append(self.const(root, np.array(run, np.int64), hint))
                run = []
            pieces.append(self.dim(root, e))
        if run:
            pieces.append(self.const(root, np.array(run, np.int64), hint))
        out = pieces[0] if len(pieces) == 1 else self._emit(root, "Concat", pieces, hint, axis=0)
        if v.dtype != TensorProto.INT64:
            out = self._emit(root, "Cast", [out], hint, to=v.dtype)
        if v.scalar:
            out = self._emit(root, "Reshape", [out, self.const(root, np.zeros(0, np.int64), "scalar")], hint)
        self.cache[key] = out
        return out

    # -- plans -----------------------------------------------------------------------------------------
    def reshape_target(self, scope: Scope, node: NodeProto, v: Value) -> tuple[Value, bool]:
        """0 / -1 where legal, so the target stays a constant when it can. With ``allowzero`` on and no 0 in
        the target, turning it off changes nothing else and makes 0 legal (returned True: turn it off)."""
        x = self.analysis.shape(scope, node, 0) or ()
        allowzero = bool(attr(node, "allowzero", 0)) and self.opset >= 14
        elems = list(v.elems)
        switch = (
            allowzero
            and 0 not in elems
            and any(isinstance(e, Mono) and j < len(x) and x[j] == e for j, e in enumerate(elems))
        )
        if switch:
            allowzero = False
        for j, e in enumerate(elems):
            if isinstance(e, Mono) and not allowzero and j < len(x) and x[j] == e:
                elems[j] = 0
        symbolic = [j for j, e in enumerate(elems) if isinstance(e, Mono)]
        if len(symbolic) == 1 and -1 not in elems:
            elems[symbolic[0]] = -1
        return Value(v.dtype, v.scalar, tuple(elems)), switch

    def tensor(self, root: Scope, plan: TensorPlan, hint: str) -> str:
        """The constant following its planned axes: repeated ones by Expand, a counting one by a Range."""
        arr = self.analysis.read(plan.tensor)
        base = arr
        counting: tuple[int, np.ndarray] | None = None
        for axis in sorted(plan.axes):
            found = affine_along(base, axis)
            if found is None:
                raise RewriteError(f"internal: constant {plan.tensor.name!r} is not affine along axis {axis}")
            first, step = found
            if step.any():
                if counting is not None:
                    raise RewriteError(f"constant {plan.tensor.name!r} counts along two axes that change")
                counting = (axis, step)
            base = first
        shape: list[MaybeDim] = [plan.axes.get(a, int(d)) for a, d in enumerate(arr.shape)]
        target = self.value(root, Value(TensorProto.INT64, False, tuple(shape)), f"{hint}_shape")
        out = self.const(root, base, hint)
        if counting is not None:
            axis, step = counting
            count = self.dim(root, plan.axes[axis])  # type: ignore[arg-type]
            scalar = self.const(root, np.zeros(0, np.int64), "scalar")
            limit = self._emit(root, "Reshape", [count, scalar], hint)
            zero, one = self.const(root, np.array(0, np.int64), "zero"), self.const(root, np.array(1, np.int64), "one")
            r = self._emit(root, "Range", [zero, limit, one], hint)
            ones = [1] * arr.ndim
            ones[axis] = -1
            r = self._emit(root, "Reshape", [r, self.const(root, np.array(ones, np.int64), f"{hint}_axes")], hint)
            if arr.dtype != np.int64:
                r = self._emit(root, "Cast", [r], hint, to=helper.np_dtype_to_tensor_dtype(arr.dtype))
            r = self._emit(root, "Mul", [r, self.const(root, step, f"{hint}_step")], hint)
            out = self._emit(root, "Add", [out, r], hint)
        return self._emit(root, "Expand", [out, target], hint)

    def flush(self) -> None:
        """Add the new constants and nodes. Called right after the bulk rewire dropped the index (rebuilt lazily
        from the protos on next use), so these scopes only serve as handles on their containers."""
        ctx = self.ctx
        for root, name, array in self.initializers:
            ctx.add_initializer(name, array, scope=root)
        for key, nodes in self.nodes.items():
            ctx.insert_nodes(self.scopes[key], 0, nodes)


def apply_plans(ctx: Editor, analysis: Analysis) -> list[str]:
    """Rewire every planned use to its new operand; returns one line per rewritten node."""
    m = Materializer(ctx, analysis)
    rewired: list[tuple[Scope, NodeProto, int, str, str]] = []
    for key, v in analysis.use_values.items():
        scope, node, i = analysis.uses[key]
        switch = False
        if node.op_type == "Reshape" and i == 1:
            v, switch = m.reshape_target(scope, node, v)
            if switch:
                ctx.set_attribute(node, "allowzero", 0)
        name = m.value(_root(scope), v, f"{node.input[i]}_follow" if len(node.input[i]) < 40 else "shape_follow")
        note = " (allowzero 1 -> 0: the target has no 0)" if node.op_type == "Reshape" and i == 1 and switch else ""
        rewired.append((scope, node, i, name, fmt_shape(v.elems) + note))
    for key, plan in analysis.use_tensors.items():
        scope, node, i = analysis.uses[key]
        name = m.tensor(_root(scope), plan, "rebatched")
        shape = [plan.axes.get(a, int(d)) for a, d in enumerate(plan.tensor.dims)]
        rewired.append((scope, node, i, name, f"constant {node.input[i]!r} expanded to {fmt_shape(shape)}"))
    lines = [
        f"{describe(scope, node)}: input {i} {node.input[i]!r} -> {detail}" for scope, node, i, _, detail in rewired
    ]
    doomed, unsure = _doomed_constants(rewired)  # while the index is valid: nothing reindexes for them
    ctx.set_node_inputs_bulk([(node, i, name) for _, node, i, name, _ in rewired])
    _remove_constants(ctx, doomed)  # before flush: it may copy the nodes of a scope into new objects
    m.flush()
    if unsure:
        _remove_dead_constants(ctx, unsure)
    return lines


def _doomed_constants(
    rewired: list[tuple[Scope, NodeProto, int, str, str]],
) -> tuple[list[tuple[Scope, str]], set[tuple[int, str]]]:
    """Before rewiring: the old operands nothing will read once every rewired use is gone, and (by container
    and name) those also read from inside subgraphs, which need the rewired model re-indexed to tell."""
    uses: dict[tuple[int, str], tuple[Scope, set[tuple[int, int]]]] = {}
    for scope, node, i, _, _ in rewired:
        name = node.input[i]
        home = scope.resolve(name) or scope
        uses.setdefault((id(home), name), (home, set()))[1].add((id(node), i))
    doomed: list[tuple[Scope, str]] = []
    unsure: set[tuple[int, str]] = set()
    for (_, name), (home, used) in uses.items():
        if name in home.outputs:
            continue
        if home.implicit_consumers.get(name):
            unsure.add((id(home.container), name))
        elif all((id(r), k) in used for r in home.consumers.get(name, ()) for k, x in enumerate(r.input) if x == name):
            doomed.append((home, name))
    return doomed, unsure


def _remove_constants(ctx: Editor, doomed: list[tuple[Scope, str]]) -> None:
    """Remove initializers (not graph inputs' defaults) and Constant nodes, by the scope handles found before."""
    by_scope: dict[int, tuple[Scope, set[str], list[NodeProto]]] = {}
    for home, name in doomed:
        _, inits, nodes = by_scope.setdefault(id(home), (home, set(), []))
        if name in home.initializers and name not in home.inputs:
            inits.add(name)
        elif name in home.producer and home.producer[name].op_type == "Constant":
            nodes.append(home.producer[name])
    for home, inits, nodes in by_scope.values():
        if inits:
            ctx.remove_initializers(inits, scope=home)
        if nodes:
            ctx.remove_nodes(nodes, scope=home)
        if inits or nodes:
            ctx.remove_value_info(inits | {n.output[0] for n in nodes}, scope=home)


def _remove_dead_constants(ctx: Editor, names: set[tuple[int, str]]) -> None:
    """Constants (by container and name) that nothing reads any more go (looked up in a fresh index)."""
    for scope in ctx.index.scopes:
        dead_init = set()
        dead_nodes = []
        for container, name in names:
            if container != id(scope.container) or scope.readers(name) or name in scope.outputs:
                continue
            if name in scope.initializers and name not in scope.inputs:
                dead_init.add(name)
            elif name in scope.producer and scope.producer[name].op_type == "Constant":
                dead_nodes.append(scope.producer[name])
        if dead_init:
            ctx.remove_initializers(dead_init, scope=scope)
        if dead_nodes:
            ctx.remove_nodes(dead_nodes, scope=scope)
        if dead_init or dead_nodes:
            ctx.remove_value_info(dead_init | {n.output[0] for n in dead_nodes}, scope=scope)


# -- declared shapes -----------------------------------------------------------------------------------------------
def write_shape(info: ValueInfoProto, shape: Shape | None, final: dict[str, int | str]) -> bool:
    """Declare `shape` on a tensor's type, symbols renamed or fixed by `final`; returns whether it changed."""
    if not info.type.HasField("tensor_type"):
        return False
    tensor_type = info.type.tensor_type
    had = tensor_type.HasField("shape")
    if shape is None:  # unknown: keep the declared rank (checkers require a shape), every dim unknown
        if not had or all(not d.HasField("dim_value") and not d.HasField("dim_param") for d in tensor_type.shape.dim):
            return False
        for d in tensor_type.shape.dim:
            d.ClearField("dim_value")
            d.ClearField("dim_param")
        return True
    wanted = tuple(spell(d, final) for d in shape)
    template, data = _shape_template(wanted)
    if had:
        current_data = tensor_type.shape.SerializeToString()
        if current_data == data:
            return False
        if b"\x1a" in current_data:  # maybe a denotation (kept when the dims already agree)
            current = tuple(
                d.dim_value if d.HasField("dim_value") else (d.dim_param if d.HasField("dim_param") else None)
                for d in tensor_type.shape.dim
            )
            if current == wanted:
                return False
    tensor_type.shape.CopyFrom(template)
    return True


@lru_cache(maxsize=4096)
def _shape_template(wanted: tuple[int | str | None, ...]) -> tuple[TensorShapeProto, bytes]:
    """The declared shape for spelled dims, and its bytes (the same few shapes recur on every layer)."""
    shape = TensorShapeProto()
    for spelled in wanted:
        dim = shape.dim.add()
        if isinstance(spelled, int):
            dim.dim_value = spelled
        elif spelled:
            dim.dim_param = spelled
    return shape, shape.SerializeToString()


def spell(d: MaybeDim, final: dict[str, int | str]) -> int | str | None:
    """How a dim is declared: its value, or its symbols' (renamed) spelling, or None (unknown)."""
    if d is None or isinstance(d, int):
        return d
    if not final:
        return d.symbol or str(d)
    fixed = {k: v for k, v in final.items() if isinstance(v, int)}
    value = evaluate(d, fixed)
    if value is not None:
        return value
    renamed = Mono(d.coef, tuple(sorted((str(final.get(s, s)), p) for s, p in d.syms)))
    return str(renamed)
