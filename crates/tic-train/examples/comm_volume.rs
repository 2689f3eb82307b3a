//! Bytes one data-parallel optimizer step moves per rank, for the TiC scales' models
//! (docs/distributed.md): `cargo run -p tic-train --example comm_volume [MODEL GLOBAL_BATCH WORLD]...`.
//! Without arguments: ViT-B-32 at 4,096 (tic_medium) and ViT-B-16 at 8,192 (tic_large) on 8 ranks.

use tic_train::step::CommVolume;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cases: Vec<(String, u64, u64)> = if args.is_empty() {
        vec![("ViT-B-32".into(), 4096, 8), ("ViT-B-16".into(), 8192, 8)]
    } else {
        args.chunks(3)
            .map(|c| Ok((c[0].clone(), c[1].parse()?, c[2].parse()?)))
            .collect::<anyhow::Result<_>>()?
    };
    println!("| model | parameters | global batch | ranks | gradient all-reduce | feature all-gather | feature reduce-scatter |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (model, batch, world) in cases {
        let cfg = tic_train::scale::model_config(&model)?;
        let params: u64 = tic_model::init::param_specs(&cfg)
            .iter()
            .map(|s| s.shape.iter().product::<usize>() as u64)
            .sum();
        let v = CommVolume::of(params, batch / world, cfg.embed_dim as u64, world, false);
        let mib = |b: u64| format!("{:.1} MiB", b as f64 / (1 << 20) as f64);
        println!(
            "| {model} | {params} | {batch} | {world} | {} | {} | {} |",
            mib(v.all_reduce),
            mib(v.all_gather),
            mib(v.reduce_scatter)
        );
    }
    Ok(())
}
