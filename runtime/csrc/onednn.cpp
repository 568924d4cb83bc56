// oneDNN's convolution on dense tensors with a prepacked weight: libtorch's
// `mkldnn::_convolution_pointwise`, the kernel `torch.compile` uses for frozen CPU graphs; and
// whether this CPU runs oneDNN's bf16 kernels (`mkldnn::_is_mkldnn_bf16_supported`).
// tch binds only `aten::` functions, and `aten::mkldnn_convolution` given a prepacked weight
// dispatches to oneDNN's own tensor type and back, which costs more than it saves; so the
// operator is found in libtorch's dispatcher by name and called boxed.
//
// Tensors cross as tch's handles (`at::Tensor *`); the result is a new handle the caller
// owns. Any C++ exception becomes a message the caller frees with `free`.
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/core/Tensor.h>
#include <cstdlib>
#include <cstring>
#include <exception>

namespace {

char *copy_message(const char *text) {
  char *copy = static_cast<char *>(std::malloc(std::strlen(text) + 1));
  if (copy != nullptr) std::strcpy(copy, text);
  return copy;
}

c10::List<int64_t> pair(const int64_t *values) { return c10::List<int64_t>({values[0], values[1]}); }

}  // namespace

extern "C" at::Tensor *nnc_convolution_pointwise(const at::Tensor *input, const at::Tensor *weight,
                                                  const at::Tensor *bias, const int64_t *padding,
                                                  const int64_t *stride, const int64_t *dilation,
                                                  int64_t groups, char **error) {
  try {
    static const c10::OperatorHandle op =
        c10::Dispatcher::singleton().findSchemaOrThrow("mkldnn::_convolution_pointwise", "");
    torch::jit::Stack stack;
    stack.reserve(10);
    stack.emplace_back(*input);
    stack.emplace_back(*weight);
    stack.emplace_back(bias == nullptr ? c10::IValue() : c10::IValue(*bias));
    stack.emplace_back(pair(padding));
    stack.emplace_back(pair(stride));
    stack.emplace_back(pair(dilation));
    stack.emplace_back(groups);
    stack.emplace_back(std::string("none"));
    stack.emplace_back(c10::List<std::optional<c10::Scalar>>());
    stack.emplace_back(c10::IValue());
    op.callBoxed(&stack);
    return new at::Tensor(stack.back().toTensor());
  } catch (const std::exception &e) {
    *error = copy_message(e.what());
    return nullptr;
  }
}

extern "C" bool nnc_onednn_bf16_supported() {
  try {
    static const c10::OperatorHandle op =
        c10::Dispatcher::singleton().findSchemaOrThrow("mkldnn::_is_mkldnn_bf16_supported", "");
    torch::jit::Stack stack;
    op.callBoxed(&stack);
    return stack.back().toBool();
  } catch (const std::exception &) {
    return false;
  }
}
