// What nnc needs from libtorch that tch does not bind (tch binds the `aten::` functions of its
// generated list): see `src/shim.rs` for why each is wanted.
//
// - oneDNN's convolution on dense tensors with a prepacked weight, `mkldnn::_convolution_pointwise`
//   (the kernel `torch.compile` uses for frozen CPU graphs), alone or with a sum fused after it;
//   the same on contiguous inputs through a prepacked context (`mkldnn_prepacked::conv2d_prepack`
//   and `conv2d_run`); and whether this CPU runs oneDNN's bf16 kernels,
//   `mkldnn::_is_mkldnn_bf16_supported`: operators of the `mkldnn` and `mkldnn_prepacked`
//   namespaces, found in libtorch's dispatcher by name and called boxed.
// - The fused optimiser steps `aten::_fused_sgd_` and `aten::_fused_adam_` (torch.optim's
//   `fused=True`) and setting gradients to none, as `zero_grad()` does in PyTorch.
// - Autocast's per-device switches (`at::autocast`), which `torch.autocast` flips: tch binds
//   only a deprecated one that switches CUDA's alone.
// - 2×2 average pooling at a stride of 2, contiguous or channels-last, forward and backward:
//   libtorch's NCHW kernel walks every window element by element.
// - Max pooling of channels-last tensors no gradient flows to, without the indices libtorch's
//   CPU kernel computes for a backward pass.
//
// Tensors cross as tch's handles (`at::Tensor *`); a result tensor is a new handle the caller
// owns. Each function that can fail gives back whether it succeeded; on failure `*error` is the
// C++ exception's message, which the caller frees with `free`, or null where even that could
// not be allocated.
#include <ATen/Parallel.h>
#include <ATen/TensorIterator.h>
#include <ATen/autocast_mode.h>
#include <ATen/core/Tensor.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/ops/_fused_adam.h>
#include <ATen/ops/_fused_sgd.h>
#include <ATen/ops/_foreach_add.h>
#include <ATen/ops/avg_pool2d_backward.h>
#include <torch/csrc/autograd/custom_function.h>
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <limits>
#include <utility>
#include <vector>

// libtorch's at::parallel_for is an OpenMP `parallel` region written inline in its headers:
// compiled without OpenMP it runs the whole range on the calling thread. build.rs passes
// -fopenmp; this keeps a build without it from passing silently.
#if AT_PARALLEL_OPENMP && !defined(_OPENMP)
#error "the shim needs -fopenmp: without it at::parallel_for runs on one thread"
#endif

