"""The shipped ops, one module each. Importing this package registers them."""

from .cumprod import cumprod
from .dynamic_resize import dynamic_resize
from .searchsorted import searchsorted

__all__ = ["cumprod", "dynamic_resize", "searchsorted"]
