//! The TiC pickle readers must never panic on arbitrary bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::sync::Once;
use tic_shards::pickle;

static HOOK: Once = Once::new();

fuzz_target!(|data: &[u8]| {
    // libfuzzer-sys aborts on every panic, even one caught inside the code under test. The
    // pickle readers catch serde-pickle's known panic (a set it cannot order) and return an
    // error, which is what is tested here: back to the default hook, so only a panic that
    // escapes the readers ends the run (libfuzzer-sys aborts on it).
    HOOK.call_once(|| drop(std::panic::take_hook()));
    let _ = pickle::read_year_uids(data, "fuzz.pkl");
    let _ = pickle::read_year_synset_uids(data, "fuzz.pkl");
    let _ = pickle::read_uid_classes(data, "fuzz.pkl");
});
