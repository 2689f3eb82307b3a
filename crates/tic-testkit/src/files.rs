//! The files a test finds below a folder, for comparing what a binary wrote with what it
//! should have written (or checking it wrote nothing).

use std::path::Path;

/// Every file below `dir`, as paths relative to `dir`, sorted. A folder that does not exist
/// (or cannot be read) holds no files.
pub fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(base: &Path, d: &Path, out: &mut Vec<String>) {
        if let Ok(rd) = std::fs::read_dir(d) {
            for e in rd.flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(base, &p, out);
                } else {
                    out.push(p.strip_prefix(base).unwrap().to_string_lossy().into_owned());
                }
            }
        }
    }
    walk(dir, dir, &mut out);
    out.sort();
    out
}
