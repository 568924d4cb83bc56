//! The memory a command needs against the memory this process may still use: so that a batch
//! too large for the machine is refused at once, with the estimate and a batch that should
//! fit, rather than failing in the middle of a layer (or being killed by the kernel when memory
//! is overcommitted). The estimate itself is the compiler's ([`nnc_compiler::back::memory`]),
//! which `nnc check --batch` prints; a command it lets through may still fail in a layer,
//! which is then an error naming the layer (see [`crate::ops::apply`]).

use std::fmt;

use nnc_compiler::back::memory::{estimate, Estimate, Workload};
use nnc_compiler::back::report;
use nnc_compiler::ir::Graph;

use crate::RuntimeError;

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
        limits.push(Available { bytes, limit: format!("the system has {} available", report::bytes(bytes)) });
    }
    // What a limit leaves once `used` is taken, worded with the limit.
    let leaves = |what: &str, limit: u128, used: u128| {
        let bytes = limit.saturating_sub(used);
        let limit = format!("{what} of {} leaves {}", report::bytes(limit), report::bytes(bytes));
        Available { bytes, limit }
    };
    if let Some(limit) = address_space_limit() {
        let mapped = proc_kb("/proc/self/status", "VmSize:").unwrap_or(0);
        limits.push(leaves("the address-space limit (ulimit -v)", limit, mapped));
    }
    if let Some((limit, used)) = cgroup_limit() {
        limits.push(leaves("the control group's memory limit", limit, used));
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
                report::bytes(e.total()),
                report::bytes(e.parameters),
                report::bytes(e.activations),
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
