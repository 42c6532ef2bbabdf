// A stack of small MLPs on the CPU, as two XLA FFI custom calls:
//   ibjax_mlp_grads   — weight and bias gradients of a minibatch's weighted softmax cross-entropy;
//   ibjax_mlp_forward — every layer on all rows (the MI sample).
//
// Why: the networks of information-plane studies are tiny (12-10-7-5-4-3-2). XLA's CPU backend runs each
// of their matmuls as its own small library call per model, so a training step of 128 models is thousands
// of calls of a few hundred multiply-adds each; BUILD_NOTES.md (issue 6) measured ~3 % of the machine's
// sgemm peak in every layout XLA offers. Here each model's step is one pass over contiguous sample rows:
// activations are stored unit-major ([unit][sample]), so every multiply-add runs along the samples with
// full-width vectors, and nothing leaves the cache between layers (4.4x faster than jax.grad per step).
//
// What it computes is exactly the engine's XLA loss (ibjax.engine.Engine._loss) differentiated by JAX:
//   h_0 = x[idx]; h_{l+1} = f(h_l W_l + b_l) * mask_l (hidden layers); logits = h_{L-1} W_{L-1} + b_{L-1};
//   loss = sum_s w_s CE(logits_s, y[idx_s]) / sum_s w_s.
// Derivatives at the kinks follow JAX's: relu'(0) = 0, leaky_relu'(0) = 1, elu'(0) = 1. tanh and exp use
// their own float approximations (a few ulp; tanh is the rational one XLA's CPU backend uses), so the
// results agree with JAX's to float rounding, not bit for bit (tests/native/test_mlp_kernel.py). NaN propagates.
// The loops rely on -fno-trapping-math to vectorize (the build in __init__.py sets it).
//
// Gradient arguments (a leading model axis M, or none / size 1 where all models share the array):
//   x f32 [n, D], y s32 [n], idx s32 [M, S] (rows of x), w f32 [S] or [M, S] (sample weights),
//   act s32 [M] (activation code, the order of ibjax.native.mlp.ACTIVATION_CODES), masks f32 [M, sum H],
//   then W_0, b_0, ..., W_{L-1}, b_{L-1}: f32 [M, d_l, d_{l+1}] and [M, d_{l+1}].
// Results: dW_0, db_0, ..., same shapes as the parameters.
// Forward arguments: x, act, masks and the parameters as above; results: one f32 [M, n, d_{l+1}] per layer.

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

constexpr int64_t kLanes = 16;  // samples are padded to a multiple of this (one AVX-512 vector of floats)

enum Activation : int32_t { kTanh = 0, kRelu, kSigmoid, kSoftsign, kSoftplus, kLinear, kLeakyRelu, kElu, kGelu, kSwish,
                            kNumActivations };

// exp(x) in float, Cephes' polynomial after range reduction; written without calls or branches so that the
// compiler vectorizes the loops that use it. NaN in, NaN out (the engine detects diverged networks by NaN).
inline float exp_approx(float x) {
  const float hi = 88.3762626647949f, lo = -87.3365478515625f;  // exp(lo) = FLT_MIN: no denormals
  float xc = x > hi ? hi : x;
  xc = xc < lo ? lo : xc;
  const float n = std::floor(xc * 1.44269504088896341f + 0.5f);
  float r = xc - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float e = p * r * r + r + 1.0f;
  int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  const float out = e * scale;
  return x != x ? x : out;
}

// tanh(x) in float: the 13/6 rational approximation of Eigen's generic_fast_tanh_float, which XLA's CPU
// backend also uses for f32 tanh; exact to a few ulp, and x itself where |x| < 4e-4.
inline float tanh_approx(float x) {
  const float clamp = 7.90531110763549805f;  // tanh rounds to +-1 beyond this
  float xc = x > clamp ? clamp : x;
  xc = xc < -clamp ? -clamp : xc;
  const float x2 = xc * xc;
  float p = -2.76076847742355e-16f;
  p = p * x2 + 2.00018790482477e-13f;
  p = p * x2 + -8.60467152213735e-11f;
  p = p * x2 + 5.12229709037114e-08f;
  p = p * x2 + 1.48572235717979e-05f;
  p = p * x2 + 6.37261928875436e-04f;
  p = p * x2 + 4.89352455891786e-03f;
  p = p * xc;
  float q = 1.19825839466702e-06f;
  q = q * x2 + 1.18534705686654e-04f;
  q = q * x2 + 2.26843463243900e-03f;
  q = q * x2 + 4.89352518554385e-03f;
  const float t = p / q;
  const float ax = x < 0 ? -x : x;
  return ax < 0.0004f ? x : (x != x ? x : t);
}

