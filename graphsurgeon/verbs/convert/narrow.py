"""Narrowing int64 index and shape arithmetic to int32 where every value provably fits (retype's
`int64_to_int32`).

Every int64 tensor of the main graph gets an interval (see int_ranges). The operator schemas say which
operands share a type parameter: int64 tensors joined through a parameter that allows int32 form a group
that changes type together. Operands a schema fixes to int64 (Reshape's shape, Shape's output, TopK's K, ...)
and operands of nodes without a schema, with subgraphs or of unknown type stay int64: a Cast goes where a
narrowed tensor meets one. A group is narrowed when all its values provably fit int32, none of it is a graph
output or read inside a subgraph, and narrowing it leaves fewer int64 tensors. Constants read by a narrowed
group get an int32 copy (converted in place when nothing else reads them); Slice's starts and ends are
clamped to int32 (Slice clamps them to the dims anyway). Casts to int64 that become int32 -> int32 go away.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import AttributeProto, NodeProto, TensorProto, helper, numpy_helper

from graphsurgeon.core.constants import STANDARD_DOMAINS, constant_tensor, is_constant_node
from graphsurgeon.core.editor import Editor
from graphsurgeon.core.external_data import declared_nbytes, read_tensor
from graphsurgeon.core.index import Scope
from graphsurgeon.core.order import sorted_nodes
from graphsurgeon.core.schema import formal_at, standard_schema
from graphsurgeon.core.typeinfo import TypeLookup, elem_type, static_dims
from graphsurgeon.errors import GraphSurgeonError
from graphsurgeon.verbs.convert.int_ranges import INT32_RANGE, TYPE_RANGES, Interval, fits_int32, output_ranges

INT64, INT32 = TensorProto.INT64, TensorProto.INT32
_MAX_CONSTANT_BYTES = 8 << 20  # bigger int64 constants are not read (their values count as unknown)
# measured: onnxruntime's CPU provider has no int32 kernel for these where the schema allows one
_NO_INT32_KERNEL = frozenset({"Unique", "OneHot", "CenterCropPad"})
Use = tuple[NodeProto, int]  # (node, input index)


@dataclass
class Plan:
    """The narrowing, decided before anything is edited."""

    narrowed: set[str] = field(default_factory=set)  # int64 tensors computed in int32 from now on
    down: dict[str, list[Use]] = field(default_factory=dict)  # int64 producer -> reads that want int32
    up: dict[str, list[Use]] = field(default_factory=dict)  # narrowed tensor -> reads that want int64
    constants: dict[tuple[str, bool], list[Use]] = field(default_factory=dict)  # (constant, clamped) -> reads
    types: dict[str, int] = field(default_factory=dict)  # element types before (0: unknown)
    int64_tensors: int = 0
    groups: int = 0


class _Groups:
    """Union-find over tensor names (path halving: near-linear)."""

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, name: str) -> str:
        parent = self.parent.setdefault(name, name)
        while parent != name:
            grand = self.parent[parent]
            self.parent[name] = grand
            name, parent = parent, grand
        return name

    def union(self, names: list[str]) -> None:
        roots = [self.find(n) for n in names]
        for root in roots[1:]:
            self.parent[root] = roots[0]


def _attribute(node: NodeProto, name: str) -> AttributeProto | None:
    return next((a for a in node.attribute if a.name == name), None)


def _is_clamped(node: NodeProto, index: int) -> bool:
    """Slice's starts and ends: clamped to the dims by Slice itself, so clamping them to int32 changes nothing."""
    return node.op_type == "Slice" and node.domain in STANDARD_DOMAINS and index in (1, 2)


