//! Local paths and object-store URLs behind one small synchronous API.
//!
//! `s3://`, `gs://`, `az://`/`azure://`/`abfs://` and `http(s)://` (reads) go through the
//! `object_store` crate, configured from the usual environment variables (`AWS_ENDPOINT`,
//! `AWS_ACCESS_KEY_ID`, `GOOGLE_SERVICE_ACCOUNT`, …) with retries and exponential backoff.
//! `pipe:CMD` is a shard streamed from a command's standard output ([`crate::pipe`]); it can
//! only be read. Everything else is a local path (`file://` prefixes are stripped).
//!
//! Object-store support is the `remote` cargo feature (on by default). Without it (`make demo`
//! builds that way to save the HTTP/TLS stack's compile time) a URL is an error that says so.

use anyhow::{bail, Context, Result};
use std::fmt;
use std::path::{Path, PathBuf};

/// A file or folder, local or in an object store.
#[derive(Clone)]
pub enum Location {
    /// A local filesystem path.
    Local(PathBuf),
    /// An object-store key under a bucket or base URL.
    Remote(Remote),
    /// A `pipe:CMD` URL (the command, without `pipe:`): read-only, its output is the file.
    Pipe(String),
}

/// An object-store location: the store, its base URL (`s3://bucket`) and the key.
#[derive(Clone)]
pub struct Remote {
    store: remote::Store,
    base: String,
    key: String,
}

/// One child of a listed folder.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Entry {
    /// The child's name (last path component).
    pub name: String,
    /// True for folders (common prefixes in object stores).
    pub is_dir: bool,
}

#[cfg(feature = "remote")]
pub use remote::retry_config;

/// Object-store operations (feature `remote`).
#[cfg(feature = "remote")]
mod remote {
    use super::{Entry, Remote};
    use anyhow::{anyhow, bail, Context, Result};
    use futures::StreamExt;
    use object_store::path::Path as ObjPath;
    use object_store::{
        BackoffConfig, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, RetryConfig,
        UpdateVersion,
    };
    use std::collections::HashMap;
    use std::io::Read;
    use std::path::Path;
    use std::sync::{Arc, Mutex, OnceLock};
    use std::time::Duration;
    use tokio::io::AsyncWriteExt;

    /// A configured store.
    pub type Store = Arc<dyn ObjectStore>;

