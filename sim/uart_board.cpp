// Verilator C++ harness for a UART board core (`<name>_board`: host bridge + accelerator),
// reached through a pseudo-terminal exactly like a board behind a USB-serial port.
//
// Built by bnn2fpga.sim.uart_board with `verilator --cc --exe --build --prefix Vtop`; the
// design is always `Vtop`. Ports used: clk, rst (synchronous, high), rx, tx, busy, errors.
//
//   uart_board --divisor D [--grace-ms G]
//
// stdout: first line, the pty's slave path (open it with any serial library); at exit one
//         JSON line of statistics (cycles simulated, wall time, bytes each way).
// stdin:  the lifeline: the harness exits when it is closed (or on SIGTERM / SIGINT).
//
// Bytes read from the pty master are sent to `rx` as 8N1 frames, D clocks per bit; `tx` is
// decoded at the middle of each bit and every byte with a good stop bit is written back.
//
// Time: simulated time only advances while something can happen. With the line idle, the
// bridge not busy and the transmitter quiet for two bit times (the bridge hands its last byte
// to the transmitter within half a bit), the harness blocks on the pty instead of clocking an
// idle design; a request then starts on the cycle its first byte is read, so the cycles a
// frame takes do not depend on how fast the host answers. While a request is in flight (the harness follows the request
// header's length field) and the host's next bytes have not reached the pty yet, it waits up
// to G ms of wall time before letting the line go idle: a USB-serial adapter sends a buffered
// request without gaps, and a pty can hand one write over in pieces. A request the host
// really cut short still ends in the bridge's timeout after those G ms.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <string>

#include "Vtop.h"
#include "verilated.h"

namespace {

volatile sig_atomic_t g_quit = 0;

void on_signal(int) { g_quit = 1; }

[[noreturn]] void die(const std::string& msg) {
    std::fprintf(stderr, "uart_board: %s\n", msg.c_str());
    std::exit(2);
}

constexpr uint8_t kRequest = 0xA5;

// Follows the host's requests only to know when more bytes of one are due (see the header).
struct RequestTracker {
    enum { kHunt, kLen0, kLen1, kBody } state = kHunt;
    long remaining = 0;
    int len0 = 0;
    void sent(uint8_t b) {
        switch (state) {
            case kHunt:
                if (b == kRequest) state = kLen0;
                break;
            case kLen0:
                len0 = b;
                state = kLen1;
                break;
            case kLen1:
                remaining = (static_cast<long>(b) << 8 | len0) + 1;  // payload and CRC
                state = kBody;
                break;
            case kBody:
                if (--remaining == 0) state = kHunt;
                break;
        }
    }
    bool in_request() const { return state != kHunt; }
    void give_up() { state = kHunt; }
};

}  // namespace

