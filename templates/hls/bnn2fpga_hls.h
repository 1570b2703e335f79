// bnn2fpga_hls.h: the arbitrary-precision and stream types bnn2fpga's generated HLS C++ uses.
//
// Under Vitis HLS (csynth defines __SYNTHESIS__; the generated run_hls.tcl passes
// -DBNN2FPGA_VITIS to C simulation and co-simulation) the vendor headers <ap_int.h>,
// <ap_axi_sdata.h> and <hls_stream.h> are included instead. Everywhere else this file is
// self-contained plain C++ (C++14 and later, g++ or clang): a small model of the subset of
// those interfaces the generated code uses, written for bnn2fpga. Where it models an operation it
// gives the vendor header's result, width included; operations it does not model do not compile
// (an ap_uint mixed with a plain C integer in an operator, for one), so code that passes here
// cannot silently mean something else under Vitis.
//
//   ap_uint<N>        N-bit unsigned value, 1 <= N <= 4096 (UG1399's documented limit), kept as
//                     64-bit words, bits above N zero;
//                     x[i] (bit), x.range(hi, lo) (read and assign; hi < lo reverses the bits, as
//                     the vendor's does), ^ & | (width of the wider operand), ~, + (width of the
//                     wider operand + 1, operands up to 63 bits), == != < <= > >= (values),
//                     << >> by a C integer (same width; a negative amount shifts the other way),
//                     to_uint64().
//   ap_axiu<D,U,I,T>  an AXI4-Stream beat: data, keep, strb, last.
//   hls::stream<T>    an unbounded FIFO: read, write, empty, full, size.
//   bnn2fpga_popcount(x)      number of 1 bits of an ap_uint<N>, as an ap_uint<bnn2fpga_bits(N)>.
//   bnn2fpga_word<N>(words)   an ap_uint<N> from its 64-bit words, least significant first.
#ifndef BNN2FPGA_HLS_H
#define BNN2FPGA_HLS_H

#include <stdint.h>

// Bits of an unsigned count 0..n: bnn2fpga_bits(1) = 1, bnn2fpga_bits(4) = 3.
constexpr int bnn2fpga_bits(int n) { return n < 2 ? 1 : 1 + bnn2fpga_bits(n >> 1); }

#if defined(__SYNTHESIS__) || defined(BNN2FPGA_VITIS)

// The vendor default is 1024 bits; UG1399 documents widths up to 4096, and bnn2fpga's generator
// keeps every ap_uint within that.
#ifndef AP_INT_MAX_W
#define AP_INT_MAX_W 4096
#endif
#include <ap_axi_sdata.h>
#include <ap_int.h>
#include <hls_stream.h>

template <int N>
inline ap_uint<bnn2fpga_bits(N)> bnn2fpga_popcount(const ap_uint<N>& x) {
#pragma HLS INLINE
    ap_uint<bnn2fpga_bits(N)> n = 0;
    for (int i = 0; i < N; ++i) {
#pragma HLS UNROLL
        n += ap_uint<1>(x[i]);
    }
    return n;
}

template <int N, int W>
inline ap_uint<N> bnn2fpga_word(const uint64_t (&words)[W]) {
#pragma HLS INLINE
    ap_uint<N> x = 0;
    for (int i = 0; i < W; ++i) {
#pragma HLS UNROLL
        const int lo = 64 * i, hi = lo + 63 < N - 1 ? lo + 63 : N - 1;  // the last word may be partial
        x.range(hi, lo) = ap_uint<64>(words[i]);
    }
    return x;
}

#else  // plain C++: our own model of the interfaces

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <string>
#include <type_traits>

namespace bnn2fpga_detail {

inline uint64_t low_mask(int bits) { return bits >= 64 ? ~0ull : ((1ull << bits) - 1); }

// Bits pos .. pos+63 of a little-endian word array of `words` words (zeros beyond it).
inline uint64_t get64(const uint64_t* w, int words, int pos) {
    const int idx = pos >> 6, sh = pos & 63;
    if (idx >= words) return 0;
    uint64_t v = w[idx] >> sh;
    if (sh && idx + 1 < words) v |= w[idx + 1] << (64 - sh);
    return v;
}

// Write the low `bits` (1..64) bits of `value` at bit `pos`.
inline void set_bits(uint64_t* w, int words, int pos, int bits, uint64_t value) {
    const int idx = pos >> 6, sh = pos & 63;
    const uint64_t mask = low_mask(bits);
    value &= mask;
    w[idx] = (w[idx] & ~(mask << sh)) | (value << sh);
    if (sh + bits > 64 && idx + 1 < words) {
        const uint64_t high = low_mask(sh + bits - 64);
        w[idx + 1] = (w[idx + 1] & ~high) | (value >> (64 - sh));
    }
}

[[noreturn]] inline void fail(const char* what) {
    std::fprintf(stderr, "bnn2fpga_hls.h: %s\n", what);
    std::abort();
}

constexpr int max_int(int a, int b) { return a > b ? a : b; }

}  // namespace bnn2fpga_detail

