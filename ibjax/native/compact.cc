// The compaction step of the Feistel shuffle (ibjax.shuffle), as an XLA FFI custom call (CPU backend):
// each row's values below n, in order.
//
// Why: the shuffle's cycle walking maps 0..2^k-1 through a keyed bijection and keeps, in order, the values
// below n. In XLA that compaction is a cumsum and a scatter, and the vmapped scatter builds a (model,
// position) index pair per element: ~15 ms of a ~40 ms training epoch for 128 networks on one core
// (BUILD_NOTES.md, issue 6). Here it is one pass per row. Same integers in, same integers out: the
// permutation is identical to the XLA path's (tests/train/test_shuffle.py compares them).
//
// Arguments: values s32 [..., K]. Attribute n. Result: s32 [..., n]. Every row must hold exactly n values in
// [0, n) (a bijection of [0, K) with K >= n does); otherwise an error.

#include <cstdint>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

ffi::Error CompactBelowImpl(ffi::Buffer<ffi::S32> values, ffi::ResultBuffer<ffi::S32> out, int64_t n) {
  auto dims = values.dimensions();
  if (dims.size() < 1) return ffi::Error::InvalidArgument("values must be [..., K]");
  const int64_t k = dims[dims.size() - 1];
  if (n < 0 || n > k) return ffi::Error::InvalidArgument("n must lie in [0, K]");
  const int64_t rows = k == 0 ? 0 : static_cast<int64_t>(values.element_count()) / k;
  if (static_cast<int64_t>(out->element_count()) != rows * n)
    return ffi::Error::InvalidArgument("result must be [..., n]");
  for (int64_t r = 0; r < rows; ++r) {
    const int32_t* v = values.typed_data() + r * k;
    int32_t* o = out->typed_data() + r * n;
    int32_t spill;  // where a value that does not belong goes: no branch on the (unpredictable) test
    int64_t j = 0;
    for (int64_t i = 0; i < k; ++i) {
      const bool keep = static_cast<uint32_t>(v[i]) < static_cast<uint64_t>(n);
      *(keep && j < n ? o + j : &spill) = v[i];
      j += keep;
    }
    if (j != n) return ffi::Error::InvalidArgument("a row does not hold exactly n values in [0, n)");
  }
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(IbjaxCompactBelow, CompactBelowImpl,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::S32>>()
                                  .Ret<ffi::Buffer<ffi::S32>>()
                                  .Attr<int64_t>("n"));
