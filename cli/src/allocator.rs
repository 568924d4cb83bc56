//! How the process's allocator treats freed memory.

/// Makes glibc keep memory that is freed for the next allocation, instead of giving it back to
/// the system at once (blocks over its mmap threshold, and the free top of the heap over its
/// trim threshold), after which the next allocation of the same size pays page faults to get
/// it again. Both kinds of work that repeat allocate and free the same sizes over and over:
///
/// - `nnc lsp`: each keystroke's check allocates a few megabytes for a large network and the
///   check it replaces frees as much: up to a quarter of a check's time on the 1000-layer
///   ResNet (7.2 ms against 5.2 ms, checked and dropped in a loop);
/// - the commands that run models (`nnc-torch`): each training step or forward allocates its
///   activations and gradients again (LeNet's training step at batch 32 in `nnc bench`, four
///   alternate runs: 8.0–10.5k examples/s with glibc's defaults, 10.7–16.1k so).
///
/// What the process holds is bounded by its largest step, as before; a block of 32 MB or more
/// is still mapped and unmapped on its own.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `mallopt` sets the allocator's parameters under its own lock, and these two only
    // decide when freed memory goes back to the system.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 64 << 20);
    }
}
