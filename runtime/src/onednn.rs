//! oneDNN's 2-D convolution on dense tensors with a prepacked weight, a libtorch operator tch
//! does not bind (`mkldnn::_convolution_pointwise`, what `torch.compile` runs for frozen CPU
//! graphs), reached through `csrc/onednn.cpp`.
//!
//! Why it matters: libtorch's usual convolution reorders a dense weight into oneDNN's layout at
//! every call, which at batch 1 costs about as much as the convolution (ResNet-18 at 96×96 in
//! channels-last: 116 examples/s with dense weights, 184–200 with prepacked ones, PyTorch's
//! own kernels timed side by side). `aten::mkldnn_convolution` accepts a prepacked weight but
//! then computes through oneDNN's tensor type, copying the input in and the output out.

use std::ffi::{c_char, CStr};

use tch::{TchError, Tensor};

extern "C" {
    fn nnc_convolution_pointwise(
        input: *const std::ffi::c_void,
        weight: *const std::ffi::c_void,
        bias: *const std::ffi::c_void,
        padding: *const i64,
        stride: *const i64,
        dilation: *const i64,
        groups: i64,
        error: *mut *mut c_char,
    ) -> *mut std::ffi::c_void;
    fn nnc_onednn_bf16_supported() -> bool;
}

/// Whether oneDNN runs bf16 convolutions on this CPU (it needs AVX-512 or AVX-NE-CONVERT).
pub fn bf16_supported() -> bool {
    // SAFETY: no arguments; exceptions are caught on the C++ side.
    unsafe { nnc_onednn_bf16_supported() }
}

/// The convolution of a dense `input` (contiguous or channels-last; the output takes its
/// layout) with `weight` prepacked by `mkldnn_reorder_conv2d_weight`, both fp32 or both bf16.
pub fn convolution(
    input: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    padding: [i64; 2],
    stride: [i64; 2],
    dilation: [i64; 2],
    groups: i64,
) -> Result<Tensor, TchError> {
    // tch's handle is the `at::Tensor *` the C++ side takes.
    let handle = |t: &Tensor| t.as_ptr() as *const std::ffi::c_void;
    let mut error: *mut c_char = std::ptr::null_mut();
    // SAFETY: the handles are live tch tensors for the call; the C++ side copies what it keeps
    // and gives back either a new handle, which `from_ptr` takes ownership of, or null and a
    // `malloc`ed message, freed here.
    unsafe {
        let out = nnc_convolution_pointwise(
            handle(input),
            handle(weight),
            bias.map_or(std::ptr::null(), handle),
            padding.as_ptr(),
            stride.as_ptr(),
            dilation.as_ptr(),
            groups,
            &mut error,
        );
        if out.is_null() {
            let message = match error.is_null() {
                true => "oneDNN's convolution failed without a message".to_string(),
                false => CStr::from_ptr(error).to_string_lossy().into_owned(),
            };
            libc::free(error.cast());
            return Err(TchError::Torch(message));
        }
        Ok(Tensor::from_ptr(out.cast()))
    }
}