// a = f(z) * mask and d = f'(z) * mask over n samples (d is what the backward pass multiplies by).
__attribute__((noinline)) void activate(int32_t act, const float* __restrict z, float mask, float* __restrict a, float* __restrict d,
              int64_t n) {
  switch (act) {
    case kTanh:
      for (int64_t s = 0; s < n; ++s) {
        const float t = tanh_approx(z[s]);
        a[s] = t * mask;
        d[s] = (1.0f - t * t) * mask;
      }
      break;
    case kRelu:
      for (int64_t s = 0; s < n; ++s) {
        a[s] = (z[s] > 0.0f ? z[s] : 0.0f) * mask;
        d[s] = (z[s] > 0.0f ? 1.0f : 0.0f) * mask;
        if (z[s] != z[s]) a[s] = d[s] = z[s];
      }
      break;
    case kSigmoid:
      for (int64_t s = 0; s < n; ++s) {
        const float g = 1.0f / (1.0f + exp_approx(-z[s]));
        a[s] = g * mask;
        d[s] = g * (1.0f - g) * mask;
      }
      break;
    case kSoftsign:
      for (int64_t s = 0; s < n; ++s) {
        const float q = 1.0f / (1.0f + std::fabs(z[s]));
        a[s] = z[s] * q * mask;
        d[s] = q * q * mask;
      }
      break;
    case kSoftplus:  // log(1 + e^z) = max(z, 0) + log1p(e^-|z|)
      for (int64_t s = 0; s < n; ++s) {
        const float v = z[s];
        a[s] = ((v > 0.0f ? v : 0.0f) + std::log1p(std::exp(-std::fabs(v)))) * mask;
        d[s] = mask / (1.0f + std::exp(-v));
      }
      break;
    case kLinear:
      for (int64_t s = 0; s < n; ++s) {
        a[s] = z[s] * mask;
        d[s] = mask;
      }
      break;
    case kLeakyRelu:  // jnp.where(z >= 0, z, 0.01 z)
      for (int64_t s = 0; s < n; ++s) {
        a[s] = (z[s] >= 0.0f ? z[s] : 0.01f * z[s]) * mask;
        d[s] = (z[s] >= 0.0f ? 1.0f : 0.01f) * mask;
        if (z[s] != z[s]) a[s] = d[s] = z[s];
      }
      break;
    case kElu:  // z > 0 ? z : expm1(z)
      for (int64_t s = 0; s < n; ++s) {
        const float v = z[s];
        a[s] = (v > 0.0f ? v : std::expm1(v)) * mask;
        d[s] = (v > 0.0f ? 1.0f : std::exp(v)) * mask;
        if (v != v) a[s] = d[s] = v;
      }
      break;
    case kGelu:  // exact: z Phi(z)
      for (int64_t s = 0; s < n; ++s) {
        const float v = z[s];
        const float phi_cdf = 0.5f * (1.0f + std::erf(v * 0.70710678118654752f));
        const float phi_pdf = 0.39894228040143268f * std::exp(-0.5f * v * v);
        a[s] = v * phi_cdf * mask;
        d[s] = (phi_cdf + v * phi_pdf) * mask;
      }
      break;
    case kSwish:  // z sigmoid(z) (jax.nn.swish / silu)
      for (int64_t s = 0; s < n; ++s) {
        const float v = z[s];
        const float g = 1.0f / (1.0f + std::exp(-v));
        a[s] = v * g * mask;
        d[s] = (g + v * g * (1.0f - g)) * mask;
      }
      break;
  }
}

