//! Run folders in object stores: `--output_dir s3://bucket/prefix` and OpenCLIP's
//! `--remote_sync s3://…` / `--remote_sync_frequency`.
//!
//! tic-train writes every file with local file APIs (atomic renames, appends), so a run always
//! has a local folder, and this module keeps an object-store copy of it:
//! - `--output_dir URL`: the store is the run folder (`URL/EXP_NAME`); the local folder is a
//!   staging folder (`--staging_dir`, by default under the system's temporary folder) whose
//!   contents are replaced at start by what the store holds. States reach the store right after
//!   each checkpoint; the other files every `--remote_sync_frequency` seconds and at the end.
//! - `--remote_sync URL` (OpenCLIP's): the local `--output_dir/EXP_NAME` is the run folder and
//!   `URL/EXP_NAME` its copy, refreshed every `--remote_sync_frequency` seconds and at the end.
//!
//! Uploads run on a background thread ([`RemoteRun`]) and rely on whole-object PUT atomicity
//! (a multipart upload appears only once complete; a killed one is never seen). A pass uploads
//! the changed files, then the newest state's tensors, then the `train_state.json` naming them,
//! then deletes older state tensors, so the store never holds a state whose tensors are
//! missing. The state is snapshotted by opening its tensor file right after reading the JSON:
//! the open file is uploaded even if the trainer replaces it meanwhile.
//!
//! `--resume latest` reads the run back from the store when the local folder has no state
//! (always, for `--output_dir URL`): every file but the model checkpoints (`epoch_*.safetensors`,
//! not needed to continue) and the older state tensors is downloaded, tensors before the JSON;
//! training then continues exactly as from a local folder. One job per run: the store's folder
//! is locked by [`tic_shards::store_lock::StoreLock`] (a conditional PUT), heartbeated from the
//! upload thread; a job that loses its lock stops at its next checkpoint.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{anyhow, bail, Context, Result};
use tic_eval::run_folder::CHECKPOINTS_DIR;
use tic_shards::lock::{DirLock, LOCK_FILE};
use tic_shards::storage::{download_file, LocalCopy, Location};
use tic_shards::store_lock::StoreLock;

use crate::args::TrainArgs;
use crate::records::{TrainState, TRAIN_STATE_FILE};
use crate::state::RunDir;

/// The marker file of a staging folder: it holds the run's URL (a folder without it, or naming
/// another run, is never emptied).
pub const STAGING_MARKER: &str = ".tic-staging";

/// `checkpoints/train_state.json`, relative to the run folder.
fn state_key() -> String {
    format!("{CHECKPOINTS_DIR}/{TRAIN_STATE_FILE}")
}

/// True for state tensor files (`state_stepNNNNNNNN.safetensors`).
fn is_state_tensors(name: &str) -> bool {
    name.starts_with("state_step") && name.ends_with(".safetensors")
}

/// A run's folder as `tic-train` writes it: the local folder (with its `flock`), and where
/// remote, its object-store copy with the upload thread and the store's lock.
pub struct RunFolder {
    /// The local run folder (the staging folder for an object-store `--output_dir`).
    pub run: RunDir,
    /// The object-store copy (`--output_dir URL` or `--remote_sync URL`), on the writer.
    pub remote: Option<RemoteRun>,
    _lock: Option<DirLock>,
}

impl RunFolder {
    /// Opens run `exp_name` as rank `rank` sees it: locks and prepares the local folder, and
    /// on the writer locks the store's copy and downloads its state when the local folder has
    /// none.
    pub fn open(args: &TrainArgs, exp_name: &str, rank: usize) -> Result<Self> {
        let target = remote_target(args, exp_name)?;
        let root = match &target {
            Some((url, true)) => staging_dir(args, url),
            _ => args.output_dir.join(exp_name),
        };
        let run = RunDir::for_rank(&root, rank)?;
        if !run.writer {
            return Ok(Self {
                run,
                remote: None,
                _lock: None,
            });
        }
        // One writer per local folder: a second tic-train on it fails at once, naming the holder.
        let lock = DirLock::acquire(&run.root, "tic-train")?;
        let remote = match target {
            Some((url, primary)) => Some(RemoteRun::start(args, url, &run, primary)?),
            None => None,
        };
        let run = match &remote {
            Some(r) => run.with_save_hook(r.save_hook()),
            None => run,
        };
        Ok(Self {
            run,
            remote,
            _lock: Some(lock),
        })
    }

