//! The memory a command needs, estimated from the IR before any of it is allocated, against the
//! memory this process may still use: so that a batch too large for the machine is refused at
//! once, with the estimate and a batch that should fit, rather than failing in the middle of a
//! layer (or being killed by the kernel when memory is overcommitted).
//!
//! The estimate counts what must exist at once: the parameters (with their gradients and the
//! optimiser's state when training) and the layers' outputs alive at the same time at the
//! batch size (when training, with the inputs autograd keeps for the backward pass), in 32-bit
//! floats. libtorch's working space inside a layer (a convolution's unfolded input, say) comes
//! on top and cannot be predicted from the IR, so the estimate is meant as a floor: a command
//! it refuses cannot fit, and one it lets through may still fail in a layer, which is then an
//! error naming the layer (see [`crate::ops::apply`]). (A view, such as `flatten`'s output, is
//! counted as a copy; it is small beside the convolutions' outputs.)

use std::fmt;

use nnc_compiler::ir::Graph;
use nnc_compiler::Batch;

use crate::error::human_bytes;
use crate::RuntimeError;

/// Bytes of one element: nnc's tensors are 32-bit floats.
const ELEMENT: u128 = 4;

/// How a command runs the model, which decides what is alive at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    /// One forward pass keeping every layer's output (`nnc run`, which shows them all).
    KeepAll,
    /// Forward passes without gradients, each intermediate freed after its last use
    /// (evaluation, prediction).
    Inference,
    /// Training steps: autograd keeps the inputs of the layers with trained tensors for the
    /// backward pass; each trained parameter has a gradient, which lives on between steps
    /// (`zero_grad` zeroes it in place), and `optimizer_states` tensors of its size (1 for
    /// momentum SGD, 2 for Adam).
    Training { optimizer_states: u32 },
}

/// The memory a workload needs at one batch size, in bytes. Sums saturate: a count too large
/// for a `u128` does not fit any machine either.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Estimate {
    /// The parameters and buffers, with gradients and optimiser state when training.
    pub parameters: u128,
    /// The layers' outputs alive at once (when training, with the inputs kept for the backward pass).
    pub activations: u128,
}

impl Estimate {
    pub fn total(&self) -> u128 {
        self.parameters.saturating_add(self.activations)
    }
}

/// The bytes of one node's output at batch `batch` (a fixed batch in the IR stays fixed).
fn output_bytes(graph: &Graph, node: usize, batch: u64) -> u128 {
    let shape = &graph.nodes[node].shape;
    let examples = match shape.batch {
        Batch::Symbolic(_) => batch,
        Batch::Fixed(n) => n,
    };
    match shape.elements_per_example() {
        Some(elements) => u128::from(elements).saturating_mul(u128::from(examples)).saturating_mul(ELEMENT),
        None => u128::MAX,
    }
}

/// Estimates the memory `graph` needs for `workload` at batch `batch`.
pub fn estimate(graph: &Graph, workload: Workload, batch: u64) -> Estimate {
    let mut parameters = 0u128;
    for node in &graph.nodes {
        for spec in node.op.layer().tensors() {
            let bytes = spec.elements().map_or(u128::MAX, |e| u128::from(e).saturating_mul(ELEMENT));
            // A trained tensor gets a gradient, and the optimiser's state, when training.
            let copies = match workload {
                Workload::Training { optimizer_states } if spec.trained => 2 + u128::from(optimizer_states),
                _ => 1,
            };
            parameters = parameters.saturating_add(bytes.saturating_mul(copies));
        }
    }
    let outputs: Vec<u128> = (0..graph.nodes.len()).map(|i| output_bytes(graph, i, batch)).collect();
    let activations = match workload {
        Workload::KeepAll => outputs.iter().fold(0u128, |a, &b| a.saturating_add(b)),
        Workload::Inference => peak(graph, &outputs, false),
        Workload::Training { .. } => peak(graph, &outputs, true),
    };
    Estimate { parameters, activations }
}

