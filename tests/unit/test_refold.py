"""When nextpnr cannot place the chosen folding, the build folds again with the estimate corrected
by what the placer counted, a bounded number of times, and never overrides a folding the user gave."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from bnn2fpga.backend.bitstream import DoesNotFit
from bnn2fpga.backend.build import (
    MAX_REFOLDS,
    BuildError,
    BuildOptions,
    BuildState,
    Refold,
    build,
    refold_or_refuse,
)
from bnn2fpga.backend.folding import FitReport, Folding, fits
from bnn2fpga.boards import get_board


def state(**options: object) -> BuildState:
    s = BuildState(Path("net.pt"), BuildOptions(board="icebreaker", **options), get_board("icebreaker"),  # type: ignore[arg-type]
                   Path("out"), Path(".out.partial"))
    folding = Folding(1, (("dense0", 1, 44), ("output", 1, 1)))
    s.fit = FitReport(folding, {"lut": 720.0, "ff": 2515.0, "bram36": 1.5}, 972)
    s.estimate = {"total": {"lut": 720.0, "ff": 2515.0, "bram36": 1.5}}
    return s


def too_big(used: int = 5729) -> DoesNotFit:
    return DoesNotFit("the design does not fit icebreaker (nextpnr could not place it)",
                      {"ICESTORM_LC": {"used": used, "available": 5280}, "ICESTORM_RAM": {"used": 13, "available": 30}})


def test_the_next_folding_is_slower_by_the_overfill_and_the_margin() -> None:
    s = state()
    with pytest.raises(Refold):
        refold_or_refuse(s, too_big())
    # 5,729 of 5,280 cells at 972 cycles per frame; the build keeps 15 % margin: within 1,241 cycles.
    assert s.interval_limit == math.ceil(972 * 5729 / 5280 / 0.85) == 1241
    assert s.refolds[0].to_json()["folding"]["layers"]["dense0"] == {"pe": 1, "simd": 44}
    assert s.refolds[0].overfill == pytest.approx(5729 / 5280) and s.refolds[0].interval == 972


def test_a_placement_that_fails_short_of_full_still_slows_down() -> None:
    s = state()
    with pytest.raises(Refold):
        refold_or_refuse(s, too_big(5000))
    assert s.interval_limit == math.ceil(972 / 0.85)


@pytest.mark.parametrize("chosen", [{"folding": Path("f.json")}, {"target_fps": 5000.0}])
def test_a_folding_or_rate_the_user_chose_is_refused_not_changed(chosen: dict[str, object]) -> None:
    s = state(**chosen)
    with pytest.raises(BuildError, match="does not fit icebreaker.*a lower --target-fps"):
        refold_or_refuse(s, too_big())
    assert s.refolds == [] and s.interval_limit is None


def test_refolds_are_bounded_and_the_refusal_lists_them() -> None:
    s = state()
    for _ in range(MAX_REFOLDS):
        with pytest.raises(Refold):
            refold_or_refuse(s, too_big())
    with pytest.raises(BuildError, match=r"Before: dense0 1x44, output 1x1 needed 109% of the logic cells"):
        refold_or_refuse(s, too_big())


def test_no_utilisation_means_no_guess() -> None:
    s = state()
    with pytest.raises(BuildError, match="does not fit"):
        refold_or_refuse(s, DoesNotFit("the design does not fit icebreaker", {}))


def test_block_ram_the_placer_lacks_is_refused_not_refolded() -> None:
    s = state()
    over = DoesNotFit("the design does not fit icebreaker (nextpnr could not place it)",
                      {"ICESTORM_LC": {"used": 2176, "available": 5280}, "ICESTORM_RAM": {"used": 35, "available": 30}})
    with pytest.raises(BuildError, match="block RAM needs 35 of the 30 ICESTORM_RAM") as e:
        refold_or_refuse(s, over)
    assert "flip-flops" not in str(e.value) and not s.refolds  # no slower folding tried: it cannot help


def test_the_fit_check_counts_in_the_boards_own_cells_and_kbit() -> None:
    ice, pynq = get_board("icebreaker"), get_board("pynq-z2")
    # Estimates count RAMB36s (36 Kbit): four are 144 Kbit, over the UP5K's 30 blocks of 4 Kbit.
    assert not fits({"lut": 900, "ff": 1000, "bram36": 4}, ice, 0.85)
    assert fits({"lut": 900, "ff": 1000, "bram36": 3}, ice, 0.85)
    # An estimated LUT6 is about 2.3 of its LUT4 logic cells: 2,000 of them (4,600 cells) are over 85 %.
    assert fits({"lut": 1900, "ff": 1000, "bram36": 0}, ice, 0.85)
    assert not fits({"lut": 2000, "ff": 1000, "bram36": 0}, ice, 0.85)
    # Yosys counts the family's own cells and blocks.
    assert fits({"lut": 4000, "ff": 1000, "bram36": 30}, ice, 1.0, counted=True)
    assert not fits({"lut": 900, "ff": 1000, "bram36": 31}, ice, 1.0, counted=True)
    assert not fits({"lut": 5281, "ff": 1000, "bram36": 0}, ice, 1.0, counted=True)
    # Xilinx: the estimate's own units.
    assert fits({"lut": 53200, "ff": 0, "bram36": 140}, pynq, 1.0)
    assert not fits({"lut": 0, "ff": 0, "bram36": 140.5}, pynq, 1.0)


def test_the_build_folds_again_each_time_the_placer_overflows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The whole loop: every placement overflows, so the build folds slower each time, then refuses
    with every folding it tried; nothing is left behind."""
    from bnn2fpga.backend import bitstream
    from bnn2fpga.hw.timing import predict
    from tests.conftest import random_checkpoint

    checkpoint = tmp_path / "net.pt"
    random_checkpoint("tfc", widths=[16, 16, 16], planes=[7], dataset="fashion-mnist").save(checkpoint)
    intervals: list[int] = []

    def overflowing(spec, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003
        intervals.append(predict(spec).initiation_interval)
        raise too_big()

    monkeypatch.setattr(bitstream, "make_bitstream", overflowing)
    out = tmp_path / "ice"
    with pytest.raises(BuildError, match="does not fit icebreaker") as refusal:
        build(checkpoint, BuildOptions(board="icebreaker", out=out), show_progress=False)
    assert len(intervals) == MAX_REFOLDS + 1
    # Each time the cheapest folding within the overfill / margin longer interval, never one placed before.
    for slower, faster in zip(intervals[1:], intervals, strict=False):
        assert faster < slower <= math.ceil(faster * 5729 / 5280 / 0.85 * 1.15 ** 3)
    assert str(refusal.value).count("Before: ") == MAX_REFOLDS
    # Every placement overflowed as much as the first: the refusal says what no folding removes.
    assert "holds its input frame twice in flip-flops (1 plane(s) x 784 pixels = 784 bits" in str(refusal.value)
    assert "1,568 of the 5,280 flip-flops" in str(refusal.value)
    assert not out.exists() and not (tmp_path / ".ice.partial").exists()
