// Verilator C++ harness for bulk co-simulation of a bnn2fpga accelerator top.
//
// Built by bnn2fpga.sim.bulk with `verilator --cc --exe --build --prefix Vtop`, so the
// design is always `Vtop` whatever its module name. Every design number comes from the
// build's manifest.json, passed on the command line by bulk.py:
//
//   harness --frames IN.bin --out OUT.bin --in-bytes B --in-beats N --out-beats K
//           [--frames-per-packet F] [--lasts LASTS.bin]
//           [--stall-in P] [--stall-out P] [--seed S] [--idle-limit C]
//
// IN.bin:  frames back to back, each N beats of B bytes (first pixel in the low byte),
//          sent as packets of F frames (tlast on the last beat of every F-th frame and of the last).
// OUT.bin: K little-endian uint32 words per frame (class popcounts, class 0 first).
// LASTS.bin: one byte per output word, its m_axis_tlast (checked: set on exactly the last class of
//          each packet's last frame).
// stdout:  one JSON line: cycles, frames, latency, initiation interval, protocol errors.
//
// Cycle discipline (docs/hardware-contract.md): inputs are set for a cycle, the design is
// evaluated with the clock low so combinational outputs (tready, tvalid) settle, both
// handshakes are sampled, then the rising edge is evaluated. Cycle numbers count rising
// edges after reset, exactly like the cocotb monitor, so latency and II agree.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "Vtop.h"
#include "verilated.h"

namespace {

// s_axis_tdata is a CData/SData/IData/QData for up to 64 bits, a VlWide beyond that.
template <typename T>
typename std::enable_if<std::is_integral<T>::value>::type set_bytes(T& port, const uint8_t* b, int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; --i) v = (v << 8) | b[i];
    port = static_cast<T>(v);
}

template <std::size_t W>
void set_bytes(VlWide<W>& port, const uint8_t* b, int n) {
    for (std::size_t w = 0; w < W; ++w) {
        uint32_t v = 0;
        for (int k = 3; k >= 0; --k) {
            const int i = static_cast<int>(w) * 4 + k;
            v = (v << 8) | (i < n ? b[i] : 0u);
        }
        port.data()[w] = v;
    }
}

struct Rng {  // xorshift64*: fast, reproducible from --seed
    uint64_t s;
    explicit Rng(uint64_t seed) : s(seed * 0x9E3779B97F4A7C15ull + 1) {}
    double next() {
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        return static_cast<double>((s * 0x2545F4914F6CDD1Dull) >> 11) * (1.0 / 9007199254740992.0);
    }
};

