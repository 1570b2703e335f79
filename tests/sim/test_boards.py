"""The board table."""

from __future__ import annotations

import pytest

from bnn2fpga.boards import BOARDS, UnknownBoardError, get_board


def test_pynq_z2_matches_design() -> None:
    b = get_board("pynq-z2")
    assert (b.part, b.family, b.lut, b.ff, b.bram, b.dsp, b.clock_mhz) == (
        "xc7z020clg400-1", "xc7", 53_200, 106_400, 140, 220, 100.0)
    assert (b.memory.kind, b.memory.kbits, b.bram_kbits) == ("RAMB36", 36, 140 * 36)


def test_lookup_is_case_insensitive_and_boards_are_frozen() -> None:
    assert get_board("ZCU104") is BOARDS["zcu104"]
    with pytest.raises(AttributeError):
        get_board("kv260").lut = 1  # type: ignore[misc]


def test_ecp5_board_records_its_memory_block() -> None:
    b = get_board("ulx3s-85f")
    assert (b.family, b.lut, b.lut_inputs, b.bram, b.memory.kind, b.memory.kbits) == (
        "ecp5", 83_640, 4, 208, "DP16KD", 18)


def test_unknown_board_lists_valid_names() -> None:
    with pytest.raises(UnknownBoardError) as info:
        get_board("pynq-z1")
    assert str(info.value) == (
        "unknown board 'pynq-z1'; valid boards: icebreaker, kv260, pynq-z2, ultra96-v2, ulx3s-85f, zcu104")


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_each_board_entry_carries_its_whole_flow(name: str) -> None:
    """A board is one entry: a Xilinx board has its processor block and no open flow; an open board
    has its bitstream flow, a serial host link from the same USB-serial chip, and its oscillator."""
    b = BOARDS[name]
    if b.vendor == "xilinx":
        assert b.block_design is not None and b.open_flow is None
        assert b.host_link is not None and "AXI DMA" in b.host_link.name
    else:
        flow = b.open_flow
        assert flow is not None and b.block_design is None
        assert b.host_link is not None and flow.uart_chip in b.host_link.name
        assert b.host_link.bytes_per_second == flow.uart_rates[0] / 10  # the fastest rate, 8N1
        assert flow.oscillator_hz == b.clock_mhz * 1e6
        assert list(flow.clock_ladder_mhz) == sorted(flow.clock_ladder_mhz, reverse=True)
        assert "{file}" in flow.loader


@pytest.mark.parametrize("name", sorted(n for n, b in BOARDS.items() if b.open_flow is not None))
def test_open_board_pins_exist_on_its_amaranth_boards_platform(name: str) -> None:
    flow = BOARDS[name].open_flow
    assert flow is not None
    platform = flow.load_platform()
    pins = flow.pins
    wanted = [(pins.clock, 0), pins.reset, pins.heartbeat, pins.busy, pins.error]
    if pins.uart_enable is not None:
        wanted.append(pins.uart_enable)
    missing = [r for r in wanted if r not in platform.resources]
    assert not missing, f"{name}: {platform.__class__.__name__} has no {missing}"
    assert platform.default_clk == pins.clock
