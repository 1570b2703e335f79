"""The board table."""

from __future__ import annotations

import pytest

from bnn2fpga.backend.boards import BOARDS, UnknownBoardError, get_board


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
