"""The memory-backed vector buffer: every fold read back as written, in every width relation."""

from __future__ import annotations

import random

import pytest
from amaranth.sim import Simulator

from bnn2fpga.hw.vecbuf import VectorBuffer, buffer_kind

# (w, beats, simd, planes): each of the four layouts, planes, a ragged last fold, single beats.
CASES = [
    (4, 6, 8, 1),    # lanes: w divides simd
    (2, 7, 6, 3),    # lanes, 3 planes, ragged last row
    (2, 131, 4, 1),  # lanes in block RAM (66 rows: whole-row writes from lane registers), ragged
    (8, 3, 4, 1),    # slices: simd divides w
    (6, 4, 6, 2),    # slices, one fold per word
    (3, 5, 4, 1),    # straddling rows (four: written late)
    (5, 4, 3, 2),    # straddling words, 2 planes
    (6, 1, 4, 1),    # straddling words, a single beat
    (1, 9, 9, 1),    # one fold per vector
    # The shortest vectors whose writes land a cycle late (VectorBuffer._late_writes), and the
    # longest that write at once: the last beat's row against the first row read.
    (4, 4, 8, 1),    # lanes, two rows: late
    (8, 2, 4, 1),    # slices, two words: late
    (3, 4, 4, 1),    # straddling rows, three rows: at once
    (5, 3, 3, 1),    # straddling words, three words: late
    (5, 2, 3, 1),    # straddling words, two words: at once
]


def folds(vector: list[list[int]], simd: int) -> list[int]:
    """Plane-major folds of a vector given per plane as a bit list; padding bits read 0."""
    out = []
    for bits in vector:
        padded = bits + [0] * (-len(bits) % simd)
        for f in range(0, len(padded), simd):
            out.append(sum(b << i for i, b in enumerate(padded[f:f + simd])))
    return out


def reader(dut: VectorBuffer, vectors: int, reads: int, rng: random.Random, seen: list[list[int]]):
    """A testbench taking ``vectors`` vectors after random waits and reading ``reads`` folds of each,
    with random gaps, into ``seen``: as an MVTU reads its buffer."""
    async def consumer(ctx):
        for _ in range(vectors):
            for _ in range(rng.choice([0, 2, 7])):
                await ctx.tick()
            ctx.set(dut.source.ready, 1)
            await ctx.tick().until(dut.source.valid)
            ctx.set(dut.source.ready, 0)
            got = []
            for _ in range(reads):
                ctx.set(dut.advance, 1)
                await ctx.tick()
                ctx.set(dut.advance, 0)
                got.append(ctx.get(dut.data))  # the fold read at the advance just clocked
                if rng.random() < 0.3:
                    await ctx.tick()
            seen.append(got)
    return consumer


@pytest.mark.parametrize(("w", "beats", "simd", "planes"), CASES)
def test_every_fold_reads_back_under_random_handshakes(w: int, beats: int, simd: int, planes: int) -> None:
    dut = VectorBuffer(w, beats, simd, planes)
    rng = random.Random(w * 1000 + beats * 100 + simd * 10 + planes)
    vectors = [[[rng.randrange(2) for _ in range(w * beats)] for _ in range(planes)] for _ in range(5)]
    groups = 2  # the consumer reads each vector twice, as an MVTU with two row groups
    n_folds = len(folds(vectors[0], simd))
    seen: list[list[int]] = []

    async def producer(ctx):
        for vec in vectors:
            for b in range(beats):
                # plane k of element i in bit i*planes + k
                word = 0
                for i in range(w):
                    for k in range(planes):
                        word |= vec[k][b * w + i] << (i * planes + k)
                ctx.set(dut.sink.payload, word)
                ctx.set(dut.sink.valid, 1)
                await ctx.tick().until(dut.sink.ready)
                ctx.set(dut.sink.valid, 0)
                for _ in range(rng.choice([0, 0, 1, 3])):
                    await ctx.tick()

    consumer = reader(dut, len(vectors), groups * n_folds, rng, seen)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.run_until(1e-6 * 8 * (beats + groups * n_folds) * len(vectors))  # a deadline well past the last read
    assert len(seen) == len(vectors)
    for vec, got in zip(vectors, seen, strict=True):
        assert got == folds(vec, simd) * groups


def test_layout_follows_the_width_relation() -> None:
    assert buffer_kind(4, 8) == "lanes"
    assert buffer_kind(8, 4) == "slices"
    assert buffer_kind(3, 4) == buffer_kind(5, 3) == "straddle"


@pytest.mark.parametrize("bad", [0, -1, True, 2.0])
def test_rejects_nonsense_widths(bad: object) -> None:
    with pytest.raises(ValueError, match="positive integer"):
        VectorBuffer(bad, 4, 2)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="must not exceed"):
        VectorBuffer(2, 2, 5)


@pytest.mark.parametrize(("w", "beats", "simd"), [(4, 6, 8), (1, 40, 8), (2, 11, 8), (2, 131, 4), (8, 3, 4), (3, 5, 4),
                                               (5, 4, 3), (6, 1, 4), (1, 9, 9)])
def test_linked_buffer_holds_three_vectors_as_a_producer_mvtu_fills_them(w: int, beats: int, simd: int) -> None:
    """Linked mode: beats put without a handshake, a vector offered two cycles after its last beat
    at the earliest, and the next vector's beats put while one waits and another is being read."""
    dut = VectorBuffer(w, beats, simd, linked=True)
    rng = random.Random(w * 100 + beats * 10 + simd)
    vectors = [[[rng.randrange(2) for _ in range(w * beats)]] for _ in range(7)]
    groups, n_folds = 2, len(folds(vectors[0], simd))
    state = {"put": 0, "taken": 0}
    seen: list[list[int]] = []

    async def putter(ctx):
        for n, vec in enumerate(vectors):
            # As the MVTU: vector n starts only once n - 1 has been taken (two vectors in flight).
            while state["taken"] < n - 1:
                await ctx.tick()
            for b in range(beats):
                ctx.set(dut.sink.data, sum(bit << i for i, bit in enumerate(vec[0][b * w:(b + 1) * w])))
                ctx.set(dut.sink.put, 1)
                await ctx.tick()
                ctx.set(dut.sink.put, 0)
                for _ in range(rng.choice([0, 0, 1, 2])):
                    await ctx.tick()
            state["put"] = n + 1

    async def offerer(ctx):
        for n in range(len(vectors)):
            while state["put"] <= n:
                await ctx.tick()
            await ctx.tick()  # the producer's `full`, then its `valid`: two cycles after the last put
            ctx.set(dut.sink.valid, 1)
            await ctx.tick().until(dut.sink.ready)
            ctx.set(dut.sink.valid, 0)
            state["taken"] = n + 1

    consumer = reader(dut, len(vectors), groups * n_folds, rng, seen)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    for bench in (putter, offerer, consumer):
        sim.add_testbench(bench)
    sim.run_until(1e-6 * 12 * (beats + groups * n_folds) * len(vectors))
    assert len(seen) == len(vectors)
    for vec, got in zip(vectors, seen, strict=True):
        assert got == folds(vec, simd) * groups
