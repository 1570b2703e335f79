"""What a candidate costs in hardware at the target frame rate: the build's own planning (folding, the
engines' cycle and resource models) on the candidate's architecture. Weights do not change the cost,
so a candidate is costed before it is trained."""

from __future__ import annotations

import math
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..backend.build import BuildOptions, plan
from ..backend.folding import interval_limit
from ..boards import get_board
from ..checkpoint import Checkpoint
from ..nn.models import BNN
from .space import content_key

__all__ = ["Cost", "CostModel"]


@dataclass(frozen=True)
class Cost:
    """The cheapest folding that reaches the rate: its estimate; or why none does (``fits`` False)."""

    fits: bool
    lut: int | None = None
    ff: int | None = None
    bram36: float | None = None
    interval: int | None = None
    reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class CostModel:
    """Costs of architectures on one board at one rate, each computed once."""

    def __init__(self, board: str, target_fps: float | str | None, dataset: str, margin: float = 0.85) -> None:
        self.board = get_board(board)
        self.target_fps = target_fps
        self.dataset = dataset
        self.margin = margin
        self._known: dict[str, Cost] = {}

    def __call__(self, arch: dict[str, Any]) -> Cost:
        key = content_key(arch)
        if key not in self._known:
            self._known[key] = self._plan(arch)
        return self._known[key]

    def scalar(self, arch: dict[str, Any]) -> float:
        """One number to minimise: the fractions of the board's LUTs and block RAM used (inf: no fit)."""
        c = self(arch)
        if not c.fits or c.lut is None:
            return math.inf
        bram_kbits = (c.bram36 or 0.0) * 36
        return c.lut / self.board.lut + (bram_kbits / self.board.bram_kbits if self.board.bram_kbits else 0.0)

    def _plan(self, arch: dict[str, Any]) -> Cost:
        with tempfile.TemporaryDirectory(prefix="bnn2fpga-cost-") as tmp:
            path = Path(tmp) / "candidate.pt"
            Checkpoint.from_model(BNN(arch), dataset=self.dataset).save(path)
            p = plan(path, BuildOptions(board=self.board.name, target_fps=self.target_fps, margin=self.margin))
        if not p.fits or p.estimate is None:
            return Cost(False, reason=p.reason)
        host_fps = p.rate.get("host_fps")
        if (self.target_fps is None and host_fps and p.initiation_interval is not None
                and p.rate.get("bound") == "resources"):
            # Without --target-fps the rate is the host link's; where the chip holds back every folding
            # that keeps up, the build falls back to the fastest that fits, which misses that rate. A
            # conv network whose input and window units alone are slower than the link ("compute")
            # runs at their rate whatever its widths: that is the rate its candidates are compared at.
            clock = self.board.clock_mhz * 1e6
            limit = interval_limit(clock, host_fps)
            if p.initiation_interval > limit:
                return Cost(False, interval=p.initiation_interval, reason=(
                    f"the fastest folding that fits {self.board.name} takes {p.initiation_interval:,} cycles a "
                    f"frame ({clock / p.initiation_interval:,.0f} FPS); its host link feeds {host_fps:,.0f} FPS "
                    f"({limit:,} cycles)"))
        e = p.estimate
        return Cost(True, lut=int(e["lut"]), ff=int(e["ff"]), bram36=float(e.get("bram36", 0.0)),
                    interval=p.initiation_interval)
