"""Is every string of a model UTF-8? ONNX names and strings must be; protobuf's proto2 parser does not check,
and hands out `bytes` for a string field that is not (which would break every name lookup later).

`text_is_utf8` checks in C, by parsing the serialized bytes again as a strict copy of ModelProto;
`find_non_utf8` walks the fields in Python and says where the bad text is.
"""

from __future__ import annotations

import functools

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import DecodeError, Message
from onnx import ModelProto

from graphsurgeon.core.external_data import declared_nbytes, is_external


@functools.cache
def _strict_model_class() -> type[Message] | None:
    """onnx's ModelProto declared again with protobuf's UTF-8 validation on every string field (an edition-2023
    copy of onnx-ml.proto: proto2 semantics plus `utf8_validation = VERIFY`); None where protobuf cannot."""
    try:
        proto = descriptor_pb2.FileDescriptorProto()
        ModelProto.DESCRIPTOR.file.CopyToProto(proto)
        package = proto.package
        proto.name, proto.package = "graphsurgeon_strict_utf8.proto", "graphsurgeon_strict_utf8"
        messages = list(proto.message_type)
        while messages:
            message = messages.pop()
            messages.extend(message.nested_type)
            for field in message.field:
                if field.type_name.startswith(f".{package}."):
                    field.type_name = f".{proto.package}.{field.type_name[len(package) + 2 :]}"
        proto.syntax, proto.edition = "editions", descriptor_pb2.EDITION_2023
        features = proto.options.features
        features.field_presence = features.EXPLICIT
        features.enum_type = features.CLOSED
        features.repeated_field_encoding = features.EXPANDED
        features.message_encoding = features.LENGTH_PREFIXED
        features.json_format = features.LEGACY_BEST_EFFORT
        features.utf8_validation = features.VERIFY
        pool = descriptor_pool.DescriptorPool()
        pool.Add(proto)
        return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{proto.package}.ModelProto"))
    except Exception:  # an older protobuf without editions: the Python walk does the check
        return None


def text_is_utf8(model: ModelProto, data: bytes) -> bool:
    """True when every string field of `data` (the serialized `model`) is UTF-8, checked in C by parsing the
    bytes again as the strict copy of ModelProto: ~50x faster than walking the fields in Python (a 10,000-node
    graph: 3 ms instead of 35 ms). False means "not shown": find_non_utf8 then looks (and says where).

    The second parse copies the inline weights, so a big file that is mostly inline weights (few strings, a
    quick walk) is left to the walk."""
    strict = _strict_model_class()
    if strict is None:
        return False
    if len(data) > 64 << 20:
        inline = sum(max(declared_nbytes(t) or 0, 0) for t in model.graph.initializer if not is_external(t))
        if (len(data) - inline) * 32 < len(data):
            return False
    try:
        strict().ParseFromString(data)
    except (DecodeError, RuntimeError, ValueError):
        return False
    return True


_TEXT_PLAN: dict[object, list[tuple[str, bool, bool]]] = {}


def _text_fields(descriptor) -> list[tuple[str, bool, bool]]:
    """(field name, repeated, is a string) of the string and message fields of a message type."""
    plan = _TEXT_PLAN.get(descriptor)
    if plan is None:
        plan = [
            (f.name, f.is_repeated, f.type == FieldDescriptor.TYPE_STRING)
            for f in descriptor.fields
            if f.type in (FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_MESSAGE)
        ]
        _TEXT_PLAN[descriptor] = plan
    return plan


def find_non_utf8(message: Message) -> str | None:
    """Where a string field holds bytes that are not UTF-8 (protobuf then hands out `bytes`), or None.

    One iterative walk over string and message fields only: weights (bytes and numeric fields) are not read.
    """
    stack: list[Message] = [message]
    while stack:
        current = stack.pop()
        for name, repeated, is_string in _text_fields(current.DESCRIPTOR):
            if repeated:
                values = getattr(current, name)
                if is_string:
                    bad = next((v for v in values if type(v) is bytes), None)
                    if bad is not None:
                        return f"{current.DESCRIPTOR.name}.{name} {bad!r}"
                elif values:
                    stack.extend(values)
            elif is_string:
                value = getattr(current, name)
                if type(value) is bytes:
                    return f"{current.DESCRIPTOR.name}.{name} {value!r}"
            elif current.HasField(name):
                stack.append(getattr(current, name))
    return None
