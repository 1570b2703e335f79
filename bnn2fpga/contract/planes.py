"""The kept-bit-planes rule, checked once: which of a pixel's eight bits a network reads."""

from __future__ import annotations

import operator
from collections.abc import Iterable

__all__ = ["ALL_PLANES", "Planes", "PlanesError", "as_integer"]


class PlanesError(ValueError):
    """A set of bit planes that breaks the rule (strictly ascending, each in 0..7, at least one)."""


class Planes(tuple[int, ...]):
    """Bit planes a network reads of each 8-bit pixel: at least one, strictly ascending, each in 0..7.

    A tuple (it compares, hashes, prints and serialises as one), so every ``tuple[int, ...]`` field
    may hold it; constructing it is the one place the rule is checked."""

    __slots__ = ()

    def __new__(cls, planes: Iterable[object] = (), *, what: str = "planes") -> Planes:
        if isinstance(planes, Planes):
            return planes
        given = list(planes)
        values = [as_integer(p) for p in given]
        if not values or None in values or any(not 0 <= p <= 7 for p in values if p is not None) \
                or any(b <= a for a, b in zip(values, values[1:], strict=False)):  # type: ignore[operator]
            raise PlanesError(f"{what} must be strictly ascending bit planes in 0..7 (at least one), not {given!r}")
        return super().__new__(cls, values)  # type: ignore[arg-type]

    def __repr__(self) -> str:
        return tuple.__repr__(self)


def as_integer(value: object) -> int | None:
    """``value`` as an int if it is an integer (numpy's included) and not a bool, else None."""
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        return None
    return operator.index(value)  # type: ignore[arg-type]


ALL_PLANES = Planes(range(8))
