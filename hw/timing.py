"""Exact cycle model of an accelerator: a closed form for dense chains, engine models for the rest.

Dense chain: the cycle model (docs/hardware-contract.md, "Cycles"), with s_axis_tvalid always
high and m_axis_tready always high; times are clock cycles, 0 = the first
input handshake. Per frame n:

    NB      = samples_per_frame / pixels_per_beat        input beats per frame
    P_k     = ceil(MH/PE) * ceil(MW/SIMD)                MVTU issue cycles per vector
    R_k     = popcount_stages(SIMD, levels_per_stage)    adder-tree registers
    D_k     = R_k + 4                                    last issue -> output valid
    M_k     = max(P_k, ceil((P_k + D_k + 1) / 2))        MVTU period (input handshake spacing)
    C       = classes                                    output beats per frame

    K(i)    = 0 if i == 0 else max(K(i-1) + 1, G(i-2) + 1)     input skid buffer takes beat i
    G(i)    = max(K(i) + 1, S_1(n-1) if i = n*NB else G(i-1) + 1)  the core takes beat i (of frame n)
    F(n)    = K(n * NB)                                  first input beat of frame n
    S_k(n)  = max(V_{k-1}(n), S_k(n-1) + M_k, S_{k+1}(n-2) + 1)     MVTU k takes vector n
    V_0(n)  = G(n * NB + NB - 1) + 1                     deserializer output valid
    V_k(n)  = max(S_k(n) + P_k + D_k, S_{k+1}(n-1) + 1)  MVTU k output valid
    T(n)    = max(V_L(n), S_o(n-2) + 1)                  output skid buffer takes frame n (two entries)
    S_o(n)  = max(T(n) + 1, S_o(n-1) + C)                output stage takes frame n
    O(n)    = S_o(n) + 2                                 first output beat of frame n (port skid buffer)

(S_{L+1} is T; G(-1) and G(-2) are -infinity; S_1(-1) is 0.) The input skid buffer is two
entries deep and registers its ``ready``, so it runs up to two beats ahead of the core: it offers
the core every beat of a frame on consecutive cycles, and the first beat of frame n reaches it
before the core can take it (S_1(n-1)), so only frame 0 waits its cycle of latency. Hence

    latency             = O(0) - F(0) = NB + sum_k (P_k + D_k) + 4
    initiation interval = max(NB, max_k M_k, C)

The second formula is the maximum cycle mean of the recurrence: its self
loops are NB, M_k and C; the loop through the two-vector output buffer of
MVTU k has mean (P_k + D_k + 1) / 2 <= M_k, which is why the MVTU pads its
period to M_k (otherwise the interval could alternate between two values).
``frame_times`` evaluates the recurrence itself; the tests check both
against simulation.

Pixel-stream chains (windows, conv MVTUs, pools, flatten): the engines exchange
pixels with gaps that depend on the row and the padding, so the prediction
composes the engines' cycle models clock by clock (``cycles.run_chain``) over
enough frames for the interval to settle. Each engine's period (its cycles per
frame at best) is still a lower bound on the interval, and the report names the
engine with the largest as the bottleneck.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from .branch import BranchSpec
from .cycles import ChainTimes, CycleModel, chain_readies, clock_chain, run_chain
from .engines import Engine, cycle_model, frame_cycles
from .mvtu import mvtu_period, mvtu_pipeline_depth
from .resources import estimate
from .spec import AcceleratorSpec, DenseLayerSpec
from .stream import DeserializerModel, OutputModel, skid_model

__all__ = [
    "Timing", "predict", "interval_bound", "frame_times", "chain_times", "mvtu_pipeline_depth", "mvtu_period",
    "estimate", "branch_fifo_depths", "deepen_branch_fifos", "settle_branch_fifos", "steady_times",
]


@dataclass(frozen=True)
class Timing:
    """Predicted cycles, as defined in docs/hardware-contract.md.

    ``per_layer_cycles``: P_k = ceil(MH/PE) * ceil(MW/SIMD) per dense layer.
    ``input_cycles``: s_axis beats per frame. ``output_cycles``: m_axis beats per frame.
    ``per_layer_period``: M_k, the period each MVTU actually runs at (>= P_k).
    """

    initiation_interval: int
    latency: int
    per_layer_cycles: list[int]
    input_cycles: int = 0
    output_cycles: int = 0
    per_layer_period: list[int] = field(default_factory=list)


def predict(spec: AcceleratorSpec) -> Timing:
    if not spec.is_dense:
        return _predict_chain(spec)
    lps = spec.popcount_levels_per_stage
    nb, classes = spec.input_beats, spec.classes
    cycles = [layer.cycles for layer in spec.layers]
    depths = [mvtu_pipeline_depth(layer, lps) for layer in spec.layers]
    periods = [mvtu_period(layer, lps) for layer in spec.layers]
    latency = nb + sum(cycles) + sum(depths) + 4
    interval = max(nb, classes, *periods)
    return Timing(initiation_interval=interval, latency=latency, per_layer_cycles=cycles,
                  input_cycles=nb, output_cycles=classes, per_layer_period=periods)


def interval_bound(spec: AcceleratorSpec) -> int:
    """A lower bound on the interval, cheap: the largest engine period and the two streams.

    Equal to ``predict`` for dense chains; for pixel-stream chains the exact interval adds
    the bubbles where engines wait on each other (row and frame boundaries)."""
    if spec.is_dense:
        return predict(spec).initiation_interval
    lps = spec.popcount_levels_per_stage
    return max(spec.input_beats, spec.classes, *(frame_cycles(layer, lps) for layer in spec.layers))


def engine_cycles(layer: Engine, levels_per_stage: int) -> int:
    """Work cycles per frame of one engine: an MVTU's issue cycles (its period may be longer), else its period."""
    if isinstance(layer, DenseLayerSpec):
        return layer.vectors * layer.cycles
    return frame_cycles(layer, levels_per_stage)