namespace {

char *copy_message(const char *text) {
  char *copy = static_cast<char *>(std::malloc(std::strlen(text) + 1));
  if (copy != nullptr) std::strcpy(copy, text);
  return copy;
}

// Runs `body`, turning an exception into a message.
template <typename F>
bool guarded(char **error, F body) {
  try {
    body();
    return true;
  } catch (const std::exception &e) {
    *error = copy_message(e.what());
    return false;
  } catch (...) {
    // Nothing may unwind through `extern "C"`.
    *error = copy_message("libtorch threw something other than a std::exception");
    return false;
  }
}

c10::List<int64_t> pair(const int64_t *values) { return c10::List<int64_t>({values[0], values[1]}); }

// A 2-D convolution's padding, stride, dilation and groups (`Conv2dGeometry` in `src/shim.rs`).
struct Conv2dGeometry {
  int64_t padding[2];
  int64_t stride[2];
  int64_t dilation[2];
  int64_t groups;
};

// Pushes a convolution's weight, bias and geometry as `mkldnn`'s pointwise convolutions take
// them, after their tensor operands.
void push_convolution(torch::jit::Stack &stack, const at::Tensor *weight, const at::Tensor *bias,
                      const Conv2dGeometry &geometry) {
  stack.emplace_back(*weight);
  stack.emplace_back(bias == nullptr ? c10::IValue() : c10::IValue(*bias));
  stack.emplace_back(pair(geometry.padding));
  stack.emplace_back(pair(geometry.stride));
  stack.emplace_back(pair(geometry.dilation));
  stack.emplace_back(geometry.groups);
}

std::vector<at::Tensor> gather(const at::Tensor *const *handles, size_t n) {
  std::vector<at::Tensor> tensors;
  tensors.reserve(n);
  for (size_t i = 0; i < n; i++) tensors.push_back(*handles[i]);
  return tensors;
}

// Whether two tensors of one shape, type and device are dense and put their elements in the
// same order in memory: the same strides wherever an axis has more than one element (the stride
// of an axis of one element is never used, and libtorch sets it either way: a 1×1
// convolution's weight is at once contiguous and channels-last).
bool same_layout(const at::Tensor &a, const at::Tensor &b) {
  if (a.sizes() != b.sizes() || a.scalar_type() != b.scalar_type() || a.device() != b.device()) return false;
  if (!a.is_non_overlapping_and_dense() || !b.is_non_overlapping_and_dense()) return false;
  for (int64_t d = 0; d < a.dim(); d++) {
    if (a.size(d) > 1 && a.stride(d) != b.stride(d)) return false;
  }
  return true;
}

// The fused kernels walk each parameter and its companions (gradient, state) as one flat array:
// they must share its layout, or elements would pair up wrongly.
void check_layouts(const std::vector<at::Tensor> &params, const std::vector<at::Tensor> &others,
                   const char *what) {
  for (size_t i = 0; i < others.size(); i++) {
    TORCH_CHECK(same_layout(others[i], params[i]), "the ", what, " of tensor ", i, " of the step",
                " is not a dense tensor of its type, device and layout (sizes ", others[i].sizes(), " and ",
                params[i].sizes(), ", strides ", others[i].strides(), " and ", params[i].strides(), ")");
  }
}

// 2×2 average pooling at a stride of 2, no padding, a last odd row or column dropped (floor
// mode), over `n` images of `h`×`w` pixels of `c` channels laid out channel by channel within
// each pixel (NHWC). A contiguous NCHW tensor is the same walk over `n`×`c` images of one
// channel, which `channels_last` tells apart: libtorch's kernels for the two layouts differ in
// the sign of a zero result (below).
struct Tiling {
  int64_t n, h, w, c;
  bool channels_last;
  int64_t oh() const { return h / 2; }
  int64_t ow() const { return w / 2; }
  // For at::parallel_for, rows of `elements` each: TensorIterator's grain.
  int64_t grain(int64_t elements) const { return std::max<int64_t>(1, at::internal::GRAIN_SIZE / elements); }
};

// `value` rounded to `T`, as libtorch's kernels store it: added to a zeroed output (its NCHW
// forward, both backwards), which turns a -0 into +0, or stored as it is (its channels-last
// forward).
template <typename T>
T store(float value, bool onto_zero) {
  const T rounded = static_cast<T>(value);
  return onto_zero && rounded == T(0) ? T(0) : rounded;  // -0 == +0: either zero becomes +0
}

// A window's average as libtorch's kernels (`cpu_avg_pool2d`, `cpu_avg_pool2d_channels_last`)
// compute it, bit for bit: summed in fp32 from zero, row by row, then divided by 4.
template <typename T>
float window_average(T top_left, T top_right, T bottom_left, T bottom_right) {
  float sum = 0.0f;
  sum += static_cast<float>(top_left);
  sum += static_cast<float>(top_right);
  sum += static_cast<float>(bottom_left);
  sum += static_cast<float>(bottom_right);
  return sum / 4.0f;
}

// libtorch's NCHW kernel finds each window's bounds element by element (4–6× slower at LeNet's
// sizes, where its two pools, forward and backward, took longer than the convolutions of the
// training step); its channels-last one vectorises over the channels, which pays from 8 of
// them on (`shim_pools` in `src/ops.rs` chooses). One channel is the loop the compiler
// vectorises along the row.
template <typename T>
void tiled_pool_forward(const Tiling &t, const T *in, T *out) {
  const int64_t oh = t.oh(), ow = t.ow(), w = t.w, c = t.c;
  const bool onto_zero = !t.channels_last;
  at::parallel_for(0, t.n * oh, t.grain(2 * w * c), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; r++) {
      const T *top = in + ((r / oh) * t.h + (r % oh) * 2) * w * c, *bottom = top + w * c;
      T *o = out + r * ow * c;
      if (c == 1) {
        for (int64_t x = 0; x < ow; x++) {
          o[x] = store<T>(window_average(top[2 * x], top[2 * x + 1], bottom[2 * x], bottom[2 * x + 1]), onto_zero);
        }
        continue;
      }
      for (int64_t x = 0; x < ow; x++) {
        const T *a = top + 2 * x * c, *b = bottom + 2 * x * c;
        for (int64_t ch = 0; ch < c; ch++) {
          o[x * c + ch] = store<T>(window_average(a[ch], a[c + ch], b[ch], b[c + ch]), onto_zero);
        }
      }
    }
  });
}

