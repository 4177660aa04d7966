"""to-fp16: float32 -> float16 (or bfloat16) for weights and compute, the interface kept float32.

The plan (graphsurgeon/verbs/convert/precision.py) decides node by node from the operator schemas; this
module applies it: weights converted tensor by tensor (external ones streamed to a new data file), one Cast
per tensor and wanted type where a reader disagrees with its producer, never a Cast of a Cast.
"""

from __future__ import annotations

from typing import Annotated

import ml_dtypes
import numpy as np
from onnx import TensorProto, helper

from graphsurgeon.core.editor import Editor
from graphsurgeon.core.external_data import is_external, read_tensor
from graphsurgeon.core.index import Scope
from graphsurgeon.core.order import sorted_nodes
from graphsurgeon.core.verb import Opt, verb
from graphsurgeon.errors import RewriteError
from graphsurgeon.verbs.convert.datafile import DataFileWriter, data_folder, set_inline_bytes
from graphsurgeon.verbs.convert.precision import Plan, make_plan

# Measured (bench/fp16_blocklist.py: onnx's node conformance cases converted with nothing blocked, run in
# onnxruntime's CPU provider): MeanVarianceNormalization has no float16 kernel there (its function body mixes
# float16 and float32). Scatter ops with a `reduction` are blocked by a rule in convert/precision.py (no
# float16 kernel); ops whose output type an attribute sets (RandomNormal, EyeLike...) always keep float32.
DEFAULT_BLOCK = ("MeanVarianceNormalization",)
_FP16_MAX = float(np.finfo(np.float16).max)
_LOW_NAME: dict[int, str] = {TensorProto.FLOAT16: "fp16", TensorProto.BFLOAT16: "bf16"}


def low_precision(value: np.ndarray, target: int) -> np.ndarray:
    """float32 values in the low type: float16 saturates at +-65504 (infinities and NaN kept)."""
    value = np.asarray(value, dtype=np.float32)
    if target == TensorProto.BFLOAT16:
        return value.astype(ml_dtypes.bfloat16)
    finite = np.isfinite(value)
    if finite.all():
        return np.clip(value, -_FP16_MAX, _FP16_MAX).astype(np.float16)
    return np.where(finite, np.clip(value, -_FP16_MAX, _FP16_MAX), value).astype(np.float16)


class _Converter:
    """Applies a Plan through the editing API."""

    def __init__(self, ctx: Editor, plan: Plan):
        self.ctx = ctx
        self.plan = plan
        self.target = plan.target
        self.low = _LOW_NAME[plan.target]
        self.scopes = {id(s): s for s in ctx.index.scopes}
        self.names = ctx.names()
        self.casts: dict[tuple[int, str, int], str] = {}
        self.touched: set[int] = set()
        self.cast_count = 0
        self.weights = 0
        self._writer: DataFileWriter | None = None

    # -- weights -----------------------------------------------------------------------------------------
    def _writer_for_external(self) -> DataFileWriter:
        if self._writer is None:
            ctx = self.ctx
            folder = data_folder(ctx, "to-fp16")
            stem = ctx.path.name.removesuffix(".onnx") if ctx.path is not None else "model"
            pattern, n = f"{stem}.{self.low}.data", 1
            while (folder / pattern).exists():
                n += 1
                pattern = f"{stem}.{self.low}{n}.data"
            self._writer = DataFileWriter(ctx, folder, pattern)
        return self._writer

    def convert_tensor(self, tensor: TensorProto) -> None:
        value = low_precision(read_tensor(tensor, self.ctx.external_data_dir), self.target)
        tensor.data_type = self.target
        if is_external(tensor):
            self._writer_for_external().write(tensor, value)
        else:
            set_inline_bytes(tensor, value.tobytes())
        self.weights += 1

    def convert_flexible(self) -> None:
        for key, producer in self.plan.flexible.items():
            if self.plan.storage.get(key) != self.target:
                continue
            if isinstance(producer, TensorProto):
                self.convert_tensor(producer)
            elif producer.op_type == "Cast":
                self.ctx.set_attribute(producer, "to", self.target)
            elif producer.op_type == "Constant":
                value = next(a for a in producer.attribute if a.name == "value")
                self.convert_tensor(value.t)
            else:  # ConstantOfShape
                values = [a for a in producer.attribute if a.name == "value"]
                if values:
                    self.convert_tensor(values[0].t)
                else:
                    zero = helper.make_tensor("value", self.target, [1], [0])
                    self.ctx.set_attribute(producer, "value", zero)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            for location in self._writer.files:
                self.ctx.record("wrote", "data file", location)

    # -- casts -------------------------------------------------------------------------------------------
    def _type(self, scope: Scope, name: str) -> int:
        home = scope.resolve(name)
        if home is None:
            return 0
        changed = self.plan.storage.get((id(home), name))
        return changed if changed is not None else self.plan.types.get(id(home), {}).get(name, 0)

    def cast(self, home: Scope, name: str, wanted: int) -> str:
        """`name` as type `wanted`: one Cast per (tensor, type), a Cast's own input when that already fits."""
        key = (id(home), name, wanted)
        if key in self.casts:
            return self.casts[key]
        source = name
        producer = home.producer.get(name)
        if producer is not None and producer.op_type == "Cast" and producer.domain in ("", "ai.onnx"):
            source = producer.input[0]
            if self._type(home, source) == wanted:
                self.casts[key] = source
                return source
        suffix = self.low if wanted == self.target else "fp32"
        out = self.names.fresh(f"{name}_{suffix}")
        node = helper.make_node("Cast", [source], [out], name=self.names.fresh(f"{name}_to_{suffix}"), to=wanted)
        self.ctx.insert_nodes(home, len(home.container.node), [node])
        self.plan.storage[(id(home), out)] = wanted
        self.casts[key] = out
        self.touched.add(id(home))
        self.cast_count += 1
        return out

    def fix_outputs(self) -> None:
        """Graph outputs whose producer now makes another type: the producer writes a new name, a Cast
        writes the output's own name (so the interface keeps its names)."""
        for scope, name, wanted in self.plan.output_wants:
            have = self._type(scope, name)
            if have == wanted:
                continue
            producer = scope.producer.get(name)
            if producer is None:
                raise RewriteError(f"graph output {name!r} of {scope.name} has no producer to re-type")
            renamed = self.names.fresh(f"{name}_{self.low if have == self.target else 'fp32'}")
            self.ctx.rename_node_output(producer, list(producer.output).index(name), renamed)
            self.ctx.replace_uses({name: renamed}, scope=scope)
            self.plan.storage[(id(scope), renamed)] = have
            self.plan.storage[(id(scope), name)] = wanted
            node = helper.make_node("Cast", [renamed], [name], name=self.names.fresh(f"{name}_cast"), to=wanted)
            self.ctx.insert_nodes(scope, len(scope.container.node), [node])
            self.casts[(id(scope), renamed, wanted)] = name
            self.touched.add(id(scope))
            self.cast_count += 1

    def fix_reads(self) -> None:
        for scope, node, index, wanted in self.plan.reads:
            name = node.input[index]
            home = scope.resolve(name)
            if home is None or self._type(scope, name) == wanted:
                continue
            self.ctx.set_node_input(node, index, self.cast(home, name, wanted))

    def retype_records(self) -> None:
        """value_info (and, without keep_io, the interface) say the new types."""
        for (scope_id, name), new in self.plan.storage.items():
            scope = self.scopes.get(scope_id)
            if scope is None or new != self.target:
                continue
            for table in (scope.value_info, scope.inputs, scope.outputs):
                info = table.get(name)
                if info is not None and info.type.HasField("tensor_type"):
                    info.type.tensor_type.elem_type = new

    def reorder(self) -> None:
        for scope_id in self.touched:
            scope = self.scopes[scope_id]
            self.ctx.reorder_nodes(scope, sorted_nodes(scope))


