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
// Attribute n_classes: labels lie in [0, n_classes).
// Result: float64 [..., 2] = (H(T), H(T, Y)) in bits, X uniform over the N rows.

#include <algorithm>
#include <cmath>
#include <cstdint>
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

// Open addressing with linear probing, at most half full. `width` counters per slot: one per class when
// the classes are few (so H(T) and H(T, Y) come from one insertion), else one.
struct Table {
  std::vector<uint64_t> key;
  std::vector<int32_t> label;  // part of the key in the (T, Y) table, 0 otherwise
  std::vector<uint8_t> full;
  std::vector<int32_t> count;
  std::vector<int32_t> used;  // occupied slots, to clear and sum without scanning the table
  uint64_t mask = 0;
  int shift = 64;
  int64_t width = 1;

  void reset(int64_t n, int64_t w) {
    uint64_t size = 2;
    int bits = 1;
    while (size < 2 * static_cast<uint64_t>(n)) { size <<= 1; ++bits; }
    if (key.size() != size || width != w) {
      width = w;
      key.assign(size, 0);
      label.assign(size, 0);
      full.assign(size, 0);
      count.assign(size * w, 0);
    } else {
      for (int32_t s : used) {
        full[s] = 0;
        std::fill_n(count.begin() + static_cast<int64_t>(s) * width, width, 0);
      }
    }
    used.clear();
    mask = size - 1;
    shift = 64 - bits;
  }

  int32_t* slot_counts(uint64_t k, int32_t lab = 0) {
    uint64_t s = mix64(k + static_cast<uint64_t>(lab)) >> shift;
    while (full[s]) {
      if (key[s] == k && label[s] == lab) return &count[s * width];
      s = (s + 1) & mask;
    }
    full[s] = 1;
    key[s] = k;
    label[s] = lab;
    used.push_back(static_cast<int32_t>(s));
    return &count[s * width];
  }
};

constexpr int64_t kMaxWidth = 64;  // above this many classes, (T, Y) gets its own table

struct Scratch {
  Table t_table, ty_table;
  std::vector<double> c_log_c;  // c * log2(c) for every count c in [0, N]

  void prepare(int64_t n) {
    if (static_cast<int64_t>(c_log_c.size()) != n + 1) {
      c_log_c.assign(n + 1, 0.0);
      for (int64_t c = 2; c <= n; ++c) c_log_c[c] = static_cast<double>(c) * std::log2(static_cast<double>(c));
    }
  }
};

// H(T), H(T, Y) of one row set: keys[i] is row i's symbol, y[i] its label.
void count_entropies(Scratch& sc, const uint64_t* k, const int32_t* y, int64_t n, int64_t n_classes, double* out) {
  const double log2n = n > 0 ? std::log2(static_cast<double>(n)) : 0.0;
  const double inv_n = n > 0 ? 1.0 / static_cast<double>(n) : 0.0;
  double sum_t = 0.0, sum_ty = 0.0;
  if (n_classes <= kMaxWidth) {
    Table& t = sc.t_table;
    t.reset(n, n_classes);
    for (int64_t i = 0; i < n; ++i) ++t.slot_counts(k[i])[y[i]];
    for (int32_t s : t.used) {
      const int32_t* c = &t.count[static_cast<int64_t>(s) * n_classes];
      int64_t total = 0;
      for (int64_t j = 0; j < n_classes; ++j) {
        total += c[j];
        sum_ty += sc.c_log_c[c[j]];
      }
      sum_t += sc.c_log_c[total];
    }
  } else {
    // Many classes: (T, Y) gets its own table keyed by the pair (key, label).
    sc.t_table.reset(n, 1);
    sc.ty_table.reset(n, 1);
    for (int64_t i = 0; i < n; ++i) {
      ++sc.t_table.slot_counts(k[i])[0];
      ++sc.ty_table.slot_counts(k[i], y[i])[0];
    }
    for (int32_t s : sc.t_table.used) sum_t += sc.c_log_c[sc.t_table.count[s]];
    for (int32_t s : sc.ty_table.used) sum_ty += sc.c_log_c[sc.ty_table.count[s]];
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
                               ffi::ResultBuffer<ffi::F64> out, int64_t n_classes) {
  auto kdims = keys.dimensions();
  if (kdims.size() < 1) return ffi::Error::InvalidArgument("keys must be [..., N]");
  const int64_t n = kdims[kdims.size() - 1];
  const int64_t rows = n == 0 ? 0 : static_cast<int64_t>(keys.element_count()) / n;
  int64_t label_rows = 0;
  if (auto err = check_labels(labels, n, rows, n_classes, &label_rows); err.failure()) return err;
  if (static_cast<int64_t>(out->element_count()) != 2 * rows)
    return ffi::Error::InvalidArgument("result must be [..., 2]");
  thread_local Scratch sc;
  sc.prepare(n);
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
                                  .Attr<int64_t>("n_classes"));
