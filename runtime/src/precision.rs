//! Mixed precision: bf16 through libtorch's own autocast, as PyTorch's `torch.autocast` runs it.
//!
//! With [`Precision::Bf16`] a forward runs inside an autocast scope of its input's device
//! ([`Precision::enter`]): libtorch itself casts the inputs of the ops on its lower-precision
//! list to bf16 (on the CPU: `conv1d/2d/3d`, `conv_transpose1d/2d/3d`, `linear`, `matmul`,
//! `mm`, `bmm`, `addmm`, `prelu`, `scaled_dot_product_attention`, ...), casts those on its fp32
//! list to fp32 (the losses: `nll_loss`, `cross_entropy_loss`, `mse_loss`, ...), and lets the
//! others run in the type they are given (batch norm, layer norm and poolings take bf16 and keep
//! fp32 statistics and parameters). The lists are libtorch's (`aten/src/ATen/autocast_mode.cpp`;
//! `torch._C._dispatch_dump("aten::conv2d")` shows the `AutocastCPU` kernel of an op), so nnc
//! computes what PyTorch's autocast computes. The parameters stay fp32 (the master weights the
//! optimiser steps; the casts' gradients come back in fp32), softmax and log-softmax are
//! computed in fp32 (`ops.rs` asks for it), and the outputs leave the forward in fp32
//! ([`Precision::output`]), so that a loss or an accuracy is computed in fp32.
//!
//! tch binds only the deprecated `at::autocast::set_enabled`, which switches CUDA's autocast
//! alone (its `tch::autocast` does nothing without CUDA, and then in fp16), so the switches of
//! libtorch's C++ API are reached through the shim ([`crate::shim`]), compiled against the
//! headers of the libtorch nnc links.

use std::fmt;
use std::marker::PhantomData;

use tch::{Device, Kind, Tensor};

use crate::{shim, RuntimeError};

/// The precision a forward computes in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Precision {
    /// Everything in fp32 (or the input's floating type), libtorch's default.
    #[default]
    Fp32,
    /// libtorch's autocast to bf16: matrix products and convolutions in bf16, fp32 weights,
    /// losses and outputs (see the module's documentation).
    Bf16,
}

impl Precision {
    /// How the command line spells it.
    pub fn name(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Bf16 => "bf16",
        }
    }

    /// Enters the precision's autocast scope for tensors on `device`, which lasts until the
    /// returned guard is dropped; fp32 enters none. Autocast is per thread: the forward must
    /// run on the thread that entered it (libtorch's CPU backward runs on the caller's thread
    /// too, and needs no scope). An error for a device libtorch's autocast has no bf16 for.
    pub fn enter(self, device: Device) -> Result<Autocast, RuntimeError> {
        let device_type = match (self, device) {
            (Precision::Fp32, _) => return Ok(Autocast { scope: None, thread: PhantomData }),
            (Precision::Bf16, Device::Cpu) => DEVICE_CPU,
            (Precision::Bf16, Device::Cuda(_)) => DEVICE_CUDA,
            (Precision::Bf16, other) => {
                return Err(RuntimeError::Device(format!(
                    "--precision bf16 runs on cpu or cuda, not {other:?}"
                )))
            }
        };
        // Thread-local switches: the guard restores what they were, and is not `Send`, so it is
        // dropped on this thread.
        let scope = shim::autocast_enter(device_type, SCALAR_BFLOAT16)
            .map_err(|e| RuntimeError::Device(format!("libtorch's autocast cannot be entered: {e}")))?;
        Ok(Autocast { scope: Some(scope), thread: PhantomData })
    }

    /// A forward's output as it leaves the forward: bf16 made fp32 under [`Precision::Bf16`],
    /// as a loss, an accuracy or a caller expects; any other tensor as it is (an fp32 model
    /// given f16 or f64 inputs keeps giving their type).
    pub fn output(self, t: &Tensor) -> Result<Tensor, tch::TchError> {
        match (self, t.kind()) {
            (Precision::Bf16, Kind::BFloat16) => t.f_to_kind(Kind::Float),
            _ => Ok(t.shallow_clone()),
        }
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An autocast scope ([`Precision::enter`]): dropping it leaves the scope, restoring libtorch's
/// switches as they were, and, when no scope is left, freeing the bf16 copies of the weights
/// that autocast cached for the forward.
#[must_use = "the scope ends when the guard is dropped"]
pub struct Autocast {
    scope: Option<shim::AutocastState>,
    /// Autocast's switches are thread-local: the guard must be dropped where it was made.
    thread: PhantomData<*const ()>,
}

impl Drop for Autocast {
    fn drop(&mut self) {
        if let Some(s) = &self.scope {
            shim::autocast_leave(s);
        }
    }
}

impl fmt::Debug for Autocast {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Autocast").field("active", &self.scope.is_some()).finish()
    }
}

/// `c10::DeviceType::CPU` and `CUDA`, `c10::ScalarType::BFloat16` (c10/core/DeviceType.h,
/// c10/core/ScalarType.h: stable values, which serialised models depend on).
const DEVICE_CPU: i8 = 0;
const DEVICE_CUDA: i8 = 1;
const SCALAR_BFLOAT16: i8 = 15;

/// Whether libtorch's autocast is on for the CPU on this thread (for tests).
pub fn cpu_autocast_enabled() -> bool {
    shim::autocast_enabled(DEVICE_CPU)
}