// The gradient of `tiled_pool_forward`: each element of a window gets the window's gradient
// divided by 4, rounded to `T` and added to zero (libtorch's backwards add it to a zeroed
// gradient), and a dropped row or column gets zero.
template <typename T>
void tiled_pool_backward(const Tiling &t, const T *grad, T *out) {
  const int64_t oh = t.oh(), ow = t.ow(), w = t.w, c = t.c;
  const auto quarter = [](T g) { return store<T>(static_cast<float>(g) / 4.0f, true); };
  at::parallel_for(0, t.n * t.h, t.grain(w * c), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; r++) {
      const int64_t y = r % t.h;
      T *row = out + r * w * c;
      if (y >= oh * 2) {
        std::fill(row, row + w * c, T(0));
        continue;
      }
      const T *g = grad + ((r / t.h) * oh + y / 2) * ow * c;
      if (c == 1) {
        for (int64_t x = 0; x < ow; x++) row[2 * x] = row[2 * x + 1] = quarter(g[x]);
      } else {
        for (int64_t x = 0; x < ow; x++) {
          for (int64_t ch = 0; ch < c; ch++) row[2 * x * c + ch] = row[(2 * x + 1) * c + ch] = quarter(g[x * c + ch]);
        }
      }
      std::fill(row + ow * 2 * c, row + w * c, T(0));
    }
  });
}

// Calls `f` with a value of the C++ type of `t`'s elements, fp32 or bf16.
template <typename F>
void with_element_type(const at::Tensor &t, F f) {
  if (t.scalar_type() == at::kFloat) {
    f(float{});
  } else {
    TORCH_CHECK(t.scalar_type() == at::kBFloat16, "the pooling computes fp32 or bf16, not ", t.scalar_type());
    f(c10::BFloat16{});
  }
}

// The walk of `tiled_pool_forward` over an N×C×H×W tensor of either layout, and that layout.
std::pair<Tiling, at::MemoryFormat> tiling(at::IntArrayRef sizes, bool channels_last) {
  const int64_t n = sizes[0], c = sizes[1], h = sizes[2], w = sizes[3];
  if (channels_last) return {Tiling{n, h, w, c, true}, at::MemoryFormat::ChannelsLast};
  return {Tiling{n * c, h, w, 1, false}, at::MemoryFormat::Contiguous};
}

// The pooling of `x` in the layout `tiling` gives.
at::Tensor tiled_pool(const at::Tensor &x, bool channels_last) {
  auto [t, format] = tiling(x.sizes(), channels_last);
  at::Tensor out = at::empty({x.size(0), x.size(1), t.oh(), t.ow()}, x.options().memory_format(format));
  with_element_type(x, [&](auto zero) {
    using T = decltype(zero);
    tiled_pool_forward(t, x.const_data_ptr<T>(), out.mutable_data_ptr<T>());
  });
  return out;
}

// The autograd function of the tiled pooling. A backward that is itself differentiated
// (`create_graph`) runs libtorch's, whose operations autograd records.
struct TiledAvgPool2d : public torch::autograd::Function<TiledAvgPool2d> {
  static at::Tensor forward(torch::autograd::AutogradContext *ctx, const at::Tensor &x, bool channels_last) {
    ctx->saved_data["sizes"] = x.sizes().vec();
    ctx->saved_data["channels_last"] = channels_last;
    return tiled_pool(x, channels_last);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext *ctx,
                                                 torch::autograd::variable_list grads) {
    const std::vector<int64_t> sizes = ctx->saved_data["sizes"].toIntVector();
    auto [t, format] = tiling(sizes, ctx->saved_data["channels_last"].toBool());
    at::Tensor grad = grads[0].contiguous(format);
    at::Tensor out = at::empty(sizes, grad.options().memory_format(format));
    if (at::GradMode::is_enabled()) {
      out = at::avg_pool2d_backward(grad, out, {2, 2}, {2, 2}, {0, 0}, false, true, std::nullopt);
    } else {
      with_element_type(grad, [&](auto zero) {
        using T = decltype(zero);
        tiled_pool_backward(t, grad.const_data_ptr<T>(), out.mutable_data_ptr<T>());
      });
    }
    return {out, at::Tensor()};
  }
};