template <int N>
class bnn2fpga_range_ref;
template <int N>
class bnn2fpga_bit_ref;

template <int N>
class ap_uint {
    static_assert(N >= 1, "ap_uint needs at least one bit");
    static_assert(N <= 4096, "ap_uint wider than 4096 bits: UG1399 documents widths up to 4096");

  public:
    static const int WORDS = (N + 63) / 64;
    uint64_t w_[WORDS];

    ap_uint() { std::memset(w_, 0, sizeof w_); }
    // From a C integer: its two's complement value modulo 2^N (ap_uint<8>(-1) is 255), as the vendor's.
    template <typename T, typename = typename std::enable_if<std::is_integral<T>::value>::type>
    ap_uint(T v) {
        const int64_t s = static_cast<int64_t>(v);
        const uint64_t fill = std::is_signed<T>::value && s < 0 ? ~0ull : 0ull;
        w_[0] = static_cast<uint64_t>(v);
        if (std::is_signed<T>::value) w_[0] = static_cast<uint64_t>(s);
        for (int i = 1; i < WORDS; ++i) w_[i] = fill;
        clamp();
    }
    template <int M>
    ap_uint(const ap_uint<M>& o) {  // zero-extend or truncate
        for (int i = 0; i < WORDS; ++i) w_[i] = i < ap_uint<M>::WORDS ? o.w_[i] : 0;
        clamp();
    }

    void clamp() { w_[WORDS - 1] &= bnn2fpga_detail::low_mask(N - 64 * (WORDS - 1)); }

    bnn2fpga_bit_ref<N> operator[](int i) { return bnn2fpga_bit_ref<N>(this, i); }
    bool operator[](int i) const { return bnn2fpga_bit_ref<N>(const_cast<ap_uint*>(this), i); }
    bnn2fpga_range_ref<N> range(int hi, int lo) { return bnn2fpga_range_ref<N>(this, hi, lo); }
    // Reading a range of a const value: the reference is never assigned through.
    bnn2fpga_range_ref<N> range(int hi, int lo) const {
        return bnn2fpga_range_ref<N>(const_cast<ap_uint*>(this), hi, lo);
    }

