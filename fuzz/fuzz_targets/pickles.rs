//! The TiC pickle readers must never panic on arbitrary bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tic_shards::pickle;

fuzz_target!(|data: &[u8]| {
    let _ = pickle::read_year_uids(data, "fuzz.pkl");
    let _ = pickle::read_year_synset_uids(data, "fuzz.pkl");
    let _ = pickle::read_uid_classes(data, "fuzz.pkl");
});