    /// Where `info.json` says the newest weights are: the store's URL for an object-store
    /// `--output_dir`, else the local file.
    pub fn latest_checkpoint(&self) -> String {
        match &self.remote {
            Some(r) if r.primary => r
                .target
                .join(CHECKPOINTS_DIR)
                .join(tic_eval::run_folder::LATEST_CHECKPOINT)
                .to_string(),
            _ => self.run.latest().display().to_string(),
        }
    }

    /// Uploads what is left and releases the store's lock.
    pub fn finish(self) -> Result<()> {
        match self.remote {
            Some(r) => r.finish(),
            None => Ok(()),
        }
    }
}

/// The store's run folder and whether it is the run folder itself (`--output_dir URL`) or a
/// copy (`--remote_sync URL`); `None` for a local run without `--remote_sync`.
fn remote_target(args: &TrainArgs, exp_name: &str) -> Result<Option<(Location, bool)>> {
    let out = Location::parse(&args.output_dir.to_string_lossy())?;
    if out.is_pipe() {
        bail!("--output_dir {out}: a pipe: URL cannot hold a run");
    }
    let sync = args
        .remote_sync
        .as_deref()
        .map(Location::parse)
        .transpose()?;
    match (out.is_remote(), sync) {
        (true, Some(s)) => bail!(
            "--remote_sync {s}: --output_dir {out} is already an object store (the run is written \
             there); pass one or the other"
        ),
        (true, None) => Ok(Some((out.join(exp_name), true))),
        (false, Some(s)) if s.is_remote() => Ok(Some((s.join(exp_name), false))),
        (false, Some(s)) => bail!(
            "--remote_sync {s}: not an object-store URL (s3://, gs://, az://); the lock needs \
             conditional writes"
        ),
        (false, None) => Ok(None),
    }
}

/// The staging folder of an object-store run: `--staging_dir`, or
/// `$TMPDIR/tic-train-staging/URL-as-a-name`.
fn staging_dir(args: &TrainArgs, url: &Location) -> PathBuf {
    args.staging_dir.clone().unwrap_or_else(|| {
        let name: String = url
            .to_string()
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        std::env::temp_dir().join("tic-train-staging").join(name)
    })
}

/// Empties a staging folder (keeping the held lock file) after checking that it is this run's,
/// and marks it.
fn prepare_staging(dir: &Path, url: &Location) -> Result<()> {
    let marker = dir.join(STAGING_MARKER);
    let mine = std::fs::read_to_string(&marker).is_ok_and(|s| s == url.to_string());
    let entries: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .collect::<std::io::Result<_>>()?;
    let others: Vec<_> = entries
        .iter()
        .filter(|e| e.file_name() != LOCK_FILE && e.file_name() != CHECKPOINTS_DIR)
        .collect();
    let checkpoints_empty =
        std::fs::read_dir(dir.join(CHECKPOINTS_DIR)).map_or(true, |mut d| d.next().is_none());
    if !mine && (!others.is_empty() || !checkpoints_empty) {
        bail!(
            "--staging_dir {}: not empty and not the staging folder of {url} (no {STAGING_MARKER} \
             naming it); empty it or pick another folder",
            dir.display()
        );
    }
    for e in entries.iter().filter(|e| e.file_name() != LOCK_FILE) {
        let p = e.path();
        if e.file_type()?.is_dir() {
            std::fs::remove_dir_all(&p)
        } else {
            std::fs::remove_file(&p)
        }
        .with_context(|| format!("emptying the staging folder: {}", p.display()))?;
    }
    std::fs::create_dir_all(dir.join(CHECKPOINTS_DIR))?;
    tic_shards::atomic::write_file(&marker, url.to_string().as_bytes())
}