// `out[ch] = max(out[ch], in[ch])` over `c` channels, a NaN in `in` winning, as libtorch's
// pooling compares (`val > max || isnan(val)`): bitwise, not `||`, and the arrays apart, so that
// the compiler vectorises the select. In fp32 it is compiled for AVX-512, AVX2 and the baseline,
// the loader choosing for the CPU (`target_clones`): twice libtorch's speed on an Intel Xeon with
// AMX, where the baseline's SSE was 1.15×.
template <typename T>
void max_into(T *__restrict out, const T *__restrict in, int64_t c) {
  for (int64_t ch = 0; ch < c; ch++) {
    const T value = in[ch], max = out[ch];
    const bool wins = (value > max) | (value != value);
    out[ch] = wins ? value : max;
  }
}

__attribute__((target_clones("avx512f", "avx2", "default"))) void max_into(float *__restrict out,
                                                                           const float *__restrict in,
                                                                           int64_t c) {
  for (int64_t ch = 0; ch < c; ch++) {
    const float value = in[ch], max = out[ch];
    const bool wins = (value > max) | (value != value);
    out[ch] = wins ? value : max;
  }
}

// Max pooling of a channels-last N×C×H×W tensor, in floor mode without dilation: each output
// pixel's channels the maximum over its window's pixels inside the image (padding never wins),
// a NaN winning as in libtorch's kernels (`val > max || isnan(val)`, in the same order), but
// without the index of each maximum, which libtorch's `max_pool2d` computes on the CPU (for a
// backward pass) and then drops. The channels are the inner loop (`max_into`). ResNet's stem
// pool, 32×64×48×48 in fp32 on 2 threads of an Intel Xeon with AMX: 0.73–1.06 ms against
// libtorch's 1.47–2.17, in turns.
template <typename T>
void channels_last_max_pool(const T *in, T *out, int64_t n, int64_t h, int64_t w, int64_t c, int64_t oh,
                            int64_t ow, const int64_t *kernel, const int64_t *stride, const int64_t *padding) {
  const int64_t work = std::max<int64_t>(1, ow * c * kernel[0] * kernel[1]);
  const int64_t grain = std::max<int64_t>(1, at::internal::GRAIN_SIZE / work);
  at::parallel_for(0, n * oh, grain, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; r++) {
      const T *image = in + (r / oh) * h * w * c;
      const int64_t top = (r % oh) * stride[0] - padding[0];
      const int64_t y0 = std::max<int64_t>(top, 0), y1 = std::min<int64_t>(top + kernel[0], h);
      for (int64_t x = 0; x < ow; x++) {
        const int64_t left = x * stride[1] - padding[1];
        const int64_t x0 = std::max<int64_t>(left, 0), x1 = std::min<int64_t>(left + kernel[1], w);
        T *o = out + (r * ow + x) * c;
        std::fill(o, o + c, T(-std::numeric_limits<float>::infinity()));
        for (int64_t y = y0; y < y1; y++) {
          for (int64_t xx = x0; xx < x1; xx++) {
            max_into(o, image + (y * w + xx) * c, c);
          }
        }
      }
    }
  });
}

}  // namespace

// 2×2 average pooling at a stride of 2 (`tiled_pool_forward`), with its gradient.
extern "C" bool nnc_tiled_avg_pool2d(const at::Tensor *input, at::Tensor **out, char **error) {
  return guarded(error, [&] {
    const at::Tensor &x = *input;
    // The layout libtorch's pooling gives its result (and gradient): they differ in the
    // strides of axes of one element, where a tensor is both.
    const at::MemoryFormat format = x.suggest_memory_format();
    const bool channels_last = format == at::MemoryFormat::ChannelsLast;
    TORCH_CHECK(x.dim() == 4 && x.device().is_cpu() && x.is_contiguous(format) &&
                    (x.scalar_type() == at::kFloat || x.scalar_type() == at::kBFloat16),
                "the tiled average pooling takes a contiguous or channels-last fp32 or bf16 CPU tensor of",
                " rank 4, not ", x.scalar_type(), " ", x.sizes(), " of strides ", x.strides(), " on ", x.device());
    TORCH_CHECK(x.size(1) > 0 && x.size(2) >= 2 && x.size(3) >= 2, "a 2×2 window does not fit in ", x.sizes());
    // Without a gradient to record, the kernel alone (no autograd node, nothing saved).
    const bool recorded = at::GradMode::is_enabled() && x.requires_grad();
    *out = new at::Tensor(recorded ? TiledAvgPool2d::apply(x, channels_last) : tiled_pool(x, channels_last));
  });
}

