"""graphsurgeon: lossless, lazy ONNX graph surgery.

    import graphsurgeon as gs
    gs.load("srcnn.onnx").promote_input(node="Resize", attr="scales").save("srcnn_dynamic.onnx")

The ModelProto stays the source of truth; :class:`Model` keeps indexes over it and exposes every CLI verb
as a method of the same name. Weights in external data are read only when a rewrite needs their values.
"""

from graphsurgeon.errors import (
    ExternalDataError,
    GraphStructureError,
    GraphSurgeonError,
    ModelLoadError,
    RewriteError,
    SaveError,
    SelectorError,
)
from graphsurgeon.model import Model, load

__version__ = "0.1.0"

__all__ = [
    "ExternalDataError",
    "GraphStructureError",
    "GraphSurgeonError",
    "Model",
    "ModelLoadError",
    "RewriteError",
    "SaveError",
    "SelectorError",
    "load",
]
