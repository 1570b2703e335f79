"""Per-weight sign-flip counting for every binary layer (docs/flip-pruning.md, step 1).

A :class:`FlipTracker` keeps a snapshot of ``sign(W)`` for each binary layer and,
at each check (end of an epoch by default, or after every optimiser step), adds 1
to a per-weight counter wherever the sign changed since the previous check. Only
the final interval of training counts: the tracker takes its first snapshot at
the start of that interval and ignores every check before it.

Sign convention is the one of :func:`bnn2fpga.nn.layers.binarize`: ``w >= 0`` is +1,
so a latent weight moving between 0 and a negative value flips, one between 0 and
a positive value does not.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch

from ..nn.models import BNN

MODES = ("epoch", "iteration")


def sign_bits(weight: torch.Tensor) -> torch.Tensor:
    """The bit a latent weight binarises to (1 = +1), as a bool tensor."""
    return weight.detach() >= 0


def count_flips(snapshots: Iterable[torch.Tensor]) -> torch.Tensor:
    """Flip counts over a sequence of sign snapshots (bool or ±1 tensors of one shape).

    The first snapshot is the reference; each later one adds 1 wherever it differs
    from its predecessor. The pure function behind :class:`FlipTracker`.
    """
    counts: torch.Tensor | None = None
    previous: torch.Tensor | None = None
    for snap in snapshots:
        bits = snap if snap.dtype == torch.bool else snap >= 0
        if previous is None:
            counts = torch.zeros(bits.shape, dtype=torch.int32)
        else:
            if bits.shape != previous.shape:
                raise ValueError(f"snapshot shape {tuple(bits.shape)} differs from {tuple(previous.shape)}")
            assert counts is not None
            counts += (bits != previous).to(torch.int32)
        previous = bits
    if counts is None:
        raise ValueError("count_flips needs at least one snapshot")
    return counts


@dataclass(frozen=True)
class FlipStats:
    """What a tracker measured: per layer (name order of ``BNN.binary_layers``) counts and how many checks."""

    names: tuple[str, ...]
    counts: tuple[torch.Tensor, ...]  # int32, the shape of each layer's weight
    checks: int  # comparisons made (epochs or iterations in the interval)
    mode: str

    def insensitive(self, tau: int = 0) -> list[torch.Tensor]:
        """Per layer, the bool mask of weights flipping more than ``tau`` times (docs/flip-pruning.md, step 3)."""
        return [c > tau for c in self.counts]

    def fractions(self, tau: int = 0) -> list[float]:
        """``p_l``: the fraction of insensitive weights of each layer."""
        return [float(m.float().mean()) if m.numel() else 0.0 for m in self.insensitive(tau)]

    def per_channel(self, tau: int = 0) -> list[torch.Tensor]:
        """Per layer, the number of insensitive weights in each output channel (row of the weight)."""
        return [m.reshape(m.shape[0], -1).sum(1) for m in self.insensitive(tau)]

    def to_record(self, *, saturate: bool = False) -> dict[str, object]:
        """Plain values and tensors only: the checkpoint is loaded with ``weights_only=True``.

        ``saturate`` stores the counts as uint8, clamped at 255, to keep a checkpoint small: only
        "more than tau flips" matters, for small tau."""
        counts = [c.clamp(max=255).to(torch.uint8) if saturate else c.clone() for c in self.counts]
        return {"flip_mode": self.mode, "flip_checks": self.checks, "flip_layers": list(self.names),
                "flip_counts": counts}

    @classmethod
    def from_record(cls, record: dict[str, object]) -> FlipStats | None:
        counts = record.get("flip_counts")
        names = record.get("flip_layers")
        if not isinstance(counts, list) or not isinstance(names, list) or len(counts) != len(names):
            return None
        if not all(isinstance(c, torch.Tensor) for c in counts):
            return None
        return cls(tuple(str(n) for n in names), tuple(c.to(torch.int32) for c in counts),
                   int(record.get("flip_checks", 0)), str(record.get("flip_mode", "epoch")))


class FlipTracker:
    """Counts sign flips of every binary layer of ``model`` over the final interval of a training run.

    Plug :meth:`on_epoch` into ``train(on_epoch=...)`` and :meth:`on_iteration` into
    ``train(on_iteration=...)``; the tracker uses the one matching ``mode``.

    ``interval`` is the number of final epochs counted (a float: in iteration mode
    a fraction of an epoch is meaningful, in epoch mode it is rounded up).
    ``interval=None`` counts the whole run.
    """

    def __init__(self, model: BNN, *, epochs: int, steps_per_epoch: int, interval: float | None = None,
                 mode: str = "epoch") -> None:
        if mode not in MODES:
            raise ValueError(f"flip counting mode must be one of {', '.join(MODES)}, not {mode!r}")
        if epochs < 1 or steps_per_epoch < 1:
            raise ValueError(f"epochs and steps_per_epoch must be positive, not {epochs}, {steps_per_epoch}")
        if interval is not None and not interval > 0:
            raise ValueError(f"flip interval must be a positive number of epochs, not {interval!r}")
        self.mode = mode
        self.layers = model.binary_layers()
        total_steps = epochs * steps_per_epoch
        if mode == "epoch":
            span = epochs if interval is None else min(epochs, math.ceil(interval))
            # The reference snapshot is the state at the end of epoch (epochs - span - 1),
            # i.e. before the interval's first epoch; -1 means "before training".
            self._start = epochs - span - 1
            self._unit = "epoch"
        else:
            span = total_steps if interval is None else min(total_steps, max(1, round(interval * steps_per_epoch)))
            self._start = total_steps - span - 1
            self._unit = "iteration"
        self._steps_per_epoch = steps_per_epoch
        self.counts = [torch.zeros(m.weight.shape, dtype=torch.int32) for _, m in self.layers]
        self.checks = 0
        self._snapshot: list[torch.Tensor] | None = None
        if self._start < 0:
            self._snapshot = self._signs()

    def _signs(self) -> list[torch.Tensor]:
        # On the CPU whatever device trains: the counts live there and a GPU run's comparisons are cheap.
        return [sign_bits(m.weight).cpu().clone() for _, m in self.layers]

    def _check(self, position: int) -> None:
        if position < self._start:
            return
        signs = self._signs()
        if self._snapshot is not None:
            for counts, before, after in zip(self.counts, self._snapshot, signs, strict=True):
                counts += (before != after).to(torch.int32)
            self.checks += 1
        self._snapshot = signs

    def on_epoch(self, model: BNN, epoch: int) -> None:
        if self.mode == "epoch":
            self._check(epoch)

    def on_iteration(self, model: BNN, epoch: int, it: int) -> None:
        if self.mode == "iteration":
            self._check(epoch * self._steps_per_epoch + it)

    def state(self) -> dict[str, object]:
        """Everything counted so far (plain tensors), so an interrupted training can resume counting."""
        return {"counts": [c.clone() for c in self.counts], "checks": self.checks,
                "snapshot": None if self._snapshot is None else [s.clone() for s in self._snapshot]}

    def load_state(self, state: dict[str, object]) -> None:
        counts, snapshot = state["counts"], state["snapshot"]
        assert isinstance(counts, list) and (snapshot is None or isinstance(snapshot, list))
        if [tuple(c.shape) for c in counts] != [tuple(c.shape) for c in self.counts]:
            raise ValueError("the saved flip counts do not fit this model's weights")
        self.counts = [c.to(torch.int32).clone() for c in counts]
        self.checks = int(state["checks"])  # type: ignore[call-overload]
        self._snapshot = None if snapshot is None else [s.to(torch.bool).clone() for s in snapshot]

    def stats(self) -> FlipStats:
        return FlipStats(tuple(n for n, _ in self.layers), tuple(c.clone() for c in self.counts), self.checks,
                         self.mode)


def layer_fractions(stats: FlipStats, tau: int, exempt: Sequence[int] = ()) -> list[float]:
    """``p_l`` per layer, 0 for exempt layer indices (never pruned)."""
    return [0.0 if i in exempt else p for i, p in enumerate(stats.fractions(tau))]