// Max pooling of a channels-last fp32 or bf16 batch (`channels_last_max_pool`) in floor mode
// without dilation, for tensors no gradient flows to: its result in the same layout.
extern "C" bool nnc_channels_last_max_pool2d(const at::Tensor *input, const int64_t *kernel,
                                             const int64_t *stride, const int64_t *padding,
                                             at::Tensor **out, char **error) {
  return guarded(error, [&] {
    const at::Tensor &x = *input;
    TORCH_CHECK(x.dim() == 4 && x.device().is_cpu() && x.is_contiguous(at::MemoryFormat::ChannelsLast) &&
                    !(at::GradMode::is_enabled() && x.requires_grad()),
                "the channels-last max pooling takes a channels-last batch on the CPU that no gradient "
                "flows to, not one of sizes ", x.sizes(), " and strides ", x.strides());
    const int64_t n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
    // libtorch's rule: a batch may be empty, its images not.
    TORCH_CHECK(c > 0 && h > 0 && w > 0, "max pooling needs images of at least one channel and pixel, not ",
                x.sizes());
    for (int d = 0; d < 2; d++) {
      TORCH_CHECK(kernel[d] > 0 && stride[d] > 0 && padding[d] >= 0 && padding[d] * 2 <= kernel[d] &&
                      x.size(2 + d) + 2 * padding[d] >= kernel[d],
                  "max pooling of ", x.sizes(), " by a window of ", kernel[d], ", stride ", stride[d],
                  " and padding ", padding[d], " is undefined");
    }
    const int64_t oh = (h + 2 * padding[0] - kernel[0]) / stride[0] + 1;
    const int64_t ow = (w + 2 * padding[1] - kernel[1]) / stride[1] + 1;
    at::Tensor result = at::empty({n, c, oh, ow}, x.options().memory_format(at::MemoryFormat::ChannelsLast));
    with_element_type(x, [&](auto zero) {
      using T = decltype(zero);
      channels_last_max_pool(x.const_data_ptr<T>(), result.mutable_data_ptr<T>(), n, h, w, c, oh, ow, kernel,
                             stride, padding);
    });
    *out = new at::Tensor(std::move(result));
  });
}

extern "C" bool nnc_onednn_convolution(const at::Tensor *input, const at::Tensor *weight,
                                       const at::Tensor *bias, const Conv2dGeometry *geometry,
                                       at::Tensor **out, char **error) {
  return guarded(error, [&] {
    static const c10::OperatorHandle op =
        c10::Dispatcher::singleton().findSchemaOrThrow("mkldnn::_convolution_pointwise", "");
    torch::jit::Stack stack;
    stack.reserve(10);
    stack.emplace_back(*input);
    push_convolution(stack, weight, bias, *geometry);
    stack.emplace_back(std::string("none"));  // no activation fused after it
    stack.emplace_back(c10::List<std::optional<c10::Scalar>>());
    stack.emplace_back(c10::IValue());
    op.callBoxed(&stack);
    *out = new at::Tensor(stack.back().toTensor());
  });
}

// The same convolution with a sum after it, written over the sum's other operand:
// `other += convolution(input)`, `other` of the output's shape, `mkldnn::_convolution_pointwise_`
// with "add" and no activation. On channels-last fp32 tensors oneDNN adds in the kernel (its
// "sum" post-op), else libtorch adds after it. The sum is IEEE's either way, as libtorch's `add`
// computes it, NaNs included.
extern "C" bool nnc_onednn_convolution_add_(const at::Tensor *other, const at::Tensor *input,
                                            const at::Tensor *weight, const at::Tensor *bias,
                                            const Conv2dGeometry *geometry, char **error) {
  return guarded(error, [&] {
    static const c10::OperatorHandle op =
        c10::Dispatcher::singleton().findSchemaOrThrow("mkldnn::_convolution_pointwise_", "binary");
    torch::jit::Stack stack;
    stack.reserve(13);
    stack.emplace_back(*other);
    stack.emplace_back(*input);
    push_convolution(stack, weight, bias, *geometry);
    stack.emplace_back(std::string("add"));
    stack.emplace_back(c10::IValue());  // alpha: 1
    stack.emplace_back(c10::IValue());  // no activation after the sum
    stack.emplace_back(c10::List<std::optional<c10::Scalar>>());
    stack.emplace_back(c10::IValue());
    op.callBoxed(&stack);
  });
}

