"""Byte counts: parsing sizes with units ("1MiB", "512KB") and printing them, via humanfriendly."""

from __future__ import annotations

from graphsurgeon.errors import GraphSurgeonError


def parse_size(value: object, *, what: str = "size") -> int:
    """A byte count from an int or a string with units (KB = 1000, KiB = 1024); never negative."""
    if isinstance(value, bool):
        raise GraphSurgeonError(f"{what}: expected a byte count, not {value!r}")
    if isinstance(value, int):
        size = value
    elif isinstance(value, str):
        import humanfriendly  # on first use: most commands never parse a size

        try:
            size = int(humanfriendly.parse_size(value.strip()))
        except humanfriendly.InvalidSize:
            raise GraphSurgeonError(
                f"{what}: {value!r} is not a size (a byte count such as 1048576, 1MiB or 512KB)"
            ) from None
    else:
        raise GraphSurgeonError(f"{what}: expected a byte count, not {value!r}")
    if size < 0:
        raise GraphSurgeonError(f"{what}: a size cannot be negative ({value!r})")
    return size


def format_bytes(n: int | float) -> str:
    """``1.5 KiB``, ``351 MiB``: binary units, as the README and reports print them."""
    import humanfriendly

    return str(humanfriendly.format_size(int(n), binary=True))
