"""The one exception type of custom_ops."""

from __future__ import annotations


class CustomOpError(Exception):
    """A custom op cannot be declared, looked up, exported or run as asked."""
