//! The npy / raw uid reader must never panic; what it reads must round-trip through the writer.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tic_shards::npy::{read_uids, write_uids, UidView};

fuzz_target!(|data: &[u8]| {
    if let Ok(uids) = read_uids(data, "fuzz.npy") {
        let again = read_uids(&write_uids(&uids), "w").expect("our own output reads back");
        assert_eq!(uids, again);
        let v = UidView::new(data, "fuzz.npy").unwrap();
        if let Some(first) = uids.first() {
            let _ = v.equal_range(*first);
        }
    }
});
