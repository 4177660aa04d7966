"""graphsurgeon: lossless, lazy ONNX graph surgery.

    import graphsurgeon as gs
    gs.load("srcnn.onnx").promote_input(node="Resize", attr="scales").save("srcnn_dynamic.onnx")

The ModelProto stays the source of truth; :class:`Model` keeps indexes over it, offers an editing API that
keeps them valid and records every change, and exposes every CLI verb as a method of the same name. Weights
in external data are read only when a rewrite needs their values.
"""

from graphsurgeon.core.changes import Change, ChangeLog
from graphsurgeon.core.numeric import CompareReport, OutputComparison
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
from graphsurgeon.recipe import Recipe, RecipeError, Step, StepError, apply
from graphsurgeon.summary import Summary
from graphsurgeon.verbs.check import CheckReport, Finding
from graphsurgeon.verbs.inspect import ModelReport

__version__ = "0.2.0"

__all__ = [
    "Change",
    "ChangeLog",
    "CheckReport",
    "CompareReport",
    "ExternalDataError",
    "Finding",
    "GraphStructureError",
    "GraphSurgeonError",
    "Model",
    "ModelLoadError",
    "ModelReport",
    "OutputComparison",
    "Recipe",
    "RecipeError",
    "RewriteError",
    "SaveError",
    "SelectorError",
    "Step",
    "StepError",
    "Summary",
    "apply",
    "load",
]
