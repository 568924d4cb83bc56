//! What nnc needs from libtorch that tch does not bind, reached through `csrc/shim.cpp`:
//!
//! - **oneDNN's 2-D convolution on dense tensors with a prepacked weight**
//!   (`mkldnn::_convolution_pointwise`, what `torch.compile` runs for frozen CPU graphs, alone or
//!   with a residual sum fused after it), and the same on contiguous inputs through a context
//!   prepacked for their size (`mkldnn_prepacked::conv2d_prepack`), for the inference plan.
//!   libtorch's usual convolution reorders a dense weight into oneDNN's layout at every call,
//!   which at batch 1 costs about as much as the convolution (ResNet-18 at 96×96 in
//!   channels-last: 116 examples/s with dense weights, 184–200 with prepacked ones, PyTorch's
//!   own kernels timed side by side). `aten::mkldnn_convolution` accepts a prepacked weight but
//!   then computes through oneDNN's tensor type, copying the input in and the output out.
//! - **The fused optimiser steps** `_fused_sgd_` and `_fused_adam_` (torch.optim's
//!   `fused=True`): one pass over each parameter, its gradient and its state, where the step
//!   written with tensor ops makes several passes and temporaries, and **gradients set to
//!   none** between steps, as PyTorch's `zero_grad()` does, so that backward hands its
//!   gradients over instead of adding them into zeroed ones.
//! - **2×2 average pooling at a stride of 2** (LeNet's), forward and backward, bit for bit as
//!   libtorch computes it. libtorch's NCHW kernel finds each window's bounds element by element:
//!   in LeNet's training step at batch 32 its two pools, forward and backward, took longer than
//!   the convolutions.
//! - **Max pooling of channels-last tensors that no gradient flows to** (evaluation), bit for
//!   bit as libtorch computes it: libtorch's CPU kernel also finds the index of each maximum,
//!   for a backward pass, and drops it (ResNet's stem pool, 32×64×48×48 in fp32 on 2 threads of
//!   an Intel Xeon with AMX: 0.73–1.06 ms against libtorch's 1.47–2.17).
//! - **Autocast's per-device switches** (`at::autocast::set_autocast_enabled` and its
//!   companions), which `torch.autocast` flips for [`crate::precision`]: tch binds only the
//!   deprecated `at::autocast::set_enabled`, which switches CUDA's autocast alone.

use std::ffi::{c_char, c_void, CStr};

use tch::{TchError, Tensor};

extern "C" {
    fn nnc_onednn_convolution(
        input: *const c_void,
        weight: *const c_void,
        bias: *const c_void,
        geometry: *const Conv2dGeometry,
        out: *mut *mut c_void,
        error: *mut *mut c_char,
    ) -> bool;
    fn nnc_onednn_convolution_add_(
        other: *const c_void,
        input: *const c_void,
        weight: *const c_void,
        bias: *const c_void,
        geometry: *const Conv2dGeometry,
        error: *mut *mut c_char,
    ) -> bool;
    fn nnc_conv_context_new(
        weight: *const c_void,
        bias: *const c_void,
        geometry: *const Conv2dGeometry,
        input_size: *const i64,
        context: *mut *mut c_void,
        error: *mut *mut c_char,
    ) -> bool;
    fn nnc_conv_context_run(
        context: *const c_void,
        input: *const c_void,
        out: *mut *mut c_void,
        error: *mut *mut c_char,
    ) -> bool;
    fn nnc_conv_context_free(context: *mut c_void);
    fn nnc_onednn_bf16_supported() -> bool;
    fn nnc_tiled_avg_pool2d(input: *const c_void, out: *mut *mut c_void, error: *mut *mut c_char) -> bool;
    fn nnc_channels_last_max_pool2d(
        input: *const c_void,
        kernel: *const i64,
        stride: *const i64,
        padding: *const i64,
        out: *mut *mut c_void,
        error: *mut *mut c_char,
    ) -> bool;
    fn nnc_autocast_enter(
        device_type: i8,
        dtype: i8,
        was_enabled: *mut bool,
        was_dtype: *mut i8,
        error: *mut *mut c_char,
    ) -> bool;
    fn nnc_autocast_leave(device_type: i8, enabled: bool, dtype: i8);
    fn nnc_autocast_enabled(device_type: i8) -> bool;
    fn nnc_clear_grads(params: *const *const c_void, n: usize, error: *mut *mut c_char) -> bool;
    fn nnc_fused_sgd(
        params: *const *const c_void,
        grads: *const *const c_void,
        momentum_buffers: *const *const c_void,
        n: usize,
        with_momentum: bool,
        lr: f64,
        momentum: f64,
        weight_decay: f64,
        first_step: bool,
        error: *mut *mut c_char,
    ) -> bool;
    fn nnc_fused_adam(
        params: *const *const c_void,
        grads: *const *const c_void,
        exp_avgs: *const *const c_void,
        exp_avg_sqs: *const *const c_void,
        state_steps: *const *const c_void,
        n: usize,
        lr: f64,
        beta1: f64,
        beta2: f64,
        weight_decay: f64,
        eps: f64,
        error: *mut *mut c_char,
    ) -> bool;
}