[[noreturn]] void usage(const char* msg) {
    std::fprintf(stderr, "harness: %s\n", msg);
    std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
    std::string in_path, out_path, lasts_path;
    long in_bytes = 0, in_beats = 0, out_beats = 0, idle_limit = 100000, per_packet = 1;
    double stall_in = 0.0, stall_out = 0.0;
    uint64_t seed = 1;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a.rfind("+verilator", 0) == 0) continue;
        if (i + 1 >= argc) usage(("missing value after " + a).c_str());
        const char* v = argv[++i];
        if (a == "--frames") in_path = v;
        else if (a == "--out") out_path = v;
        else if (a == "--in-bytes") in_bytes = std::atol(v);
        else if (a == "--in-beats") in_beats = std::atol(v);
        else if (a == "--out-beats") out_beats = std::atol(v);
        else if (a == "--frames-per-packet") per_packet = std::atol(v);
        else if (a == "--lasts") lasts_path = v;
        else if (a == "--stall-in") stall_in = std::atof(v);
        else if (a == "--stall-out") stall_out = std::atof(v);
        else if (a == "--seed") seed = std::strtoull(v, nullptr, 10);
        else if (a == "--idle-limit") idle_limit = std::atol(v);
        else usage(("unknown option " + a).c_str());
    }
    if (in_path.empty() || out_path.empty() || in_bytes <= 0 || in_beats <= 0 || out_beats <= 0)
        usage("need --frames --out --in-bytes --in-beats --out-beats");
    if (per_packet <= 0) usage("--frames-per-packet must be positive");

    std::vector<uint8_t> in;
    {
        FILE* f = std::fopen(in_path.c_str(), "rb");
        if (!f) usage(("cannot open " + in_path).c_str());
        uint8_t buf[1 << 16];
        size_t got;
        while ((got = std::fread(buf, 1, sizeof buf, f)) > 0) in.insert(in.end(), buf, buf + got);
        std::fclose(f);
    }
    const long frame_bytes = in_bytes * in_beats;
    if (in.empty() || static_cast<long>(in.size()) % frame_bytes) usage("frames file is not whole frames");
    const long frames = static_cast<long>(in.size()) / frame_bytes;
    const long total_in = frames * in_beats, total_out = frames * out_beats;
    std::vector<uint32_t> out(static_cast<size_t>(total_out), 0);
    std::vector<uint8_t> lasts(static_cast<size_t>(total_out), 0);
    auto ends_packet = [&](long frame) { return frame % per_packet == per_packet - 1 || frame == frames - 1; };
    std::vector<long> in_start, out_start;  // cycle of each frame's first beat, per stream
    in_start.reserve(frames);
    out_start.reserve(frames);

    auto ctx = std::make_unique<VerilatedContext>();
    ctx->commandArgs(argc, argv);
    auto top = std::make_unique<Vtop>(ctx.get());
    Rng rng(seed);

    long cycle = 0, in_pos = 0, out_pos = 0, last_activity = 0, tlast_errors = 0, extra_beats = 0;
    bool stalled = false;
    auto tick = [&](bool drive, bool may_pause) {
        const bool pause_in = may_pause && stall_in > 0 && rng.next() < stall_in;
        const bool pause_out = may_pause && stall_out > 0 && rng.next() < stall_out;
        const bool have = drive && in_pos < total_in;
        top->s_axis_tvalid = have && !pause_in;
        if (have) {
            set_bytes(top->s_axis_tdata, &in[static_cast<size_t>(in_pos * in_bytes)], static_cast<int>(in_bytes));
            top->s_axis_tlast = (in_pos % in_beats) == in_beats - 1 && ends_packet(in_pos / in_beats);
        }
        top->m_axis_tready = !pause_out;
        top->ap_clk = 0;
        top->eval();
        const bool s_hs = top->s_axis_tvalid && top->s_axis_tready;
        const bool m_hs = top->m_axis_tvalid && top->m_axis_tready;
        const uint32_t m_data = static_cast<uint32_t>(top->m_axis_tdata);
        const bool m_last = top->m_axis_tlast;
        top->ap_clk = 1;
        top->eval();
        ++cycle;
        if (s_hs) {
            if (in_pos % in_beats == 0) in_start.push_back(cycle);
            ++in_pos;
            last_activity = cycle;
        }
        if (m_hs) {
            last_activity = cycle;
            if (out_pos >= total_out) {
                ++extra_beats;  // the design invented data
                return;
            }
            const long beat = out_pos % out_beats;
            if (beat == 0) out_start.push_back(cycle);
            if (m_last != (beat == out_beats - 1 && ends_packet(out_pos / out_beats))) ++tlast_errors;
            lasts[static_cast<size_t>(out_pos)] = m_last;
            out[static_cast<size_t>(out_pos++)] = m_data;
        }
    };

    // Reset: synchronous, active low, a few cycles; cycle numbering starts after it.
    top->ap_rst_n = 0;
    top->s_axis_tvalid = 0;
    top->m_axis_tready = 0;
    for (int i = 0; i < 4; ++i) {
        top->ap_clk = 0;
        top->eval();
        top->ap_clk = 1;
        top->eval();
    }
    top->ap_rst_n = 1;

    while (out_pos < total_out) {
        tick(true, true);
        if (cycle - last_activity > idle_limit) {
            stalled = true;
            break;
        }
    }
    const long latency = out_start.empty() || in_start.empty() ? -1 : out_start[0] - in_start[0];
    const long ii = out_start.size() < 2 ? -1 : out_start.back() - out_start[out_start.size() - 2];
    const long run_cycles = cycle;
    // Drain: nothing more is sent; a correct design emits nothing more.
    const long drain = 2 * ((latency > 0 ? latency : 0) + (ii > 0 ? ii : 0)) + 16;
    for (long i = 0; i < drain && !stalled; ++i) tick(false, false);
    top->final();

    FILE* f = std::fopen(out_path.c_str(), "wb");
    if (!f || std::fwrite(out.data(), sizeof(uint32_t), out.size(), f) != out.size()) usage("cannot write output");
    std::fclose(f);
    if (!lasts_path.empty()) {
        FILE* g = std::fopen(lasts_path.c_str(), "wb");
        if (!g || std::fwrite(lasts.data(), 1, lasts.size(), g) != lasts.size()) usage("cannot write tlast file");
        std::fclose(g);
    }

    // Tail of II samples: lets the caller see whether the steady state was reached.
    std::string tail;
    const size_t n = out_start.size();
    for (size_t i = n > 9 ? n - 9 : 1; i < n; ++i) {
        tail += (tail.empty() ? "" : ",") + std::to_string(out_start[i] - out_start[i - 1]);
    }
    std::printf(
        "{\"frames\": %ld, \"frames_out\": %ld, \"cycles\": %ld, \"run_cycles\": %ld, \"latency\": %ld, "
        "\"initiation_interval\": %ld, \"ii_tail\": [%s], \"tlast_errors\": %ld, \"extra_beats\": %ld, "
        "\"stalled\": %s}\n",
        frames, out_pos / out_beats, cycle, run_cycles, latency, ii, tail.c_str(), tlast_errors, extra_beats,
        stalled ? "true" : "false");
    return 0;
}
