//! Where a training step's memory goes: resident memory and its peak during each phase of
//! tic-train's step (gradients = forward + loss + backward, clipping, AdamW), on random
//! inputs, on the CPU (Linux: the peak is reset per phase through `/proc/self/clear_refs`).
//!
//! `cargo run --release -p tic-train --example step_memory -- MODEL BATCH [ckpt] [clip] [STEPS]`,
//! e.g. `ViT-B-32 32 ckpt 3` (docs/benchmarks.md, "Training memory on CPU"). `clip` clips the
//! gradients' global norm to 1 (`--grad_clip_norm 1`; off by default, as in tic-train, OpenCLIP
//! and DataComp).

use anyhow::{Context, Result};
use candle_core::{DType, Device, Tensor};
use tic_dist::Solo;
use tic_train::optim::{clip_grad_norm, AdamW, AdamWConfig};
use tic_train::step::Objective;

/// (current resident MiB, peak resident MiB since the last reset), from /proc/self/status.
fn rss() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| -> f64 {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .map_or(f64::NAN, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Resets the peak (VmHWM) to the current resident size.
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn report(phase: &str, t: std::time::Instant) {
    let (now, peak) = rss();
    println!(
        "| {phase} | {now:.0} | {peak:.0} | {:.2} |",
        t.elapsed().as_secs_f64()
    );
    reset_peak();
}

fn main() -> Result<()> {
    tic_kernels::heap::reuse_freed_buffers();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let model_name = args.first().map_or("ViT-B-32", String::as_str);
    let batch: usize = args.get(1).map_or(Ok(32), |b| b.parse())?;
    let ckpt = args.iter().any(|a| a == "ckpt");
    let clip = args.iter().any(|a| a == "clip");
    let steps: usize = args
        .iter()
        .skip(2)
        .find_map(|a| a.parse().ok())
        .unwrap_or(3);
    let cfg = tic_train::scale::model_config(model_name)?;
    let dev = Device::Cpu;
    println!(
        "{model_name}, batch {batch}, grad_checkpointing {ckpt}, grad_clip_norm {}, {steps} steps",
        if clip { "1" } else { "none" }
    );
    println!("| phase | resident MiB | peak MiB during the phase | s |");
    println!("|---|---:|---:|---:|");
    let t = std::time::Instant::now();
    reset_peak();
    let (vm, model) = tic_model::init::new_trainable(&cfg, 0, DType::F32, &dev)?;
    let vars = {
        let data = vm.data().lock().expect("varmap lock");
        tic_model::init::param_specs(&cfg)
            .into_iter()
            .map(|s| {
                let v = data.get(&s.name).context("missing parameter")?.clone();
                Ok((s.name, v))
            })
            .collect::<Result<Vec<_>>>()?
    };
    let mut opt = AdamW::new(vars, AdamWConfig::default());
    report("model", t);
    let s = cfg.vision_cfg.image_size;
    let images = Tensor::randn(0f32, 1.0, (batch, 3, s, s), &dev)?;
    let tokens = Tensor::rand(
        0f32,
        cfg.text_cfg.vocab_size as f32,
        (batch, cfg.text_cfg.context_length),
        &dev,
    )?
    .to_dtype(DType::U32)?;
    let inputs = vec![(images, tokens)];
    let objective = Objective {
        comm: &Solo,
        gather_with_grad: true,
        distill_weight: 0.0,
        grad_checkpointing: ckpt,
    };
    for step in 1..=steps {
        let t = std::time::Instant::now();
        let g = objective.gradients(&model, None, &inputs, &opt)?;
        report(&format!("step {step}: gradients (loss {:.4})", g.loss), t);
        let mut grads = g.grads;
        if clip {
            clip_grad_norm(&mut grads, 1.0)?;
            report(&format!("step {step}: clip"), t);
        }
        opt.step(&grads, 1e-5)?;
        drop(grads);
        report(&format!("step {step}: AdamW"), t);
    }
    Ok(())
}
