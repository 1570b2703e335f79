"""The input-table rule, checked once: per colour channel, the 8-bit code of every pixel value."""

from __future__ import annotations

from collections.abc import Iterable

from .planes import as_integer

__all__ = ["CodeTable", "CodeTableError"]


class CodeTableError(ValueError):
    """An input table that breaks the rule (one row per channel, each 256 integer codes in 0..255)."""


class CodeTable(tuple[tuple[int, ...], ...]):
    """Per colour channel, the code (0..255) of each pixel value 0..255: an imported network's input
    quantiser as a function of the 8-bit pixel (``2x - 1`` at Q1.7, a driver's rounding).

    A tuple of tuples (it compares, hashes and serialises as one), so every field typed
    ``tuple[tuple[int, ...], ...]`` may hold it; constructing it is the one place the rule is checked.
    ``channels``, when given, is the number of rows the table must have."""

    __slots__ = ()

    def __new__(cls, rows: Iterable[Iterable[object]], *, channels: int | None = None,
                what: str = "input table") -> CodeTable:
        if isinstance(rows, CodeTable) and (channels is None or len(rows) == channels):
            return rows
        if isinstance(rows, str | bytes) or not isinstance(rows, Iterable):
            raise CodeTableError(f"{what} must be a list of rows of 256 codes, not {type(rows).__name__}")
        given = list(rows)
        if channels is not None and len(given) != channels:
            raise CodeTableError(f"{what} must hold one row per colour channel ({channels}), not {len(given)} rows")
        if not given:
            raise CodeTableError(f"{what} must hold at least one row of 256 codes")
        table = []
        for c, row in enumerate(given):
            values = list(row) if isinstance(row, Iterable) and not isinstance(row, str | bytes) else None
            if values is None or len(values) != 256:
                raise CodeTableError(f"{what}[{c}] must list the code of every pixel value 0..255 (256 integers)")
            codes = [as_integer(v) for v in values]
            bad = next((v for v, code in zip(values, codes, strict=True) if code is None or not 0 <= code <= 255),
                       None)
            if bad is not None or None in codes:
                raise CodeTableError(f"{what}[{c}] holds {bad!r}; codes are integers in 0..255")
            table.append(tuple(codes))
        return super().__new__(cls, table)  # type: ignore[arg-type]

    def __repr__(self) -> str:
        return f"CodeTable({len(self)} rows)"