    // Bitwise operators between ap_uints: the narrower operand is zero-extended and the result has
    // the wider width (the vendor's "logic" result type for two unsigned operands). Templates on
    // purpose: a C integer operand cannot be deduced, so `x ^ 5` does not compile here (the
    // vendor's would make it a signed ap_int<max(N + 1, 32)>).
    template <int M>
    ap_uint<bnn2fpga_detail::max_int(N, M)> operator^(const ap_uint<M>& o) const {
        ap_uint<bnn2fpga_detail::max_int(N, M)> a(*this), b(o);
        for (int i = 0; i < a.WORDS; ++i) a.w_[i] ^= b.w_[i];
        return a;
    }
    template <int M>
    ap_uint<bnn2fpga_detail::max_int(N, M)> operator&(const ap_uint<M>& o) const {
        ap_uint<bnn2fpga_detail::max_int(N, M)> a(*this), b(o);
        for (int i = 0; i < a.WORDS; ++i) a.w_[i] &= b.w_[i];
        return a;
    }
    template <int M>
    ap_uint<bnn2fpga_detail::max_int(N, M)> operator|(const ap_uint<M>& o) const {
        ap_uint<bnn2fpga_detail::max_int(N, M)> a(*this), b(o);
        for (int i = 0; i < a.WORDS; ++i) a.w_[i] |= b.w_[i];
        return a;
    }
    ap_uint operator~() const {
        ap_uint r;
        for (int i = 0; i < WORDS; ++i) r.w_[i] = ~w_[i];
        r.clamp();
        return r;
    }
    // Sum of two ap_uints: one bit wider than the wider operand, so it never wraps (the vendor's
    // "plus" type). Only what fits one 64-bit word is modelled; the generated code adds counts.
    template <int M>
    ap_uint<bnn2fpga_detail::max_int(N, M) + 1> operator+(const ap_uint<M>& o) const {
        static_assert(bnn2fpga_detail::max_int(N, M) + 1 <= 64, "bnn2fpga_hls.h models + up to 64 result bits");
        return ap_uint<bnn2fpga_detail::max_int(N, M) + 1>(w_[0] + o.w_[0]);
    }
    // Shifts keep the width (bits shifted out are lost); a negative amount shifts the other way.
    template <typename T, typename = typename std::enable_if<std::is_integral<T>::value>::type>
    ap_uint operator<<(T amount) const {
        const long long n = static_cast<long long>(amount);
        return n < 0 ? shifted_right(-n) : shifted_left(n);
    }
    template <typename T, typename = typename std::enable_if<std::is_integral<T>::value>::type>
    ap_uint operator>>(T amount) const {
        const long long n = static_cast<long long>(amount);
        return n < 0 ? shifted_left(-n) : shifted_right(n);
    }
    template <int M>
    bool operator==(const ap_uint<M>& o) const { return compare(o) == 0; }
    template <int M>
    bool operator!=(const ap_uint<M>& o) const { return compare(o) != 0; }
    template <int M>
    bool operator<(const ap_uint<M>& o) const { return compare(o) < 0; }
    template <int M>
    bool operator<=(const ap_uint<M>& o) const { return compare(o) <= 0; }
    template <int M>
    bool operator>(const ap_uint<M>& o) const { return compare(o) > 0; }
    template <int M>
    bool operator>=(const ap_uint<M>& o) const { return compare(o) >= 0; }
    uint64_t to_uint64() const { return w_[0]; }

  private:
    template <int M>
    int compare(const ap_uint<M>& o) const {
        const int words = WORDS > ap_uint<M>::WORDS ? WORDS : ap_uint<M>::WORDS;
        for (int i = words - 1; i >= 0; --i) {
            const uint64_t a = i < WORDS ? w_[i] : 0, b = i < ap_uint<M>::WORDS ? o.w_[i] : 0;
            if (a != b) return a < b ? -1 : 1;
        }
        return 0;
    }
    ap_uint shifted_left(long long n) const {
        ap_uint r;
        if (n >= N) return r;
        const int words = static_cast<int>(n >> 6), bits = static_cast<int>(n & 63);
        for (int i = WORDS - 1; i >= words; --i) {
            uint64_t v = w_[i - words] << bits;
            if (bits && i - words - 1 >= 0) v |= w_[i - words - 1] >> (64 - bits);
            r.w_[i] = v;
        }
        r.clamp();
        return r;
    }
    ap_uint shifted_right(long long n) const {
        ap_uint r;
        if (n >= N) return r;
        for (int i = 0; i < WORDS; ++i) r.w_[i] = bnn2fpga_detail::get64(w_, WORDS, static_cast<int>(n) + 64 * i);
        r.clamp();
        return r;
    }
};