def chain_times(spec: AcceleratorSpec, frames: int, max_cycles: int = 50_000_000) -> ChainTimes:
    """Evaluate the engines' cycle models for ``frames`` frames (any chain, dense ones too)."""
    lps = spec.popcount_levels_per_stage
    models = [cycle_model(layer, lps) for layer in spec.layers]
    models += [skid_model(), OutputModel(spec.classes), skid_model()]  # skid, output stage, port skid
    if spec.is_dense:  # the implicit whole-frame deserializer
        models.insert(0, DeserializerModel(spec.input_beats))
    models.insert(0, skid_model())  # the input skid buffer
    return run_chain(models, spec.input_beats, spec.classes, frames, max_cycles)


def _repeating(intervals: tuple[int, ...], longest: int = 4) -> tuple[int, ...] | None:
    """The shortest pattern the last intervals repeat (three times for a constant, twice otherwise)."""
    if len(intervals) >= 3 and len(set(intervals[-3:])) == 1:
        return intervals[-1:]
    for p in range(2, longest + 1):
        if len(intervals) >= 2 * p and intervals[-p:] == intervals[-2 * p:-p]:
            return intervals[-p:]
    return None


def steady_times(spec: AcceleratorSpec) -> tuple[ChainTimes, tuple[int, ...]]:
    """The chain's times over enough frames to reach its steady state, and the intervals that state
    repeats: one value for a constant interval; more where a branch's FIFOs are so shallow that the
    paths take turns stalling each other (``settle_branch_fifos`` deepens them until it is one)."""
    for frames in (5, 9, 17, 33):
        times = chain_times(spec, frames)
        pattern = _repeating(times.intervals)
        if pattern is not None and (len(pattern) == 1 or frames >= 17):
            return times, pattern
    raise RuntimeError(f"{spec.name}: the interval did not settle in {frames} frames: {times.intervals}")


def settled_times(spec: AcceleratorSpec) -> ChainTimes:
    """Enough frames that the last three intervals agree; an interval that alternates is an error
    (a frame rate, and the interval the simulation measures, need one value)."""
    times, pattern = steady_times(spec)
    if len(pattern) > 1:
        raise RuntimeError(f"{spec.name}: the interval alternates {'/'.join(map(str, pattern))} cycles "
                           "in the steady state (a branch's FIFOs too shallow?)")
    return times


def _predict_chain(spec: AcceleratorSpec) -> Timing:
    lps = spec.popcount_levels_per_stage
    times = settled_times(spec)
    return Timing(initiation_interval=times.intervals[-1], latency=times.latency,
                  per_layer_cycles=[engine_cycles(layer, lps) for layer in spec.layers],
                  input_cycles=spec.input_beats, output_cycles=spec.classes,
                  per_layer_period=[frame_cycles(layer, lps) for layer in spec.layers])


def frame_times(spec: AcceleratorSpec, frames: int) -> tuple[list[int], list[int]]:
    """(first input beat F(n), first output beat O(n)) per frame, 0 = the first input beat.

    Dense chains evaluate the recurrence above, other chains the engine models."""
    if not spec.is_dense:
        times = chain_times(spec, frames)
        return [t - times.first_in[0] for t in times.first_in], [t - times.first_in[0] for t in times.first_out]
    lps = spec.popcount_levels_per_stage
    nb, classes = spec.input_beats, spec.classes
    layers = spec.layers
    n_layers = len(layers)
    p = [layer.cycles for layer in layers]
    d = [mvtu_pipeline_depth(layer, lps) for layer in layers]
    mm = [mvtu_period(layer, lps) for layer in layers]
    # starts[k][n]: S_{k+1}(n) for k < L, starts[L][n]: T(n) (the skid buffer), starts[L+1][n]: S_o(n)
    starts: list[list[int]] = [[] for _ in range(n_layers + 2)]
    skid_takes: list[int] = []  # K(i)
    core_takes: list[int] = []  # G(i)
    first_in: list[int] = []
    first_out: list[int] = []
    for n in range(frames):
        for j in range(nb):
            i = n * nb + j
            k_i = 0 if i == 0 else skid_takes[i - 1] + 1
            if i >= 2:
                k_i = max(k_i, core_takes[i - 2] + 1)
            skid_takes.append(k_i)
            if j:
                core_takes.append(max(k_i, core_takes[i - 1]) + 1)
            else:
                core_takes.append(max(k_i + 1, starts[0][n - 1] if n else 0))
        first_in.append(skid_takes[n * nb])
        valid = core_takes[-1] + 1
        for k in range(n_layers):
            s = valid
            if n >= 1:
                s = max(s, starts[k][n - 1] + mm[k])
            if n >= 2:
                s = max(s, starts[k + 1][n - 2] + 1)
            starts[k].append(s)
            valid = s + p[k] + d[k]
            if n >= 1:
                valid = max(valid, starts[k + 1][n - 1] + 1)
        skid = valid if n < 2 else max(valid, starts[n_layers + 1][n - 2] + 1)
        starts[n_layers].append(skid)
        so = skid + 1 if n == 0 else max(skid + 1, starts[n_layers + 1][n - 1] + classes)
        starts[n_layers + 1].append(so)
        first_out.append(so + 2)
    return first_in, first_out


