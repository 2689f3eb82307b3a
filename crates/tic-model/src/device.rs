//! The `--device` value every binary takes (`tic-train`, `tic-eval`, `tic-embed`), parsed once.
//!
//! `cpu | cuda | cuda:N | auto`. A bare `cuda` and `auto` are rank-aware: under `mpirun` /
//! `srun` each process opens the GPU of its local rank (`cuda:LOCAL_RANK`); a single process
//! passes local rank 0. `auto` is that GPU when the build has CUDA support, else the CPU.

use std::fmt;
use std::str::FromStr;

use anyhow::{bail, Context, Result};
use candle_core::Device;

/// The accepted forms, as error messages list them.
const FORMS: &str = "expected cpu, cuda, cuda:N or auto";

/// A parsed `--device` value (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceSpec {
    /// `cpu`.
    Cpu,
    /// `cuda` (`None`: the GPU of the local rank) or `cuda:N`.
    Cuda(Option<usize>),
    /// `auto`: the local rank's GPU when CUDA is compiled in, else the CPU.
    Auto,
}

impl FromStr for DeviceSpec {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "cpu" => DeviceSpec::Cpu,
            "cuda" => DeviceSpec::Cuda(None),
            "auto" => DeviceSpec::Auto,
            _ => match s.strip_prefix("cuda:") {
                Some(n) => DeviceSpec::Cuda(Some(
                    n.parse()
                        .with_context(|| format!("--device {s:?}: {FORMS}"))?,
                )),
                None => bail!("--device {s:?}: {FORMS}"),
            },
        })
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Cpu => f.write_str("cpu"),
            DeviceSpec::Cuda(None) => f.write_str("cuda"),
            DeviceSpec::Cuda(Some(n)) => write!(f, "cuda:{n}"),
            DeviceSpec::Auto => f.write_str("auto"),
        }
    }
}

impl DeviceSpec {
    /// Opens the device for the process of local rank `local_rank` (a bare `cuda` and `auto`
    /// take the GPU of that index). A GPU that cannot be opened (no CUDA in the build, no such
    /// GPU) is an error naming it.
    pub fn open(self, local_rank: usize) -> Result<Device> {
        Ok(match self {
            DeviceSpec::Cpu => Device::Cpu,
            DeviceSpec::Cuda(n) => {
                let idx = n.unwrap_or(local_rank);
                Device::new_cuda(idx).with_context(|| {
                    format!(
                        "--device cuda:{idx}: opening the GPU (needs a build with --features cuda)"
                    )
                })?
            }
            DeviceSpec::Auto => Device::cuda_if_available(local_rank)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_displays_every_form() {
        for (s, want) in [
            ("cpu", DeviceSpec::Cpu),
            ("cuda", DeviceSpec::Cuda(None)),
            ("cuda:3", DeviceSpec::Cuda(Some(3))),
            ("auto", DeviceSpec::Auto),
        ] {
            let got: DeviceSpec = s.parse().unwrap();
            assert_eq!(got, want);
            assert_eq!(got.to_string(), s);
        }
        for bad in ["gpu", "cuda:x", "cuda:", "cuda0", "CPU", ""] {
            let e = format!("{:#}", bad.parse::<DeviceSpec>().unwrap_err());
            assert!(e.contains("--device") && e.contains("cuda:N"), "{bad}: {e}");
        }
        assert!(DeviceSpec::Cpu.open(5).unwrap().is_cpu());
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn without_cuda_auto_is_the_cpu_and_cuda_an_error() {
        assert!(DeviceSpec::Auto.open(1).unwrap().is_cpu());
        let e = format!("{:#}", DeviceSpec::Cuda(None).open(2).unwrap_err());
        assert!(e.contains("cuda:2") && e.contains("--features cuda"), "{e}");
    }
}
