// H(T) and H(T, Y) of discrete symbols by hash-table counting, as an XLA FFI custom call (CPU backend).
//
// Why: XLA's CPU sort costs ~30 ns per element, and the binning estimators count the symbols of every
// layer of every network at every logged epoch; with MI at every epoch the sort was half of a sweep's time
// (BUILD_NOTES.md, issue 6). An open-addressing table counts the same rows in a few ns each.
//
// Exact: the table compares whole 64-bit keys; mixing them only chooses where to look. So the counts are
// exactly those of the keys (the caller's keys are exact mixed-radix symbols where they fit in 64 bits).
//
// Arguments: keys uint64 [..., N], labels int32 [..., N] (leading size R or 1: one label row for all).
// Attribute n_classes: labels lie in [0, n_classes). Attribute correction: 0 the plug-in entropies, 1 Miller-Madow's
// bias correction, 2 the jackknife's; each is A(N) - sum_b phi(c_b) / N over the symbols' counts c_b, so only the
// table phi and the constant A change (ibjax/mi/entropy.py gives the three).
// Result: float64 [..., 2] = (H(T), H(T, Y)) in bits, X uniform over the N rows.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

inline uint64_t mix64(uint64_t x) {  // splitmix64's finalizer: spreads any key over the table
  x ^= x >> 30;
  x *= 0xBF58476D1CE4E5B9ULL;
  x ^= x >> 27;
  x *= 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

// Many classes: open addressing with linear probing, at most half full, one counter per slot; T and (T, Y)
// each get a table (the label is part of the (T, Y) record).
// One slot is one record [key (2 words), label, occupied, count] of int32 words: a probe touches one
// cache line, not one per field (separate arrays cost ~2x: BUILD_NOTES.md, issue 6).
struct Table {
  std::vector<int32_t> slots;
  std::vector<int32_t> used;  // occupied slots (the first n_used), to clear and sum without scanning the table
  int64_t n_used = 0;
  uint64_t mask = 0;
  int shift = 64;
  static constexpr int64_t kHeader = 4;  // key (2 words), label, occupied
  static constexpr int64_t stride = kHeader + 1;

  void reset(int64_t n) {
    uint64_t size = 2;
    int bits = 1;
    while (size < 2 * static_cast<uint64_t>(n)) { size <<= 1; ++bits; }
    if (static_cast<int64_t>(slots.size()) != static_cast<int64_t>(size) * stride) {
      slots.assign(size * stride, 0);
    } else {
      // Mostly full (near-distinct rows): one memset of the table beats a small one per used slot (~3x).
      if (4 * n_used > static_cast<int64_t>(size))
        std::memset(slots.data(), 0, slots.size() * sizeof(int32_t));
      else
        for (int64_t u = 0; u < n_used; ++u) std::fill_n(slots.begin() + static_cast<int64_t>(used[u]) * stride, stride, 0);
    }
    used.resize(n > 0 ? n : 1);
    n_used = 0;
    mask = size - 1;
    shift = 64 - bits;
  }

  uint64_t home(uint64_t k, int32_t lab = 0) const { return mix64(k + static_cast<uint64_t>(lab)) >> shift; }
  int32_t* counts(int64_t s) { return &slots[s * stride + kHeader]; }
};

// Inserts key k (with label lab) starting at its home slot s; returns its counters. Plain pointers and a
// preallocated `used` list: the hot loop must not touch the (thread-local) Table object's fields.
inline int32_t* insert(int32_t* __restrict base, int64_t stride, uint64_t mask, int32_t* __restrict used,
                       int64_t& n_used, uint64_t s, uint64_t k, int32_t lab) {
  while (true) {
    int32_t* rec = base + s * stride;
    if (!rec[3]) {
      std::memcpy(rec, &k, sizeof k);
      rec[2] = lab;
      rec[3] = 1;
      used[n_used++] = static_cast<int32_t>(s);
      return rec + Table::kHeader;
    }
    uint64_t key;
    std::memcpy(&key, rec, sizeof key);
    if (key == k && rec[2] == lab) return rec + Table::kHeader;
    s = (s + 1) & mask;
  }
}

constexpr int64_t kMaxWidth = 64;  // above this many classes, (T, Y) gets its own table

// Few classes (n_classes <= kMaxWidth): one record per distinct key, [key + 1 (2 words), one counter per
// class], so H(T) and H(T, Y) come from one insertion. A stored 0 marks an empty slot (the key 2^64 - 1, whose
// + 1 wraps to 0, is counted apart). The table's active size follows the previous row's distinct count
// (rows of one call are one layer of many networks, alike), from 64 slots (L1-resident) up, and doubles
// when it gets a quarter full (short probe chains: 4n slots instead of 2n was ~20 % faster on near-distinct
// rows); between rows only the used records are cleared. BUILD_NOTES.md (issue 6, session 6) has the numbers.
struct ClassTable {
  std::vector<int32_t> slots;  // capacity records; zero outside the used ones
  std::vector<int32_t> used;   // the occupied slots of the active size
  std::vector<int32_t> moved;  // records carried over while growing
  int64_t expect = 0;          // distinct keys in the previous row
};

// The counters of key k (stored as k1 = k + 1 != 0), added at the first empty slot from s if new.
inline int32_t* find_or_add(int32_t* __restrict base, int64_t stride, uint64_t mask, int32_t* __restrict used,
                            int64_t& n_used, uint64_t s, uint64_t k1) {
  while (true) {
    int32_t* rec = base + s * stride;
    uint64_t stored;
    std::memcpy(&stored, rec, sizeof stored);
    if (stored == k1) return rec + 2;
    if (stored == 0) {
      std::memcpy(rec, &k1, sizeof k1);
      used[n_used++] = static_cast<int32_t>(s);
      return rec + 2;
    }
    s = (s + 1) & mask;
  }
}

// Doubles the active table and re-inserts its records.
template <int64_t W>
__attribute__((noinline)) void grow(ClassTable& t, int64_t stride, int64_t* size, int* bits, int64_t* n_used) {
  int32_t* base = t.slots.data();
  int32_t* used = t.used.data();
  const int64_t count = *n_used;
  t.moved.resize(count * stride);
  for (int64_t u = 0; u < count; ++u) {
    int32_t* rec = base + static_cast<int64_t>(used[u]) * stride;
    std::copy(rec, rec + stride, t.moved.data() + u * stride);
    std::fill(rec, rec + stride, 0);
  }
  *size <<= 1;
  ++*bits;
  int64_t k = 0;
  for (int64_t u = 0; u < count; ++u) {
    const int32_t* old = t.moved.data() + u * stride;
    uint64_t k1;
    std::memcpy(&k1, old, sizeof k1);
    int32_t* c = find_or_add(base, stride, *size - 1, used, k, mix64(k1) >> (64 - *bits), k1);
    std::copy(old + 2, old + stride, c);
  }
  *n_used = k;
}

// W: the number of classes when it is known at compile time (the common 2 and 10), else 0 (runtime w).
template <int64_t W>
void count_few(ClassTable& t, const uint64_t* k, const int32_t* y, int64_t n, int64_t w, const double* c_log_c,
               double& sum_t, double& sum_ty) {
  const int64_t width = W ? W : w, stride = 2 + width;
  int64_t max_size = 64;
  while (max_size < 4 * n) max_size <<= 1;
  if (static_cast<int64_t>(t.slots.size()) < max_size * stride) {
    t.slots.assign(max_size * stride, 0);
    t.expect = 0;
  }
  if (static_cast<int64_t>(t.used.size()) < n + 1) t.used.resize(n + 1);
  int64_t size = 64;
  while (size < 8 * t.expect && size < max_size) size <<= 1;
  int bits = 0;
  while ((int64_t{1} << bits) < size) ++bits;
  int32_t* base = t.slots.data();
  int32_t* used = t.used.data();
  int64_t n_used = 0;
  int32_t wrapped[kMaxWidth] = {};
  int64_t limit = size < max_size ? size / 4 : n + 1;  // grow beyond this many distinct keys
  for (int64_t i = 0; i < n; ++i) {
    const uint64_t k1 = k[i] + 1;
    if (k1 == 0) {
      ++wrapped[y[i]];
      continue;
    }
    ++find_or_add(base, stride, size - 1, used, n_used, mix64(k1) >> (64 - bits), k1)[y[i]];
    if (__builtin_expect(n_used >= limit, 0)) {
      grow<W>(t, stride, &size, &bits, &n_used);
      limit = size < max_size ? size / 4 : n + 1;
    }
  }
  double st = 0.0, sty = 0.0;  // locals: sums through the references would be a store-load chain per record
  for (int64_t u = 0; u < n_used; ++u) {
    int32_t* rec = base + static_cast<int64_t>(used[u]) * stride;
    int64_t total = 0;
    for (int64_t j = 0; j < width; ++j) {
      total += rec[2 + j];
      sty += c_log_c[rec[2 + j]];
    }
    st += c_log_c[total];
    for (int64_t j = 0; j < stride; ++j) rec[j] = 0;  // cleared for the next row
  }
  int64_t total = 0;
  for (int64_t j = 0; j < width; ++j) {
    total += wrapped[j];
    sty += c_log_c[wrapped[j]];
  }
  sum_t += st + c_log_c[total];
  sum_ty += sty;
  t.expect = n_used;
}

inline double xlog2x(double x) { return x > 0.0 ? x * std::log2(x) : 0.0; }

struct Scratch {
  Table t_table, ty_table;  // many classes
  ClassTable class_table;   // few classes
  // phi(c) for every count c in [0, N] (c * log2(c) for the plug-in entropy; phi(0) = 0 always), and A(N).
  std::vector<double> c_log_c;
  int64_t correction = -1;
  double a = 0.0;

  void prepare(int64_t n, int64_t corr) {
    if (static_cast<int64_t>(c_log_c.size()) != n + 1 || correction != corr) {
      c_log_c.assign(n + 1, 0.0);
      const double half = 1.0 / (2.0 * std::log(2.0));
      for (int64_t c = 1; c <= n; ++c) {
        const double x = static_cast<double>(c);
        c_log_c[c] = corr == 1 ? xlog2x(x) - half : corr == 2 ? x * (xlog2x(x) - xlog2x(x - 1.0)) : xlog2x(x);
      }
      correction = corr;
    }
    const double x = static_cast<double>(n);
    a = n <= 0 ? 0.0 : corr == 1 ? std::log2(x) - 1.0 / (2.0 * std::log(2.0) * x)
                       : corr == 2 ? xlog2x(x) - xlog2x(x - 1.0) : std::log2(x);
  }
};

// H(T), H(T, Y) of one row set: keys[i] is row i's symbol, y[i] its label.
void count_entropies(Scratch& sc, const uint64_t* k, const int32_t* y, int64_t n, int64_t n_classes, double* out) {
  const double log2n = sc.a;  // A(N): log2 N for the plug-in entropy
  const double inv_n = n > 0 ? 1.0 / static_cast<double>(n) : 0.0;
  double sum_t = 0.0, sum_ty = 0.0;
  if (n_classes <= kMaxWidth) {
    // The usual class counts get a loop of known width.
    if (n_classes == 2)
      count_few<2>(sc.class_table, k, y, n, 2, sc.c_log_c.data(), sum_t, sum_ty);
    else if (n_classes == 10)
      count_few<10>(sc.class_table, k, y, n, 10, sc.c_log_c.data(), sum_t, sum_ty);
    else
      count_few<0>(sc.class_table, k, y, n, n_classes, sc.c_log_c.data(), sum_t, sum_ty);
  } else {
    // Many classes: (T, Y) gets its own table keyed by the pair (key, label).
    Table& t = sc.t_table;
    Table& ty = sc.ty_table;
    t.reset(n);
    ty.reset(n);
    for (int64_t i = 0; i < n; ++i) {
      ++insert(t.slots.data(), t.stride, t.mask, t.used.data(), t.n_used, t.home(k[i]), k[i], 0)[0];
      ++insert(ty.slots.data(), ty.stride, ty.mask, ty.used.data(), ty.n_used, ty.home(k[i], y[i]), k[i], y[i])[0];
    }
    for (int64_t u = 0; u < t.n_used; ++u) sum_t += sc.c_log_c[t.counts(t.used[u])[0]];
    for (int64_t u = 0; u < ty.n_used; ++u) sum_ty += sc.c_log_c[ty.counts(ty.used[u])[0]];
  }
  out[0] = n > 0 ? log2n - sum_t * inv_n : 0.0;
  out[1] = n > 0 ? log2n - sum_ty * inv_n : 0.0;
}

ffi::Error check_labels(ffi::Buffer<ffi::S32>& labels, int64_t n, int64_t rows, int64_t n_classes,
                        int64_t* label_rows) {
  auto ldims = labels.dimensions();
  if (ldims.size() < 1 || ldims[ldims.size() - 1] != n)
    return ffi::Error::InvalidArgument("labels must be [..., N] with the symbols' N");
  if (n_classes < 1) return ffi::Error::InvalidArgument("n_classes must be positive");
  *label_rows = n == 0 ? 0 : static_cast<int64_t>(labels.element_count()) / n;
  if (rows > 0 && *label_rows != 1 && *label_rows != rows)
    return ffi::Error::InvalidArgument("labels' leading size must be 1 or the symbols' leading size");
  const int32_t* y = labels.typed_data();
  for (int64_t i = 0; i < *label_rows * n; ++i)
    if (y[i] < 0 || y[i] >= n_classes) return ffi::Error::InvalidArgument("a label is outside [0, n_classes)");
  return ffi::Error::Success();
}

// keys uint64 [..., N] -> (H(T), H(T, Y)) [..., 2]
ffi::Error SymbolEntropiesImpl(ffi::Buffer<ffi::U64> keys, ffi::Buffer<ffi::S32> labels,
                               ffi::ResultBuffer<ffi::F64> out, int64_t n_classes, int64_t correction) {
  auto kdims = keys.dimensions();
  if (kdims.size() < 1) return ffi::Error::InvalidArgument("keys must be [..., N]");
  const int64_t n = kdims[kdims.size() - 1];
  const int64_t rows = n == 0 ? 0 : static_cast<int64_t>(keys.element_count()) / n;
  int64_t label_rows = 0;
  if (auto err = check_labels(labels, n, rows, n_classes, &label_rows); err.failure()) return err;
  if (static_cast<int64_t>(out->element_count()) != 2 * rows)
    return ffi::Error::InvalidArgument("result must be [..., 2]");
  if (correction < 0 || correction > 2) return ffi::Error::InvalidArgument("correction must be 0, 1 or 2");
  thread_local Scratch sc;
  sc.prepare(n, correction);
  for (int64_t r = 0; r < rows; ++r)
    count_entropies(sc, keys.typed_data() + r * n, labels.typed_data() + (label_rows == 1 ? 0 : r * n), n,
                    n_classes, out->typed_data() + 2 * r);
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(IbjaxSymbolEntropies, SymbolEntropiesImpl,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::U64>>()
                                  .Arg<ffi::Buffer<ffi::S32>>()
                                  .Ret<ffi::Buffer<ffi::F64>>()
                                  .Attr<int64_t>("n_classes")
                                  .Attr<int64_t>("correction"));
