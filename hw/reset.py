"""The reset of a generated design, distributed through registers instead of one net.

A synchronous reset wired from the top to every register is one net that spans the whole placed
design. nextpnr neither replicates nor buffers such a net, and on the ECP5-85F it became the
critical path of every large accelerator (12-14 ns of routing from the reset pin's inverter to a
flip-flop at the far side of the die; the FINN-shape CNV placed at 65-67 MHz). Vivado replicates a
high-fanout driver itself (``phys_opt_design``); the open flows do not, so the design does:

* the engines' datapath registers carry no reset at all (their validity travels beside them);
* each part of the design takes its reset from a register of its own (:func:`reset_parts`), loaded
  from the design's reset input, so the input fans out to a few dozen registers and each of those
  to one engine's control registers.

Timing: the parts that face the design's input port (whose ``ready`` may be combinational from the
port) take the reset input directly, the others one cycle later. While a part is still in reset
its producer has only just left reset and cannot yet offer a beat (every hand-off into it is a
registered ``valid``), and its own ``valid`` is a register at its initial value, so no beat is
lost or invented, provided the reset is held for at least :data:`MIN_RESET_CYCLES` cycles.
"""

from __future__ import annotations

from collections.abc import Mapping

from amaranth.hdl import Elaboratable, Module, ResetInserter, Signal, Value

__all__ = ["MIN_RESET_CYCLES", "reset_parts"]

#: The shortest reset a design with a distributed reset handles: the parts behind a reset register
#: enter reset a cycle after the rest and must be back at their initial state before those leave it.
MIN_RESET_CYCLES = 2


def reset_parts(m: Module, parts: Mapping[str, Elaboratable], reset: Value | None, *,
                direct: frozenset[str] = frozenset()) -> None:
    """Add ``parts`` to ``m`` as submodules named by their keys.

    With ``reset`` None they use the ``sync`` domain's own reset (simulations of a component alone).
    Otherwise each part is reset by a register of its own loaded from ``reset`` (the parts named in
    ``direct`` by ``reset`` itself); the ``sync`` domain of the design's top is then reset-less, so
    no register sees one global net."""
    for name, part in parts.items():
        if reset is None:
            m.submodules[name] = part
            continue
        if name in direct:
            local: Value = reset
        else:
            # Initial value 0: at power-up the registers hold their initial values already. Kept:
            # the registers are identical, and a synthesiser merges identical registers unless told
            # not to (Vivado honours KEEP; the Yosys flows carry it to the cell, see
            # ``backend.synth.KEEP_MARKED_REGISTERS``).
            local = Signal(name=f"{name}_rst", reset_less=True, attrs={"keep": 1})
            m.d.sync += local.eq(reset)
        m.submodules[name] = ResetInserter({"sync": local})(part)
