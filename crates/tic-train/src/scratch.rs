//! Bounded scratch space for streamed training shards (`pipe:` URLs and object-store URLs).
//!
//! Such shards are memory-mapped like local ones, so they are first copied to a temporary file.
//! Kept for the whole run, those copies filled the disk of long streamed runs (a 1,024-shard S3
//! run). Here every rank stages its copies in one folder of its own (`tic-train-scratch-*` under
//! `TMPDIR`), and:
//! - the copies are written under a byte budget (`--scratch_limit`): bytes are reserved before
//!   they reach the disk, and staging blocks (the `pipe:` command or the download waits) while
//!   the budget is spent, so the folder never holds more than the limit;
//! - a copy is pinned by the sampling blocks that draw it and evicted (deleted, its bytes given
//!   back) once this rank's loader has passed the last of them: a rank is done with it, and
//!   every rank evicts its own copies;
//! - a limit too small for the shards one step needs cannot be waited out (the loader, which
//!   frees space, waits for the shard that does not fit): that is an error naming the limit.
//!
//! [`Scratch`] is generic over what a staged file becomes (the loader's opened shard), so this
//! module knows bytes and files, not tar shards.

use std::collections::{BTreeSet, HashMap};
use std::io::Write;
use std::path::Path;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use tic_shards::storage::Location;

/// The `out.log` line (prefix) that gives every rank's scratch high-water mark at the end.
pub const HIGH_WATER_LOG: &str = "scratch high-water mark (bytes, by rank):";

/// How long a wait lasts before the waiter looks again at what the other side is doing.
const POLL: Duration = Duration::from_millis(50);

/// `--scratch_limit`: the most bytes of streamed-shard copies one rank keeps on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScratchLimit {
    /// Room for this many shards of the largest size staged so far.
    Shards(u64),
    /// A fixed number of bytes.
    Bytes(u64),
}

/// Parses a size in bytes: an integer with an optional binary suffix `K`, `M`, `G`, `T`
/// (powers of 1024; `KiB`, `MB`, … and lower case are read the same).
pub fn parse_size(s: &str) -> Result<u64> {
    let t = s.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(digits);
    let n: u64 = num
        .parse()
        .with_context(|| format!("{s:?} is not a size (bytes, or a number with K/M/G/T)"))?;
    let shift = match unit
        .trim()
        .to_ascii_uppercase()
        .trim_end_matches("IB")
        .trim_end_matches('B')
    {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        "T" => 40,
        other => bail!("{s:?}: unknown size unit {other:?} (K, M, G or T)"),
    };
    n.checked_mul(1 << shift)
        .with_context(|| format!("{s:?} is too large"))
}

/// Formats bytes with a binary unit (`3.0 MiB`).
pub fn human_bytes(n: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < units.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", units[u])
    }
}

impl FromStr for ScratchLimit {
    type Err = anyhow::Error;

    /// `auto` (see [`ScratchLimit::auto`]) or a size ([`parse_size`]).
    fn from_str(s: &str) -> Result<Self> {
        if s.eq_ignore_ascii_case("auto") {
            return Ok(Self::Shards(0));
        }
        Ok(Self::Bytes(parse_size(s)?))
    }
}

impl ScratchLimit {
    /// `auto` resolved for `shards_per_block`: two blocks' shards (a step may straddle two
    /// blocks, and a block's samples are shuffled over all its shards) plus two to stage ahead.
    pub fn auto(self, shards_per_block: usize) -> Self {
        match self {
            Self::Shards(0) => Self::Shards(2 * shards_per_block.max(1) as u64 + 2),
            other => other,
        }
    }
}

/// The byte budget, shared with every staged file (which gives its bytes back when deleted).
struct Budget {
    limit: ScratchLimit,
    bytes: Mutex<Bytes>,
    room: Condvar,
    /// The stager waits for room.
    blocked: AtomicBool,
    /// Loader threads waiting for a shard that is not staged yet.
    waiters: AtomicUsize,
    closed: AtomicBool,
}

#[derive(Default)]
struct Bytes {
    used: u64,
    high_water: u64,
    largest: u64,
}

impl Budget {
    fn lock(&self) -> MutexGuard<'_, Bytes> {
        self.bytes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The limit in bytes now (`None`: no shard staged yet under `auto`, or `held` is larger).
    fn cap(&self, b: &Bytes, held: u64) -> Option<u64> {
        match self.limit {
            ScratchLimit::Bytes(n) => Some(n),
            ScratchLimit::Shards(k) => {
                let largest = b.largest.max(held);
                (largest > 0 && b.largest > 0).then(|| k.max(1) * largest)
            }
        }
    }

