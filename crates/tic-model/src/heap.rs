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
/// (where the binaries run the model); other threads' arenas still map buffers over 64 MiB. Skipped when the user set either
/// knob through glibc's own environment variables (`MALLOC_MMAP_MAX_`,
/// `MALLOC_TRIM_THRESHOLD_`); a no-op on other C libraries. Call it once, early in `main`.
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

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    #[test]
    fn large_buffers_come_from_the_heap() {
        if std::env::var_os("MALLOC_MMAP_MAX_").is_some() {
            return;
        }
        super::reuse_freed_buffers();
        // SAFETY: mallinfo2 only reads glibc's allocator statistics.
        let mmapped = || unsafe { libc::mallinfo2() }.hblkhd;
        let before = mmapped();
        // 40 MiB: above glibc's largest mmap threshold (32 MiB) and, as tests run on worker
        // threads, below a thread arena's heap size (64 MiB).
        let buf = std::hint::black_box(vec![1u8; 40 << 20]);
        assert_eq!(
            mmapped(),
            before,
            "a 40 MiB buffer was mmapped (glibc's default)"
        );
        drop(buf);
    }
}
