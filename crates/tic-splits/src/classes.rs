//! `tic-datacompnet-classes`: DataCompNet uid → ImageNet class id, one pickle per year.
//!
//! Mirrors `generate_datacompnet_uid2classid.py`: for every year of
//! `tic-datacompnet_year2uids.pkl` writes `uid2classid/{year}.pkl` (a dict uid str → int that
//! `pickle.load` reads) and `classnames.txt`. The synset → class-id table is the standard
//! ImageNet order ([`crate::imagenet`]), which is what BREEDS' `dataset_class_info.json` holds.
use crate::imagenet;
use anyhow::{bail, Result};
use std::collections::BTreeMap;
use tic_shards::evalset_layout::CLASSNAMES_FILE;
use tic_shards::pickle::YearSynsetUids;
use tic_shards::storage::Location;
use tic_shards::uid::Uid;

/// uid → class id for one year.
pub type UidClasses = BTreeMap<Uid, i64>;

/// Per-year mappings plus the number of uids listed under two different classes.
#[derive(Debug, Default)]
pub struct Mapping {
    /// year → (uid → class id).
    pub years: BTreeMap<String, UidClasses>,
    /// uids that appear under more than one synset of a year (the last synset wins, as in the
    /// original's dict comprehension; synsets are visited in sorted order).
    pub conflicts: usize,
}

/// Maps every uid of every year to its class id. A synset outside the 1000 ImageNet classes
/// is an error naming the file, year and synset (the original raises `KeyError` there).
pub fn map_classes(data: &YearSynsetUids, file: &str) -> Result<Mapping> {
    let table = imagenet::synset_to_class();
    let mut out = Mapping::default();
    for (year, synsets) in data {
        let mut m = UidClasses::new();
        for (synset, uids) in synsets {
            let Some(&cls) = table.get(synset.as_str()) else {
                bail!(
                    "{file}: [{year:?}][{synset:?}]: synset is not one of the 1000 ImageNet-1k \
                     classes (expected a wnid listed in crates/tic-shards/data/imagenet/synsets.txt)"
                );
            };
            for u in uids {
                if let Some(prev) = m.insert(*u, cls) {
                    if prev != cls {
                        out.conflicts += 1;
                    }
                }
            }
        }
        out.years.insert(year.clone(), m);
    }
    Ok(out)
}

/// Writes `uid2classid/{year}.pkl` for every year and `classnames.txt` under `output`.
pub fn write_outputs(mapping: &Mapping, output: &Location) -> Result<()> {
    for (year, m) in &mapping.years {
        output
            .join(&format!("uid2classid/{year}.pkl"))
            .write(&tic_shards::pickle::write_uid_classes(m.iter()))?;
    }
    output
        .join(CLASSNAMES_FILE)
        .write(imagenet::CLASSNAMES.as_bytes())?;
    Ok(())
}