    /// Reserves `n` more bytes for the file `what`, which holds `held` bytes already: blocks
    /// while the budget is spent and fails when waiting cannot help.
    fn reserve(&self, n: u64, held: u64, what: &str) -> std::io::Result<()> {
        let mut b = self.lock();
        loop {
            if self.closed.load(Ordering::SeqCst) {
                return Err(std::io::Error::other("the loader stopped"));
            }
            let cap = self.cap(&b, held + n);
            if cap.is_none_or(|c| b.used + n <= c) {
                b.used += n;
                b.high_water = b.high_water.max(b.used);
                return Ok(());
            }
            let cap = cap.expect("checked");
            if b.used == held {
                return Err(std::io::Error::other(format!(
                    "{what} alone needs more than --scratch_limit ({})",
                    human_bytes(cap)
                )));
            }
            self.blocked.store(true, Ordering::SeqCst);
            if self.waiters.load(Ordering::SeqCst) > 0 {
                self.blocked.store(false, Ordering::SeqCst);
                return Err(std::io::Error::other(too_small(cap, b.used, what)));
            }
            b = self.room.wait_timeout(b, POLL).expect("budget lock").0;
            self.blocked.store(false, Ordering::SeqCst);
        }
    }

    fn give_back(&self, n: u64) {
        let mut b = self.lock();
        b.used = b.used.saturating_sub(n);
        drop(b);
        self.room.notify_all();
    }
}

fn too_small(cap: u64, used: u64, what: &str) -> String {
    format!(
        "--scratch_limit {} is too small: the streamed shards of the current step hold {} and {what} \
         needs more, but space is freed only after the step; raise --scratch_limit (to about \
         2 × --shards_per_block + 2 shards) or lower --shards_per_block",
        human_bytes(cap),
        human_bytes(used)
    )
}

/// A staged copy in the scratch folder: deleted, and its bytes given back, when dropped.
pub struct ScratchFile {
    tmp: Option<tempfile::NamedTempFile>,
    bytes: u64,
    budget: Arc<Budget>,
}

impl ScratchFile {
    /// The copy's path.
    pub fn path(&self) -> &Path {
        self.tmp.as_ref().expect("alive").path()
    }
}

impl Drop for ScratchFile {
    fn drop(&mut self) {
        drop(self.tmp.take());
        self.budget.give_back(self.bytes);
    }
}

/// Writes into a [`ScratchFile`], reserving every byte before it is written.
struct Reserving<'a> {
    file: &'a mut ScratchFile,
    what: &'a str,
}

impl Write for Reserving<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = buf.len() as u64;
        self.file.budget.reserve(n, self.file.bytes, self.what)?;
        self.file.bytes += n;
        self.file.tmp.as_mut().expect("alive").write_all(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.tmp.as_mut().expect("alive").flush()
    }
}

/// A staged item (what a file became) and the sampling blocks that still need it.
struct Staged<T> {
    item: Arc<T>,
    blocks: BTreeSet<u64>,
}

struct State<T> {
    staged: HashMap<u32, Staged<T>>,
    /// The loader's blocks before this one are done.
    released_to: u64,
    failed: Option<String>,
}

/// One rank's scratch folder: staged shards of type `T` by plan index, under a byte budget.
pub struct Scratch<T> {
    dir: tempfile::TempDir,
    budget: Arc<Budget>,
    state: Mutex<State<T>>,
    ready: Condvar,
}