    fn runtime() -> &'static tokio::runtime::Runtime {
        static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
        RT.get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("tokio runtime")
        })
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        runtime().block_on(f)
    }

    /// Retry policy for every object-store request: exponential backoff from 100 ms to 15 s,
    /// at most 10 retries within 5 minutes.
    pub fn retry_config() -> RetryConfig {
        RetryConfig {
            backoff: BackoffConfig {
                init_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_secs(15),
                base: 2.0,
            },
            max_retries: 10,
            retry_timeout: Duration::from_secs(300),
        }
    }

    pub fn build_store(scheme: &str, base: &str) -> Result<Store> {
        static CACHE: OnceLock<Mutex<HashMap<String, Store>>> = OnceLock::new();
        let cache = CACHE.get_or_init(Default::default);
        if let Some(s) = cache.lock().unwrap().get(base) {
            return Ok(s.clone());
        }
        let store: Store = match scheme {
            "s3" | "s3a" => Arc::new(
                object_store::aws::AmazonS3Builder::from_env()
                    .with_url(base)
                    .with_retry(retry_config())
                    .build()
                    .with_context(|| format!("configuring S3 access for {base}"))?,
            ),
            "gs" => Arc::new(
                object_store::gcp::GoogleCloudStorageBuilder::from_env()
                    .with_url(base)
                    .with_retry(retry_config())
                    .build()
                    .with_context(|| format!("configuring GCS access for {base}"))?,
            ),
            "az" | "azure" | "abfs" | "abfss" => Arc::new(
                object_store::azure::MicrosoftAzureBuilder::from_env()
                    .with_url(base)
                    .with_retry(retry_config())
                    .build()
                    .with_context(|| format!("configuring Azure access for {base}"))?,
            ),
            "http" | "https" => Arc::new(
                object_store::http::HttpBuilder::new()
                    .with_url(base)
                    .with_retry(retry_config())
                    .build()
                    .with_context(|| format!("configuring HTTP access for {base}"))?,
            ),
            other => bail!("unsupported URL scheme {other:?} in {base}"),
        };
        cache
            .lock()
            .unwrap()
            .insert(base.to_string(), store.clone());
        Ok(store)
    }

    fn obj_path(r: &Remote) -> ObjPath {
        ObjPath::from(r.key.as_str())
    }

    pub fn exists(r: &Remote) -> Result<bool> {
        match block_on(r.store.head(&obj_path(r))) {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(anyhow!(e)),
        }
    }

    pub fn size(r: &Remote) -> Result<Option<u64>> {
        match block_on(r.store.head(&obj_path(r))) {
            Ok(m) => Ok(Some(m.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(anyhow!(e)),
        }
    }

    pub fn read(r: &Remote) -> Result<Vec<u8>> {
        Ok(block_on(async {
            let got = r.store.get(&obj_path(r)).await?;
            Ok::<_, object_store::Error>(got.bytes().await?.to_vec())
        })?)
    }

    pub fn write(r: &Remote, bytes: &[u8]) -> Result<()> {
        block_on(r.store.put(&obj_path(r), PutPayload::from(bytes.to_vec())))?;
        Ok(())
    }

    pub fn put_file(r: &Remote, local: &Path) -> Result<()> {
        let f =
            std::fs::File::open(local).with_context(|| format!("opening {}", local.display()))?;
        put_open(r, f)
    }

    pub fn put_open(r: &Remote, mut f: std::fs::File) -> Result<()> {
        block_on(async {
            let mut w = object_store::buffered::BufWriter::new(r.store.clone(), obj_path(r));
            let mut buf = vec![0u8; 8 << 20];
            loop {
                let n = f.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                w.write_all(&buf[..n]).await?;
            }
            w.shutdown().await?;
            Ok::<_, std::io::Error>(())
        })?;
        Ok(())
    }

    pub fn copy_to(r: &Remote, out: &mut dyn std::io::Write) -> Result<u64> {
        block_on(async {
            let got = r.store.get(&obj_path(r)).await?;
            let mut stream = got.into_stream();
            let mut n = 0u64;
            while let Some(chunk) = stream.next().await {
                let chunk = chunk?;
                out.write_all(&chunk)?;
                n += chunk.len() as u64;
            }
            Ok::<_, anyhow::Error>(n)
        })
    }

    pub fn fetch_to(r: &Remote, tmp: &tempfile::NamedTempFile) -> Result<()> {
        let mut file = tokio::fs::File::from_std(tmp.reopen()?);
        block_on(async {
            let got = r.store.get(&obj_path(r)).await?;
            let mut stream = got.into_stream();
            while let Some(chunk) = stream.next().await {
                file.write_all(&chunk?).await?;
            }
            file.flush().await?;
            Ok::<_, anyhow::Error>(())
        })
    }

    pub fn list(r: &Remote, out: &mut Vec<Entry>) -> Result<()> {
        let prefix = (!r.key.is_empty()).then(|| obj_path(r));
        let res = block_on(r.store.list_with_delimiter(prefix.as_ref()))?;
        for d in res.common_prefixes {
            out.push(Entry {
                name: d.filename().unwrap_or("").to_string(),
                is_dir: true,
            });
        }
        for o in res.objects {
            out.push(Entry {
                name: o.location.filename().unwrap_or("").to_string(),
                is_dir: false,
            });
        }
        Ok(())
    }

    pub fn remove(r: &Remote) -> Result<()> {
        match block_on(r.store.delete(&obj_path(r))) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(anyhow!(e)),
        }
    }

    pub fn rename(a: &Remote, b: &Remote) -> Result<()> {
        Ok(block_on(a.store.rename(&obj_path(a), &obj_path(b)))?)
    }

    pub fn read_versioned(r: &Remote) -> Result<Option<(Vec<u8>, String)>> {
        let got = block_on(async {
            let got = r.store.get(&obj_path(r)).await?;
            let tag = got.meta.e_tag.clone();
            Ok::<_, object_store::Error>((got.bytes().await?.to_vec(), tag))
        });
        match got {
            Ok((bytes, Some(tag))) => Ok(Some((bytes, tag))),
            Ok((_, None)) => bail!("the store returned no ETag (conditional writes need one)"),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(anyhow!(e)),
        }
    }

    /// A conditional PUT: `Ok(Some(etag))` when written, `Ok(None)` when the condition failed.
    pub fn put_conditional(
        r: &Remote,
        bytes: &[u8],
        expect: Option<&str>,
    ) -> Result<Option<String>> {
        let mode = match expect {
            None => PutMode::Create,
            Some(tag) => PutMode::Update(UpdateVersion {
                e_tag: Some(tag.to_string()),
                version: None,
            }),
        };
        let opts = PutOptions {
            mode,
            ..PutOptions::default()
        };
        let put = block_on(
            r.store
                .put_opts(&obj_path(r), PutPayload::from(bytes.to_vec()), opts),
        );
        match put {
            Ok(res) => Ok(Some(res.e_tag.context(
                "the store returned no ETag (conditional writes need one)",
            )?)),
            Err(object_store::Error::AlreadyExists { .. })
            | Err(object_store::Error::Precondition { .. }) => Ok(None),
            Err(e @ object_store::Error::NotImplemented { .. }) => Err(anyhow!(e).context(
                "this store does not support conditional writes (S3: AWS_CONDITIONAL_PUT=etag, the default)",
            )),
            Err(e) => Err(anyhow!(e)),
        }
    }
}

