//! One target run in this process under a memory cap (the child side of [`crate::smoke`]).
//!
//! The cap is enforced twice: [`CappedAlloc`], the binary's global allocator, counts live heap
//! bytes and aborts with a message naming the allocation that would pass the cap (so a reader
//! that sizes a buffer from a hostile length field fails the run even if the machine could
//! afford it), and `RLIMIT_AS` (twice the cap plus 1 GiB) bounds what escapes the allocator
//! (`mmap` by a dependency). Before running each input, the runner copies it into a memory-mapped
//! file ([`InputLog`]): whatever kills the process (panic, abort, stack overflow, the parent's
//! timeout), the input that did it is there for the parent to save.

use crate::mutate::mutate;
use crate::targets::{Scratch, Target};
use anyhow::{bail, Context, Result};
use rand::{Rng, SeedableRng};
use std::alloc::{GlobalAlloc, Layout, System};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

static LIMIT: AtomicUsize = AtomicUsize::new(usize::MAX);
static LIVE: AtomicUsize = AtomicUsize::new(0);

/// A global allocator over the system's that refuses to let live heap bytes pass the cap set by
/// [`set_memory_cap`]: the process prints the size asked for and aborts.
pub struct CappedAlloc;

fn reserve(bytes: usize) {
    let live = LIVE
        .fetch_add(bytes, Ordering::Relaxed)
        .saturating_add(bytes);
    if live > LIMIT.load(Ordering::Relaxed) {
        over_cap(bytes);
    }
}

/// Reports an allocation past the cap without allocating, then aborts.
fn over_cap(bytes: usize) -> ! {
    let mut digits = [0u8; 20];
    let (mut n, mut i) = (bytes, digits.len());
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for part in [
        &b"tic-fuzz: memory cap exceeded by an allocation of "[..],
        &digits[i..],
        &b" bytes\n"[..],
    ] {
        // SAFETY: writing a valid buffer of its own length to the standard error descriptor.
        unsafe { libc::write(2, part.as_ptr().cast(), part.len()) };
    }
    std::process::abort()
}

// SAFETY: every call is forwarded to `System` unchanged; only a counter is kept beside it.
unsafe impl GlobalAlloc for CappedAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        reserve(layout.size());
        System.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        reserve(layout.size());
        System.alloc_zeroed(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        System.dealloc(ptr, layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > layout.size() {
            reserve(new_size - layout.size());
        } else {
            LIVE.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
        }
        System.realloc(ptr, layout, new_size)
    }
}

/// Caps live heap bytes (when [`CappedAlloc`] is the global allocator) at `bytes`, and the
/// address space at twice that plus 1 GiB.
pub fn set_memory_cap(bytes: usize) -> Result<()> {
    LIMIT.store(
        LIVE.load(Ordering::Relaxed).saturating_add(bytes),
        Ordering::Relaxed,
    );
    let room = (bytes as u64).saturating_mul(2).saturating_add(1 << 30);
    let lim = libc::rlimit {
        rlim_cur: room as libc::rlim_t,
        rlim_max: room as libc::rlim_t,
    };
    // SAFETY: setrlimit reads the struct passed by reference and nothing else.
    if unsafe { libc::setrlimit(libc::RLIMIT_AS, &lim) } != 0 {
        bail!("setrlimit(RLIMIT_AS): {}", std::io::Error::last_os_error());
    }
    Ok(())
}

/// A memory-mapped file holding the input being run: 8 bytes of length, then the bytes.
pub struct InputLog {
    map: memmap2::MmapMut,
}

impl InputLog {
    /// Creates `path` with room for inputs of `max_len` bytes.
    pub fn create(path: &Path, max_len: usize) -> Result<Self> {
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .with_context(|| format!("creating {}", path.display()))?;
        f.set_len(8 + max_len as u64)?;
        // SAFETY: the file is ours (just created) and is only accessed through this map.
        let map = unsafe { memmap2::MmapMut::map_mut(&f) }?;
        Ok(Self { map })
    }