def inputs_before_outputs(models: list[CycleModel], in_beats: int, out_beats: int, frames: int = 2,
                          max_cycles: int = 10_000_000) -> list[int]:
    """For a chain alone, its input always valid and its output always ready: how many input beats
    it has taken before each output beat leaves (the beats it must see first, or takes greedily)."""
    total_in, total_out = frames * in_beats, frames * out_beats
    taken, marks = 0, []
    for _ in range(max_cycles):
        if len(marks) == total_out:
            return marks
        in_valid = taken < total_in
        out_fire = models[-1].out_valid() if models else in_valid
        if out_fire:
            marks.append(taken)
        taken += int(clock_chain(models, in_valid, chain_readies(models, True), out_fire))
    raise RuntimeError(f"cycle model made no progress: {len(marks)} of {total_out} output beats")


def branch_fifo_depths(paths: list[list[Engine]], beats: int, levels_per_stage: int) -> list[int]:
    """The depth of the FIFO at the head of each path of a branch (``hw/branch.py``).

    The fork hands a pixel to every path at once and the join takes a pixel from every path at
    once, so while the path that needs the most input before its j-th output pixel waits for it,
    every other path must hold the difference: path p's FIFO gets, over the output pixels j of two
    frames, the most any path takes before its j-th output less what p takes itself, plus two
    (the FIFO's own cycle and the join's). Each path alone gives those counts
    (``inputs_before_outputs``); the accelerator's cycle model then shows the interval and latency
    the branch really runs at, and the simulations check it."""
    counts = []
    for path in paths:
        out_beats = path[-1].source_beats if path else beats
        models = [cycle_model(engine, levels_per_stage) for engine in path]
        counts.append(inputs_before_outputs(models, beats, out_beats))
    most = [max(column) for column in zip(*counts, strict=True)]
    return [max(2, max(m - c for m, c in zip(most, own, strict=True)) + 2) for own in counts]


def deepen_branch_fifos(layers: tuple, extra: int) -> tuple:
    """``layers`` with every branch's path FIFOs ``extra`` beats deeper, nested branches too."""
    out = []
    for layer in layers:
        if isinstance(layer, BranchSpec):
            paths = tuple((replace(path[0], depth=path[0].depth + extra), *deepen_branch_fifos(path[1:], extra))
                          for path in layer.paths)
            layer = replace(layer, paths=paths)
        out.append(layer)
    return tuple(out)


def settle_branch_fifos(spec: AcceleratorSpec) -> AcceleratorSpec:
    """The spec with its branches' FIFOs deep enough for the interval it would run at with FIFOs a
    frame deeper. ``branch_fifo_depths`` keeps the join from starving; where a path's pixels come in
    bursts the fork may still wait on a full FIFO now and then, which the whole accelerator's cycle
    model shows, as a slower interval or one that alternates from frame to frame: the fewest extra
    beats (the same for every path FIFO) that reach the deep FIFOs' constant interval are found by
    bisection."""
    if not any(isinstance(layer, BranchSpec) for layer in spec.layers):
        return spec

    def pattern(extra: int) -> tuple[int, ...]:
        return steady_times(replace(spec, layers=deepen_branch_fifos(spec.layers, extra)))[1]

    frame = max(layer.beats for layer in spec.layers if isinstance(layer, BranchSpec))
    best = pattern(frame)
    if len(best) > 1:
        raise RuntimeError(f"{spec.name}: with every branch FIFO a frame deeper the interval still alternates "
                           f"{'/'.join(map(str, best))} cycles")
    if pattern(0) == best:
        return spec
    low, high = 0, frame  # pattern(low) != best (slower or alternating), pattern(high) == best
    while high - low > 1:
        mid = (low + high) // 2
        if pattern(mid) == best:
            high = mid
        else:
            low = mid
    return replace(spec, layers=deepen_branch_fifos(spec.layers, high))