class _Analysis:
    def __init__(self, ctx: Editor):
        self.ctx = ctx
        self.main: Scope = ctx.index.main
        self.lookup = TypeLookup(ctx)
        self.types: dict[str, int] = {}
        self.ranges: dict[str, Interval | None] = {}
        self.constant_tensors: dict[str, TensorProto] = {}  # the main graph's int64 constants
        self._constant_ranges: dict[str, Interval | None] = {}
        self.groups = _Groups()
        self.flex_producer: set[str] = set()  # int64 outputs whose producer can make int32
        self.flex_reads: dict[str, list[Use]] = {}
        self.fixed_reads: dict[str, list[Use]] = {}
        self.constant_reads: dict[str, list[tuple[Use, str]]] = {}  # key member -> (constant use, constant)
        main = self.main  # tensors that keep int64: the interface, and what subgraphs read from outside
        self.pinned = {*main.inputs, *main.outputs, *(n for node in main.nodes for n in main.implicit_inputs(node))}

    def type_of(self, name: str) -> int:
        if name not in self.types:
            self.types[name] = elem_type(self.lookup.type_of(self.main, name))
        return self.types[name]

    def range_of(self, name: str) -> Interval | None:
        if not name:
            return None
        if name in self.constant_tensors:
            return self.constant_range(name)
        dtype = self.type_of(name)
        return self.ranges.get(name) if dtype == INT64 else TYPE_RANGES.get(dtype)

    def fits(self, node: NodeProto, index: int, is_output: bool, name: str) -> bool:
        """Whether this operand may be int32: its values provably fit (a constant clamped where Slice clamps)."""
        if name in self.constant_tensors and not is_output:
            return _constant_fits(self.constant_range(name), _is_clamped(node, index))
        if self.type_of(name) == INT32:
            return True
        return name not in self.pinned and fits_int32(self.range_of(name))

    def find_constants(self) -> None:
        """The main graph's int64 constants (initializers no input overrides, Constant nodes); values unread."""
        main = self.main
        for name, tensor in main.initializers.items():
            if name not in main.inputs and tensor.data_type == INT64:
                self.constant_tensors[name] = tensor
        for node in main.nodes:
            value = constant_tensor(node) if is_constant_node(node) else None
            if value is not None and value.data_type == INT64:
                self.constant_tensors[value.name] = value

    def constant_range(self, name: str) -> Interval | None:
        """A constant's values' range, read when first asked (too big or unreadable: unknown)."""
        if name not in self._constant_ranges:
            tensor = self.constant_tensors[name]
            interval: Interval | None = None
            if (declared_nbytes(tensor) or 0) <= _MAX_CONSTANT_BYTES:
                try:
                    values = read_tensor(tensor, self.ctx.external_data_dir).reshape(-1)
                    interval = (int(values.min()), int(values.max())) if values.size else (0, 0)
                except GraphSurgeonError:
                    interval = None
            self._constant_ranges[name] = interval
        return self._constant_ranges[name]

    def visit(self, node: NodeProto, opset: int | None) -> None:
        """Classify the node's int64 operands (flexible or fixed), join groups, compute output ranges."""
        if is_constant_node(node):
            return
        wide = [name for name in node.output if name and self.type_of(name) == INT64]
        if wide and node.domain in STANDARD_DOMAINS:  # only int64 outputs need ranges (constants read lazily)
            ins = [self.range_of(name) for name in node.input]
            dims = static_dims(self.lookup.type_of(self.main, node.input[0])) if node.input else None
            outs = output_ranges(node, ins, dims)
            if node.op_type == "Cast" and node.input:
                outs = [ins[0] if self.type_of(node.input[0]) in (INT64, *TYPE_RANGES) else None]
            for name, interval in zip(node.output, outs, strict=False):
                if name and self.type_of(name) == INT64:
                    self.ranges[name] = interval
        keys = self._type_params(node, opset)
        for index, name in enumerate(node.input):
            if not name or (self.type_of(name) != INT64 and name not in self.constant_tensors):
                continue
            key = keys.get((False, index))
            if key is None:
                self.fixed_reads.setdefault(name, []).append((node, index))
            elif name in self.constant_tensors:
                self.constant_reads.setdefault(key, []).append(((node, index), name))
            else:
                self.flex_reads.setdefault(name, []).append((node, index))
                self.groups.union([key, name])
        for index, name in enumerate(node.output):
            key = keys.get((True, index))
            if name and key is not None and self.type_of(name) == INT64:
                self.flex_producer.add(name)
                self.groups.union([key, name])

    def _type_params(self, node: NodeProto, opset: int | None) -> dict[tuple[bool, int], str]:
        """(is output, index) -> a group key, for the int64 operands that may become int32 with the node."""
        own = f"\0{id(node)}:"  # group keys are never tensor names
        if node.domain in STANDARD_DOMAINS and node.op_type == "Cast":
            to = _attribute(node, "to")
            cast: dict[tuple[bool, int], str] = {}
            if self.fits(node, 0, False, node.input[0]):
                cast[(False, 0)] = own + "in"
            if to is not None and to.i == INT64 and self.fits(node, 0, True, node.output[0]):
                cast[(True, 0)] = own + "out"
            return cast
        schema = standard_schema(node, opset)
        if schema is None or node.op_type in _NO_INT32_KERNEL:
            return {}
        if any(a.type in (AttributeProto.GRAPH, AttributeProto.GRAPHS) for a in node.attribute):
            return {}
        allowed = {c.type_param_str: set(c.allowed_type_strs) for c in schema.type_constraints}
        operands: dict[str, list[tuple[bool, int, str]]] = {}
        from_inputs: set[str] = set()
        for is_output, formals, names in ((False, schema.inputs, node.input), (True, schema.outputs, node.output)):
            for index, name in enumerate(names):
                formal = formal_at(formals, index)
                if formal is None:
                    return {}
                if not is_output:
                    from_inputs.add(formal.type_str)
                if name:
                    homogeneous = formal.option != onnx.defs.OpSchema.FormalParameterOption.Variadic or (
                        formal.is_homogeneous
                    )
                    param = formal.type_str if homogeneous else f"{formal.type_str}#{index}"
                    operands.setdefault(param, []).append((is_output, index, name))
        keys: dict[tuple[bool, int], str] = {}
        for param, members in operands.items():
            base = param.split("#")[0]
            if "tensor(int32)" not in allowed.get(base, ()) or "tensor(int64)" not in allowed.get(base, ()):
                continue  # a fixed type (tensor(int64)) or a parameter that never holds int64
            output_only = base not in from_inputs
            if output_only and not (node.op_type == "ConstantOfShape" and node.domain in STANDARD_DOMAINS):
                continue  # an attribute chooses the type (RandomNormal's dtype, ...)
            kinds = [INT64 if name in self.constant_tensors else self.type_of(name) for _, _, name in members]
            if any(kind not in (INT64, INT32) for kind in kinds) or INT64 not in kinds:
                continue  # an operand of unknown type: it may be int64 too and must not be left behind
            if not all(self.fits(node, index, is_output, name) for is_output, index, name in members):
                continue  # computed in int64: a value that may not fit int32, or one the interface fixes
            for is_output, index, _ in members:
                keys[(is_output, index)] = own + param
        return keys


