//! The metadata fetch (`fetch_from_hub`, through `hf-hub`) against a mock Hugging Face endpoint
//! on loopback (`HF_ENDPOINT`): the dataset API (`/api/datasets/REPO/revision/main`, the file
//! list) and `resolve` (`/datasets/REPO/resolve/main/FILE`: a `Range: bytes=0-0` probe that must
//! answer `etag`, `x-repo-commit` and `Content-Range`, then the ranged body). Nothing leaves the
//! machine; the test checks the files land byte for byte, `.npz` only with `--download_npz`,
//! xlarge's `part_*/` flattened, the cache removed, and what the client asked for.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};

const BIN: &str = env!("CARGO_BIN_EXE_tic-download");

/// The files of the mock dataset repository: (repo path, content).
type Files = Vec<(String, Vec<u8>)>;

/// A tiny valid metadata parquet (uid, url, text), so a later `tic-download` could read it.
fn parquet(n: usize) -> Vec<u8> {
    use arrow_array::{ArrayRef, RecordBatch, StringArray};
    let col = |f: &dyn Fn(usize) -> String| -> ArrayRef {
        Arc::new(StringArray::from((0..n).map(f).collect::<Vec<_>>()))
    };
    let batch = RecordBatch::try_from_iter([
        ("uid", col(&|i| format!("{:032x}", i + 1))),
        ("url", col(&|i| format!("http://127.0.0.1:9/{i}"))),
        ("text", col(&|i| format!("caption {i}"))),
    ])
    .unwrap();
    let mut out = Vec::new();
    let mut w = parquet::arrow::ArrowWriter::try_new(&mut out, batch.schema(), None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    out
}

fn answer(mut sock: TcpStream, files: &Files, log: &Mutex<Vec<String>>) {
    let mut reader = BufReader::new(sock.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let path = line.split(' ').nth(1).unwrap_or("/").to_string();
    let mut range = None;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
            break;
        }
        if let Some(v) = h.to_ascii_lowercase().strip_prefix("range: bytes=") {
            range = Some(v.trim().to_string());
        }
    }
    log.lock()
        .unwrap()
        .push(format!("{path} {}", range.clone().unwrap_or_default()));
    let head = |status: &str, extra: &str, len: usize| {
        format!("HTTP/1.1 {status}\r\nContent-Length: {len}\r\nConnection: close\r\n{extra}\r\n")
    };
    let api = "/api/datasets/mlfoundations/";
    let resolve = "/datasets/mlfoundations/";
    let repo_of = |p: &str| p.split('/').next().unwrap_or("").to_string();
    let reply: Vec<u8> = if let Some(rest) = path.strip_prefix(api) {
        // /api/datasets/mlfoundations/datacomp_small/revision/main
        assert!(rest.ends_with("/revision/main"), "{path}");
        let siblings: Vec<_> = files
            .iter()
            .map(|(f, _)| serde_json::json!({ "rfilename": f }))
            .collect();
        let body =
            serde_json::json!({ "siblings": siblings, "sha": repo_of(rest) + "-sha" }).to_string();
        let mut r = head("200 OK", "Content-Type: application/json\r\n", body.len()).into_bytes();
        r.extend_from_slice(body.as_bytes());
        r
    } else if let Some((_, file)) = path.strip_prefix(resolve).and_then(|r| {
        // /datasets/mlfoundations/datacomp_small/resolve/main/FILE
        r.split_once("/resolve/main/")
    }) {
        match files.iter().find(|(f, _)| f == file) {
            None => head("404 Not Found", "", 0).into_bytes(),
            Some((_, data)) => {
                let (from, to) = match range.as_deref().and_then(|r| r.split_once('-')) {
                    Some((a, b)) => (
                        a.parse::<usize>().unwrap(),
                        b.parse::<usize>().map_or(data.len(), |e| e + 1),
                    ),
                    None => (0, data.len()),
                };
                let to = to.min(data.len());
                let extra = format!(
                    "ETag: \"etag-{}\"\r\nX-Repo-Commit: commit0\r\nContent-Range: bytes {from}-{}/{}\r\n",
                    file.replace('/', "-"),
                    to.saturating_sub(1),
                    data.len()
                );
                let mut r = head("206 Partial Content", &extra, to - from).into_bytes();
                r.extend_from_slice(&data[from..to]);
                r
            }
        }
    } else {
        head("404 Not Found", "", 0).into_bytes()
    };
    let _ = sock.write_all(&reply);
}

