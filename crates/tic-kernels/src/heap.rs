//! Heap settings for tensor-heavy processes.
//!
//! Candle gives every op a freshly allocated output buffer. With glibc's defaults, a buffer
//! above 32 MiB (the ViT-B/16 MLP activations at batch 32 are 77 MiB) is a new `mmap` each
//! time and is unmapped when freed, so every forward pass page-faults its big activations in
//! again: about 5–10 % of the image tower's CPU time. [`reuse_freed_buffers`] makes glibc serve
//! them from its heap and keep freed memory, so the next batch reuses the same pages.

/// Serves large allocations from the heap and keeps freed memory for reuse (glibc
/// `mallopt(M_MMAP_MAX, 0)` and `M_TRIM_THRESHOLD` = 2 GiB): the process keeps its peak
/// resident memory instead of returning it between batches. Applies fully to the main thread
/// (where the binaries run the model); other threads' arenas still map buffers over 64 MiB.
/// Skipped when the user set either knob through glibc's own environment variables
/// (`MALLOC_MMAP_MAX_`, `MALLOC_TRIM_THRESHOLD_`); a no-op on other C libraries. Call it once,
/// early in `main`.
pub fn reuse_freed_buffers() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let user_set = ["MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_"]
            .iter()
            .any(|v| std::env::var_os(v).is_some());
        if !user_set {
            // SAFETY: mallopt only changes glibc's allocation thresholds; both parameters are
            // valid for any value.
            unsafe {
                libc::mallopt(libc::M_MMAP_MAX, 0);
                libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
            }
        }
    }
}