/// The most bytes of outputs alive at once in a forward pass that frees each output after its
/// last reader, as the interpreter and generated code do. A node's output is allocated while
/// its inputs are alive; the input is never freed, as the caller holds it. With `training`,
/// autograd also keeps the input of every layer with trained tensors until the backward
/// pass, which needs it for their gradients (a convolution's, a linear layer's, a norm's).
/// What other layers keep (an activation's output, a pooling's indices) is not counted, so
/// that the figure stays a floor without knowing each op.
fn peak(graph: &Graph, outputs: &[u128], training: bool) -> u128 {
    let last_use = graph.last_uses();
    let mut kept = vec![false; graph.nodes.len()];
    let (mut alive, mut peak) = (0u128, 0u128);
    for (i, node) in graph.nodes.iter().enumerate() {
        alive = alive.saturating_add(outputs[i]);
        peak = peak.max(alive);
        let trained = training && node.op.layer().tensors().iter().any(|t| t.trained);
        let mut inputs: Vec<usize> = node.inputs.iter().map(|id| id.0).collect();
        inputs.sort_unstable();
        inputs.dedup();
        for id in inputs {
            kept[id] |= trained;
            if last_use[id] == i && !kept[id] && id != graph.input.0 {
                alive = alive.saturating_sub(outputs[id]);
            }
        }
    }
    peak
}

/// The memory this process may still allocate, and what limits it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Available {
    pub bytes: u128,
    /// The limit that binds, in words: `the system has 21.3 GB available`.
    pub limit: String,
}

/// The least of: the system's available memory (`MemAvailable`), what the address-space limit
/// (`ulimit -v`, `RLIMIT_AS`) leaves above the address space already mapped, and what the
/// control group's memory limit leaves (cgroup v2 or v1, as a container sees it). `None` where
/// none of these can be read (not on Linux).
pub fn available() -> Option<Available> {
    let mut limits = Vec::new();
    if let Some(bytes) = meminfo("MemAvailable:") {
        limits.push(Available { bytes, limit: format!("the system has {} available", human_bytes(bytes)) });
    }
    if let Some(limit) = address_space_limit() {
        let mapped = proc_kb("/proc/self/status", "VmSize:").unwrap_or(0);
        let bytes = limit.saturating_sub(mapped);
        limits.push(Available {
            bytes,
            limit: format!(
                "the address-space limit (ulimit -v) of {} leaves {}",
                human_bytes(limit),
                human_bytes(bytes)
            ),
        });
    }
    if let Some((limit, used)) = cgroup_limit() {
        let bytes = limit.saturating_sub(used);
        limits.push(Available {
            bytes,
            limit: format!(
                "the control group's memory limit of {} leaves {}",
                human_bytes(limit),
                human_bytes(bytes)
            ),
        });
    }
    limits.into_iter().min_by_key(|a| a.bytes)
}

/// A `Key: N kB` line of a `/proc` file, in bytes.
fn proc_kb(path: &str, key: &str) -> Option<u128> {
    let text = std::fs::read_to_string(path).ok()?;
    let line = text.lines().find(|l| l.starts_with(key))?;
    let kb: u128 = line[key.len()..].trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kb.saturating_mul(1024))
}

fn meminfo(key: &str) -> Option<u128> {
    proc_kb("/proc/meminfo", key)
}

/// The soft address-space limit, if there is one.
fn address_space_limit() -> Option<u128> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes only the struct it is given, which lives for the call.
    let status = unsafe { libc::getrlimit(libc::RLIMIT_AS, &mut limit) };
    (status == 0 && limit.rlim_cur != libc::RLIM_INFINITY).then(|| u128::from(limit.rlim_cur))
}

