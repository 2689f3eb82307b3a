//! A real S3-compatible server (moto) on 127.0.0.1 for the object-store tests of every crate.
//!
//! Requires `moto_server` (`pip install 'moto[server]'`; `.ci/run` and `make deps` install it).
//! `TIC_S3_TEST=skip` makes [`MotoS3::start`] return `None` (a deliberate skip on a machine
//! without it).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// One server at a time per process: the AWS_* variables it sets are process-wide.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// A running moto server; killed on drop. Tests holding one run one after the other.
pub struct MotoS3 {
    child: Child,
    _turn: MutexGuard<'static, ()>,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// The environment that points object_store at it (`AWS_ENDPOINT`, credentials, region).
    pub env: Vec<(&'static str, String)>,
}

impl Drop for MotoS3 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free local port")
}

impl MotoS3 {
    /// Starts the server and sets its environment in this process too (for in-process
    /// `Location`s); `None` when `TIC_S3_TEST=skip`. Panics with install advice when moto is
    /// missing.
    pub fn start() -> Option<Self> {
        if std::env::var("TIC_S3_TEST").as_deref() == Ok("skip") {
            eprintln!("TIC_S3_TEST=skip: S3 test skipped on purpose");
            return None;
        }
        let turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        let port = free_port();
        let port_s = port.to_string();
        let spawn = |cmd: &str, pre: &[&str]| {
            Command::new(cmd)
                .args(pre)
                .args(["-H", "127.0.0.1", "-p", &port_s])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
        };
        // The console script, or the module when a fresh pip install left no shim on PATH yet.
        let child = spawn("moto_server", &[])
            .or_else(|_| spawn("python3", &["-m", "moto.server"]))
            .unwrap_or_else(|e| {
                panic!("cannot start moto_server ({e}): install it with `pip install 'moto[server]'` (make deps)")
            });
        let server = MotoS3 {
            child,
            _turn: turn,
            port,
            env: vec![
                ("AWS_ENDPOINT", format!("http://127.0.0.1:{port}")),
                ("AWS_ALLOW_HTTP", "true".into()),
                ("AWS_ACCESS_KEY_ID", "testing".into()),
                ("AWS_SECRET_ACCESS_KEY", "testing".into()),
                ("AWS_REGION", "us-east-1".into()),
            ],
        };
        let t = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "moto_server did not start on port {port}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        for (k, v) in &server.env {
            std::env::set_var(k, v);
        }
        Some(server)
    }

    /// S3 CreateBucket: `PUT /bucket` (moto accepts unsigned requests). Retried for a few
    /// seconds: a server that just opened its port may still reset connections.
    pub fn create_bucket(&self, bucket: &str) {
        let port = self.port;
        let put = || -> std::io::Result<String> {
            let mut s = TcpStream::connect(("127.0.0.1", port))?;
            write!(s, "PUT /{bucket} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")?;
            let mut resp = String::new();
            s.read_to_string(&mut resp)?;
            Ok(resp)
        };
        let t = Instant::now();
        let resp = loop {
            match put() {
                Ok(r) => break r,
                Err(e) if t.elapsed() < Duration::from_secs(10) => {
                    eprintln!("moto not ready ({e}); retrying");
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e) => panic!("CreateBucket {bucket} on moto: {e}"),
            }
        };
        assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    }

    /// A command with the server's environment.
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.envs(self.env.iter().map(|(k, v)| (*k, v.as_str())));
        c
    }
}
