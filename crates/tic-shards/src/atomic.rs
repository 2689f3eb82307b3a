//! Atomic file output: write to a temporary name in the destination folder, then rename.
//!
//! A process killed at any moment leaves either the old file, the complete new file, or a
//! temporary file whose name starts with [`TEMP_PREFIX`] (which reruns remove).

use std::fs;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// Prefix of every temporary file tic-rs creates next to its outputs.
pub const TEMP_PREFIX: &str = ".tic-tmp-";

/// A file being written under a temporary name; [`AtomicFile::commit`] renames it into place.
/// Dropping it without committing deletes the temporary file.
pub struct AtomicFile {
    target: PathBuf,
    writer: BufWriter<tempfile::NamedTempFile>,
}

impl AtomicFile {
    /// Starts writing `target`, creating its parent folders.
    pub fn create(target: impl AsRef<Path>) -> io::Result<Self> {
        let target = target.as_ref().to_path_buf();
        let dir = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        fs::create_dir_all(&dir)?;
        let mut builder = tempfile::Builder::new();
        builder.prefix(TEMP_PREFIX);
        // Outputs are ordinary files (0644 less the umask), not tempfile's private 0600.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            builder.permissions(fs::Permissions::from_mode(0o644));
        }
        let tmp = builder.tempfile_in(&dir)?;
        Ok(AtomicFile {
            target,
            writer: BufWriter::with_capacity(1 << 20, tmp),
        })
    }

    /// The final path.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Flushes, syncs and renames the file into place.
    pub fn commit(self) -> io::Result<()> {
        let tmp = self.writer.into_inner().map_err(|e| e.into_error())?;
        tmp.as_file().sync_all()?;
        tmp.persist(&self.target).map_err(|e| e.error)?;
        Ok(())
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.writer.write(buf)
    }
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.writer.write_all(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.writer.flush()
    }
}

/// Writes `bytes` to `path` atomically, creating parent folders.
pub fn write_atomic(path: impl AsRef<Path>, bytes: &[u8]) -> io::Result<()> {
    let mut f = AtomicFile::create(path)?;
    f.write_all(bytes)?;
    f.commit()
}

/// [`write_atomic`] with the path in the error (for `anyhow` callers).
pub fn write_file(path: impl AsRef<Path>, bytes: &[u8]) -> anyhow::Result<()> {
    let path = path.as_ref();
    write_atomic(path, bytes)
        .map_err(|e| anyhow::anyhow!(e).context(format!("writing {}", path.display())))
}

/// Copies `src` to `dst` atomically (streamed through a temporary file next to `dst`); the error
/// names both paths.
pub fn copy_file(src: &Path, dst: &Path) -> anyhow::Result<()> {
    let ctx = || format!("copying {} to {}", src.display(), dst.display());
    let mut from = fs::File::open(src).map_err(|e| anyhow::anyhow!(e).context(ctx()))?;
    let mut to = AtomicFile::create(dst).map_err(|e| anyhow::anyhow!(e).context(ctx()))?;
    io::copy(&mut from, &mut to)
        .and_then(|_| to.commit())
        .map_err(|e| anyhow::anyhow!(e).context(ctx()))
}

/// Makes the files written in `dir` durable before the folder is renamed into place (a folder
/// filled under a temporary name, as [`AtomicFile`] makes a file durable before its rename):
/// one `syncfs` of the folder's filesystem on Linux, else an fsync of each file in it.
pub fn sync_folder(dir: &Path) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::io::AsRawFd;
        let d = fs::File::open(dir)?;
        // SAFETY: syncfs on a valid open descriptor.
        if unsafe { libc::syncfs(d.as_raw_fd()) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
    #[cfg(not(target_os = "linux"))]
    {
        for e in fs::read_dir(dir)? {
            let e = e?;
            if e.file_type()?.is_file() {
                fs::File::open(e.path())?.sync_all()?;
            }
        }
        Ok(())
    }
}

/// Removes temporary files (and temporary folders) left in `dir` by an interrupted run;
/// returns how many.
pub fn remove_stale_temps(dir: &Path) -> io::Result<usize> {
    let mut n = 0;
    if !dir.is_dir() {
        return Ok(0);
    }
    for e in fs::read_dir(dir)? {
        let e = e?;
        if e.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
            if e.file_type()?.is_dir() {
                fs::remove_dir_all(e.path())?;
            } else {
                fs::remove_file(e.path())?;
            }
            n += 1;
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sync_folder_syncs_a_folder_and_names_no_missing_one() {
        let d = tempfile::tempdir().unwrap();
        let n = 2000;
        for i in 0..n {
            fs::write(d.path().join(format!("{i}.jpg")), vec![i as u8; 16 << 10]).unwrap();
        }
        let t0 = std::time::Instant::now();
        sync_folder(d.path()).unwrap();
        eprintln!(
            "sync_folder: {n} files of 16 KiB in {:.3} s",
            t0.elapsed().as_secs_f64()
        );
        assert!(sync_folder(&d.path().join("missing")).is_err());
    }

    #[test]
    fn commit_and_drop() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("sub/a.txt");
        write_atomic(&p, b"hello").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"hello");
        {
            let mut f = AtomicFile::create(&p).unwrap();
            f.write_all(b"partial").unwrap();
            // dropped without commit
        }
        assert_eq!(fs::read(&p).unwrap(), b"hello");
        assert_eq!(fs::read_dir(p.parent().unwrap()).unwrap().count(), 1);
    }

    #[test]
    fn copy_file_is_whole_and_names_paths() {
        let d = tempfile::tempdir().unwrap();
        let (a, b) = (d.path().join("a"), d.path().join("out/b"));
        fs::write(&a, vec![7u8; 3 << 20]).unwrap();
        copy_file(&a, &b).unwrap();
        assert_eq!(fs::read(&b).unwrap(), vec![7u8; 3 << 20]);
        let err = copy_file(&d.path().join("missing"), &b).unwrap_err();
        assert!(format!("{err:#}").contains("missing"), "{err:#}");
        assert_eq!(fs::read(&b).unwrap().len(), 3 << 20, "old output kept");
    }

    #[cfg(unix)]
    #[test]
    fn outputs_are_world_readable() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a");
        write_atomic(&p, b"x").unwrap();
        let mode = fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode & 0o044, 0o044, "mode {mode:o}");
    }

    #[test]
    fn stale_temps_removed() {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join(format!("{TEMP_PREFIX}x")), b"1").unwrap();
        fs::write(d.path().join("keep"), b"1").unwrap();
        assert_eq!(remove_stale_temps(d.path()).unwrap(), 1);
        assert!(d.path().join("keep").exists());
    }
}
