//! `tic-make-tars`: TiC's `create_tars.py` — a path/caption TSV plus images into shards.

use clap::Parser;
use tic_shards::{cli, make_tars};

fn main() -> anyhow::Result<()> {
    let a = make_tars::MakeTarsArgs::parse();
    cli::init_logging(0, u8::from(a.quiet));
    let s = make_tars::run(&a)?;
    eprintln!(
        "tic-make-tars: {} samples in {} shards under {}; skipped {} annotations due to missing images",
        s.added,
        s.shards.len(),
        a.output_dir.display(),
        s.skipped
    );
    Ok(())
}