/// A local copy of `path` when it names an existing object (the previous time step's model of a
/// run in an object store); `None` for local paths and missing objects (the caller reports those).
pub fn fetch_if_remote(path: Option<&Path>) -> Result<Option<LocalCopy>> {
    let Some(p) = path else { return Ok(None) };
    let loc = Location::parse(&p.to_string_lossy())?;
    if !loc.is_remote() || !loc.exists()? {
        return Ok(None);
    }
    tracing::info!("downloading {loc}");
    Ok(Some(tic_shards::storage::fetch_file(p)?))
}

/// Every file under the store folder `dir`, as paths relative to it (`a/b`), sorted.
fn list_remote(dir: &Location, prefix: &str, out: &mut Vec<String>) -> Result<()> {
    for e in dir.list()? {
        let rel = format!("{prefix}{}", e.name);
        if e.is_dir {
            list_remote(&dir.join(&e.name), &format!("{rel}/"), out)?;
        } else {
            out.push(rel);
        }
    }
    Ok(())
}

/// Every file under the local folder `dir`, relative (`a/b`), without temporary files, lock
/// files and the staging marker.
fn list_local(dir: &Path, prefix: &str, out: &mut Vec<String>) -> Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .collect::<std::io::Result<_>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with(tic_shards::atomic::TEMP_PREFIX)
            || name == LOCK_FILE
            || name == STAGING_MARKER
        {
            continue;
        }
        let rel = format!("{prefix}{name}");
        if e.file_type()?.is_dir() {
            list_local(&e.path(), &format!("{rel}/"), out)?;
        } else {
            out.push(rel);
        }
    }
    Ok(())
}

/// A file's size and modification time: what says it changed since its upload.
type Stamp = (u64, SystemTime);

fn stamp(p: &Path) -> Option<Stamp> {
    let m = std::fs::metadata(p).ok()?;
    Some((m.len(), m.modified().ok()?))
}

/// What has been uploaded, and the store's lock: the upload thread's state.
struct Syncer {
    local: PathBuf,
    target: Location,
    uploaded: HashMap<String, Stamp>,
    /// The state tensors and `train_state.json` bytes the store holds.
    state: Option<(String, Vec<u8>)>,
    lock: Option<StoreLock>,
}

impl Syncer {
    /// Downloads the store's run into the local folder (see the module doc); returns the step
    /// of the state it holds, if any.
    fn pull(&mut self) -> Result<Option<u64>> {
        let mut files = Vec::new();
        list_remote(&self.target, "", &mut files)?;
        let key = state_key();
        let state = if files.contains(&key) {
            let bytes = self.target.join(&key).read()?;
            let st: TrainState = serde_json::from_slice(&bytes).with_context(|| {
                format!("{}: not a tic-train state file", self.target.join(&key))
            })?;
            Some((st, bytes))
        } else {
            None
        };
        let tensors = state
            .as_ref()
            .map(|(st, _)| format!("{CHECKPOINTS_DIR}/{}", st.tensors));
        let wanted = |f: &String| {
            let name = f.rsplit('/').next().unwrap_or(f);
            let checkpoint =
                f.starts_with(&format!("{CHECKPOINTS_DIR}/")) && name.ends_with(".safetensors");
            name != LOCK_FILE && *f != key && (!checkpoint || Some(f) == tensors.as_ref())
        };
        let mut order: Vec<&String> = files.iter().filter(|f| wanted(f)).collect();
        // The tensors last but one, the JSON naming them last.
        order.sort_by_key(|f| Some(*f) == tensors.as_ref());
        for f in order {
            self.download(f)?;
        }
        let Some((st, bytes)) = state else {
            return Ok(None);
        };
        let dst = self.local.join(&key);
        tic_shards::atomic::write_file(&dst, &bytes)?;
        self.state = Some((st.tensors.clone(), bytes));
        Ok(Some(st.step))
    }