// out[s] += c * v[s]
inline void axpy(float c, const float* __restrict v, float* __restrict out, int64_t n) {
  for (int64_t s = 0; s < n; ++s) out[s] += c * v[s];
}

inline void fill(float v, float* __restrict out, int64_t n) {
  for (int64_t s = 0; s < n; ++s) out[s] = v;
}

// out[s] = c * v[s] + b
inline void scale_add(float c, const float* __restrict v, float b, float* __restrict out, int64_t n) {
  for (int64_t s = 0; s < n; ++s) out[s] = c * v[s] + b;
}

// out[s] *= v[s]
inline void mul_into(const float* __restrict v, float* __restrict out, int64_t n) {
  for (int64_t s = 0; s < n; ++s) out[s] *= v[s];
}

// out[s] = row[idx[s]] for the real samples, 0 for the padding
inline void gather(const float* __restrict row, const int32_t* __restrict idx, int64_t s_real, float* __restrict out,
                   int64_t n) {
  for (int64_t s = 0; s < s_real; ++s) out[s] = row[idx[s]];
  for (int64_t s = s_real; s < n; ++s) out[s] = 0.0f;
}

// G[c][s] = (softmax(L[:, s])_c - [label_s == c]) * weight_s (weights already divided by their sum).
__attribute__((noinline)) void softmax_grad(const float* __restrict L, const int32_t* __restrict label,
                                            const float* __restrict weight, int64_t n_classes, int64_t n,
                                            float* __restrict row_max, float* __restrict row_sum,
                                            float* __restrict G) {
  for (int64_t s = 0; s < n; ++s) row_max[s] = L[s];
  for (int64_t c = 1; c < n_classes; ++c)
    for (int64_t s = 0; s < n; ++s) row_max[s] = L[c * n + s] > row_max[s] ? L[c * n + s] : row_max[s];
  for (int64_t s = 0; s < n; ++s) row_sum[s] = 0.0f;
  for (int64_t c = 0; c < n_classes; ++c)
    for (int64_t s = 0; s < n; ++s) {
      const float e = exp_approx(L[c * n + s] - row_max[s]);
      G[c * n + s] = e;
      row_sum[s] += e;
    }
  for (int64_t s = 0; s < n; ++s) row_sum[s] = weight[s] / row_sum[s];
  for (int64_t c = 0; c < n_classes; ++c)
    for (int64_t s = 0; s < n; ++s)
      G[c * n + s] = G[c * n + s] * row_sum[s] - (label[s] == c ? weight[s] : 0.0f);
}

// sum_s v[s], n a multiple of kLanes (lane-wise partial sums, as in dot)
inline float sum(const float* __restrict v, int64_t n) {
  float acc[kLanes] = {};
  for (int64_t s = 0; s < n; s += kLanes)
    for (int64_t k = 0; k < kLanes; ++k) acc[k] += v[s + k];
  float total = 0.0f;
  for (int64_t k = 0; k < kLanes; ++k) total += acc[k];
  return total;
}

// sum_s u[s] v[s], n a multiple of kLanes; lane-wise partial sums vectorize without reassociating floats.
inline float dot(const float* __restrict u, const float* __restrict v, int64_t n) {
  float acc[kLanes] = {};
  for (int64_t s = 0; s < n; s += kLanes)
    for (int64_t k = 0; k < kLanes; ++k) acc[k] += u[s + k] * v[s + k];
  float total = 0.0f;
  for (int64_t k = 0; k < kLanes; ++k) total += acc[k];
  return total;
}

// An argument's rows: one per model, or one shared by all (stride 0).
template <typename T>
struct Rows {
  const T* data = nullptr;
  int64_t stride = 0;
  const T* operator[](int64_t m) const { return data + m * stride; }
};

template <typename B, typename T>
bool rows_of(B& buf, int64_t per_model, int64_t models, Rows<T>* out) {
  const int64_t count = static_cast<int64_t>(buf.element_count());
  out->data = reinterpret_cast<const T*>(buf.untyped_data());
  if (count == per_model) {
    out->stride = 0;
    return true;
  }
  out->stride = per_model;
  return count == per_model * models;
}