// A 2-D convolution prepacked for contiguous (NCHW) inputs of one size:
// `mkldnn_prepacked::conv2d_prepack` of a contiguous fp32 weight, which lays the weight out for
// the kernel oneDNN chooses for such inputs (`mkldnn_reorder_conv2d_weight` lays it out for
// channels-last inputs when given a size, and for a guessed size otherwise). The context is an
// `IValue` the caller owns and frees with `nnc_conv_context_free`.
extern "C" bool nnc_conv_context_new(const at::Tensor *weight, const at::Tensor *bias,
                                     const Conv2dGeometry *geometry, const int64_t *input_size,
                                     void **context, char **error) {
  return guarded(error, [&] {
    static const c10::OperatorHandle op =
        c10::Dispatcher::singleton().findSchemaOrThrow("mkldnn_prepacked::conv2d_prepack", "");
    torch::jit::Stack stack;
    stack.reserve(8);
    stack.emplace_back(weight->contiguous());
    stack.emplace_back(bias == nullptr ? c10::IValue() : c10::IValue(*bias));
    // This operator takes the stride before the padding.
    stack.emplace_back(pair(geometry->stride));
    stack.emplace_back(pair(geometry->padding));
    stack.emplace_back(pair(geometry->dilation));
    stack.emplace_back(geometry->groups);
    stack.emplace_back(c10::List<int64_t>({input_size[0], input_size[1], input_size[2], input_size[3]}));
    stack.emplace_back(std::string("none"));
    op.callBoxed(&stack);
    *context = new c10::IValue(std::move(stack.back()));
  });
}

// The convolution of a contiguous `input` through a context of `nnc_conv_context_new`
// (`mkldnn_prepacked::conv2d_run`): oneDNN reorders the input into its blocked layout and the
// output back; the output is contiguous.
extern "C" bool nnc_conv_context_run(const void *context, const at::Tensor *input, at::Tensor **out,
                                     char **error) {
  return guarded(error, [&] {
    static const c10::OperatorHandle op =
        c10::Dispatcher::singleton().findSchemaOrThrow("mkldnn_prepacked::conv2d_run", "");
    TORCH_CHECK(input->dim() == 4 && input->is_contiguous(),
                "a prepacked contiguous convolution takes a contiguous batch, not one of sizes ", input->sizes(),
                " and strides ", input->strides());
    torch::jit::Stack stack;
    stack.reserve(2);
    stack.emplace_back(*input);
    stack.emplace_back(*static_cast<const c10::IValue *>(context));
    op.callBoxed(&stack);
    *out = new at::Tensor(stack.back().toTensor());
  });
}

extern "C" void nnc_conv_context_free(void *context) { delete static_cast<c10::IValue *>(context); }

extern "C" bool nnc_onednn_bf16_supported() {
  try {
    static const c10::OperatorHandle op =
        c10::Dispatcher::singleton().findSchemaOrThrow("mkldnn::_is_mkldnn_bf16_supported", "");
    torch::jit::Stack stack;
    op.callBoxed(&stack);
    return stack.back().toBool();
  } catch (...) {
    return false;
  }
}

extern "C" bool nnc_clear_grads(const at::Tensor *const *params, size_t n, char **error) {
  return guarded(error, [&] {
    for (size_t i = 0; i < n; i++) params[i]->mutable_grad().reset();
  });
}

// SGD as torch.optim.SGD computes it (no dampening, not Nesterov): `momentum_buffers` is empty
// (n = 0 there) for plain SGD; on the first step its buffers are filled with the gradients.
extern "C" bool nnc_fused_sgd(const at::Tensor *const *params, const at::Tensor *const *grads,
                              const at::Tensor *const *momentum_buffers, size_t n, bool with_momentum,
                              double lr, double momentum, double weight_decay, bool first_step,
                              char **error) {
  return guarded(error, [&] {
    for (size_t i = 1; i < n; i++) {
      TORCH_CHECK(params[i]->device() == params[0]->device(), "the parameters are on several devices");
    }
    auto p = gather(params, n), g = gather(grads, n);
    auto b = gather(momentum_buffers, with_momentum ? n : 0);
    check_layouts(p, g, "gradient");
    check_layouts(p, b, "momentum buffer");
    at::_fused_sgd_(p, g, b, weight_decay, momentum, lr, /*dampening=*/0.0, /*nesterov=*/false,
                    /*maximize=*/false, first_step);
  });
}

