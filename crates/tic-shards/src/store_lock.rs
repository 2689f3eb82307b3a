//! One writer per object-store folder: a lock object created by a conditional PUT.
//!
//! Object stores have no `flock` ([`crate::lock`] is the local-folder lock), but S3 (since
//! 2024), GCS and Azure can create an object only if it does not exist (`If-None-Match: *`) and
//! replace it only if it is still the version one read (`If-Match: ETAG`). [`StoreLock`] builds
//! the lock from those two operations on `FOLDER/.tic-lock`, a JSON record of its holder:
//! `{"tool", "pid", "host", "owner", "started", "heartbeat"}` (`owner` is a random id per
//! acquisition; the times are Unix seconds of the holder's clock).
//!
//! - Acquire: create the object. If it exists, the holder is read back: a live holder refuses the
//!   second writer with a message naming the lock object and its holder; a dead one is taken
//!   over by replacing the object on the version read (of two jobs taking over at once, one
//!   wins).
//! - Dead means: on the same host, its process is gone (a `kill -9` frees the lock at once for a
//!   rerun on that machine, as `flock` does); anywhere, no heartbeat for `stale_after`.
//! - Heartbeat: the holder rewrites the record on its own version every so often
//!   ([`StoreLock::heartbeat`]); when that fails because someone took the lock over, it has lost
//!   the run and must stop writing.
//! - Release: the holder deletes the object if it still holds it.
//!
//! A request whose response was lost and was retried is recognised by the `owner` id (the
//! object already holds our record), so retries never refuse their own lock. Clocks of the
//! hosts sharing a store should agree to well within `stale_after`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::lock::{hostname, LOCK_FILE};
use crate::storage::Location;

/// The lock object's name inside a locked folder (the local lock file's name).
pub const LOCK_OBJECT: &str = LOCK_FILE;

/// The record a lock object holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockRecord {
    /// The holding program (`tic-train`, …).
    pub tool: String,
    /// Its process id.
    pub pid: u32,
    /// Its host name.
    pub host: String,
    /// A random id of this acquisition.
    pub owner: String,
    /// When it took the lock (Unix seconds).
    pub started: u64,
    /// Its last heartbeat (Unix seconds).
    pub heartbeat: u64,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A random id: the clock's nanoseconds, the pid and a counter, hashed.