/// Built without the `remote` feature: no store can be configured, so no [`Remote`] exists
/// and the operations below are unreachable.
#[cfg(not(feature = "remote"))]
mod remote {
    use super::{Entry, Remote};
    use anyhow::{bail, Result};
    use std::path::Path;

    /// No store can be built in this build (`build_store` always fails).
    #[derive(Clone)]
    pub struct Store {
        _never: (),
    }

    pub fn build_store(scheme: &str, base: &str) -> Result<Store> {
        bail!(
            "{base}: {scheme}:// URLs need object-store support, which this build leaves out \
             (built without the `remote` cargo feature, as `make demo` does); \
             rebuild with default features (`make build`)"
        )
    }

    fn none(_: &Remote) -> ! {
        unreachable!("object stores are not built in (no `remote` feature)")
    }

    pub fn exists(r: &Remote) -> Result<bool> {
        none(r)
    }
    pub fn size(r: &Remote) -> Result<Option<u64>> {
        none(r)
    }
    pub fn read(r: &Remote) -> Result<Vec<u8>> {
        none(r)
    }
    pub fn write(r: &Remote, _: &[u8]) -> Result<()> {
        none(r)
    }
    pub fn put_file(r: &Remote, _: &Path) -> Result<()> {
        none(r)
    }
    pub fn copy_to(r: &Remote, _: &mut dyn std::io::Write) -> Result<u64> {
        none(r)
    }
    pub fn put_open(r: &Remote, _: std::fs::File) -> Result<()> {
        none(r)
    }
    pub fn fetch_to(r: &Remote, _: &tempfile::NamedTempFile) -> Result<()> {
        none(r)
    }
    pub fn list(r: &Remote, _: &mut Vec<Entry>) -> Result<()> {
        none(r)
    }
    pub fn remove(r: &Remote) -> Result<()> {
        none(r)
    }
    pub fn rename(a: &Remote, _: &Remote) -> Result<()> {
        none(a)
    }
    pub fn read_versioned(r: &Remote) -> Result<Option<(Vec<u8>, String)>> {
        none(r)
    }
    pub fn put_conditional(r: &Remote, _: &[u8], _: Option<&str>) -> Result<Option<String>> {
        none(r)
    }
}