def _constant_fits(interval: Interval | None, clamped: bool) -> bool:
    return interval is not None and (clamped or fits_int32(interval))


def make_plan(ctx: Editor) -> Plan:
    """Decide which int64 tensors become int32 (nothing is edited)."""
    analysis = _Analysis(ctx)
    analysis.find_constants()
    opset = ctx.opset_version("")
    main = analysis.main
    for node in sorted_nodes(main):
        analysis.visit(node, opset)
    groups = analysis.groups
    members: dict[str, list[str]] = {}
    for name in list(groups.parent):
        if not name.startswith("\0"):
            members.setdefault(groups.find(name), []).append(name)
    defined = {*main.inputs, *main.initializers, *(out for node in main.nodes for out in node.output if out)}
    plan = Plan(types=analysis.types, int64_tensors=sum(1 for n in defined if analysis.type_of(n) == INT64))
    narrowed_roots: set[str] = set()
    for root, names in members.items():
        if not _worth_it(analysis, names):
            continue
        plan.groups += 1
        narrowed_roots.add(root)
        for name in names:
            if name in analysis.flex_producer:
                plan.narrowed.add(name)
                if analysis.fixed_reads.get(name):
                    plan.up[name] = analysis.fixed_reads[name]
            elif analysis.flex_reads.get(name):
                plan.down[name] = analysis.flex_reads[name]
    for key, uses in analysis.constant_reads.items():
        if groups.find(key) in narrowed_roots:
            for use, constant in uses:
                clamped = _is_clamped(*use) and not fits_int32(analysis.constant_range(constant))
                plan.constants.setdefault((constant, clamped), []).append(use)
    return plan


def _worth_it(analysis: _Analysis, names: list[str]) -> bool:
    """Narrowing a group must remove more int64 tensors than the Casts it adds (net of Casts it removes)."""
    computed = [n for n in names if n in analysis.flex_producer]
    up = sum(1 for n in computed if analysis.fixed_reads.get(n))
    down = sum(1 for n in names if n not in analysis.flex_producer and analysis.flex_reads.get(n))
    producers = analysis.main.producer
    gone = sum(
        1 for n in computed if producers[n].op_type == "Cast" and analysis.type_of(producers[n].input[0]) == INT32
    )
    return len(computed) - up > up + down - gone


def _int32_value(ctx: Editor, name: str, clamped: bool) -> np.ndarray:
    values = ctx.tensor_value(name)
    if clamped:
        values = np.clip(values, *INT32_RANGE)
    return values.astype(np.int32)


