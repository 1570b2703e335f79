"""Cheap checks of the hardware-table scripts (benchmarks/hw_table.py, benchmarks/ecp5_fmax.py)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from bnn2fpga.backend.folding import LayerShape, fold_for_budget
from bnn2fpga.hw.timing import predict

BENCH = Path(__file__).resolve().parent.parent.parent / "benchmarks"


def _load(name: str) -> ModuleType:
    sys.path.insert(0, str(BENCH))
    try:
        spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(BENCH))


def test_finn_target_fps_is_512_cycles() -> None:
    hw_table = _load("hw_table")
    row = hw_table.ROWS["lfc-msb"]
    fps = float(row.build_args[row.build_args.index("--target-fps") + 1])
    # auto_fold's cycle limit is clock // fps: 195313 would give 511 and a much wider design.
    assert int(100e6 // fps) == 512
    assert int(100e6 // 195313) == 511
    assert hw_table.FINN_LFC["fps_100mhz"] == 100e6 / 512


def test_lfc_msb_folding_reaches_ii_512() -> None:
    shapes = [LayerShape("d0", 1024, 784), LayerShape("d1", 1024, 1024), LayerShape("d2", 1024, 1024),
              LayerShape("out", 10, 1024)]
    folding = fold_for_budget(shapes, 784, 512)
    assert all(-(-s.mh // pe) * -(-s.mw // simd) <= 512 for s, (_, pe, simd) in zip(shapes, folding.layers,
                                                                                    strict=True))


def test_ecp5_cases_run_at_ii_512() -> None:
    ecp5 = _load("ecp5_fmax")
    for case in ecp5.CASES.values():
        spec = ecp5.case_spec(case, 2)
        assert spec.layers[0].pe == case.pe and spec.layers[0].simd == case.simd
        assert predict(spec).initiation_interval == 512


def test_nextpnr_summary_parses_utilisation() -> None:
    ecp5 = _load("ecp5_fmax")
    log = ("Info: Device utilisation:\n"
           "Info: \t          TRELLIS_COMB:  5000/83640     5%\n"
           "Info: \t            TRELLIS_FF:  3000/83640     3%\n"
           "Info: \t                DP16KD:    58/  208    27%\n")
    util = ecp5.nextpnr_summary(log)["utilisation"]
    assert util == {"TRELLIS_COMB": 5000, "TRELLIS_FF": 3000, "DP16KD": 58}
