// Minimal Verilator harness for a generated bnn2fpga top (module compiled with --prefix Vtop).
// argv: <stimulus file: one s_axis beat per line, hex tdata then tlast (0/1)> <output beats> <valid %> <ready %> <seed>
// Prints "I <cycle>" per input handshake and "O <cycle> <data> <last>" per output handshake;
// cycle 0 is the first cycle after reset.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "Vtop.h"
#include "verilated.h"

static uint32_t lcg(uint32_t &state) {
    state = state * 1664525u + 1013904223u;
    return state >> 8;
}

int main(int argc, char **argv) {
    if (argc < 6) {
        std::fprintf(stderr, "usage: %s stim n_out valid%% ready%% seed\n", argv[0]);
        return 2;
    }
    std::vector<uint64_t> beats;
    std::vector<unsigned> lasts;
    FILE *f = std::fopen(argv[1], "r");
    if (!f) return 2;
    unsigned long long v;
    unsigned last;
    while (std::fscanf(f, "%llx %u", &v, &last) == 2) {
        beats.push_back(v);
        lasts.push_back(last);
    }
    std::fclose(f);
    const long n_out = std::atol(argv[2]);
    const uint32_t pv = std::atoi(argv[3]), pr = std::atoi(argv[4]);
    uint32_t rs = std::atoi(argv[5]) * 2 + 1, ws = std::atoi(argv[5]) * 2 + 7;

    VerilatedContext ctx;
    Vtop top{&ctx};
    top.ap_rst_n = 0;
    top.s_axis_tvalid = 0;
    top.s_axis_tlast = 0;
    top.m_axis_tready = 0;
    for (int i = 0; i < 4; ++i) {
        top.ap_clk = 0; top.eval();
        top.ap_clk = 1; top.eval();
    }
    top.ap_rst_n = 1;
    size_t next = 0;
    bool offering = false;
    long outs = 0;
    for (long cycle = 0; outs < n_out && cycle < 2000000; ++cycle) {
        if (!offering && next < beats.size() && lcg(ws) % 100 < pv) offering = true;
        top.s_axis_tvalid = offering;
        top.s_axis_tdata = offering ? beats[next] : 0;
        top.s_axis_tlast = offering ? lasts[next] : 0;
        top.m_axis_tready = (lcg(rs) % 100) < pr;
        top.ap_clk = 0; top.eval();
        if (top.s_axis_tvalid && top.s_axis_tready) {
            std::printf("I %ld\n", cycle);
            ++next;
            offering = false;
        }
        if (top.m_axis_tvalid && top.m_axis_tready) {
            std::printf("O %ld %u %u\n", cycle, (unsigned)top.m_axis_tdata, (unsigned)top.m_axis_tlast);
            ++outs;
        }
        top.ap_clk = 1; top.eval();
    }
    top.final();
    return outs == n_out ? 0 : 1;
}