impl Location {
    /// Parses a local path or a URL.
    pub fn parse(s: &str) -> Result<Self> {
        if let Some(url) = crate::pipe::PipeUrl::parse(s) {
            return Ok(url.into());
        }
        let s = s.trim_end_matches('/');
        if let Some(rest) = s.strip_prefix("file://") {
            return Ok(Location::Local(PathBuf::from(rest)));
        }
        let Some((scheme, rest)) = s.split_once("://") else {
            return Ok(Location::Local(PathBuf::from(if s.is_empty() {
                "/"
            } else {
                s
            })));
        };
        if scheme.is_empty() || !scheme.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Ok(Location::Local(PathBuf::from(s)));
        }
        let (host, key) = rest.split_once('/').unwrap_or((rest, ""));
        if host.is_empty() {
            bail!("URL {s:?} has no bucket or host");
        }
        let base = format!("{scheme}://{host}");
        let store = remote::build_store(scheme, &base)?;
        Ok(Location::Remote(Remote {
            store,
            base,
            key: key.trim_matches('/').to_string(),
        }))
    }

    /// A local location.
    pub fn local(p: impl Into<PathBuf>) -> Self {
        Location::Local(p.into())
    }

    /// True for object-store locations.
    pub fn is_remote(&self) -> bool {
        matches!(self, Location::Remote(_))
    }

    /// True for `pipe:` URLs.
    pub fn is_pipe(&self) -> bool {
        matches!(self, Location::Pipe(_))
    }

    /// The local path, if local.
    pub fn as_local(&self) -> Option<&Path> {
        match self {
            Location::Local(p) => Some(p),
            Location::Remote(_) | Location::Pipe(_) => None,
        }
    }

    /// Fails for a `pipe:` URL: `what` (e.g. "writing") needs a file or an object.
    fn not_pipe(&self, what: &str) -> Result<()> {
        if self.is_pipe() {
            bail!("{self}: a pipe: URL can only be read as a shard, not used for {what}");
        }
        Ok(())
    }

    /// A child location. A `pipe:` URL has no children: the result names a local path that
    /// does not exist (so looking for `sizes.json` next to a pipe finds nothing).
    pub fn join(&self, name: &str) -> Location {
        match self {
            Location::Pipe(cmd) => Location::Local(PathBuf::from(format!(
                "{}{cmd}/{}",
                crate::pipe::PREFIX,
                name.trim_matches('/')
            ))),
            Location::Local(p) => Location::Local(p.join(name)),
            Location::Remote(r) => Location::Remote(Remote {
                store: r.store.clone(),
                base: r.base.clone(),
                key: if r.key.is_empty() {
                    name.trim_matches('/').to_string()
                } else {
                    format!("{}/{}", r.key, name.trim_matches('/'))
                },
            }),
        }
    }

    /// The last path component.
    pub fn name(&self) -> String {
        match self {
            Location::Local(p) => p
                .file_name()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default(),
            Location::Remote(r) => r.key.rsplit('/').next().unwrap_or("").to_string(),
            Location::Pipe(cmd) => crate::pipe::shard_name(cmd),
        }
    }

    /// True when a file exists here.
    pub fn exists(&self) -> Result<bool> {
        match self {
            Location::Local(p) => Ok(p.exists()),
            Location::Remote(r) => remote::exists(r).with_context(|| format!("checking {self}")),
            Location::Pipe(_) => Ok(true),
        }
    }

    /// The file's size in bytes, or `None` when it does not exist (or is not a file, or is a
    /// `pipe:` URL, whose size is known only once it has run).
    pub fn size(&self) -> Result<Option<u64>> {
        match self {
            Location::Local(p) => match std::fs::metadata(p) {
                Ok(m) if m.is_file() => Ok(Some(m.len())),
                Ok(_) => Ok(None),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e).with_context(|| format!("reading the size of {}", p.display())),
            },
            Location::Remote(r) => remote::size(r).with_context(|| format!("checking {self}")),
            Location::Pipe(_) => Ok(None),
        }
    }

    /// Reads the whole file (a `pipe:` URL: runs the command; its output must be one complete
    /// tar stream).
    pub fn read(&self) -> Result<Vec<u8>> {
        match self {
            Location::Pipe(_) => crate::pipe::read(&self.to_string()),
            Location::Local(p) => {
                std::fs::read(p).with_context(|| format!("reading {}", p.display()))
            }
            Location::Remote(r) => remote::read(r).with_context(|| format!("reading {self}")),
        }
    }

    /// Reads the whole file as UTF-8 text.
    pub fn read_to_string(&self) -> Result<String> {
        String::from_utf8(self.read()?).with_context(|| format!("{self} is not UTF-8 text"))
    }

    /// Writes the whole file atomically (temp + rename locally; a single PUT remotely).
    pub fn write(&self, bytes: &[u8]) -> Result<()> {
        self.not_pipe("writing")?;
        match self {
            Location::Local(p) => crate::atomic::write_atomic(p, bytes)
                .with_context(|| format!("writing {}", p.display())),
            Location::Remote(r) => {
                remote::write(r, bytes).with_context(|| format!("writing {self}"))
            }
            Location::Pipe(_) => unreachable!("refused above"),
        }
    }

    /// Uploads (remote) or moves (local) a finished local file to this location.
    pub fn put_file(&self, local: &Path) -> Result<()> {
        self.not_pipe("writing")?;
        match self {
            Location::Local(p) => {
                if let Some(d) = p.parent() {
                    std::fs::create_dir_all(d)?;
                }
                std::fs::rename(local, p)
                    .with_context(|| format!("moving {} to {}", local.display(), p.display()))
            }
            Location::Remote(r) => remote::put_file(r, local)
                .with_context(|| format!("uploading {} to {self}", local.display())),
            Location::Pipe(_) => unreachable!("refused above"),
        }
    }

    /// Uploads (remote) or copies atomically (local) the contents of an open file: what the
    /// file held when opened, even if its name is replaced or removed meanwhile. `what` names
    /// it in errors.
    pub fn put_open(&self, file: std::fs::File, what: &Path) -> Result<()> {
        self.not_pipe("writing")?;
        match self {
            Location::Local(p) => {
                let copy = || -> std::io::Result<()> {
                    let mut out = crate::atomic::AtomicFile::create(p)?;
                    std::io::copy(&mut &file, &mut out)?;
                    out.commit()
                };
                copy().with_context(|| format!("copying {} to {}", what.display(), p.display()))
            }
            Location::Remote(r) => remote::put_open(r, file)
                .with_context(|| format!("uploading {} to {self}", what.display())),
            Location::Pipe(_) => unreachable!("refused above"),
        }
    }

    /// Makes the file available as a local path: local files as they are, remote files
    /// downloaded (streamed) to a temporary file that lives as long as the returned handle, a
    /// `pipe:` URL's output likewise (checked to be one complete tar stream).
    pub fn fetch(&self) -> Result<LocalCopy> {
        match self {
            Location::Pipe(_) => {
                let tmp = tempfile::NamedTempFile::new()?;
                crate::pipe::fetch_into(&self.to_string(), &mut tmp.reopen()?)?;
                Ok(LocalCopy {
                    path: tmp.path().to_path_buf(),
                    _tmp: Some(TempHold::File(tmp)),
                })
            }
            Location::Local(p) => Ok(LocalCopy {
                path: p.clone(),
                _tmp: None,
            }),
            Location::Remote(r) => {
                let tmp = tempfile::NamedTempFile::new()?;
                remote::fetch_to(r, &tmp).with_context(|| format!("downloading {self}"))?;
                Ok(LocalCopy {
                    path: tmp.path().to_path_buf(),
                    _tmp: Some(TempHold::File(tmp)),
                })
            }
        }
    }

    /// Streams the file's bytes into `out` (a local file read, an object downloaded, a `pipe:`
    /// command's output checked to be one complete tar stream when it is read back); returns
    /// the bytes written. For copies that must be written under a budget of their own.
    pub fn copy_to(&self, out: &mut dyn std::io::Write) -> Result<u64> {
        match self {
            Location::Local(p) => {
                let mut f =
                    std::fs::File::open(p).with_context(|| format!("opening {}", p.display()))?;
                std::io::copy(&mut f, out).with_context(|| format!("copying {}", p.display()))
            }
            Location::Remote(r) => {
                remote::copy_to(r, out).with_context(|| format!("downloading {self}"))
            }
            Location::Pipe(_) => crate::pipe::run_into(&self.to_string(), out),
        }
    }

    /// Lists the direct children (files and folders), sorted by name.
    pub fn list(&self) -> Result<Vec<Entry>> {
        let mut out = Vec::new();
        match self {
            Location::Local(p) => {
                for e in std::fs::read_dir(p).with_context(|| format!("listing {}", p.display()))? {
                    let e = e?;
                    out.push(Entry {
                        name: e.file_name().to_string_lossy().into_owned(),
                        is_dir: e.path().is_dir(),
                    });
                }
            }
            Location::Remote(r) => {
                remote::list(r, &mut out).with_context(|| format!("listing {self}"))?
            }
            Location::Pipe(_) => self.not_pipe("listing")?,
        }
        out.sort();
        Ok(out)
    }

    /// Deletes the file if it exists.
    pub fn remove(&self) -> Result<()> {
        match self {
            Location::Local(p) => match std::fs::remove_file(p) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    Err(e).with_context(|| format!("removing {}", p.display()))
                }
                _ => Ok(()),
            },
            Location::Remote(r) => remote::remove(r).with_context(|| format!("removing {self}")),
            Location::Pipe(_) => self.not_pipe("removing"),
        }
    }

    /// Renames (moves) this file to `dst`, which must be in the same store.
    pub fn rename_to(&self, dst: &Location) -> Result<()> {
        match (self, dst) {
            (Location::Local(a), Location::Local(b)) => std::fs::rename(a, b)
                .with_context(|| format!("renaming {} to {}", a.display(), b.display())),
            (Location::Remote(a), Location::Remote(b)) if a.base == b.base => {
                remote::rename(a, b).with_context(|| format!("renaming {self} to {dst}"))
            }
            _ => bail!("cannot rename {self} to {dst}: different stores"),
        }
    }

    /// Reads an object with its version (ETag), or `None` when it does not exist. Object
    /// stores only: the versions are what [`Location::write_if`] compares.
    pub fn read_versioned(&self) -> Result<Option<(Vec<u8>, String)>> {
        match self {
            Location::Remote(r) => {
                remote::read_versioned(r).with_context(|| format!("reading {self}"))
            }
            _ => bail!("{self}: versioned reads are for object-store URLs"),
        }
    }

    /// A conditional write (object stores only): with `expect` `None` the object is created only
    /// if it does not exist (S3 `If-None-Match: *`); with `Some(etag)` it is replaced only if
    /// its version is still `etag` (`If-Match`). Returns the new version, or `None` when the
    /// condition failed (another writer got there first).
    pub fn write_if(&self, bytes: &[u8], expect: Option<&str>) -> Result<Option<String>> {
        match self {
            Location::Remote(r) => remote::put_conditional(r, bytes, expect)
                .with_context(|| format!("conditionally writing {self}")),
            _ => bail!("{self}: conditional writes are for object-store URLs"),
        }
    }

    /// Creates the folder (local only; object stores have no folders).
    pub fn create_dir_all(&self) -> Result<()> {
        self.not_pipe("a folder")?;
        if let Location::Local(p) = self {
            std::fs::create_dir_all(p).with_context(|| format!("creating {}", p.display()))?;
        }
        Ok(())
    }
}

