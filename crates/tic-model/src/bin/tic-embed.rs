//! `tic-embed`: embed images and/or texts with a CLIP model and write L2-normalised features.
//! The command line and the run are [`tic_model::embed_cli`].

use anyhow::Result;
use clap::Parser;
use tic_model::embed_cli::EmbedArgs;

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    let args = EmbedArgs::parse();
    tic_kernels::heap::reuse_freed_buffers();
    tic_model::embed_cli::run(&args)
}
