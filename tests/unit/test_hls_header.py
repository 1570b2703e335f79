"""bnn2fpga_hls.h (our own ap_uint / hls::stream for g++) against Python integers, and `doctor`'s g++ row."""

from __future__ import annotations

import random
import shutil
import subprocess
from pathlib import Path

import pytest

from bnn2fpga import doctor
from bnn2fpga.backend import hls

PROGRAM = r"""
#include <cstdio>
#include "bnn2fpga_hls.h"

template <int N>
void print(const ap_uint<N>& x) {
    for (int i = ap_uint<N>::WORDS - 1; i >= 0; --i) std::printf("%%016llx", (unsigned long long)x.w_[i]);
    std::printf("\n");
}

int main() {
    const uint64_t words[4] = { %(words)s };
    const ap_uint<%(n)d> a = bnn2fpga_word<%(n)d>(words);
    print(a);
    print(~a);
    std::printf("%%d\n", (int)bnn2fpga_popcount(a).to_uint64());
%(ops)s
    hls::stream<ap_uint<%(n)d> > s("s");
    s.write(a);
    s.write(~a);
    const int size = (int)s.size();
    const bool first = s.read() == a;
    std::printf("%%d %%d\n", size, (int)first);
    std::printf("%%d\n", (int)(s.read() == ~a && s.empty()));
    return 0;
}
"""

N = 230  # four words, the last one partial


def test_ap_uint_matches_python_integers(tmp_path: Path) -> None:
    if shutil.which("g++") is None:
        pytest.skip("g++ not installed")
    rng = random.Random(4)
    value = rng.getrandbits(N)
    mask = (1 << N) - 1
    ops: list[str] = []
    expected = [value, value ^ mask, bin(value).count("1")]
    for k in range(40):
        lo = rng.randrange(N)
        hi = rng.randrange(lo, min(N, lo + 130))
        width = hi - lo + 1
        ops.append(f"    print(ap_uint<130>(a.range({hi}, {lo})));")  # a range read into a wider value
        expected.append((value >> lo) & ((1 << width) - 1))
        new = rng.getrandbits(width)  # a range written in a copy
        new_words = ", ".join(f"0x{(new >> (64 * i)) & (2**64 - 1):x}ull" for i in range(3))
        ops.append(f"    const uint64_t new{k}[3] = {{ {new_words} }};")
        ops.append(f"    {{ ap_uint<{N}> b = a; b.range({hi}, {lo}) = bnn2fpga_word<130>(new{k}); print(b); }}")
        expected.append((value & ~(((1 << width) - 1) << lo)) | (new << lo))
        ops.append(f"    {{ ap_uint<{N}> b = a; b[{lo}] = !a[{lo}]; print(b); }}")  # one bit
        expected.append(value ^ (1 << lo))
    words = ", ".join(f"0x{(value >> (64 * i)) & (2**64 - 1):x}ull" for i in range(4))
    source = tmp_path / "t.cpp"
    source.write_text(PROGRAM % {"words": words, "n": N, "ops": "\n".join(ops)})
    (tmp_path / hls.HEADER).write_text(hls.support_header())
    binary = tmp_path / "t"
    subprocess.run(["g++", "-std=c++17", "-O2", "-Wall", "-Werror", "-I", str(tmp_path), str(source), "-o",
                    str(binary)], check=True)
    lines = subprocess.run([str(binary)], capture_output=True, text=True, check=True).stdout.splitlines()
    got = [int(line, 16) for line in lines[:2]] + [int(lines[2])] + [int(line, 16) for line in lines[3:-2]]
    assert got == expected
    assert lines[-2:] == ["2 1", "1"]  # hls::stream: size, order, empty


def test_doctor_reports_gxx(monkeypatch: pytest.MonkeyPatch) -> None:
    present = doctor.check_gxx()
    if shutil.which("g++"):
        assert present.ok and "g++" in present.detail
    monkeypatch.setattr(doctor.shutil, "which", lambda name: None)
    missing = doctor.check_gxx()
    assert not missing.ok and missing.fix == "sudo apt-get install g++"
    assert doctor.check_gxx in doctor.CHECKS


