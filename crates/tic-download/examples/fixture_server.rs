//! The tests' loopback server as a process, for `tests/fixtures/img2dataset/gen_img2dataset.py`
//! (the img2dataset comparison) and `bench/download.sh`: writes the comparison metadata
//! (`tests/common::cmp_rows`, or `--bench N` generated images) for its own address into
//! METADATA_DIR, prints the base URL, and serves on 127.0.0.1 until killed.
//!
//! `cargo run -p tic-download --example fixture_server -- METADATA_DIR [--bench N]`

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::Write;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(meta) = args.first() else {
        eprintln!("usage: fixture_server METADATA_DIR [--bench N]");
        std::process::exit(2);
    };
    let base = common::start_server();
    let rows = match args.iter().position(|a| a == "--bench") {
        Some(i) => common::bench_rows(args[i + 1].parse().expect("--bench N: a number")),
        None => common::cmp_rows(),
    };
    common::write_rows(std::path::Path::new(meta), &base, &rows);
    println!("{base}");
    std::io::stdout().flush().expect("stdout");
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}