    fn download(&mut self, rel: &str) -> Result<()> {
        let dst = self.local.join(rel);
        download_file(&self.target.join(rel), &dst)?;
        if let Some(s) = stamp(&dst) {
            self.uploaded.insert(rel.to_string(), s);
        }
        Ok(())
    }

    /// The newest local state: `train_state.json`'s bytes, its tensor file's name and the file
    /// opened (so a newer save may replace it meanwhile).
    fn snapshot_state(&self) -> Result<Option<(Vec<u8>, String, std::fs::File)>> {
        let json = self.local.join(state_key());
        for _ in 0..100 {
            let bytes = match std::fs::read(&json) {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(e).with_context(|| format!("reading {}", json.display())),
            };
            let st: TrainState = serde_json::from_slice(&bytes)
                .with_context(|| format!("{}: not a tic-train state file", json.display()))?;
            let t = self.local.join(CHECKPOINTS_DIR).join(&st.tensors);
            match std::fs::File::open(&t) {
                Ok(f) => return Ok(Some((bytes, st.tensors, f))),
                // A newer save replaced the state between the two reads: read it again.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e).with_context(|| format!("opening {}", t.display())),
            }
        }
        bail!("{}: the state keeps changing", json.display())
    }

    /// One pass: changed files, then the newest state (tensors, JSON), then older state tensors
    /// deleted. Returns how many objects were written.
    fn pass(&mut self) -> Result<usize> {
        let state = self.snapshot_state()?;
        let mut files = Vec::new();
        list_local(&self.local, "", &mut files)?;
        let key = state_key();
        let mut n = 0;
        for rel in files
            .iter()
            .filter(|f| **f != key && !is_state_tensors(f.rsplit('/').next().unwrap_or(f)))
        {
            let p = self.local.join(rel);
            let Some(s) = stamp(&p) else { continue };
            if self.uploaded.get(rel) == Some(&s) {
                continue;
            }
            let f = match std::fs::File::open(&p) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e).with_context(|| format!("opening {}", p.display())),
            };
            self.target.join(rel).put_open(f, &p)?;
            self.uploaded.insert(rel.clone(), s);
            n += 1;
        }
        if let Some((bytes, tensors, f)) = state {
            n += self.upload_state(bytes, tensors, f)?;
        }
        Ok(n)
    }

    fn upload_state(&mut self, bytes: Vec<u8>, tensors: String, f: std::fs::File) -> Result<usize> {
        if self
            .state
            .as_ref()
            .is_some_and(|(t, b)| *t == tensors && *b == bytes)
        {
            return Ok(0);
        }
        let ck = self.target.join(CHECKPOINTS_DIR);
        let local = self.local.join(CHECKPOINTS_DIR).join(&tensors);
        if self.state.as_ref().is_none_or(|(t, _)| *t != tensors) {
            ck.join(&tensors).put_open(f, &local)?;
        }
        ck.join(TRAIN_STATE_FILE).write(&bytes)?;
        self.state = Some((tensors.clone(), bytes));
        for e in ck.list()? {
            if !e.is_dir && is_state_tensors(&e.name) && e.name != tensors {
                ck.join(&e.name).remove()?;
            }
        }
        Ok(2)
    }
}

/// What the trainer and the upload thread share.
#[derive(Default)]
struct Control {
    /// Upload now (a checkpoint was saved).
    poke: bool,
    /// Stop the thread (the run ends).
    stop: bool,
    /// Why the run must stop writing (the store's lock was lost).
    fatal: Option<String>,
}

type Shared = Arc<(Mutex<Control>, Condvar)>;

/// The object-store copy of a run, kept by a background upload thread.
pub struct RemoteRun {
    target: Location,
    primary: bool,
    control: Shared,
    syncer: Arc<Mutex<Syncer>>,
    thread: Option<JoinHandle<()>>,
}