SEMANTICS = r"""
#include <cstdio>
#include "bnn2fpga_hls.h"

int main() {
    const ap_uint<16> x = 0x1234;
    const ap_uint<8> rev = x.range(0, 7);  // hi < lo: bits 0..7 reversed
    ap_uint<16> y = 0;
    y.range(0, 7) = ap_uint<8>(0x34);
    const ap_uint<4> a = 15;
    const ap_uint<6> b = 63;
    const auto sum = a + b;                // one bit wider than the wider operand
    const auto mixed = a ^ b;              // the wider operand's width, a zero-extended
    const ap_uint<8> c = 0x81;
    const auto left = c << 1;              // same width: the top bit is lost
    const auto back = c << -1;             // a negative amount shifts the other way
    ap_uint<300> big = 1;
    big = big << 299;
    const ap_uint<8> m = -1;
    std::printf("%x %x %d %d %d %d %x %x %d %d %x %d %d\n", (unsigned)rev.to_uint64(), (unsigned)y.to_uint64(),
                (int)sum.to_uint64(), (int)sizeof(sum.w_) * 0 + (int)bnn2fpga_bits(64),
                (int)(sum == ap_uint<7>(78)), (int)(mixed == ap_uint<6>(48)), (unsigned)left.to_uint64(),
                (unsigned)back.to_uint64(), (int)big[299], (int)(big >> 298).to_uint64(), (unsigned)m.to_uint64(),
                (int)(ap_uint<4>(3) >= ap_uint<9>(3)), (int)(ap_uint<4>(3) < ap_uint<9>(256)));
    return 0;
}
"""


def _compile(tmp_path: Path, source: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "t.cpp").write_text(source)
    (tmp_path / hls.HEADER).write_text(hls.support_header())
    return subprocess.run(["g++", "-std=c++14", "-Wall", "-Werror", "-I", str(tmp_path), str(tmp_path / "t.cpp"),
                           "-o", str(tmp_path / "t")], capture_output=True, text=True, check=False)


def test_vendor_semantics_where_they_differ_from_c(tmp_path: Path) -> None:
    """What the real ap_int.h gives (checked against Xilinx's open-source ap_int.h with g++): range(hi, lo)
    with hi < lo reverses the bits both ways, + widens, ^ takes the wider width, << keeps the width and
    a negative amount shifts right, a negative C integer wraps modulo 2^N."""
    if shutil.which("g++") is None:
        pytest.skip("g++ not installed")
    assert _compile(tmp_path, SEMANTICS).returncode == 0
    out = subprocess.run([str(tmp_path / "t")], capture_output=True, text=True, check=True).stdout.split()
    # 0x34 = 00110100 reversed is 00101100 = 0x2c; 15 + 63 = 78 in 7 bits; 15 ^ 63 = 48; 0x81 << 1 = 0x02 in 8
    # bits; 0x81 << -1 = 0x40; bits(64) = 7.
    assert out == ["2c", "2c", "78", "7", "1", "1", "2", "40", "1", "2", "ff", "1", "1"]


@pytest.mark.parametrize(("snippet", "message"), [
    ("ap_uint<4097> w = 0; (void)w;", "4096"),            # past UG1399's documented width
    ("ap_uint<8> v = 3; auto w = v ^ 5; (void)w;", ""),    # a C integer operand: signed ap_int under Vitis
    ("ap_uint<8> v = 3; bool w = v == 3; (void)w;", ""),
    ("ap_uint<40> v = 3; auto w = v + ap_uint<64>(1); (void)w;", "64"),  # wider sums are not modelled
])
def test_what_the_stand_in_does_not_model_does_not_compile(tmp_path: Path, snippet: str, message: str) -> None:
    if shutil.which("g++") is None:
        pytest.skip("g++ not installed")
    done = _compile(tmp_path, f'#include "bnn2fpga_hls.h"\nint main() {{ {snippet} return 0; }}\n')
    assert done.returncode != 0 and message in done.stderr


def test_a_range_past_the_top_bit_aborts(tmp_path: Path) -> None:
    if shutil.which("g++") is None:
        pytest.skip("g++ not installed")
    assert _compile(tmp_path, '#include "bnn2fpga_hls.h"\nint main() { ap_uint<8> v = 1; '
                              'ap_uint<8> w = v.range(8, 1); return (int)w.to_uint64(); }\n').returncode == 0
    done = subprocess.run([str(tmp_path / "t")], capture_output=True, text=True, check=False)
    assert done.returncode != 0 and "out of bounds" in done.stderr
