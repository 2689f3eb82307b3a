//! Builds the CUDA kernels of the fused training ops (`kernels/fused.cu`):
//!
//! - `cuda` feature: `nvcc -ptx` into `$OUT_DIR/fused.ptx`, embedded by `src/fused/cuda.rs`
//!   (nvcc from `$CUDA_HOME/bin` or the `PATH`; the architecture from `CUDA_COMPUTE_CAP`,
//!   default 80);
//! - `kernel-emu` feature (tests only): the same source compiled by the C++ compiler against
//!   `kernels/emu.h` (CUDA threads as host threads), linked as `libtic_kernel_emu.a`.
//!
//! Without either feature this script does nothing.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=kernels/fused.cu");
    println!("cargo:rerun-if-changed=kernels/emu.h");
    println!("cargo:rerun-if-changed=kernels/emu.cpp");
    if std::env::var_os("CARGO_FEATURE_CUDA").is_some() {
        ptx();
    }
    #[cfg(feature = "kernel-emu")]
    emu();
}

/// `nvcc -ptx kernels/fused.cu -o $OUT_DIR/fused.ptx`.
fn ptx() {
    println!("cargo:rerun-if-env-changed=CUDA_COMPUTE_CAP");
    println!("cargo:rerun-if-env-changed=CUDA_HOME");
    println!("cargo:rerun-if-env-changed=NVCC");
    let out =
        std::path::PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR")).join("fused.ptx");
    let nvcc = std::env::var("NVCC").unwrap_or_else(|_| match std::env::var("CUDA_HOME") {
        Ok(home) if std::path::Path::new(&home).join("bin/nvcc").exists() => {
            format!("{home}/bin/nvcc")
        }
        _ => "nvcc".to_string(),
    });
    let cap = std::env::var("CUDA_COMPUTE_CAP")
        .ok()
        .map(|c| c.trim().replace('.', ""))
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| "80".to_string());
    let status = std::process::Command::new(&nvcc)
        .args(["-ptx", "-O3", "--std=c++17", "-lineinfo"])
        .arg(format!("-arch=sm_{cap}"))
        .arg("kernels/fused.cu")
        .arg("-o")
        .arg(&out)
        .status()
        .unwrap_or_else(|e| panic!("running {nvcc} (the `cuda` feature needs nvcc): {e}"));
    assert!(
        status.success(),
        "{nvcc} -ptx kernels/fused.cu failed ({status})"
    );
}

/// `kernels/emu.cpp` (which includes `fused.cu`) as a static library.
#[cfg(feature = "kernel-emu")]
fn emu() {
    cc::Build::new()
        .cpp(true)
        .std("c++20")
        .file("kernels/emu.cpp")
        .warnings(true)
        .extra_warnings(true)
        .flag_if_supported("-pthread")
        .compile("tic_kernel_emu");
    // std::thread needs libpthread (part of libc on recent glibc; harmless otherwise).
    println!("cargo:rustc-link-lib=pthread");
}