struct Scratch {
  std::vector<float> acts;    // A_0..A_{L-1}: each layer's input, [unit][sample]
  std::vector<float> derivs;  // f'(z) * mask of the hidden layers, at A_1..A_{L-1}'s offsets minus A_1's
  std::vector<float> xT;      // x transposed, [D][n]: the inputs are gathered along the samples
  std::vector<float> z, logits, g_cur, g_prev, row_max, row_sum, weight;
  std::vector<int32_t> label, rows;
  std::vector<int64_t> act_off;  // offset of A_l in acts (A_l has dims[l] rows of sp samples)
};

// The stack of networks of one call: layer sizes and each model's parameters.
struct Net {
  std::vector<int64_t> dims;  // (D, H_1, ..., C)
  int64_t models = 0, hidden_units = 0;
  std::vector<Rows<float>> W, b;  // W[l][m]: [d_l, d_l+1] row-major; b[l][m]: [d_l+1]
  int64_t n_layers() const { return static_cast<int64_t>(dims.size()) - 1; }
};

void prepare(Scratch& sc, const Net& net, int64_t sp) {
  const int64_t n_layers = net.n_layers();
  sc.act_off.assign(n_layers + 1, 0);
  int64_t max_width = 0;
  for (int64_t l = 1; l <= n_layers; ++l) sc.act_off[l] = sc.act_off[l - 1] + net.dims[l - 1] * sp;
  for (int64_t d : net.dims) max_width = d > max_width ? d : max_width;
  sc.acts.resize(sc.act_off[n_layers]);
  sc.derivs.resize(sc.act_off[n_layers]);
  sc.z.resize(sp);
  sc.logits.resize(net.dims.back() * sp);
  sc.g_cur.resize(max_width * sp);
  sc.g_prev.resize(max_width * sp);
  for (auto* v : {&sc.row_max, &sc.row_sum, &sc.weight}) v->resize(sp);
  sc.label.resize(sp);
  sc.rows.resize(sp);
}

// Forward pass of model m on samples xT[:, idx[s]] (s < s_real; the padding up to sp is 0): every layer's
// input in sc.acts (unit-major), f'(z) * mask in sc.derivs, the logits in sc.logits.
void forward_block(Scratch& sc, const Net& net, int64_t m, const float* xT, int64_t n_rows, const int32_t* idx,
                   int64_t s_real, int64_t sp, int32_t act, const float* masks) {
  const int64_t n_layers = net.n_layers();
  const auto& off = sc.act_off;
  float* A = sc.acts.data();
  float* Dv = sc.derivs.data();
  for (int64_t i = 0; i < net.dims[0]; ++i) gather(xT + i * n_rows, idx, s_real, A + i * sp, sp);
  int64_t mask_off = 0;
  for (int64_t l = 0; l < n_layers; ++l) {
    const int64_t ni = net.dims[l], no = net.dims[l + 1];
    const float* W = net.W[l][m];
    const float* b = net.b[l][m];
    const float* in = A + off[l];
    const bool last = l == n_layers - 1;
    for (int64_t o = 0; o < no; ++o) {
      float* z = last ? sc.logits.data() + o * sp : sc.z.data();
      scale_add(W[o], in, b[o], z, sp);
      for (int64_t i = 1; i < ni; ++i) axpy(W[i * no + o], in + i * sp, z, sp);
      if (!last)
        activate(act, z, masks[mask_off + o], A + off[l + 1] + o * sp, Dv + (off[l + 1] - off[1]) + o * sp, sp);
    }
    if (!last) mask_off += no;
  }
}