/// A 2-D convolution's padding, stride, dilation and groups, as oneDNN's kernels take them
/// (and as the C++ side reads them: `Conv2dGeometry` in `csrc/shim.cpp`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conv2dGeometry {
    pub padding: [i64; 2],
    pub stride: [i64; 2],
    pub dilation: [i64; 2],
    pub groups: i64,
}

/// tch's handle, the `at::Tensor *` the C++ side takes.
fn handle(t: &Tensor) -> *const c_void {
    t.as_ptr() as *const c_void
}

fn handles(ts: &[&Tensor]) -> Vec<*const c_void> {
    ts.iter().map(|t| handle(t)).collect()
}

/// Calls a C++ function of the shim that reports failure, turning its message (a `malloc`ed
/// string, freed here, or null where even that could not be allocated) into an error.
fn call(f: impl FnOnce(*mut *mut c_char) -> bool) -> Result<(), TchError> {
    let mut error: *mut c_char = std::ptr::null_mut();
    if f(&mut error) {
        return Ok(());
    }
    let message = match error.is_null() {
        true => "libtorch failed, and its message could not be allocated".to_string(),
        // SAFETY: a NUL-terminated string from `malloc`, ours to free.
        false => unsafe {
            let message = CStr::from_ptr(error).to_string_lossy().into_owned();
            libc::free(error.cast());
            message
        },
    };
    Err(TchError::Torch(message))
}

/// The convolution of a dense `input` (contiguous or channels-last) with `weight` prepacked by
/// `mkldnn_reorder_conv2d_weight`, both fp32 or both bf16. The output is channels-last whatever
/// the input's layout: the kernel's choice for a prepacked weight.
pub fn onednn_convolution(
    input: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    geometry: &Conv2dGeometry,
) -> Result<Tensor, TchError> {
    let mut out: *mut c_void = std::ptr::null_mut();
    // SAFETY: the handles are live for the call; the C++ side copies what it keeps and, on
    // success, gives back a new handle, which `take` takes ownership of.
    call(|error| unsafe {
        nnc_onednn_convolution(
            handle(input),
            handle(weight),
            bias.map_or(std::ptr::null(), handle),
            geometry,
            &mut out,
            error,
        )
    })?;
    // SAFETY: the C++ side's new handle, or null.
    unsafe { take(out, "oneDNN's convolution") }
}

/// `other += convolution(input)`, the convolution as [`onednn_convolution`] computes it, written
/// over `other` (of the output's shape): on channels-last fp32 tensors oneDNN adds in the kernel
/// (its "sum" post-op), reading `other` as it writes the output instead of in a pass of its own,
/// else libtorch adds after it. The sum is IEEE's either way, NaNs included, as libtorch's `add`
/// computes it (oneDNN's fused activations are not: its ReLU and clamp turn a NaN into a
/// number, so none is fused).
pub fn onednn_convolution_add_(
    other: &Tensor,
    input: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    geometry: &Conv2dGeometry,
) -> Result<(), TchError> {
    // SAFETY: the handles are live for the call; `other` is written in place.
    call(|error| unsafe {
        nnc_onednn_convolution_add_(
            handle(other),
            handle(input),
            handle(weight),
            bias.map_or(std::ptr::null(), handle),
            geometry,
            error,
        )
    })
}

/// A 2-D fp32 convolution prepacked for contiguous (NCHW) inputs of one size: the weight laid
/// out for the kernel oneDNN chooses for them (`mkldnn_prepacked::conv2d_prepack`).
/// `mkldnn_reorder_conv2d_weight` lays a weight out for channels-last inputs when given a size,
/// and for a guessed size otherwise, for which oneDNN may choose another kernel and then
/// reorders the weight at every call (ResNet-18's 512-channel 3×3 weights at batch 32, on an
/// Intel Xeon with AMX: 0.7–0.8 ms a call, of a 4.3 ms convolution).
#[derive(Debug)]
pub struct ConvContext(*mut c_void);

// SAFETY: the context is libtorch's `ConvOpContext`, which after it is made is only read (its
// `run` reads the packed weight and allocates its output), as TorchScript shares it between
// threads; it is freed once, by `Drop`.
unsafe impl Send for ConvContext {}
unsafe impl Sync for ConvContext {}

