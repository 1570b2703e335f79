"""A board's top level for the open toolchains: oscillator -> PLL -> the UART board core, a reset
button and status LEDs, on the pins of an ``amaranth-boards`` platform.

- **clock**: the PLL makes the design clock from the board's oscillator (:mod:`bnn2fpga.hw.pll`);
- **reset**: held while the PLL is not locked or the reset button is pressed, released
  synchronously to the design clock (the bridge then hunts for a request: nothing else to set up),
  and distributed through a register per part (``hw/reset.py``: the clock domain itself has no
  reset, so no net reaches every flip-flop);
- **LEDs**: a heartbeat (about 1.5 Hz: configured, clock running), ``busy`` while a request is
  being received or answered, and an error light for a third of a second or so after each broken request.
"""

from __future__ import annotations

from amaranth.hdl import Cat, ClockDomain, Elaboratable, Module, Signal
from amaranth.lib.cdc import FFSynchronizer

from ..boards import BoardPins
from .board import UartBoard
from .pll import PllSetting, pll_instance
from .spec import AcceleratorSpec

__all__ = ["BoardTop"]


class BoardTop(Elaboratable):
    """``pins``: the board's (``bnn2fpga.boards``, its ``open_flow.pins``)."""

    def __init__(self, spec: AcceleratorSpec, pins: BoardPins, pll: PllSetting, divisor: int, *,
                 timeout_bytes: int = 4) -> None:
        self.spec, self.pins, self.pll, self.divisor = spec, pins, pll, divisor
        self.timeout_bytes = timeout_bytes

    def elaborate(self, platform: object) -> Module:
        pins = self.pins
        m = Module()
        request = platform.request  # type: ignore[attr-defined]

        m.domains.sync = sync = ClockDomain("sync", reset_less=True)
        locked = Signal()
        if self.pll.family == "ice40":
            # SB_PLL40_PAD takes the oscillator's package pin itself, not a buffered clock.
            clk_in = request(pins.clock, 0, dir="-")
            m.submodules.pll = pll_instance(self.pll, clk_in.io, sync.clk, locked)
        else:
            clk_in = request(pins.clock, 0)
            m.submodules.pll = pll_instance(self.pll, clk_in.i, sync.clk, locked)
        platform.add_clock_constraint(sync.clk, self.pll.f_out_hz)  # type: ignore[attr-defined]

        button = request(*pins.reset)
        pressed = Signal()
        m.submodules.button_sync = FFSynchronizer(button.i, pressed, o_domain="sync")
        # Reset while the PLL is unlocked or the button held, two registers deep: at configuration
        # the registers start at 1, so the design starts in reset and leaves it two cycles after lock.
        hold = Signal(2, init=0b11, reset_less=True)
        m.d.sync += hold.eq(Cat(~locked | pressed, hold[0]))

        uart = request("uart", 0)
        m.submodules.core = core = UartBoard(self.spec, self.divisor, timeout_bytes=self.timeout_bytes,
                                             reset_tree=True)
        m.d.comb += core.rst.eq(hold[1])
        m.d.comb += [core.rx.eq(uart.rx.i), uart.tx.o.eq(core.tx)]
        if pins.uart_enable is not None:
            m.d.comb += request(*pins.uart_enable).o.eq(1)

        # The heartbeat's tick also times the error light, so no second long counter sits on a
        # critical path: a broken request lights it until the end of the next tick period.
        f = self.pll.f_out_hz
        # `tick` (heartbeat == f // 3) and `changed` (the error count moved) are registers: the wide
        # compares in front of the light's enable were the iCE40 board's critical path. A light a
        # cycle late is still a light.
        heartbeat = Signal(range(f // 3 + 1))
        tick = Signal()
        beat = Signal()
        with m.If(tick):
            m.d.sync += [heartbeat.eq(0), beat.eq(~beat), tick.eq(0)]
        with m.Else():
            m.d.sync += [heartbeat.eq(heartbeat + 1), tick.eq(heartbeat == f // 3 - 1)]

        last_errors = Signal.like(core.errors)
        changed = Signal()
        error_seen = Signal()
        error_light = Signal()
        m.d.sync += [last_errors.eq(core.errors), changed.eq(core.errors != last_errors)]
        with m.If(tick):
            m.d.sync += [error_light.eq(error_seen | changed), error_seen.eq(0)]
        with m.Elif(changed):
            m.d.sync += [error_seen.eq(1), error_light.eq(1)]

        leds = {}
        for what, value in ((pins.heartbeat, beat), (pins.busy, core.busy), (pins.error, error_light)):
            leds[what] = leds.get(what, 0) | value  # iCEBreaker: busy and error share the red LED
        for (name, number), value in leds.items():
            m.d.comb += request(name, number).o.eq(value)
        return m
