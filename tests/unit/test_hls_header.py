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
    std::printf("%%d\n", bnn2fpga_popcount(a));
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