int main(int argc, char** argv) {
    long divisor = 0, grace_ms = 500;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a.rfind("+verilator", 0) == 0) continue;
        if (i + 1 >= argc) die("missing value after " + a);
        const char* v = argv[++i];
        if (a == "--divisor") divisor = std::atol(v);
        else if (a == "--grace-ms") grace_ms = std::atol(v);
        else die("unknown option " + a);
    }
    if (divisor < 4) die("--divisor (clocks per bit, at least 4) is required");

    const int master = posix_openpt(O_RDWR | O_NOCTTY);
    if (master < 0 || grantpt(master) != 0 || unlockpt(master) != 0) die(std::string("no pty: ") + std::strerror(errno));
    const char* slave_name = ptsname(master);
    if (!slave_name) die("ptsname failed");
    const std::string slave_path = slave_name;
    // Hold the slave open ourselves: the master then never reports a hang-up while the host
    // closes and reopens the port, and reads simply find nothing.
    const int slave = open(slave_path.c_str(), O_RDWR | O_NOCTTY);
    if (slave < 0) die("cannot open " + slave_path);
    termios tio{};
    if (tcgetattr(slave, &tio) != 0) die("tcgetattr failed");
    cfmakeraw(&tio);  // bytes as they are: no echo, no line editing, no CR/LF translation
    tcsetattr(slave, TCSANOW, &tio);
    fcntl(master, F_SETFL, fcntl(master, F_GETFL) | O_NONBLOCK);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    signal(SIGPIPE, SIG_IGN);
    std::printf("%s\n", slave_path.c_str());
    std::fflush(stdout);

    auto ctx = std::make_unique<VerilatedContext>();
    ctx->commandArgs(argc, argv);
    auto top = std::make_unique<Vtop>(ctx.get());

    std::deque<uint8_t> inbox;
    uint8_t buf[4096];
    long bytes_in = 0, bytes_out = 0, framing_errors = 0, write_errors = 0, cycles = 0;
    double waited_s = 0.0;
    const auto t0 = std::chrono::steady_clock::now();
    bool stdin_open = true;

    auto pull = [&]() {  // whatever the host has written so far
        for (;;) {
            const ssize_t n = read(master, buf, sizeof buf);
            if (n <= 0) return;
            inbox.insert(inbox.end(), buf, buf + n);
        }
    };
    // Block up to `ms` for host bytes or the end of stdin; true if bytes arrived.
    auto wait_for_host = [&](int ms) {
        pollfd fds[2] = {{master, POLLIN, 0}, {0, POLLIN, 0}};
        const auto w0 = std::chrono::steady_clock::now();
        const int r = poll(fds, stdin_open ? 2 : 1, ms);
        waited_s += std::chrono::duration<double>(std::chrono::steady_clock::now() - w0).count();
        if (r > 0 && stdin_open && (fds[1].revents & (POLLIN | POLLHUP))) {
            char c[256];
            if (read(0, c, sizeof c) <= 0) stdin_open = false;
        }
        if (r > 0 && (fds[0].revents & POLLIN)) {
            pull();
            return !inbox.empty();
        }
        return false;
    };

    auto tick = [&](int rx, bool reset) {
        top->rx = rx;
        top->rst = reset;
        top->clk = 0;
        top->eval();
        top->clk = 1;
        top->eval();
    };
    for (int i = 0; i < 4; ++i) tick(1, true);

    RequestTracker tracker;
    // Receiver side of the design (our transmitter): 10 bits LSB first, `divisor` clocks each.
    uint16_t rx_bits = 0;
    int rx_left = 0;  // bits still to send of the current byte
    long rx_timer = 0;
    int rx_level = 1;
    // Transmitter side of the design (our receiver).
    bool tx_active = false;
    long tx_timer = 0, tx_quiet = 0;
    int tx_bit = 0, tx_value = 0;
    long next_pull = 0;
    const long byte_time = 10 * divisor;

    while (!g_quit && stdin_open) {
        if (rx_timer == 0) {
            if (rx_left == 0 && inbox.empty()) {
                if (cycles >= next_pull) {
                    pull();
                    next_pull = cycles + byte_time;
                }
                if (inbox.empty() && tracker.in_request()) {
                    // More of this request is due: give the host time to deliver it.
                    if (!wait_for_host(static_cast<int>(grace_ms))) tracker.give_up();
                } else if (inbox.empty() && !top->busy && !tx_active && tx_quiet >= 2 * divisor) {
                    wait_for_host(200);  // an idle board: nothing to simulate until the host writes
                    continue;
                }
            }
            if (rx_left == 0 && !inbox.empty()) {
                const uint8_t b = inbox.front();
                inbox.pop_front();
                tracker.sent(b);
                ++bytes_in;
                rx_bits = static_cast<uint16_t>(0x200 | (b << 1));  // start 0, data, stop 1
                rx_left = 10;
            }
            if (rx_left > 0) {
                rx_level = rx_bits & 1;
                rx_bits >>= 1;
                --rx_left;
                rx_timer = divisor;
            } else {
                rx_level = 1;
            }
        }
        if (rx_timer > 0) --rx_timer;

        tick(rx_level, false);
        ++cycles;

        const int tx = top->tx;
        if (!tx_active) {
            if (tx == 0) {  // a start bit's falling edge: sample each bit in its middle
                tx_active = true;
                tx_timer = divisor + divisor / 2;
                tx_bit = 0;
                tx_value = 0;
            } else {
                ++tx_quiet;
            }
        } else if (--tx_timer == 0) {
            if (tx_bit < 8) {
                tx_value |= tx << tx_bit++;
                tx_timer = divisor;
            } else {
                tx_active = false;
                tx_quiet = 0;
                if (tx) {
                    const uint8_t out = static_cast<uint8_t>(tx_value);
                    if (write(master, &out, 1) == 1) ++bytes_out;
                    else ++write_errors;
                } else {
                    ++framing_errors;
                }
            }
        }
        if ((cycles & 0xFFFF) == 0) {  // is the caller still there?
            pollfd f = {0, POLLIN, 0};
            if (poll(&f, 1, 0) > 0) {
                char c[256];
                if (read(0, c, sizeof c) <= 0) stdin_open = false;
            }
        }
    }
    top->final();
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf(
        "{\"cycles\": %ld, \"wall_s\": %.6f, \"waited_s\": %.6f, \"bytes_in\": %ld, \"bytes_out\": %ld, "
        "\"framing_errors\": %ld, \"write_errors\": %ld, \"bridge_errors\": %d}\n",
        cycles, wall, waited_s, bytes_in, bytes_out, framing_errors, write_errors, static_cast<int>(top->errors));
    std::fflush(stdout);
    close(slave);
    close(master);
    return 0;
}