/// Serves `files` as every `mlfoundations/*` dataset; returns the endpoint and the request log.
fn mock_hub(files: Files) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let log = Arc::new(Mutex::new(Vec::new()));
    let (files, l) = (Arc::new(files), log.clone());
    std::thread::spawn(move || {
        for sock in listener.incoming().flatten() {
            let (files, l) = (files.clone(), l.clone());
            std::thread::spawn(move || answer(sock, &files, &l));
        }
    });
    (endpoint, log)
}

fn fetch(endpoint: &str, data: &Path, extra: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .args([
            "--data_dir",
            data.to_str().unwrap(),
            "--skip_shards",
            "--quiet",
        ])
        .args(extra)
        .env("HF_ENDPOINT", endpoint)
        .env("HF_HOME", data.join("hf-home"))
        .env_remove("HF_TOKEN")
        .env_remove("HTTPS_PROXY")
        .env_remove("HTTP_PROXY")
        .env_remove("ALL_PROXY")
        .output()
        .unwrap()
}

fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    v.sort();
    v
}

#[test]
fn metadata_from_a_mock_hub_endpoint() {
    let a = parquet(3);
    let b = parquet(5);
    let files: Files = vec![
        ("README.md".into(), b"# card".to_vec()),
        ("a.parquet".into(), a.clone()),
        ("b.parquet".into(), b.clone()),
        ("a.npz".into(), b"npz bytes".to_vec()),
    ];
    let (endpoint, log) = mock_hub(files);
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("small");
    let out = fetch(&endpoint, &data, &["--scale", "small"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        listing(&data.join("metadata")),
        ["a.parquet", "b.parquet"],
        "no npz without --download_npz, no README"
    );
    assert_eq!(std::fs::read(data.join("metadata/a.parquet")).unwrap(), a);
    assert_eq!(std::fs::read(data.join("metadata/b.parquet")).unwrap(), b);
    assert!(!data.join("hf").exists(), "the hub cache is removed");
    let log = log.lock().unwrap().clone();
    assert_eq!(
        log[0], "/api/datasets/mlfoundations/datacomp_small/revision/main ",
        "{log:?}"
    );
    assert!(
        log.iter()
            .any(|l| l == "/datasets/mlfoundations/datacomp_small/resolve/main/a.parquet 0-0"),
        "{log:?}"
    );
    assert!(!log.iter().any(|l| l.contains("README")), "{log:?}");

    // A second run keeps the folder; --overwrite_metadata with --download_npz refetches.
    let out = fetch(
        &endpoint,
        &data,
        &["--scale", "small", "--overwrite_metadata", "--download_npz"],
    );
    assert!(out.status.success());
    assert_eq!(
        listing(&data.join("metadata")),
        ["a.npz", "a.parquet", "b.parquet"]
    );
}

#[test]
fn xlarge_parts_are_flattened_and_a_failing_hub_names_the_repo() {
    let a = parquet(2);
    let files: Files = vec![
        ("part_00/x.parquet".into(), a.clone()),
        ("part_01/y.parquet".into(), parquet(4)),
        ("top.parquet".into(), a.clone()),
    ];
    let (endpoint, _log) = mock_hub(files);
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("xl");
    let out = fetch(&endpoint, &data, &["--scale", "xlarge"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Only the nested parquets (as download_upstream.py's xlarge pattern), flattened.
    assert_eq!(listing(&data.join("metadata")), ["x.parquet", "y.parquet"]);
    assert_eq!(std::fs::read(data.join("metadata/x.parquet")).unwrap(), a);

    // An endpoint that answers 404 to the listing: a clear error naming the repository.
    let (endpoint, _) = mock_hub(Vec::new());
    let bad = tmp.path().join("bad");
    let out = fetch(
        &format!("{endpoint}/nothing-here"),
        &bad,
        &["--scale", "medium"],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("mlfoundations/datacomp_medium"), "{err}");
}