/// The memory limit of the control group as mounted in this process's view (a container's
/// own), and what it uses that cannot be reclaimed (page cache that is inactive can be, as
/// the kubelet counts a working set).
fn cgroup_limit() -> Option<(u128, u128)> {
    let read = |path: &str| std::fs::read_to_string(path).ok();
    let number = |text: Option<String>| text.and_then(|t| t.trim().parse::<u128>().ok());
    let stat = |path: &str, key: &str| {
        read(path)?.lines().find_map(|l| l.strip_prefix(key)?.trim().parse::<u128>().ok())
    };
    // cgroup v2 says `max` for no limit, which does not parse.
    let (limit, usage, inactive) = if let Some(limit) = number(read("/sys/fs/cgroup/memory.max")) {
        let usage = number(read("/sys/fs/cgroup/memory.current"))?;
        (limit, usage, stat("/sys/fs/cgroup/memory.stat", "inactive_file ").unwrap_or(0))
    } else {
        let limit = number(read("/sys/fs/cgroup/memory/memory.limit_in_bytes"))?;
        let usage = number(read("/sys/fs/cgroup/memory/memory.usage_in_bytes"))?;
        (limit, usage, stat("/sys/fs/cgroup/memory/memory.stat", "total_inactive_file ").unwrap_or(0))
    };
    // cgroup v1 says "no limit" with a number near i64::MAX, rounded down to a page.
    (limit < 1 << 62).then(|| (limit, usage.saturating_sub(inactive)))
}

/// A command refused before it started, because its estimate exceeds the available memory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// What was asked: `training vgg11 at batch 512`.
    pub task: String,
    pub estimate: Estimate,
    pub available: Available,
    /// The largest smaller batch whose estimate leaves room for what it does not count (see
    /// [`check_against`]), if one does.
    pub fits: Option<u64>,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = &self.estimate;
        if e.total() == u128::MAX {
            write!(f, "{} needs more memory than can be counted", self.task)?;
        } else {
            write!(
                f,
                "{} needs about {} (parameters {}, layer outputs {}), but {}",
                self.task,
                human_bytes(e.total()),
                human_bytes(e.parameters),
                human_bytes(e.activations),
                self.available.limit
            )?;
        }
        match self.fits {
            Some(batch) => write!(f, "\nhelp: a batch of {batch} or less should fit"),
            None => write!(
                f,
                "\nhelp: a smaller batch is unlikely to be enough; use a smaller input size or model"
            ),
        }
    }
}

/// Refuses `workload` of `graph` at `batch` when its estimate exceeds the available memory;
/// `task` says what it is (`training vgg11 at batch 512`). Passes when the available memory
/// cannot be read.
pub fn check(graph: &Graph, workload: Workload, batch: u64, task: &str) -> Result<(), RuntimeError> {
    match available() {
        Some(available) => check_against(graph, workload, batch, task, available),
        None => Ok(()),
    }
}

/// [`check`] against a given amount of memory.
pub fn check_against(
    graph: &Graph,
    workload: Workload,
    batch: u64,
    task: &str,
    available: Available,
) -> Result<(), RuntimeError> {
    if estimate(graph, workload, batch).total() <= available.bytes {
        return Ok(());
    }
    // The estimate is a floor, so the batch suggested instead leaves room for what it does not
    // count: libtorch's working space, its threads' stacks and heaps (a quarter of the memory
    // is plenty for a forward pass), and, when training, what autograd keeps beyond the
    // layers' inputs, which measured up to as much again (nin, lenet-bn, AlexNet).
    let room = match workload {
        Workload::KeepAll | Workload::Inference => available.bytes / 4 * 3,
        Workload::Training { .. } => available.bytes / 2,
    };
    let fits = |b: u64| estimate(graph, workload, b).total() <= room;
    // The estimate grows with the batch, so the largest batch that fits is found by bisection.
    let fits_smaller = (batch > 1 && fits(1)).then(|| {
        let (mut good, mut bad) = (1, batch);
        while bad - good > 1 {
            let mid = good + (bad - good) / 2;
            if fits(mid) {
                good = mid;
            } else {
                bad = mid;
            }
        }
        good
    });
    Err(RuntimeError::Memory(Box::new(Refusal {
        task: task.to_string(),
        estimate: estimate(graph, workload, batch),
        available,
        fits: fits_smaller,
    })))
}
