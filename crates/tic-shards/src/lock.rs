//! One writer per output folder: an exclusive `flock` on a lock file inside the folder.
//!
//! [`DirLock::acquire`] creates `DIR/.tic-lock`, takes an exclusive, non-blocking `flock` on it
//! and writes the holder (`{"tool": …, "pid": …, "host": …}`) into it. A second writer fails at
//! once with "DIR is being written by another TOOL (pid N, host H)". The kernel releases the lock
//! when its holder exits, even by `kill -9`, so a stale lock file never blocks a rerun; a holder
//! that finishes removes the file. `flock` works on local filesystems and on NFS (where Linux
//! emulates it with POSIX byte-range locks). Object-store folders have no `flock`: tic-train's
//! runs there are locked by [`crate::store_lock`] (a conditional PUT with a heartbeat); the
//! resharder's object-store outputs are not locked (see `docs/formats.md`).

use anyhow::{bail, Context, Result};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Name of the lock file inside a locked folder.
pub const LOCK_FILE: &str = ".tic-lock";

/// An exclusive lock on a folder, held until dropped (which removes the lock file).
#[derive(Debug)]
pub struct DirLock {
    path: PathBuf,
    _file: File,
}

/// Who holds a lock, as recorded in its lock file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// The holding program (`tic-reshard`, …).
    pub tool: String,
    /// Its process id.
    pub pid: String,
    /// Its host name.
    pub host: String,
}

/// This machine's host name (`unknown` if it cannot be read).
pub fn hostname() -> String {
    #[cfg(unix)]
    {
        let mut buf = [0u8; 256];
        // SAFETY: the buffer is valid for its length; gethostname NUL-terminates on success
        // (and we stop at the buffer's end otherwise).
        let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
        if rc == 0 {
            let n = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
            return String::from_utf8_lossy(&buf[..n]).into_owned();
        }
    }
    std::env::var("HOSTNAME").unwrap_or_else(|_| "unknown".to_string())
}

/// Tries an exclusive non-blocking `flock`; `Ok(false)` when another open file holds it.
#[cfg(unix)]
fn try_lock(f: &File) -> std::io::Result<bool> {
    use std::os::unix::io::AsRawFd;
    // SAFETY: flock on a valid open descriptor.
    let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        return Ok(true);
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(false)
    } else {
        Err(e)
    }
}

/// Without `flock` (non-Unix) folders are not locked.
#[cfg(not(unix))]
fn try_lock(_: &File) -> std::io::Result<bool> {
    Ok(true)
}