// Gradients of model m's weighted loss on the samples idx[0..s_real) (weights w, labels y[idx]).
void model_grads(Scratch& sc, const Net& net, int64_t m, const float* xT, int64_t n_rows, const int32_t* y,
                 const int32_t* idx, const float* w, int64_t s_real, int64_t sp, int32_t act, const float* masks,
                 const std::vector<float*>& dW, const std::vector<float*>& db) {
  const int64_t n_layers = net.n_layers();
  const auto& off = sc.act_off;
  forward_block(sc, net, m, xT, n_rows, idx, s_real, sp, act, masks);

  // d loss / d logits = (softmax - onehot) * w_s / sum w; the padding has weight 0.
  float wsum = 0.0f;
  for (int64_t s = 0; s < s_real; ++s) wsum += w[s];
  const float inv_wsum = 1.0f / wsum;
  for (int64_t s = 0; s < sp; ++s) {
    const bool real = s < s_real;
    sc.label[s] = real ? y[idx[s]] : 0;
    sc.weight[s] = real ? w[s] * inv_wsum : 0.0f;
  }
  float* G = sc.g_cur.data();
  softmax_grad(sc.logits.data(), sc.label.data(), sc.weight.data(), net.dims.back(), sp, sc.row_max.data(),
               sc.row_sum.data(), G);

  // Backward: G holds d loss / d z of layer l's outputs, [unit][sample].
  const float* A = sc.acts.data();
  for (int64_t l = n_layers - 1; l >= 0; --l) {
    const int64_t ni = net.dims[l], no = net.dims[l + 1];
    const float* W = net.W[l][m];
    const float* in = A + off[l];
    for (int64_t i = 0; i < ni; ++i)
      for (int64_t o = 0; o < no; ++o) dW[l][i * no + o] = dot(in + i * sp, G + o * sp, sp);
    for (int64_t o = 0; o < no; ++o) db[l][o] = sum(G + o * sp, sp);
    if (l == 0) break;
    float* Gp = sc.g_prev.data();
    const float* d = sc.derivs.data() + (off[l] - off[1]);
    for (int64_t i = 0; i < ni; ++i) {
      float* gi = Gp + i * sp;
      scale_add(W[i * no], G, 0.0f, gi, sp);
      for (int64_t o = 1; o < no; ++o) axpy(W[i * no + o], G + o * sp, gi, sp);
      mul_into(d + i * sp, gi, sp);
    }
    std::swap(sc.g_cur, sc.g_prev);
    G = sc.g_cur.data();
  }
}

// Decodes x [n, D], act, masks and the parameters W_0, b_0, ... into `net` (checking every shape) and x
// transposed into sc.xT.
ffi::Error decode(ffi::Buffer<ffi::F32>& x, ffi::Buffer<ffi::S32>& act, ffi::Buffer<ffi::F32>& masks,
                  ffi::RemainingArgs& params, Net* net, Rows<int32_t>* act_rows, Rows<float>* mask_rows,
                  Scratch& sc) {
  const size_t n_params = params.size();
  if (n_params < 2 || n_params % 2 != 0)
    return ffi::Error::InvalidArgument("expected the parameters W_0, b_0, ..., W_{L-1}, b_{L-1}");
  const int64_t n_layers = static_cast<int64_t>(n_params / 2);
  auto xd = x.dimensions();
  if (xd.size() < 2) return ffi::Error::InvalidArgument("x must be [n, D]");
  const int64_t n = xd[xd.size() - 2], d_in = xd[xd.size() - 1];
  if (static_cast<int64_t>(x.element_count()) != n * d_in)
    return ffi::Error::InvalidArgument("x must be [n, D], shared by all models");
  net->dims.assign(1, d_in);
  std::vector<ffi::AnyBuffer> Wb, bb;
  for (int64_t l = 0; l < n_layers; ++l) {
    auto Wl = params.get<ffi::AnyBuffer>(2 * l);
    auto bl = params.get<ffi::AnyBuffer>(2 * l + 1);
    if (Wl.has_error()) return Wl.error();
    if (bl.has_error()) return bl.error();
    if (Wl->element_type() != ffi::F32 || bl->element_type() != ffi::F32)
      return ffi::Error::InvalidArgument("parameters must be float32");
    auto wd = Wl->dimensions();
    if (wd.size() < 2 || wd[wd.size() - 2] != net->dims.back())
      return ffi::Error::InvalidArgument("W_" + std::to_string(l) + " must be [..., d_in, d_out] chaining the layers");
    net->dims.push_back(wd[wd.size() - 1]);
    Wb.push_back(*Wl);
    bb.push_back(*bl);
  }
  const int64_t per_w0 = net->dims[0] * net->dims[1];
  net->models = per_w0 == 0 ? 0 : static_cast<int64_t>(Wb[0].element_count()) / per_w0;
  net->hidden_units = 0;
  for (int64_t l = 1; l < n_layers; ++l) net->hidden_units += net->dims[l];
  net->W.assign(n_layers, {});
  net->b.assign(n_layers, {});
  for (int64_t l = 0; l < n_layers; ++l) {
    const int64_t pw = net->dims[l] * net->dims[l + 1], pb = net->dims[l + 1];
    if (static_cast<int64_t>(Wb[l].element_count()) != pw * net->models ||
        static_cast<int64_t>(bb[l].element_count()) != pb * net->models)
      return ffi::Error::InvalidArgument("every parameter must have the same model axis");
    net->W[l] = {reinterpret_cast<const float*>(Wb[l].untyped_data()), pw};
    net->b[l] = {reinterpret_cast<const float*>(bb[l].untyped_data()), pb};
  }
  if (!rows_of(act, 1, net->models, act_rows) || !rows_of(masks, net->hidden_units, net->models, mask_rows))
    return ffi::Error::InvalidArgument("act and masks must have one row per model or one shared row");
  for (int64_t m = 0; m < (act_rows->stride ? net->models : 1); ++m)
    if ((*act_rows)[m][0] < 0 || (*act_rows)[m][0] >= kNumActivations)
      return ffi::Error::InvalidArgument("unknown activation code");
  sc.xT.resize(n * d_in);
  const float* xv = x.typed_data();
  for (int64_t r = 0; r < n; ++r)
    for (int64_t i = 0; i < d_in; ++i) sc.xT[i * n + r] = xv[r * d_in + i];
  return ffi::Error::Success();
}