@verb(writes=True, preserves_meaning=False)
def to_fp16(
    ctx: Editor,
    *,
    bf16: Annotated[bool, Opt("convert to bfloat16 instead of float16")] = False,
    keep_io: Annotated[bool, Opt("keep float32 graph inputs and outputs (Casts at the boundary)")] = True,
    block: Annotated[
        list[str], Opt("op types to keep in float32 (added to the default block list)", metavar="OP")
    ] = [],  # noqa: B006
    no_default_block: Annotated[bool, Opt("do not block the default ops (only those given with `block`)")] = False,
) -> None:
    """Convert float32 weights and compute to float16 (or bfloat16), keeping the float32 interface.

    Each node computes in the low type when its operator allows it (the schema's type constraints) and it is
    not blocked; weights are converted tensor by tensor (external ones streamed to a new data file), values
    beyond float16's range saturate. Casts go only where a reader wants another type than its producer
    makes: at the graph boundary, around blocked ops, and for fixed-type operands (Resize's scales); never
    two in a row. Subgraphs and model-local functions are converted too (a function's float32 interface kept).
    """
    ctx.index.check_references()  # a tensor produced twice, a dangling read, a cycle: no plan can be right
    target = TensorProto.BFLOAT16 if bf16 else TensorProto.FLOAT16
    blocked = set(block) | (set() if no_default_block else set(DEFAULT_BLOCK))
    plan = make_plan(ctx, target, blocked, keep_io)
    if not any(v == target for v in plan.storage.values()):
        ctx.note("no float32 tensor could be converted (no float32 compute, or all of it blocked)")
        return
    converter = _Converter(ctx, plan)
    with ctx.quietly():
        try:
            converter.convert_flexible()
        finally:
            converter.close()
        converter.fix_outputs()
        converter.fix_reads()
        converter.retype_records()
        converter.reorder()
    name = _LOW_NAME[target]
    ctx.record("converted", "model", name, f"{len(plan.converted)} nodes, {converter.weights} weights")
    ctx.record("added", "casts", name, f"{converter.cast_count} Cast nodes")
    if plan.blocked_ops:
        kept = ", ".join(f"{op} x{n}" for op, n in sorted(plan.blocked_ops.items()))
        ctx.note(f"kept in float32: {kept}")
    for function in plan.untyped_functions:
        ctx.note(f"{function}: its types could not be inferred from a call site, so it stays float32")
