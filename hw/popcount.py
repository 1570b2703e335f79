"""Pipelined popcount adder tree.

The tree adds the XNOR bits of one PE: the first level sums bits in threes
(a full adder: 6 inputs of x and w per 2 output bits, one LUT6 each), every
later level adds pairs. A register follows every ``levels_per_stage`` levels
and always the last level, so the critical path does not grow with SIMD.
``popcount_stages`` is the exact number of registers, used by the cycle model.
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal, Value

from .spec import bits_for, ceil_div

__all__ = ["popcount_levels", "popcount_stages", "popcount_tree"]


def popcount_levels(n: int) -> int:
    """Adder levels of the tree over ``n`` one-bit inputs (0 for a single bit)."""
    if n < 1:
        raise ValueError(f"Popcount width must be a positive integer, not {n!r}")
    if n == 1:
        return 0
    levels, width = 1, ceil_div(n, 3)
    while width > 1:
        width = ceil_div(width, 2)
        levels += 1
    return levels


def popcount_stages(n: int, levels_per_stage: int) -> int:
    """Registers between the XNOR inputs and the popcount output (at least one)."""
    if levels_per_stage < 0:
        raise ValueError(f"levels_per_stage must be a non-negative integer, not {levels_per_stage!r}")
    levels = popcount_levels(n)
    if levels == 0 or levels_per_stage == 0:
        return 1
    return ceil_div(levels, levels_per_stage)


def popcount_tree(m: Module, bits: Value, levels_per_stage: int, name: str) -> Signal:
    """Add the popcount of ``bits`` to ``m``; the result is registered.

    Returns a signal valid ``popcount_stages(len(bits), levels_per_stage)`` cycles
    after ``bits`` (the pipeline never stalls; callers delay their control bits
    by the same number of cycles). The tree's registers carry no reset: they hold data whose
    validity travels beside them, and a reset wired to every adder bit was the widest net of a
    large design (the ECP5 critical path of the FINN-shape CNV).
    """
    n = len(bits)
    # Name the input first: slicing a plain Signal is cheap for Amaranth's netlist builder,
    # slicing an expression n times re-walks it n times (builds slowed down quadratically).
    flat = Signal(n, name=f"{name}_in")
    m.d.comb += flat.eq(bits)
    # Each node: (value, max value it can reach) so sums get exactly the width they need.
    nodes: list[tuple[Value, int]] = [(flat[i], 1) for i in range(n)]
    level = 0
    group = 3
    while len(nodes) > 1:
        merged: list[tuple[Value, int]] = []
        for k in range(0, len(nodes), group):
            chunk = nodes[k:k + group]
            total_max = sum(mx for _, mx in chunk)
            total = chunk[0][0]
            for value, _ in chunk[1:]:
                total = total + value
            merged.append((total, total_max))
        level += 1
        group = 2
        if levels_per_stage and level % levels_per_stage == 0 and len(merged) > 1:
            # Register an intermediate level (the final level is registered below).
            staged = []
            for idx, (value, mx) in enumerate(merged):
                reg = Signal(bits_for(mx), name=f"{name}_l{level}_{idx}", reset_less=True)
                m.d.sync += reg.eq(value)
                staged.append((reg, mx))
            merged = staged
        nodes = merged
    value, mx = nodes[0]
    out = Signal(bits_for(mx), name=f"{name}_pc", reset_less=True)
    m.d.sync += out.eq(value)
    return out