impl RemoteRun {
    /// Locks the store's run folder, prepares the local folder (the staging folder is emptied;
    /// a local run folder is kept), downloads the store's state when the local folder has none,
    /// and starts the upload thread.
    fn start(args: &TrainArgs, target: Location, run: &RunDir, primary: bool) -> Result<Self> {
        let stale = Duration::from_secs(args.remote_lock_timeout.max(1));
        let lock = StoreLock::acquire(&target, "tic-train", stale)?;
        let locked = format!(
            "run folder {target}: locked ({}); {}",
            lock.object(),
            if primary {
                format!("written through the staging folder {}", run.root.display())
            } else {
                format!("a copy of {}", run.root.display())
            }
        );
        if primary {
            prepare_staging(&run.root, &target)?;
        }
        let mut syncer = Syncer {
            local: run.root.clone(),
            target: target.clone(),
            uploaded: HashMap::new(),
            state: None,
            lock: Some(lock),
        };
        if args.resume == "latest" && (primary || !run.state_json().exists()) {
            if let Some(step) = syncer.pull()? {
                run.log(&format!(
                    "downloaded the state at step {step} from {target}"
                ));
            }
        }
        run.log(&locked);
        let control: Shared = Arc::default();
        let syncer = Arc::new(Mutex::new(syncer));
        let every = Duration::from_secs(args.remote_sync_frequency.max(1));
        let beat = (stale / 4).max(Duration::from_secs(1));
        let thread = {
            let (control, syncer) = (control.clone(), syncer.clone());
            std::thread::Builder::new()
                .name("tic-train-upload".into())
                .spawn(move || upload_loop(&control, &syncer, every, beat))?
        };
        Ok(Self {
            target,
            primary,
            control,
            syncer,
            thread: Some(thread),
        })
    }

    /// Called after every checkpoint: fails once the lock is lost; with the store as the run
    /// folder, wakes the upload thread.
    fn save_hook(&self) -> crate::state::SaveHook {
        let (control, primary) = (self.control.clone(), self.primary);
        crate::state::SaveHook::new(move || {
            let (m, cv) = &*control;
            let mut c = m.lock().expect("upload control");
            if let Some(why) = &c.fatal {
                bail!("{why}");
            }
            if primary {
                c.poke = true;
                cv.notify_all();
            }
            Ok(())
        })
    }

    /// Stops the thread, uploads everything that changed and releases the lock.
    pub fn finish(mut self) -> Result<()> {
        self.finish_inner()
    }

    fn finish_inner(&mut self) -> Result<()> {
        let Some(thread) = self.thread.take() else {
            return Ok(());
        };
        {
            let (m, cv) = &*self.control;
            m.lock().expect("upload control").stop = true;
            cv.notify_all();
        }
        thread
            .join()
            .map_err(|_| anyhow!("the upload thread panicked"))?;
        if let Some(why) = self.control.0.lock().expect("upload control").fatal.take() {
            bail!("{why}");
        }
        let mut s = self.syncer.lock().expect("upload state");
        let n = s
            .pass()
            .with_context(|| format!("the last upload to {}", self.target))?;
        tracing::info!("{}: {n} object(s) uploaded at the end", self.target);
        match s.lock.take() {
            Some(l) => l.release(),
            None => Ok(()),
        }
    }
}

impl Drop for RemoteRun {
    fn drop(&mut self) {
        if let Err(e) = self.finish_inner() {
            tracing::error!("{}: {e:#}", self.target);
        }
    }
}