// The float32 results; weights_and_biases: they are dW_0, db_0, ... and must have the parameters' shapes.
ffi::Error get_results(ffi::RemainingRets& rets, const Net& net, std::vector<float*>* out, bool weights_and_biases) {
  const int64_t n_layers = net.n_layers();
  out->clear();
  for (size_t k = 0; k < rets.size(); ++k) {
    auto r = rets.get<ffi::AnyBuffer>(k);
    if (r.has_error()) return r.error();
    if ((*r)->element_type() != ffi::F32) return ffi::Error::InvalidArgument("results must be float32");
    out->push_back(reinterpret_cast<float*>((*r)->untyped_data()));
    if (weights_and_biases) {
      const int64_t l = static_cast<int64_t>(k / 2);
      const int64_t per = k % 2 == 0 ? net.dims[l] * net.dims[l + 1] : net.dims[l + 1];
      if (l >= n_layers || static_cast<int64_t>((*r)->element_count()) != per * net.models)
        return ffi::Error::InvalidArgument("results must have the parameters' shapes");
    }
  }
  return ffi::Error::Success();
}

ffi::Error MlpGradsImpl(ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::S32> y, ffi::Buffer<ffi::S32> idx,
                        ffi::Buffer<ffi::F32> w, ffi::Buffer<ffi::S32> act, ffi::Buffer<ffi::F32> masks,
                        ffi::RemainingArgs params, ffi::RemainingRets grads) {
  thread_local Scratch sc;
  Net net;
  Rows<int32_t> act_rows, idx_rows;
  Rows<float> mask_rows, w_rows;
  if (auto err = decode(x, act, masks, params, &net, &act_rows, &mask_rows, sc); err.failure()) return err;
  if (grads.size() != params.size()) return ffi::Error::InvalidArgument("expected one result per parameter");
  std::vector<float*> out;
  if (auto err = get_results(grads, net, &out, true); err.failure()) return err;
  const int64_t n = static_cast<int64_t>(y.element_count());
  if (n * net.dims[0] != static_cast<int64_t>(x.element_count()))
    return ffi::Error::InvalidArgument("y must be [n], one label per row of x");
  const int32_t* yv = y.typed_data();
  for (int64_t r = 0; r < n; ++r)
    if (yv[r] < 0 || yv[r] >= net.dims.back()) return ffi::Error::InvalidArgument("a label is outside [0, n_classes)");
  auto id = idx.dimensions();
  if (id.size() < 1) return ffi::Error::InvalidArgument("idx must be [M, S] or [S]");
  const int64_t s_real = id[id.size() - 1];
  const int64_t sp = (s_real + kLanes - 1) / kLanes * kLanes;
  if (!rows_of(idx, s_real, net.models, &idx_rows) || !rows_of(w, s_real, net.models, &w_rows))
    return ffi::Error::InvalidArgument("idx and w must have one row per model or one shared row");
  for (int64_t m = 0; m < (idx_rows.stride ? net.models : 1); ++m)
    for (int64_t s = 0; s < s_real; ++s)
      if (idx_rows[m][s] < 0 || idx_rows[m][s] >= n) return ffi::Error::InvalidArgument("a sample index is outside x");

  prepare(sc, net, sp);
  const int64_t n_layers = net.n_layers();
  std::vector<float*> dW(n_layers), db(n_layers);
  for (int64_t m = 0; m < net.models; ++m) {
    for (int64_t l = 0; l < n_layers; ++l) {
      dW[l] = out[2 * l] + m * net.dims[l] * net.dims[l + 1];
      db[l] = out[2 * l + 1] + m * net.dims[l + 1];
    }
    model_grads(sc, net, m, sc.xT.data(), n, yv, idx_rows[m], w_rows[m], s_real, sp, act_rows[m][0], mask_rows[m],
                dW, db);
  }
  return ffi::Error::Success();
}