impl ConvContext {
    /// The context of `weight` (dense) and `bias` for contiguous inputs of sizes `input_size`.
    pub fn new(
        weight: &Tensor,
        bias: Option<&Tensor>,
        geometry: &Conv2dGeometry,
        input_size: [i64; 4],
    ) -> Result<ConvContext, TchError> {
        let mut context: *mut c_void = std::ptr::null_mut();
        // SAFETY: the handles and arrays are live for the call; on success the C++ side gives
        // back a new context, owned here from now on.
        call(|error| unsafe {
            nnc_conv_context_new(
                handle(weight),
                bias.map_or(std::ptr::null(), handle),
                geometry,
                input_size.as_ptr(),
                &mut context,
                error,
            )
        })?;
        match context.is_null() {
            true => Err(TchError::Torch("the prepacked convolution gave no context".to_string())),
            false => Ok(ConvContext(context)),
        }
    }

    /// The convolution of a contiguous `input` (any other is refused: libtorch would compute it
    /// by another kernel and give it back in its own layout); the output is contiguous.
    pub fn run(&self, input: &Tensor) -> Result<Tensor, TchError> {
        let mut out: *mut c_void = std::ptr::null_mut();
        // SAFETY: the context and the handle are live for the call.
        call(|error| unsafe { nnc_conv_context_run(self.0, handle(input), &mut out, error) })?;
        // SAFETY: the C++ side's new handle, or null.
        unsafe { take(out, "the prepacked convolution") }
    }
}

impl Drop for ConvContext {
    fn drop(&mut self) {
        // SAFETY: a context of `nnc_conv_context_new`, freed only here.
        unsafe { nnc_conv_context_free(self.0) }
    }
}

/// Takes ownership of the tensor a shim function gave back (`what` names it if there is none).
///
/// # Safety
/// `out` is null or a handle nothing else owns.
unsafe fn take(out: *mut c_void, what: &str) -> Result<Tensor, TchError> {
    match out.is_null() {
        true => Err(TchError::Torch(format!("{what} gave no tensor"))),
        // SAFETY: a new handle, ours (the caller's promise).
        false => Ok(unsafe { Tensor::from_ptr(out.cast()) }),
    }
}

/// 2×2 average pooling at a stride of 2 of `input` (N×C×H×W, contiguous or channels-last, fp32
/// or bf16, on the CPU; the result in the same layout), without padding, in floor mode:
/// `avg_pool2d`'s result and gradient, bit for bit, by the shim's own kernel (see the module's
/// notes).
pub fn tiled_avg_pool2d(input: &Tensor) -> Result<Tensor, TchError> {
    let mut out: *mut c_void = std::ptr::null_mut();
    // SAFETY: the handle is live for the call; on success the C++ side gives back a new one.
    call(|error| unsafe { nnc_tiled_avg_pool2d(handle(input), &mut out, error) })?;
    // SAFETY: the C++ side's new handle, or null.
    unsafe { take(out, "the tiled average pooling") }
}

/// Max pooling of `input` (N×C×H×W, channels-last, fp32 or bf16, on the CPU, no gradient
/// flowing to it) in floor mode without dilation, by the shim's own kernel: `max_pool2d`'s
/// result, bit for bit but for a NaN's payload, in the same layout, without the index of each
/// maximum that libtorch's CPU kernel computes for a backward pass and then drops (see the
/// module's notes).
pub fn channels_last_max_pool2d(
    input: &Tensor,
    kernel: [i64; 2],
    stride: [i64; 2],
    padding: [i64; 2],
) -> Result<Tensor, TchError> {
    let mut out: *mut c_void = std::ptr::null_mut();
    // SAFETY: the handle and arrays are live for the call; on success the C++ side gives back a
    // new handle.
    call(|error| unsafe {
        nnc_channels_last_max_pool2d(
            handle(input),
            kernel.as_ptr(),
            stride.as_ptr(),
            padding.as_ptr(),
            &mut out,
            error,
        )
    })?;
    // SAFETY: the C++ side's new handle, or null.
    unsafe { take(out, "the channels-last max pooling") }
}

/// Whether oneDNN runs bf16 convolutions on this CPU (it needs AVX-512 or AVX-NE-CONVERT).
pub fn onednn_bf16_supported() -> bool {
    // SAFETY: no arguments; exceptions are caught on the C++ side.
    unsafe { nnc_onednn_bf16_supported() }
}

/// Autocast's switches of one device type (a `c10::DeviceType`) as a scope found them.
pub(crate) struct AutocastState {
    pub device_type: i8,
    pub enabled: bool,
    pub dtype: i8,
}

