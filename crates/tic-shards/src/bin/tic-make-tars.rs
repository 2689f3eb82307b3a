//! `tic-make-tars`: TiC's `create_tars.py` — a path/caption TSV plus images into shards.

use anyhow::Context;
use clap::Parser;
use tic_shards::storage::{fetch_file, InputDir, OutputDir};
use tic_shards::{cli, make_tars};

fn main() -> anyhow::Result<()> {
    let a = make_tars::MakeTarsArgs::parse();
    cli::init_logging(0, u8::from(a.quiet));
    // Object-store inputs are downloaded and outputs staged locally, then uploaded.
    // `--input -` (standard input) is read by make_tars::run itself.
    let from_stdin = a.input.as_os_str() == tic_shards::storage::STDIO;
    let input = if from_stdin {
        None
    } else {
        Some(fetch_file(&a.input)?)
    };
    let images = InputDir::fetch(&a.image_dir)?;
    let out = OutputDir::new(&a.output_dir)?;
    let local = make_tars::MakeTarsArgs {
        input: input
            .as_ref()
            .map_or_else(|| a.input.clone(), |i| i.path().to_path_buf()),
        image_dir: images.path().to_path_buf(),
        output_dir: out.path().to_path_buf(),
        ..a.clone()
    };
    let s = make_tars::run(&local).with_context(|| format!("packing {}", a.input.display()))?;
    out.finish()?;
    eprintln!(
        "tic-make-tars: {} samples in {} shards under {}; skipped {} annotations due to missing images",
        s.added,
        s.shards.len(),
        a.output_dir.display(),
        s.skipped
    );
    Ok(())
}
