//! `heap::reuse_freed_buffers` in a process of its own: glibc's statistics are process-wide,
//! so other tests allocating at the same time would disturb the count.

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn large_buffers_come_from_the_heap() {
    if std::env::var_os("MALLOC_MMAP_MAX_").is_some() {
        return;
    }
    tic_kernels::heap::reuse_freed_buffers();
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