/// Turns libtorch's autocast on for `device_type` (a `c10::DeviceType`) in `dtype` (a
/// `c10::ScalarType`), on this thread, one scope deeper; gives back what it found, for
/// [`autocast_leave`].
pub(crate) fn autocast_enter(device_type: i8, dtype: i8) -> Result<AutocastState, TchError> {
    let (mut enabled, mut previous) = (false, 0i8);
    // SAFETY: thread-local switches; the pointers are live for the call.
    call(|error| unsafe { nnc_autocast_enter(device_type, dtype, &mut enabled, &mut previous, error) })?;
    Ok(AutocastState { device_type, enabled, dtype: previous })
}

/// Leaves a scope of [`autocast_enter`]: the switches as they were, and autocast's cached
/// lower-precision weights freed when no scope is left.
pub(crate) fn autocast_leave(state: &AutocastState) {
    // SAFETY: thread-local switches; nothing is thrown through.
    unsafe { nnc_autocast_leave(state.device_type, state.enabled, state.dtype) }
}

/// Whether libtorch's autocast is on for `device_type` on this thread.
pub(crate) fn autocast_enabled(device_type: i8) -> bool {
    // SAFETY: a thread-local read; nothing is thrown through.
    unsafe { nnc_autocast_enabled(device_type) }
}

/// Sets each tensor's gradient to none (undefined).
pub(crate) fn clear_grads<'a>(params: impl IntoIterator<Item = &'a Tensor>) -> Result<(), TchError> {
    let params: Vec<*const c_void> = params.into_iter().map(handle).collect();
    // SAFETY: live handles, for the call.
    call(|error| unsafe { nnc_clear_grads(params.as_ptr(), params.len(), error) })
}

/// One SGD step over `params` with their `grads`, as `torch.optim.SGD(fused=True)` computes it:
/// `momentum_buffers` is empty for plain SGD, else one per parameter, filled with the gradients
/// on the `first_step`. Each gradient and buffer must be a dense tensor laid out as its
/// parameter, of its type and device (refused otherwise: the kernel pairs them up by position).
pub(crate) fn fused_sgd(
    params: &[&Tensor],
    grads: &[&Tensor],
    momentum_buffers: &[&Tensor],
    lr: f64,
    momentum: f64,
    weight_decay: f64,
    first_step: bool,
) -> Result<(), TchError> {
    let n = params.len();
    let with_momentum = !momentum_buffers.is_empty();
    if grads.len() != n || (with_momentum && momentum_buffers.len() != n) {
        return Err(TchError::Shape("fused SGD: one gradient and buffer per parameter".to_string()));
    }
    let (p, g, b) = (handles(params), handles(grads), handles(momentum_buffers));
    // SAFETY: live handles, as many as the C++ side reads (checked above).
    call(|error| unsafe {
        nnc_fused_sgd(
            p.as_ptr(),
            g.as_ptr(),
            b.as_ptr(),
            n,
            with_momentum,
            lr,
            momentum,
            weight_decay,
            first_step,
            error,
        )
    })
}

/// One Adam step, as `torch.optim.Adam(fused=True)` computes it: weight decay added to the
/// gradient, no AMSGrad. Each parameter's step count (`state_steps`, a 0-dim fp32 tensor on its
/// device, counted from 0 before the first step) is counted up by one, then read by the bias
/// correction. Each gradient and moment must be a dense tensor laid out as its parameter, of its
/// type and device.
#[allow(clippy::too_many_arguments)]
pub(crate) fn fused_adam(
    params: &[&Tensor],
    grads: &[&Tensor],
    exp_avgs: &[&Tensor],
    exp_avg_sqs: &[&Tensor],
    state_steps: &[&Tensor],
    lr: f64,
    (beta1, beta2): (f64, f64),
    weight_decay: f64,
    eps: f64,
) -> Result<(), TchError> {
    let n = params.len();
    if [grads.len(), exp_avgs.len(), exp_avg_sqs.len(), state_steps.len()].iter().any(|&k| k != n) {
        return Err(TchError::Shape(
            "fused Adam: one gradient, two moments and a step count per parameter".to_string(),
        ));
    }
    let (p, g, m, v) = (handles(params), handles(grads), handles(exp_avgs), handles(exp_avg_sqs));
    let steps = handles(state_steps);
    // SAFETY: live handles, as many as the C++ side reads (checked above).
    call(|error| unsafe {
        nnc_fused_adam(
            p.as_ptr(),
            g.as_ptr(),
            m.as_ptr(),
            v.as_ptr(),
            steps.as_ptr(),
            n,
            lr,
            beta1,
            beta2,
            weight_decay,
            eps,
            error,
        )
    })
}