// Forward pass of every model on all rows of x: each hidden layer [M, n, H_l] and the logits [M, n, C],
// row-major like XLA's. Rows go through in blocks that stay in the cache.
ffi::Error MlpForwardImpl(ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::S32> act, ffi::Buffer<ffi::F32> masks,
                          ffi::RemainingArgs params, ffi::RemainingRets layers) {
  constexpr int64_t kBlock = 256;
  thread_local Scratch sc;
  Net net;
  Rows<int32_t> act_rows;
  Rows<float> mask_rows;
  if (auto err = decode(x, act, masks, params, &net, &act_rows, &mask_rows, sc); err.failure()) return err;
  const int64_t n_layers = net.n_layers();
  const int64_t n = static_cast<int64_t>(x.element_count()) / net.dims[0];
  if (static_cast<int64_t>(layers.size()) != n_layers)
    return ffi::Error::InvalidArgument("expected one result per layer (the hidden layers and the logits)");
  std::vector<float*> out;
  if (auto err = get_results(layers, net, &out, false); err.failure()) return err;
  for (int64_t l = 0; l < n_layers; ++l) {
    auto r = layers.get<ffi::AnyBuffer>(l);
    if (static_cast<int64_t>((*r)->element_count()) != net.models * n * net.dims[l + 1])
      return ffi::Error::InvalidArgument("layer results must be [M, n, d_l]");
  }
  prepare(sc, net, kBlock);
  for (int64_t m = 0; m < net.models; ++m) {
    for (int64_t r0 = 0; r0 < n; r0 += kBlock) {
      const int64_t rows = n - r0 < kBlock ? n - r0 : kBlock;
      for (int64_t s = 0; s < rows; ++s) sc.rows[s] = static_cast<int32_t>(r0 + s);
      forward_block(sc, net, m, sc.xT.data(), n, sc.rows.data(), rows, kBlock, act_rows[m][0], mask_rows[m]);
      for (int64_t l = 0; l < n_layers; ++l) {
        const int64_t width = net.dims[l + 1];
        const float* src = l + 1 < n_layers ? sc.acts.data() + sc.act_off[l + 1] : sc.logits.data();
        float* dst = out[l] + (m * n + r0) * width;
        for (int64_t s = 0; s < rows; ++s)
          for (int64_t o = 0; o < width; ++o) dst[s * width + o] = src[o * kBlock + s];
      }
    }
  }
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(IbjaxMlpGrads, MlpGradsImpl,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::S32>>()
                                  .Arg<ffi::Buffer<ffi::S32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::S32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .RemainingArgs()
                                  .RemainingRets());

XLA_FFI_DEFINE_HANDLER_SYMBOL(IbjaxMlpForward, MlpForwardImpl,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::S32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .RemainingArgs()
                                  .RemainingRets());