/// True when `f` is still the file at `path` (not removed or replaced since it was opened).
#[cfg(unix)]
fn same_file(f: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (f.metadata(), fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

#[cfg(not(unix))]
fn same_file(_: &File, path: &Path) -> bool {
    path.exists()
}

/// Reads the holder recorded in a lock file; waits briefly when the holder has locked it but
/// not written it yet.
pub fn read_holder(path: &Path) -> Option<Holder> {
    for _ in 0..50 {
        let bytes = match fs::read(path) {
            Ok(b) => Some(b),
            // Removed: its holder has finished.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(_) => None,
        };
        if let Some(bytes) = bytes {
            if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&bytes) {
                let get = |k: &str| match &v[k] {
                    serde_json::Value::String(s) => s.clone(),
                    serde_json::Value::Null => "?".to_string(),
                    other => other.to_string(),
                };
                return Some(Holder {
                    tool: get("tool"),
                    pid: get("pid"),
                    host: get("host"),
                });
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    None
}

impl DirLock {
    /// Takes the exclusive lock of `dir` for `tool` (creating the folder), or fails at once
    /// naming the process that holds it.
    pub fn acquire(dir: &Path, tool: &str) -> Result<DirLock> {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join(LOCK_FILE);
        // A holder that finishes removes the file: if that happens between our open and our
        // lock, we hold a lock on a removed file and must try again with the new one.
        for _ in 0..100 {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .with_context(|| format!("opening lock file {}", path.display()))?;
            if !try_lock(&file).with_context(|| format!("locking {}", path.display()))? {
                let h = read_holder(&path);
                if !same_file(&file, &path) {
                    // The holder finished (and removed its file) while we looked: try again.
                    continue;
                }
                let h = h.unwrap_or(Holder {
                    tool: "process".into(),
                    pid: "?".into(),
                    host: "?".into(),
                });
                bail!(
                    "{} is being written by another {} (pid {}, host {}); wait for it to finish or stop it (lock file {})",
                    dir.display(),
                    h.tool,
                    h.pid,
                    h.host,
                    path.display()
                );
            }
            if !same_file(&file, &path) {
                continue;
            }
            let me = serde_json::json!({
                "tool": tool,
                "pid": std::process::id(),
                "host": hostname(),
            });
            file.set_len(0)
                .and_then(|_| (&file).write_all(me.to_string().as_bytes()))
                .with_context(|| format!("writing lock file {}", path.display()))?;
            return Ok(DirLock { path, _file: file });
        }
        bail!(
            "could not lock {}: its lock file keeps being replaced",
            dir.display()
        )
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for DirLock {
    fn drop(&mut self) {
        // Removed while still locked; the lock itself goes when the file is closed.
        let _ = fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_fails_naming_the_holder() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("out");
        let a = DirLock::acquire(&dir, "tic-reshard").unwrap();
        assert!(a.path().exists());
        // flock locks belong to open files: a second open in this process conflicts too.
        let e = format!("{:#}", DirLock::acquire(&dir, "tic-reshard").unwrap_err());
        assert!(
            e.contains(&format!(
                "{} is being written by another tic-reshard (pid {}, host {})",
                dir.display(),
                std::process::id(),
                hostname()
            )),
            "{e}"
        );
        drop(a);
        assert!(
            !dir.join(LOCK_FILE).exists(),
            "lock file removed on release"
        );
        let b = DirLock::acquire(&dir, "tic-reshard").unwrap();
        drop(b);
    }

    /// A writer that fails while another one finishes names a real holder, never "pid ?":
    /// a lock file removed between our open and our look means "try again".
    #[test]
    fn holder_finishing_while_we_look_is_not_reported_as_unknown() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("out");
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let churn = {
            let (dir, stop) = (dir.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    match DirLock::acquire(&dir, "tic-reshard") {
                        // Hold it a moment so that the other side is refused now and then.
                        Ok(_held) => std::thread::sleep(std::time::Duration::from_micros(50)),
                        Err(e) => assert!(!format!("{e:#}").contains("pid ?"), "{e:#}"),
                    }
                }
            })
        };
        let (mut won, mut refused) = (0, 0);
        let t0 = std::time::Instant::now();
        while (won < 200 || refused < 200) && t0.elapsed().as_secs() < 10 {
            match DirLock::acquire(&dir, "tic-reshard") {
                Ok(l) => {
                    won += 1;
                    drop(l)
                }
                Err(e) => {
                    refused += 1;
                    let e = format!("{e:#}");
                    assert!(
                        e.contains(&format!("(pid {}, host ", std::process::id())),
                        "{e}"
                    );
                }
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        churn.join().unwrap();
        assert!(won > 0 && refused > 0, "won {won}, refused {refused}");
    }

    #[test]
    fn stale_lock_file_does_not_block() {
        let d = tempfile::tempdir().unwrap();
        // A lock file left by a killed process: nobody holds the flock.
        fs::write(
            d.path().join(LOCK_FILE),
            br#"{"tool": "tic-reshard", "pid": 1, "host": "gone"}"#,
        )
        .unwrap();
        let l = DirLock::acquire(d.path(), "tic-reshard").unwrap();
        let h = read_holder(l.path()).unwrap();
        assert_eq!(h.pid, std::process::id().to_string());
    }
}
