"""Symbolic dims: an int, or a monomial ``coef * S1 * S2 ...`` over named symbols; parsing of ``NAME:DIMS`` specs.

A product keeps its symbols *major* (``2*batch`` is a ``batch`` axis merged with a minor axis of 2), which is
how exporters merge a batch or sequence axis with the axes after it. Sums of different symbols are not
representable: they become unknown (None), and whatever needed them refuses rather than guesses.
"""

from __future__ import annotations

from dataclasses import dataclass

from graphsurgeon.errors import RewriteError


@dataclass(frozen=True)
class Mono:
    """``coef * prod(symbol ** power)`` with at least one symbol; symbols sorted by name."""

    coef: int
    syms: tuple[tuple[str, int], ...]

    @staticmethod
    def of(symbol: str) -> Mono:
        return Mono(1, ((symbol, 1),))

    def __str__(self) -> str:
        parts = [name if power == 1 else f"{name}^{power}" for name, power in self.syms]
        return "*".join(([str(self.coef)] if self.coef != 1 else []) + parts)

    @property
    def symbol(self) -> str | None:
        """The symbol when this is exactly one symbol (coef 1, power 1)."""
        return self.syms[0][0] if self.coef == 1 and len(self.syms) == 1 and self.syms[0][1] == 1 else None

    def atoms(self) -> list[str]:
        """Its symbols in order, each repeated by its power (the coefficient is the minor factor)."""
        return [name for name, power in self.syms for _ in range(power)]


Dim = int | Mono
MaybeDim = Dim | None


def _make(coef: int, powers: dict[str, int]) -> Dim:
    syms = tuple(sorted((k, v) for k, v in powers.items() if v))
    if coef == 0 or not syms:
        return coef
    return Mono(coef, syms)


def _parts(d: Dim) -> tuple[int, dict[str, int]]:
    return (d, {}) if isinstance(d, int) else (d.coef, dict(d.syms))


def mul(a: MaybeDim, b: MaybeDim) -> MaybeDim:
    if a is None or b is None:
        return None
    if type(a) is int and (type(b) is int or a == 1):
        return a * b if type(b) is int else b
    if b == 1:
        return a
    ca, pa = _parts(a)
    cb, pb = _parts(b)
    for k, v in pb.items():
        pa[k] = pa.get(k, 0) + v
    return _make(ca * cb, pa)


def div(a: MaybeDim, b: MaybeDim) -> MaybeDim:
    """Exact division, or None."""
    if a is None or b is None:
        return None
    ca, pa = _parts(a)
    cb, pb = _parts(b)
    if cb == 0 or ca % cb:
        return None
    for k, v in pb.items():
        if pa.get(k, 0) < v:
            return None
        pa[k] -= v
    return _make(ca // cb, pa)


def add(a: MaybeDim, b: MaybeDim) -> MaybeDim:
    if a is None or b is None:
        return None
    if isinstance(a, int) and isinstance(b, int):
        return a + b
    if isinstance(a, int) or isinstance(b, int):
        return a if b == 0 else (b if a == 0 else None)
    if a.syms != b.syms:
        return None
    return _make(a.coef + b.coef, dict(a.syms))


def neg(a: MaybeDim) -> MaybeDim:
    return mul(a, -1)


def product(dims: list[MaybeDim] | tuple[MaybeDim, ...]) -> MaybeDim:
    out: MaybeDim = 1
    for d in dims:
        out = mul(out, d)
    return out


def evaluate(d: MaybeDim, env: dict[str, int]) -> int | None:
    """The value at the symbols' values in `env` (None if a symbol has none)."""
    if d is None or isinstance(d, int):
        return d
    out = d.coef
    for name, power in d.syms:
        if name not in env:
            return None
        out *= env[name] ** power
    return out


def symbols(d: MaybeDim) -> tuple[str, ...]:
    return () if d is None or isinstance(d, int) else tuple(name for name, _ in d.syms)


def fmt(d: MaybeDim) -> str:
    return "?" if d is None else str(d)


def fmt_shape(shape: tuple[MaybeDim, ...] | list[MaybeDim] | None) -> str:
    return "?" if shape is None else "[" + ",".join(fmt(d) for d in shape) + "]"


# -- specs ---------------------------------------------------------------------------------------------------------
Spec = int | str | None  # a value, a symbol name, or unknown ("?")


def parse_dims(text: str, what: str) -> list[Spec]:
    """``1,3,batch,?`` -> [1, 3, "batch", None]."""
    body = text.strip().strip("[]()")
    dims: list[Spec] = []
    for part in (p.strip() for p in body.split(",")) if body else ():
        if not part:
            raise RewriteError(f"{what}: empty dim in {text!r}")
        if part.lstrip("-").isdigit():
            value = int(part)
            if value < 0:
                raise RewriteError(f"{what}: negative dim {value} in {text!r}")
            dims.append(value)
        elif part == "?":
            dims.append(None)
        elif part.replace("_", "a").replace(".", "a").replace("-", "a").isalnum() and not part[0].isdigit():
            dims.append(part)
        else:
            raise RewriteError(f"{what}: {part!r} is not a dim (an integer, a symbol name, or ?)")
    return dims


def parse_name_dims(spec: str) -> tuple[str, list[Spec]]:
    """``x:1,3,224,224`` -> ("x", [1, 3, 224, 224])."""
    if ":" not in spec:
        raise RewriteError(f"shape {spec!r}: expected NAME:DIMS, e.g. x:1,3,224,224 or x:batch,3,224,224")
    name, dims = spec.rsplit(":", 1)
    return name, parse_dims(dims, f"shape of {name!r}")


def parse_dim_assignment(spec: str) -> tuple[str, Spec]:
    """``batch=1`` -> ("batch", 1); ``batch=N`` -> ("batch", "N") (``batch:1`` too)."""
    if "=" not in spec and ":" in spec:
        spec = spec.replace(":", "=", 1)
    if "=" not in spec:
        raise RewriteError(f"dim {spec!r}: expected PARAM=VALUE, e.g. batch=1")
    name, value = (s.strip() for s in spec.split("=", 1))
    parsed = parse_dims(value, f"dim {name!r}")
    if not name or len(parsed) != 1 or parsed[0] is None:
        raise RewriteError(f"dim {spec!r}: expected PARAM=VALUE with one integer or symbol, e.g. batch=1")
    return name, parsed[0]