impl<T> Scratch<T> {
    /// A new scratch folder under `TMPDIR` with `limit` (resolve `auto` first).
    pub fn new(limit: ScratchLimit) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("tic-train-scratch-")
            .tempdir()
            .context("creating the scratch folder for streamed shards (TMPDIR)")?;
        Ok(Self {
            dir,
            budget: Arc::new(Budget {
                limit,
                bytes: Mutex::default(),
                room: Condvar::new(),
                blocked: AtomicBool::new(false),
                waiters: AtomicUsize::new(0),
                closed: AtomicBool::new(false),
            }),
            state: Mutex::new(State {
                staged: HashMap::new(),
                released_to: 0,
                failed: None,
            }),
            ready: Condvar::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The scratch folder.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The most bytes held at once so far.
    pub fn high_water(&self) -> u64 {
        self.budget.lock().high_water
    }

    /// The limit as given (`N shards` for auto, or bytes).
    pub fn limit_description(&self) -> String {
        match self.budget.limit {
            ScratchLimit::Shards(k) => format!("auto ({k} shards of the largest size staged)"),
            ScratchLimit::Bytes(n) => format!("{n} bytes ({})", human_bytes(n)),
        }
    }

    /// Use against the limit, for the progress line (`3.1 MiB/8.0 MiB`).
    pub fn use_description(&self) -> String {
        let b = self.budget.lock();
        match self.budget.cap(&b, 0) {
            Some(c) => format!("{}/{}", human_bytes(b.used), human_bytes(c)),
            None => human_bytes(b.used),
        }
    }

    /// Copies `loc` into a new file of the folder under the budget (blocking while it is
    /// spent); the file is deleted when the returned handle is dropped.
    pub fn stage_file(&self, loc: &Location) -> Result<ScratchFile> {
        let tmp = tempfile::Builder::new()
            .prefix("shard-")
            .suffix(".tar")
            .tempfile_in(self.dir.path())
            .with_context(|| format!("creating a scratch file in {}", self.dir().display()))?;
        let mut file = ScratchFile {
            tmp: Some(tmp),
            bytes: 0,
            budget: self.budget.clone(),
        };
        let what = loc.to_string();
        {
            let mut w = std::io::BufWriter::with_capacity(
                1 << 20,
                Reserving {
                    file: &mut file,
                    what: &what,
                },
            );
            loc.copy_to(&mut w)?;
            w.flush()
                .with_context(|| format!("{what}: writing the scratch copy"))?;
        }
        if loc.is_pipe() {
            // A stream cut short (a dropped connection, a killed command) is an error here.
            let mut f = file.tmp.as_ref().expect("alive").reopen()?;
            tic_shards::pipe::check_tar_complete(&mut f, &what)?;
        }
        let mut b = self.budget.lock();
        b.largest = b.largest.max(file.bytes);
        Ok(file)
    }

    /// Marks `i` as needed by block `k` if it is staged; false when it is not.
    pub fn pin(&self, i: u32, k: u64) -> bool {
        match self.lock().staged.get_mut(&i) {
            Some(s) => {
                s.blocks.insert(k);
                true
            }
            None => false,
        }
    }

    /// Adds the staged item `i`, needed by block `k`.
    pub fn insert(&self, i: u32, item: Arc<T>, k: u64) {
        let mut st = self.lock();
        st.staged
            .entry(i)
            .or_insert_with(|| Staged {
                item,
                blocks: BTreeSet::new(),
            })
            .blocks
            .insert(k);
        drop(st);
        self.ready.notify_all();
    }

    /// Staging failed: loader threads waiting for a shard get `msg`.
    pub fn fail(&self, msg: String) {
        self.lock().failed = Some(msg);
        self.ready.notify_all();
    }

    /// Waits until block `k` may be staged: it is at most `ahead` blocks past the loader's,
    /// or the loader waits for a shard. False once closed.
    pub fn wait_to_stage(&self, k: u64, ahead: u64) -> bool {
        let mut st = self.lock();
        loop {
            if self.budget.closed.load(Ordering::SeqCst) {
                return false;
            }
            if k <= st.released_to + ahead || self.budget.waiters.load(Ordering::SeqCst) > 0 {
                return true;
            }
            st = self.ready.wait_timeout(st, POLL).expect("scratch lock").0;
        }
    }

    /// Staged item `i`, waiting for the stager; `what` names it in errors.
    pub fn get(&self, i: u32, what: &dyn Fn() -> String) -> Result<Arc<T>> {
        let mut st = self.lock();
        loop {
            if let Some(s) = st.staged.get(&i) {
                return Ok(s.item.clone());
            }
            if let Some(e) = &st.failed {
                bail!("{e}");
            }
            if self.budget.closed.load(Ordering::SeqCst) {
                bail!("{}: the loader stopped", what());
            }
            self.budget.waiters.fetch_add(1, Ordering::SeqCst);
            if self.budget.blocked.load(Ordering::SeqCst) {
                self.budget.waiters.fetch_sub(1, Ordering::SeqCst);
                let b = self.budget.lock();
                let cap = self.budget.cap(&b, 0).unwrap_or(b.used);
                bail!("{}", too_small(cap, b.used, &what()));
            }
            self.ready.notify_all();
            st = self.ready.wait_timeout(st, POLL).expect("scratch lock").0;
            self.budget.waiters.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// The loader is done with every block before `k`: items no later block needs are evicted.
    pub fn release_before(&self, k: u64) {
        let mut st = self.lock();
        st.released_to = st.released_to.max(k);
        st.staged.retain(|_, s| {
            s.blocks.retain(|&b| b >= k);
            !s.blocks.is_empty()
        });
        drop(st);
        self.ready.notify_all();
    }

    /// Stops staging: every wait ends.
    pub fn close(&self) {
        self.budget.closed.store(true, Ordering::SeqCst);
        self.ready.notify_all();
        self.budget.room.notify_all();
    }

    /// Starts staging (again) for a loader at block `from`: drops what an earlier loader
    /// staged and reopens a closed folder.
    pub fn restart(&self, from: u64) {
        let old = {
            let mut st = self.lock();
            st.released_to = from;
            st.failed = None;
            std::mem::take(&mut st.staged)
        };
        drop(old);
        self.budget.closed.store(false, Ordering::SeqCst);
    }

    /// True once [`Scratch::close`]d.
    pub fn is_closed(&self) -> bool {
        self.budget.closed.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_suffixes() {
        assert_eq!(parse_size("1000").unwrap(), 1000);
        assert_eq!(parse_size("64K").unwrap(), 64 << 10);
        assert_eq!(parse_size("3M").unwrap(), 3 << 20);
        assert_eq!(parse_size("2GiB").unwrap(), 2 << 30);
        assert_eq!(parse_size("1t").unwrap(), 1 << 40);
        assert!(parse_size("1.5G").is_err());
        assert!(parse_size("12X").is_err());
        assert!(parse_size("").is_err());
        assert_eq!(
            "auto".parse::<ScratchLimit>().unwrap().auto(8),
            ScratchLimit::Shards(18)
        );
        assert_eq!(human_bytes(3 << 20), "3.0 MiB");
    }

    /// Staging stops at the limit while nobody waits, and resumes when an item is evicted;
    /// the folder never holds more than the limit.
    #[test]
    fn staging_blocks_at_the_limit_until_an_eviction() {
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("x.tar");
        std::fs::write(&src, vec![7u8; 3000]).unwrap();
        let s: Arc<Scratch<ScratchFile>> =
            Arc::new(Scratch::new(ScratchLimit::Bytes(7000)).unwrap());
        let loc = Location::local(&src);
        for i in 0..2 {
            s.insert(i, Arc::new(s.stage_file(&loc).unwrap()), i as u64);
        }
        let s2 = s.clone();
        let third = std::thread::spawn(move || {
            let f = s2.stage_file(&Location::local(&src)).unwrap();
            s2.insert(2, Arc::new(f), 2);
        });
        std::thread::sleep(Duration::from_millis(300));
        assert!(!third.is_finished(), "staging went past the limit");
        // Bytes are reserved per write (the 1 MiB buffer: the whole file at once).
        assert_eq!(s.high_water(), 6000);
        s.release_before(1);
        third.join().unwrap();
        assert_eq!(s.high_water(), 6000);
        assert!(s.get(2, &|| "2".into()).is_ok());
        let on_disk: u64 = std::fs::read_dir(s.dir())
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap().len())
            .sum();
        assert_eq!(on_disk, 6000);
    }

    /// A limit smaller than what one step needs is an error, not a hang.
    #[test]
    fn a_limit_too_small_for_a_step_fails() {
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("x.tar");
        std::fs::write(&src, vec![7u8; 3000]).unwrap();
        let s: Arc<Scratch<ScratchFile>> =
            Arc::new(Scratch::new(ScratchLimit::Bytes(4000)).unwrap());
        s.insert(
            0,
            Arc::new(s.stage_file(&Location::local(&src)).unwrap()),
            0,
        );
        let s2 = s.clone();
        let stager = std::thread::spawn(move || {
            let r = s2.stage_file(&Location::local(&src)).map(|_| ());
            if let Err(e) = &r {
                s2.fail(format!("{e:#}"));
            }
            r
        });
        let e = match s.get(1, &|| "shard one".into()) {
            Ok(_) => panic!("a shard that cannot fit was handed out"),
            Err(e) => e.to_string(),
        };
        assert!(
            e.contains("--scratch_limit") && e.contains("too small"),
            "{e}"
        );
        s.close();
        assert!(stager.join().unwrap().is_err());
    }
}