fn random_owner() -> String {
    use sha2::{Digest, Sha256};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let seed = format!(
        "{nanos}-{}-{}-{}",
        std::process::id(),
        hostname(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    hex::encode(&Sha256::digest(seed.as_bytes())[..8])
}

impl LockRecord {
    /// A record for this process.
    pub fn mine(tool: &str) -> Self {
        let t = now();
        Self {
            tool: tool.to_string(),
            pid: std::process::id(),
            host: hostname(),
            owner: random_owner(),
            started: t,
            heartbeat: t,
        }
    }

    fn bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a lock record serialises")
    }

    /// Why the holder is dead and its lock may be taken over, or `None` while it is alive.
    pub fn dead_because(&self, stale_after: Duration) -> Option<String> {
        if self.host == hostname() && !process_alive(self.pid) {
            return Some(format!("its process {} on this host is gone", self.pid));
        }
        let age = now().saturating_sub(self.heartbeat);
        (age > stale_after.as_secs()).then(|| {
            format!(
                "no heartbeat for {age} s (more than {} s)",
                stale_after.as_secs()
            )
        })
    }

    /// "tool (pid P, host H, owner O, last heartbeat N s ago)".
    pub fn describe(&self) -> String {
        format!(
            "{} (pid {}, host {}, owner {}, last heartbeat {} s ago)",
            self.tool,
            self.pid,
            self.host,
            self.owner,
            now().saturating_sub(self.heartbeat)
        )
    }
}

/// True when process `pid` exists on this host (signal 0 delivered, or refused for permission).
#[cfg(unix)]
fn process_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: kill with signal 0 only checks whether the process exists.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

#[cfg(not(unix))]
fn process_alive(_: u32) -> bool {
    true
}

/// An object-store folder's lock, held until [`StoreLock::release`] (or drop).
#[derive(Debug)]
pub struct StoreLock {
    object: Location,
    record: LockRecord,
    version: String,
    released: bool,
}

impl StoreLock {
    /// Takes the lock of the object-store folder `dir` for `tool`, or fails naming the lock
    /// object and its live holder. A holder that is dead (see the module doc) is taken over,
    /// with a warning naming it.
    pub fn acquire(dir: &Location, tool: &str, stale_after: Duration) -> Result<StoreLock> {
        let object = dir.join(LOCK_OBJECT);
        let record = LockRecord::mine(tool);
        for _ in 0..10 {
            if let Some(version) = object.write_if(&record.bytes(), None)? {
                return Ok(Self::held(object, record, version));
            }
            let Some((bytes, version)) = object.read_versioned()? else {
                continue; // released meanwhile: try to create it again
            };
            let held: LockRecord = serde_json::from_slice(&bytes).with_context(|| {
                format!("{object}: not a lock record; remove it if no job writes {dir}")
            })?;
            if held.owner == record.owner {
                // Our own create, retried after its response was lost.
                return Ok(Self::held(object, record, version));
            }
            let Some(why) = held.dead_because(stale_after) else {
                bail!(
                    "{dir} is being written by another {}; wait for it to finish or stop it \
                     (lock object {object}; a holder is taken over once its process on this host \
                     is gone or its heartbeat is older than {} s)",
                    held.describe(),
                    stale_after.as_secs()
                );
            };
            if let Some(v) = object.write_if(&record.bytes(), Some(&version))? {
                tracing::warn!("{object}: took over the lock of {}: {why}", held.describe());
                return Ok(Self::held(object, record, v));
            }
        }
        bail!("could not lock {dir}: its lock object {object} keeps changing")
    }

    fn held(object: Location, record: LockRecord, version: String) -> Self {
        Self {
            object,
            record,
            version,
            released: false,
        }
    }

    /// The lock object.
    pub fn object(&self) -> &Location {
        &self.object
    }

    /// This holder's record.
    pub fn record(&self) -> &LockRecord {
        &self.record
    }

    /// Renews the heartbeat. Fails when the lock was taken over (the caller must stop writing
    /// the folder), naming the new holder.
    pub fn heartbeat(&mut self) -> Result<()> {
        let mut next = self.record.clone();
        next.heartbeat = now();
        if let Some(v) = self.object.write_if(&next.bytes(), Some(&self.version))? {
            self.version = v;
            self.record = next;
            return Ok(());
        }
        match self.object.read_versioned()? {
            Some((bytes, v)) if bytes == next.bytes() => {
                // Our own update, retried after its response was lost.
                self.version = v;
                self.record = next;
                Ok(())
            }
            Some((bytes, _)) => {
                let other = serde_json::from_slice::<LockRecord>(&bytes)
                    .map_or_else(|_| "an unreadable record".to_string(), |r| r.describe());
                bail!(
                    "lost the lock {}: taken over by {other}; this job stops writing",
                    self.object
                )
            }
            None => bail!(
                "lost the lock {}: it was removed; this job stops writing",
                self.object
            ),
        }
    }

    /// Deletes the lock object if this holder still holds it.
    pub fn release(mut self) -> Result<()> {
        self.release_inner()
    }

    fn release_inner(&mut self) -> Result<()> {
        if self.released {
            return Ok(());
        }
        self.released = true;
        if let Some((bytes, _)) = self.object.read_versioned()? {
            let still_mine = serde_json::from_slice::<LockRecord>(&bytes)
                .is_ok_and(|r| r.owner == self.record.owner);
            if still_mine {
                self.object.remove()?;
            }
        }
        Ok(())
    }
}

impl Drop for StoreLock {
    fn drop(&mut self) {
        if let Err(e) = self.release_inner() {
            tracing::warn!("releasing {}: {e:#}", self.object);
        }
    }
}