// Adam as torch.optim.Adam computes it (weight decay added to the gradient, not AMSGrad). Each
// parameter has its own step count, as torch.optim keeps it (a parameter that first has a
// gradient late is bias-corrected from its own first step): `state_steps` are 0-dim fp32 tensors
// on the parameters' device (the CUDA kernel dereferences them there), counted up by one here
// before the kernel reads them, as torch.optim's `_fused_adam` does.
extern "C" bool nnc_fused_adam(const at::Tensor *const *params, const at::Tensor *const *grads,
                               const at::Tensor *const *exp_avgs, const at::Tensor *const *exp_avg_sqs,
                               const at::Tensor *const *state_steps, size_t n, double lr, double beta1,
                               double beta2, double weight_decay, double eps, char **error) {
  return guarded(error, [&] {
    if (n == 0) return;
    for (size_t i = 1; i < n; i++) {
      TORCH_CHECK(params[i]->device() == params[0]->device(), "the parameters are on several devices");
    }
    auto p = gather(params, n), g = gather(grads, n);
    auto m = gather(exp_avgs, n), v = gather(exp_avg_sqs, n), steps = gather(state_steps, n);
    check_layouts(p, g, "gradient");
    check_layouts(p, m, "first moment");
    check_layouts(p, v, "second moment");
    for (size_t i = 0; i < n; i++) {
      TORCH_CHECK(steps[i].dim() == 0 && steps[i].scalar_type() == at::kFloat && steps[i].device() == p[i].device(),
                  "the step count of tensor ", i, " of the step is not one fp32 number on its device");
    }
    at::_foreach_add_(steps, 1.0);
    at::_fused_adam_(p, g, m, v, /*max_exp_avg_sqs=*/{}, steps, lr, beta1, beta2, weight_decay, eps,
                     /*amsgrad=*/false, /*maximize=*/false);
  });
}

// Autocast's switches for one device type (a `c10::DeviceType`, CPU 0 or CUDA 1), which are
// thread-local. Entering records what it found in `*was_enabled` and `*was_dtype` (a
// `c10::ScalarType`), turns autocast on in `dtype` and counts one scope more; leaving restores
// them and, when the last scope ends, frees the lower-precision copies of the weights that
// autocast cached. libtorch's switches only store values; should one throw all the same,
// entering puts back what it found before reporting, and leaving (which a destructor calls and
// cannot report) still restores each switch.
extern "C" bool nnc_autocast_enter(int8_t device_type, int8_t dtype, bool *was_enabled, int8_t *was_dtype,
                                   char **error) {
  auto device = static_cast<c10::DeviceType>(device_type);
  if (!guarded(error, [&] {
        *was_enabled = at::autocast::is_autocast_enabled(device);
        *was_dtype = static_cast<int8_t>(at::autocast::get_autocast_dtype(device));
      })) {
    return false;
  }
  bool entered = guarded(error, [&] {
    at::autocast::set_autocast_enabled(device, true);
    at::autocast::set_autocast_dtype(device, static_cast<c10::ScalarType>(dtype));
  });
  if (entered) entered = guarded(error, [&] { at::autocast::increment_nesting(); });
  if (!entered) {
    try {
      at::autocast::set_autocast_enabled(device, *was_enabled);
      at::autocast::set_autocast_dtype(device, static_cast<c10::ScalarType>(*was_dtype));
    } catch (...) {
    }
  }
  return entered;
}

extern "C" void nnc_autocast_leave(int8_t device_type, bool enabled, int8_t dtype) {
  auto device = static_cast<c10::DeviceType>(device_type);
  try {
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  } catch (...) {
  }
  try {
    at::autocast::set_autocast_enabled(device, enabled);
  } catch (...) {
  }
  try {
    at::autocast::set_autocast_dtype(device, static_cast<c10::ScalarType>(dtype));
  } catch (...) {
  }
}

extern "C" bool nnc_autocast_enabled(int8_t device_type) {
  try {
    return at::autocast::is_autocast_enabled(static_cast<c10::DeviceType>(device_type));
  } catch (...) {
    return false;
  }
}
