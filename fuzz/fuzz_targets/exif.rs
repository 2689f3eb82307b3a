//! cargo-fuzz (coverage-guided, nightly) wrapper of tic-fuzz's `exif` target: the readers and
//! properties are defined once, in `tic_fuzz::targets` (docs/fuzzing.md).
#![no_main]
use std::sync::{LazyLock, Once};
use tic_fuzz::targets::{find, Scratch};

static SCRATCH: LazyLock<Scratch> = LazyLock::new(|| Scratch::new().expect("a scratch folder"));
static HOOK: Once = Once::new();

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    // libfuzzer-sys aborts on every panic, even one the readers catch and report as an error
    // (serde-pickle's unordered sets, arrow-rs' malformed batches): back to the default hook,
    // so that only a panic escaping the readers ends the run.
    HOOK.call_once(|| drop(std::panic::take_hook()));
    (find("exif").expect("a tic-fuzz target").run)(&SCRATCH, data);
});
