//! The 1000 ImageNet-1k classes in the standard order, shipped with the project.
//!
//! Class id `i` is the `i`-th WordNet id of `crates/tic-shards/data/imagenet/synsets.txt`
//! (timm's list: the wnids sorted ascending, i.e. torchvision's `ImageFolder` order). TiC-CLIP
//! maps synsets to class ids with BREEDS' `dataset_class_info.json`, whose ids are the same
//! standard ImageNet indices, so no download is needed. Class names are CLIP's
//! (`crates/tic-shards/data/imagenet/classnames.txt`, the list CLIP_benchmark ships and
//! DataComp's `wds_imagenet1k_test/classnames.txt` uses).
use std::collections::HashMap;

/// The embedded tables live once, in `tic_shards::imagenet`.
pub use tic_shards::imagenet::{classnames, synsets, CLASSNAMES, TEMPLATES};

/// Number of ImageNet-1k classes.
pub const NUM_CLASSES: usize = 1000;

/// wnid → class id (0–999).
pub fn synset_to_class() -> HashMap<&'static str, i64> {
    synsets()
        .into_iter()
        .enumerate()
        .map(|(i, s)| (s, i as i64))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_consistent() {
        let s = synsets();
        assert_eq!(s.len(), NUM_CLASSES);
        assert_eq!(classnames().len(), NUM_CLASSES);
        assert!(s.windows(2).all(|w| w[0] < w[1]), "synsets must be sorted");
        assert!(s.iter().all(|w| w.len() == 9
            && w.starts_with('n')
            && w[1..].bytes().all(|b| b.is_ascii_digit())));
        let m = synset_to_class();
        assert_eq!(m["n01440764"], 0); // tench
        assert_eq!(m["n15075141"], 999); // toilet tissue
        assert_eq!(classnames()[0], "tench");
        assert_eq!(TEMPLATES.lines().count(), 80);
    }
}
