"""The exceptions graphsurgeon raises for user errors.

Every user-facing failure (bad file, bad selector, hostile external data, impossible rewrite) is a
:class:`GraphSurgeonError` with a message meant to be read by a person; the CLI prints it on one line
and exits non-zero. Anything else escaping is a bug in graphsurgeon.
"""

from __future__ import annotations


class GraphSurgeonError(Exception):
    """Base class: a clear, user-facing error."""


class ModelLoadError(GraphSurgeonError):
    """The input is not a readable ONNX model (missing, empty, corrupt, not ONNX)."""


class ExternalDataError(GraphSurgeonError):
    """External data is missing, out of bounds, or points outside the model's folder."""


class SelectorError(GraphSurgeonError):
    """A node selector matched nothing, or more than one node where one was required."""


class RewriteError(GraphSurgeonError):
    """A rewrite cannot be applied to this model as asked."""


class GraphStructureError(GraphSurgeonError):
    """The graph itself is broken: a cycle, a dangling reference, a tensor produced twice."""


class SaveError(GraphSurgeonError):
    """The model could not be written where asked."""
