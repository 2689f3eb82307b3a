//! `tic-restricted-classes`: ImageNet class ids grouped by WordNet hypernym, for restricted
//! ImageNet accuracy.
//!
//! Mirrors `imagenet_restricted_classes.py`: for each root name, the union of the hyponym
//! closures of every synset `wn.synsets(name)` returns (all parts of speech, as nltk does), and
//! of those the ones whose `n{offset:08}` is an ImageNet-1k wnid, mapped to class ids. The
//! original prints each group in set-iteration (hash) order; we sort the ids.
use crate::imagenet;
use crate::wordnet::WordNet;
use anyhow::Result;

/// The original's root names, in its order.
pub const DEFAULT_ROOTS: [&str; 11] = [
    "device",
    "motor_vehicle",
    "machine",
    "phone",
    "computer",
    "garment",
    "clothing",
    "dog",
    "bird",
    "cat",
    "animal",
];

/// Sorted ImageNet class ids under `root` (a class reached through two synsets with the same
/// offset in different parts of speech is listed twice, as the original would).
pub fn classes_under(wn: &WordNet, root: &str) -> Result<Vec<i64>> {
    let table = imagenet::synset_to_class();
    let mut all = std::collections::HashSet::new();
    for s in wn.synsets(root) {
        all.extend(wn.hyponym_closure(s)?);
    }
    let mut ids: Vec<i64> = all
        .iter()
        .filter_map(|s| table.get(s.wnid().as_str()).copied())
        .collect();
    ids.sort_unstable();
    Ok(ids)
}

/// Every group, in the order of `roots`.
pub fn groups(wn: &WordNet, roots: &[String]) -> Result<Vec<(String, Vec<i64>)>> {
    roots
        .iter()
        .map(|r| Ok((r.clone(), classes_under(wn, r)?)))
        .collect()
}

/// The groups as a JSON object (group → ids), keys in `roots` order.
pub fn to_json(groups: &[(String, Vec<i64>)]) -> String {
    let m: serde_json::Map<String, serde_json::Value> = groups
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::json!(v)))
        .collect();
    let mut s = serde_json::to_string_pretty(&serde_json::Value::Object(m)).expect("json");
    s.push('\n');
    s
}

/// Python's `print(list_of_ints)` form: `[1, 2, 3]`.
pub fn python_list(ids: &[i64]) -> String {
    let parts: Vec<String> = ids.iter().map(|i| i.to_string()).collect();
    format!("[{}]", parts.join(", "))
}
