//! The "Plots" section: the PNGs of the metrics folder, linked relative to the report.

use crate::dynamic::Report;
use crate::tables;
use anyhow::Result;
use std::fmt::Write as _;
use std::path::{Component, Path, PathBuf};

/// A plot of the metrics folder, linked from the report.
#[derive(Debug, Clone, PartialEq)]
pub struct Plot {
    /// Alt text.
    pub label: String,
    /// Path relative to the report's folder (`/`-separated).
    pub link: String,
    /// The metrics folder (as given) joined with the file name.
    pub path: PathBuf,
}

/// Lexically normalized absolute path (`.` and `..` resolved without touching the disk).
fn absolute(p: &Path) -> Result<PathBuf> {
    let p = if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()?.join(p)
    };
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    Ok(out)
}

/// Resolves symlinks where the path exists, else normalizes it lexically.
fn resolved(p: &Path) -> Result<PathBuf> {
    std::fs::canonicalize(p).or_else(|_| absolute(p))
}

/// The `/`-separated relative path from folder `from` to `to`.
pub fn relative_link(from: &Path, to: &Path) -> Result<String> {
    let (from, to) = (resolved(from)?, resolved(to)?);
    let fc: Vec<Component> = from.components().collect();
    let tc: Vec<Component> = to.components().collect();
    let common = fc.iter().zip(&tc).take_while(|(a, b)| a == b).count();
    let mut parts: Vec<String> = vec!["..".to_string(); fc.len() - common];
    parts.extend(
        tc[common..]
            .iter()
            .map(|c| c.as_os_str().to_string_lossy().into_owned()),
    );
    Ok(if parts.is_empty() {
        ".".to_string()
    } else {
        parts.join("/")
    })
}

/// The plots of `metrics_dir` that exist: each method's heatmap per family (family order,
/// then method order), then `compute.png`. Links are relative to `report_dir`.
pub fn find_plots(report: &Report, metrics_dir: &Path, report_dir: &Path) -> Result<Vec<Plot>> {
    let mut wanted = Vec::new();
    for fam in &report.families {
        for run in &report.runs {
            wanted.push((
                format!("{} — {}", run.name, fam.id()),
                format!("heatmap_{}_{}.png", fam.id(), tables::slug(&run.name)),
            ));
        }
    }
    wanted.push(("accuracy vs compute".to_string(), "compute.png".to_string()));
    let mut plots = Vec::new();
    for (label, file) in wanted {
        let path = metrics_dir.join(&file);
        if path.is_file() {
            plots.push(Plot {
                label,
                link: relative_link(report_dir, &path)?,
                path,
            });
        }
    }
    Ok(plots)
}

pub(super) fn md_link_target(link: &str) -> String {
    if link.contains([' ', '(', ')', '<', '>']) {
        format!("<{link}>")
    } else {
        link.to_string()
    }
}

pub(super) fn plots_section(plots: &[Plot], metrics: &str) -> String {
    let mut s = String::from("## Plots\n\n");
    if plots.is_empty() {
        let _ = writeln!(
            s,
            "No plot in `{metrics}` (tic-metrics ran with `--no-plots`?).\n"
        );
        return s;
    }
    for p in plots {
        let _ = writeln!(s, "![{}]({})\n", p.label, md_link_target(&p.link));
    }
    s
}