// x.range(hi, lo): converts to any ap_uint<M> (zero-extended or truncated) and can be assigned.
// With hi < lo it is bits lo down to hi: bit lo of x is bit 0 of the range (reversed order), for
// reading and for assigning, as in the vendor's ap_int.
template <int N>
class bnn2fpga_range_ref {
  public:
    bnn2fpga_range_ref(ap_uint<N>* v, int hi, int lo) : v_(v), hi_(hi), lo_(lo) {
        if (lo < 0 || hi < 0 || hi >= N || lo >= N) {
            std::fprintf(stderr, "ap_uint<%d>::range(%d, %d) is out of bounds\n", N, hi, lo);
            std::abort();
        }
    }
    template <int M>
    operator ap_uint<M>() const {
        ap_uint<M> r;
        if (hi_ < lo_) {
            for (int i = 0; i <= lo_ - hi_ && i < M; ++i) r[i] = static_cast<const ap_uint<N>&>(*v_)[lo_ - i];
            return r;
        }
        const int len = hi_ - lo_ + 1;
        for (int i = 0; i < ap_uint<M>::WORDS && 64 * i < len; ++i) {
            const int bits = len - 64 * i < 64 ? len - 64 * i : 64;
            r.w_[i] = bnn2fpga_detail::get64(v_->w_, ap_uint<N>::WORDS, lo_ + 64 * i) &
                      bnn2fpga_detail::low_mask(bits);
        }
        r.clamp();
        return r;
    }
    uint64_t to_uint64() const { return static_cast<ap_uint<64> >(*this).to_uint64(); }
    template <int M>
    bnn2fpga_range_ref& operator=(const ap_uint<M>& x) {
        if (hi_ < lo_) {
            for (int i = 0; i <= lo_ - hi_; ++i) (*v_)[lo_ - i] = i < M && x[i];
            return *this;
        }
        const int len = hi_ - lo_ + 1;
        for (int i = 0; 64 * i < len; ++i) {
            const int bits = len - 64 * i < 64 ? len - 64 * i : 64;
            const uint64_t word = i < ap_uint<M>::WORDS ? x.w_[i] : 0;
            bnn2fpga_detail::set_bits(v_->w_, ap_uint<N>::WORDS, lo_ + 64 * i, bits, word);
        }
        v_->clamp();
        return *this;
    }
    template <typename T, typename = typename std::enable_if<std::is_integral<T>::value>::type>
    bnn2fpga_range_ref& operator=(T x) {
        return *this = ap_uint<64>(x);
    }
    template <int M>
    bnn2fpga_range_ref& operator=(const bnn2fpga_range_ref<M>& x) {
        return *this = static_cast<ap_uint<M> >(x);
    }
    bnn2fpga_range_ref& operator=(const bnn2fpga_range_ref& x) { return *this = static_cast<ap_uint<N> >(x); }

  private:
    ap_uint<N>* v_;
    int hi_, lo_;
};

// x[i]: reads as bool, can be assigned a bool.
template <int N>
class bnn2fpga_bit_ref {
  public:
    bnn2fpga_bit_ref(ap_uint<N>* v, int i) : v_(v), i_(i) {
        if (i < 0 || i >= N) {
            std::fprintf(stderr, "ap_uint<%d>[%d] is out of bounds\n", N, i);
            std::abort();
        }
    }
    operator bool() const { return (v_->w_[i_ >> 6] >> (i_ & 63)) & 1; }
    bnn2fpga_bit_ref& operator=(bool b) {
        const uint64_t bit = 1ull << (i_ & 63);
        v_->w_[i_ >> 6] = b ? (v_->w_[i_ >> 6] | bit) : (v_->w_[i_ >> 6] & ~bit);
        return *this;
    }
    bnn2fpga_bit_ref& operator=(const bnn2fpga_bit_ref& o) { return *this = static_cast<bool>(o); }

  private:
    ap_uint<N>* v_;
    int i_;
};

template <int N>
inline ap_uint<bnn2fpga_bits(N)> bnn2fpga_popcount(const ap_uint<N>& x) {
    int n = 0;
    for (int i = 0; i < ap_uint<N>::WORDS; ++i) n += __builtin_popcountll(x.w_[i]);
    return ap_uint<bnn2fpga_bits(N)>(n);
}

template <int N, int W>
inline ap_uint<N> bnn2fpga_word(const uint64_t (&words)[W]) {
    static_assert(W == ap_uint<N>::WORDS, "a weight word has ceil(N / 64) 64-bit words");
    ap_uint<N> x;
    std::memcpy(x.w_, words, sizeof x.w_);
    x.clamp();
    return x;
}

template <int D, int U, int TI, int TD>
struct ap_axiu {
    ap_uint<D> data;
    ap_uint<(D + 7) / 8> keep;
    ap_uint<(D + 7) / 8> strb;
    ap_uint<1> last;
};

namespace hls {

template <typename T>
class stream {
  public:
    stream() : name_("stream") {}
    explicit stream(const char* name) : name_(name) {}
    stream(const stream&) = delete;
    stream& operator=(const stream&) = delete;

    void write(const T& v) { q_.push_back(v); }
    T read() {
        if (q_.empty()) {
            // Vitis C simulation would block here forever: the design reads a beat nobody wrote.
            std::fprintf(stderr, "hls::stream %s: read while empty (a producer wrote too few beats)\n", name_.c_str());
            std::exit(3);
        }
        T v = q_.front();
        q_.pop_front();
        return v;
    }
    void read(T& v) { v = read(); }
    bool empty() const { return q_.empty(); }
    bool full() const { return false; }
    std::size_t size() const { return q_.size(); }

  private:
    std::deque<T> q_;
    std::string name_;
};

}  // namespace hls

#endif  // vendor headers or our own
#endif  // BNN2FPGA_HLS_H