    /// Records `data` as the input about to run (cut to the room there is).
    pub fn record(&mut self, data: &[u8]) {
        let n = data.len().min(self.map.len() - 8);
        self.map[..8].copy_from_slice(&(n as u64).to_le_bytes());
        self.map[8..8 + n].copy_from_slice(&data[..n]);
    }

    /// The input recorded in the log at `path` (what a dead child was running).
    pub fn read(path: &Path) -> Result<Vec<u8>> {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let n = u64::from_le_bytes(bytes[..8].try_into().context("a short input log")?) as usize;
        Ok(bytes[8..8 + n.min(bytes.len() - 8)].to_vec())
    }
}

/// What one child run is asked to do.
pub struct RunSpec<'a> {
    /// The target.
    pub target: &'a Target,
    /// Time for mutated inputs after the replay (0: replay only).
    pub seconds: f64,
    /// The mutator's random seed.
    pub seed: u64,
    /// Where the running input is recorded.
    pub input_log: PathBuf,
    /// Regression inputs: files, or folders whose files are all read.
    pub corpus: Vec<PathBuf>,
    /// The repository root (committed seed fixtures).
    pub root: PathBuf,
}

fn corpus_files(paths: &[PathBuf]) -> Result<Vec<(PathBuf, Vec<u8>)>> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut files: Vec<PathBuf> =
                std::fs::read_dir(p)?.flatten().map(|e| e.path()).collect();
            files.sort();
            for f in files.into_iter().filter(|f| f.is_file()) {
                let data = std::fs::read(&f).with_context(|| format!("reading {}", f.display()))?;
                out.push((f, data));
            }
        } else if p.exists() {
            out.push((
                p.clone(),
                std::fs::read(p).with_context(|| format!("reading {}", p.display()))?,
            ));
        }
    }
    Ok(out)
}

/// Replays the target's seeds and the regression inputs, then runs mutated inputs until the
/// time is up. Returns `(inputs replayed, mutated inputs run)`; a failing input panics or aborts.
pub fn run(spec: &RunSpec) -> Result<(usize, u64)> {
    let t = spec.target;
    let scratch = Scratch::new()?;
    let mut pool = (t.seeds)(&spec.root);
    if pool.is_empty() {
        bail!(
            "{}: no seed inputs (are the fixtures under {} present?)",
            t.name,
            spec.root.display()
        );
    }
    let regressions = corpus_files(&spec.corpus)?;
    let longest = pool
        .iter()
        .chain(regressions.iter().map(|r| &r.1))
        .map(Vec::len)
        .max();
    let mut log = InputLog::create(&spec.input_log, t.max_len.max(longest.unwrap_or(0)))?;
    for (path, data) in &regressions {
        tracing_free_note(&format!("{}: replaying {}", t.name, path.display()));
        log.record(data);
        (t.run)(&scratch, data);
    }
    for data in &pool {
        log.record(data);
        (t.run)(&scratch, data);
    }
    let replayed = pool.len() + regressions.len();
    pool.extend(regressions.into_iter().map(|r| r.1));
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(spec.seed);
    let deadline = Instant::now() + Duration::from_secs_f64(spec.seconds.max(0.0));
    let mut n = 0u64;
    while Instant::now() < deadline {
        let mut data = pool[rng.random_range(0..pool.len())].clone();
        let other = &pool[rng.random_range(0..pool.len())];
        mutate(&mut rng, &mut data, t.max_len, t.dict, other);
        if let Some(fix) = t.fixup.filter(|_| rng.random_bool(0.5)) {
            fix(&mut data);
        }
        log.record(&data);
        (t.run)(&scratch, &data);
        n += 1;
    }
    Ok((replayed, n))
}

/// A line on stderr when `TIC_FUZZ_VERBOSE` is set (the runner has no logger).
fn tracing_free_note(msg: &str) {
    if std::env::var_os("TIC_FUZZ_VERBOSE").is_some() {
        eprintln!("{msg}");
    }
}