/// The upload thread: a pass every `every` (or when poked), a heartbeat every `beat`; a lost
/// lock is recorded as fatal and ends the thread, other errors are retried at the next pass.
fn upload_loop(control: &Shared, syncer: &Mutex<Syncer>, every: Duration, beat: Duration) {
    let (m, cv) = &**control;
    let (mut last_pass, mut last_beat) = (Instant::now(), Instant::now());
    loop {
        let tick = every.min(beat);
        let c = m.lock().expect("upload control");
        let (mut c, _) = cv
            .wait_timeout_while(c, tick, |c| !c.poke && !c.stop)
            .expect("upload control");
        if c.stop {
            return;
        }
        let poked = std::mem::take(&mut c.poke);
        drop(c);
        let mut s = syncer.lock().expect("upload state");
        if last_beat.elapsed() >= beat {
            last_beat = Instant::now();
            if let Some(Err(e)) = s.lock.as_mut().map(StoreLock::heartbeat) {
                m.lock().expect("upload control").fatal = Some(format!("{e:#}"));
                return;
            }
        }
        if poked || last_pass.elapsed() >= every {
            last_pass = Instant::now();
            match s.pass() {
                Ok(n) => tracing::debug!("{}: {n} object(s) uploaded", s.target),
                Err(e) => tracing::warn!("upload to {} failed (retried): {e:#}", s.target),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staging_folders_are_emptied_only_when_marked_for_the_run() {
        let d = tempfile::tempdir().unwrap();
        let url = Location::local("/store/run");
        let dir = d.path().join("stage");
        std::fs::create_dir_all(dir.join(CHECKPOINTS_DIR)).unwrap();
        std::fs::write(dir.join("mine.txt"), b"x").unwrap();
        let e = format!("{:#}", prepare_staging(&dir, &url).unwrap_err());
        assert!(e.contains("not the staging folder of /store/run"), "{e}");
        assert!(
            dir.join("mine.txt").exists(),
            "a foreign folder was emptied"
        );

        std::fs::remove_file(dir.join("mine.txt")).unwrap();
        prepare_staging(&dir, &url).unwrap(); // empty: taken and marked
        std::fs::write(dir.join("out.log"), b"old").unwrap();
        std::fs::write(dir.join(CHECKPOINTS_DIR).join("x.safetensors"), b"old").unwrap();
        std::fs::write(dir.join(LOCK_FILE), b"held").unwrap();
        prepare_staging(&dir, &url).unwrap();
        let mut left = Vec::new();
        list_local(&dir, "", &mut left).unwrap();
        assert!(left.is_empty(), "{left:?}");
        assert!(
            dir.join(LOCK_FILE).exists(),
            "the held lock file was removed"
        );
        assert!(dir.join(CHECKPOINTS_DIR).is_dir());

        let other = Location::local("/store/other");
        std::fs::write(dir.join("out.log"), b"old").unwrap();
        assert!(prepare_staging(&dir, &other).is_err());
    }

    #[cfg(feature = "remote")]
    #[test]
    fn remote_sync_needs_a_local_output_dir_and_a_store() {
        use clap::Parser;
        let args = |extra: &[&str]| {
            let mut v = vec!["tic-train", "--scale", "tiny", "--data_dir", "d"];
            v.extend_from_slice(extra);
            TrainArgs::parse_from(v)
        };
        let both = args(&["--output_dir", "s3://b/p", "--remote_sync", "s3://b/q"]);
        let e = format!("{:#}", remote_target(&both, "r").err().unwrap());
        assert!(e.contains("already an object store"), "{e}");
        let local = args(&["--output_dir", "runs", "--remote_sync", "/mnt/copy"]);
        let e = format!("{:#}", remote_target(&local, "r").err().unwrap());
        assert!(e.contains("not an object-store URL"), "{e}");
        let (url, primary) = remote_target(&args(&["--output_dir", "s3://b/p/"]), "r")
            .unwrap()
            .unwrap();
        assert_eq!((url.to_string().as_str(), primary), ("s3://b/p/r", true));
        let (url, primary) = remote_target(
            &args(&["--output_dir", "runs", "--remote_sync", "s3://b/q"]),
            "r",
        )
        .unwrap()
        .unwrap();
        assert_eq!((url.to_string().as_str(), primary), ("s3://b/q/r", false));
        assert!(remote_target(&args(&["--output_dir", "runs"]), "r")
            .unwrap()
            .is_none());
    }
}
