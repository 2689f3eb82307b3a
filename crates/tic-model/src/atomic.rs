//! Atomic file writes: a temp file in the destination folder, renamed into place when complete,
//! with the usual `0644 & !umask`-style permissions (not the temp file's 0600).
//!
//! Stop-gap until `tic_shards::atomic` lands on main; callers should switch to it then.

use std::fs::File;
use std::path::Path;

use anyhow::{Context, Result};

/// Writes `path` atomically: `write` fills a temp file in the same folder, which is then
/// flushed, made world-readable and renamed over `path`. Creates the folder if needed.
pub fn write_atomic(path: &Path, write: impl FnOnce(&mut File) -> Result<()>) -> Result<()> {
    write_atomic_via_path(path, |tmp| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(tmp)?;
        write(&mut f)?;
        f.sync_all()?;
        Ok(())
    })
}

/// Like [`write_atomic`], for writers that take a path: `write` gets the temp file's path.
pub fn write_atomic_via_path(path: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .with_context(|| format!("creating a temp file in {}", dir.display()))?;
    write(tmp.path()).with_context(|| format!("writing {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))
            .with_context(|| format!("setting permissions of {}", path.display()))?;
    }
    tmp.persist(path)
        .with_context(|| format!("renaming into {}", path.display()))?;
    Ok(())
}