class Narrower:
    """Applies a plan: new Casts appended then sorted into place once, reads rewired in bulk."""

    def __init__(self, ctx: Editor, plan: Plan):
        self.ctx = ctx
        self.plan = plan
        self.main = ctx.index.main
        self.names = ctx.names()
        self.new_nodes: list[NodeProto] = []
        self.rewires: list[tuple[NodeProto, int, str]] = []
        self.retyped: dict[str, int] = {}  # new or changed names -> their element type now
        self.casts_added = 0
        self.casts_removed = 0
        self.constants_converted = 0

    def _cast(self, source: str, to: int) -> str:
        out = self.names.fresh(f"{source}_{'int64' if to == INT64 else 'int32'}")
        self.new_nodes.append(helper.make_node("Cast", [source], [out], name=self.names.fresh(f"{out}_cast"), to=to))
        self.retyped[out] = to
        self.casts_added += 1
        return out

    def casts(self) -> None:
        """One Cast per tensor where int64 and int32 meet, shared by all the reads that want it."""
        for name, uses in self.plan.down.items():
            narrow = self._cast(name, INT32)
            self.rewires += [(node, index, narrow) for node, index in uses]
        for name, uses in self.plan.up.items():
            wide = self._cast(name, INT64)
            self.rewires += [(node, index, wide) for node, index in uses]

    def constants(self) -> None:
        """int32 constants for the narrowed reads: in place when nothing else reads them, else a copy."""
        variants: dict[str, int] = {}
        for name, _ in self.plan.constants:
            variants[name] = variants.get(name, 0) + 1
        for (name, clamped), uses in self.plan.constants.items():
            value = _int32_value(self.ctx, name, clamped)
            readers = self.main.readers(name)
            direct = {(id(node), i) for node in readers for i, n in enumerate(node.input) if n == name}
            alone = (
                variants[name] == 1
                and name not in self.main.outputs
                and all(name in node.input for node in readers)
                and direct == {(id(node), index) for node, index in uses}
            )
            if alone:
                self.ctx.set_tensor_value(name, value)
                self.retyped[name] = INT32
                self.constants_converted += 1
                continue
            copy = self.names.fresh(f"{name}_int32")
            self.ctx.add_initializer(copy, numpy_helper.from_array(value, copy))
            self.retyped[copy] = INT32
            self.rewires += [(node, index, copy) for node, index in uses]

    def producers(self) -> None:
        """ConstantOfShape fills with int32; a Cast to int64 casts to int32."""
        for name in sorted(self.plan.narrowed):
            node = self.main.producer[name]
            if node.op_type == "ConstantOfShape":
                value = _attribute(node, "value")
                assert value is not None  # an int64 ConstantOfShape has a value
                filled = numpy_helper.to_array(value.t).astype(np.int32)
                self.ctx.set_attribute(node, "value", numpy_helper.from_array(filled, value.t.name))
            elif node.op_type == "Cast":
                self.ctx.set_attribute(node, "to", INT32)
            self.retyped[name] = INT32

    def finish(self) -> None:
        if self.new_nodes:
            self.ctx.insert_nodes(self.main, len(self.main.container.node), self.new_nodes)
        self.ctx.set_node_inputs_bulk(self.rewires)
        self.main = self.ctx.index.main
        self._drop_identity_casts()
        for name, dtype in self.retyped.items():
            info = self.main.value_info.get(name)
            if info is not None and info.type.HasField("tensor_type"):
                info.type.tensor_type.elem_type = dtype
        self.ctx.reorder_nodes(self.main, sorted_nodes(self.main))

    def _drop_identity_casts(self) -> None:
        """A Cast this narrowing touched that now casts int32 to int32 goes (its readers read its input)."""
        aliases: dict[str, str] = {}
        dropped: list[NodeProto] = []
        for node in self.main.nodes:
            if node.op_type != "Cast" or node.domain not in STANDARD_DOMAINS or not node.input:
                continue
            source, out = node.input[0], node.output[0]
            if (source not in self.retyped and out not in self.retyped) or out in self.main.outputs:
                continue
            to = _attribute(node, "to")
            if to is not None and to.i == self.retyped.get(source, self.plan.types.get(source, 0)):
                aliases[out] = source
                dropped.append(node)
        if aliases:
            self.ctx.replace_uses(aliases)
            self.ctx.remove_nodes(dropped)
            self.ctx.remove_value_info(set(aliases))
            self.casts_removed = len(dropped)