impl From<crate::pipe::PipeUrl> for Location {
    fn from(url: crate::pipe::PipeUrl) -> Self {
        Location::Pipe(url.into_command())
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Local(p) => write!(f, "{}", p.display()),
            Location::Remote(r) if r.key.is_empty() => write!(f, "{}", r.base),
            Location::Remote(r) => write!(f, "{}/{}", r.base, r.key),
            Location::Pipe(cmd) => write!(f, "{}{cmd}", crate::pipe::PREFIX),
        }
    }
}

impl fmt::Debug for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Location({self})")
    }
}

/// A local path to a file's bytes, possibly a temporary download (deleted on drop).
pub struct LocalCopy {
    path: PathBuf,
    _tmp: Option<TempHold>,
}

/// What keeps a temporary download alive.
enum TempHold {
    File(#[allow(dead_code)] tempfile::NamedTempFile),
    Dir(#[allow(dead_code)] tempfile::TempDir),
}

impl LocalCopy {
    /// The local path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Downloads (a local `src`: copies) one file to `dst`, streamed into a temporary file next to
/// `dst` and renamed into place.
pub fn download_file(src: &Location, dst: &Path) -> Result<()> {
    match src {
        Location::Local(p) => crate::atomic::copy_file(p, dst),
        Location::Remote(_) | Location::Pipe(_) => {
            let dir = match dst.parent() {
                Some(d) if !d.as_os_str().is_empty() => d,
                _ => Path::new("."),
            };
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            let tmp = tempfile::Builder::new()
                .prefix(crate::atomic::TEMP_PREFIX)
                .tempfile_in(dir)?;
            match src {
                Location::Remote(r) => {
                    remote::fetch_to(r, &tmp).with_context(|| format!("downloading {src}"))?
                }
                Location::Pipe(_) => crate::pipe::fetch_into(&src.to_string(), &mut tmp.reopen()?)?,
                Location::Local(_) => unreachable!("handled above"),
            }
            tmp.persist(dst).map_err(|e| e.error)?;
            Ok(())
        }
    }
}

/// A temporary folder for downloaded object-store inputs (deleted on drop).
fn download_dir() -> Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix("tic-rs-download-")
        .tempdir()
        .context("creating a folder for an object-store input")
}

/// Downloads every object under `src` (recursively) into the local folder `dst`.
pub fn download_tree(src: &Location, dst: &Path) -> Result<()> {
    std::fs::create_dir_all(dst).with_context(|| format!("creating {}", dst.display()))?;
    for e in src.list()? {
        if e.is_dir {
            download_tree(&src.join(&e.name), &dst.join(&e.name))?;
        } else {
            download_file(&src.join(&e.name), &dst.join(&e.name))?;
        }
    }
    Ok(())
}

/// A folder a tool writes into, for tools that write with local file APIs (generators, CSV
/// splitters, `tic-make-tars`, `tic-eval`): a local path is used as it is; for an object-store
/// URL the tool writes into a local staging folder and [`OutputDir::finish`] uploads every file
/// under it, so objects appear only once the tool's outputs are complete.
pub struct OutputDir {
    target: Option<Location>,
    local: PathBuf,
    _tmp: Option<tempfile::TempDir>,
}

impl OutputDir {
    /// The folder named by `spec` (a path, or a URL held in a path).
    pub fn new(spec: &Path) -> Result<Self> {
        let s = spec.to_string_lossy();
        match Location::parse(&s)? {
            Location::Local(p) => Ok(Self {
                target: None,
                local: p,
                _tmp: None,
            }),
            remote => {
                let tmp = tempfile::Builder::new()
                    .prefix("tic-rs-upload-")
                    .tempdir()
                    .context("creating a staging folder for an object-store output")?;
                Ok(Self {
                    target: Some(remote),
                    local: tmp.path().to_path_buf(),
                    _tmp: Some(tmp),
                })
            }
        }
    }

    /// Like [`OutputDir::new`], but a URL's existing objects are downloaded into the staging
    /// folder first, for tools that resume from their previous output (`tic-eval`).
    pub fn resume(spec: &Path) -> Result<Self> {
        let out = Self::new(spec)?;
        if let Some(target) = &out.target {
            download_tree(target, &out.local)
                .with_context(|| format!("downloading the previous output {target}"))?;
        }
        Ok(out)
    }

    /// Where the tool writes.
    pub fn path(&self) -> &Path {
        &self.local
    }

    /// Uploads the staged files (object store); returns how many. Nothing to do locally.
    pub fn finish(self) -> Result<usize> {
        self.sync()
    }

    /// Uploads the staged files so far (again: each upload replaces the object), for tools
    /// that want their partial output visible, e.g. after each evaluated task.
    pub fn sync(&self) -> Result<usize> {
        match &self.target {
            Some(target) => upload_tree(&self.local, target),
            None => Ok(0),
        }
    }
}

/// Uploads every file under the local folder `src` (recursively, in name order) to `dst`;
/// returns how many. (A local `dst` receives them by rename.)
pub fn upload_tree(src: &Path, dst: &Location) -> Result<usize> {
    let mut entries: Vec<_> = std::fs::read_dir(src)
        .with_context(|| format!("listing {}", src.display()))?
        .collect::<std::io::Result<_>>()?;
    entries.sort_by_key(|e| e.file_name());
    let mut n = 0;
    for e in entries {
        let name = e.file_name().to_string_lossy().into_owned();
        if e.file_type()?.is_dir() {
            n += upload_tree(&e.path(), &dst.join(&name))?;
        } else {
            dst.join(&name).put_file(&e.path())?;
            n += 1;
        }
    }
    Ok(n)
}

/// A local view of an input folder: a local path as it is; an object-store prefix downloaded
/// (recursively) to a temporary folder that lives as long as the handle.
pub struct InputDir {
    local: PathBuf,
    _tmp: Option<tempfile::TempDir>,
}

impl InputDir {
    /// The folder named by `spec` (a path, or a URL held in a path).
    pub fn fetch(spec: &Path) -> Result<Self> {
        let s = spec.to_string_lossy();
        let loc = Location::parse(&s)?;
        if let Location::Local(p) = loc {
            return Ok(Self {
                local: p,
                _tmp: None,
            });
        }
        let tmp = download_dir()?;
        download_tree(&loc, tmp.path()).with_context(|| format!("downloading {loc}"))?;
        Ok(Self {
            local: tmp.path().to_path_buf(),
            _tmp: Some(tmp),
        })
    }

    /// The local folder.
    pub fn path(&self) -> &Path {
        &self.local
    }
}

/// The file argument that stands for standard input (or output), as in `tic-reshard -s -`.
pub const STDIO: &str = "-";

/// Reads all of standard input for the argument `what` (e.g. `"-s -"`). A terminal on standard
/// input is refused (the data must be piped or redirected in).
pub fn read_stdin(what: &str) -> Result<Vec<u8>> {
    use std::io::{IsTerminal, Read};
    let mut stdin = std::io::stdin().lock();
    if stdin.is_terminal() {
        bail!("{what}: standard input is a terminal; pipe or redirect the data in");
    }
    let mut v = Vec::new();
    stdin
        .read_to_end(&mut v)
        .with_context(|| format!("{what}: reading standard input"))?;
    Ok(v)
}

/// True when the file argument `spec` is [`STDIO`] (`-`).
pub fn is_stdio(spec: impl AsRef<std::ffi::OsStr>) -> bool {
    spec.as_ref() == STDIO
}

/// Writes a tool's single output file `spec`: `-` writes `bytes` to standard output (logs go to
/// standard error, so the data is never mixed with them); otherwise the file (a local path or
/// an object-store URL) is written atomically.
pub fn write_output(spec: &str, bytes: &[u8]) -> Result<()> {
    if is_stdio(spec) {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        out.write_all(bytes)
            .and_then(|()| out.flush())
            .context("writing to standard output")?;
        return Ok(());
    }
    Location::parse(spec)?.write(bytes)
}

/// A local copy of the input file named by `spec` (a path, or a URL held in a path). A download
/// keeps the object's file name (tools derive output names from it), in a temporary folder.
pub fn fetch_file(spec: &Path) -> Result<LocalCopy> {
    if spec.as_os_str() == STDIO {
        bail!("{}: standard input is not accepted here", spec.display());
    }
    let loc = Location::parse(&spec.to_string_lossy())?;
    if loc.is_pipe() {
        bail!(
            "{loc}: pipe: URLs stand for tar shards; pipe a single file into `-` instead \
             (e.g. `CMD | tic-reshard -s - …`)"
        );
    }
    if !loc.is_remote() {
        return loc.fetch();
    }
    let dir = download_dir()?;
    let path = dir.path().join(loc.name());
    download_file(&loc, &path)?;
    Ok(LocalCopy {
        path,
        _tmp: Some(TempHold::Dir(dir)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_paths() {
        let d = tempfile::tempdir().unwrap();
        let loc = Location::parse(d.path().to_str().unwrap()).unwrap();
        assert!(!loc.is_remote());
        let f = loc.join("x/y.json");
        f.write(b"{}").unwrap();
        assert!(f.exists().unwrap());
        assert_eq!(f.read().unwrap(), b"{}");
        assert_eq!(f.name(), "y.json");
        let l = loc.list().unwrap();
        assert_eq!(
            l,
            vec![Entry {
                name: "x".into(),
                is_dir: true
            }]
        );
        assert_eq!(
            Location::parse("file:///tmp/a/")
                .unwrap()
                .as_local()
                .unwrap(),
            Path::new("/tmp/a")
        );
    }

    #[cfg(feature = "remote")]
    #[test]
    fn remote_parse() {
        let l = Location::parse("s3://bucket/a/b/").unwrap();
        assert!(l.is_remote());
        assert_eq!(l.to_string(), "s3://bucket/a/b");
        assert_eq!(l.join("c.tar").to_string(), "s3://bucket/a/b/c.tar");
        assert_eq!(l.join("c.tar").name(), "c.tar");
        assert!(Location::parse("s3:///x").is_err());
        assert!(Location::parse("ftp://host/x").is_err());
    }

    #[cfg(not(feature = "remote"))]
    #[test]
    fn urls_need_the_remote_feature() {
        let e = Location::parse("s3://bucket/a").unwrap_err().to_string();
        assert!(e.contains("remote"), "{e}");
    }
}
