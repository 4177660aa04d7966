"""How types read in messages and reports: ``float[1, 3, N, 224]``, ``seq<int64[?]>``."""

from __future__ import annotations

from onnx import TensorProto, TypeProto, helper


def dtype_name(elem_type: int) -> str:
    """``float``, ``int64``...; an unknown enum value reads as ``dtype(N)`` rather than failing."""
    try:
        return str(helper.tensor_dtype_to_string(elem_type)).removeprefix("TensorProto.").lower()
    except (KeyError, ValueError):
        return f"dtype({elem_type})"


def format_dims(dims) -> str:
    return ", ".join(str(d.dim_value) if d.HasField("dim_value") else (d.dim_param or "?") for d in dims)


def format_type(type_proto: TypeProto) -> str:
    kind = type_proto.WhichOneof("value")
    if kind in ("tensor_type", "sparse_tensor_type"):
        t = getattr(type_proto, kind)
        dtype = dtype_name(t.elem_type) if t.elem_type != TensorProto.UNDEFINED else "?"
        if not t.HasField("shape"):
            return f"{dtype}[unknown rank]"
        return f"{dtype}[{format_dims(t.shape.dim)}]"
    if kind in ("sequence_type", "optional_type"):
        return f"{kind.removesuffix('_type')}<{format_type(getattr(type_proto, kind).elem_type)}>"
    if kind == "map_type":
        return f"map<{dtype_name(type_proto.map_type.key_type)}, {format_type(type_proto.map_type.value_type)}>"
    return "unknown type"
