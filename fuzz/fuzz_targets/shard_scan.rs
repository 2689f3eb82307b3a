//! Tar scanning and sample grouping must never panic, and every member it reports must lie
//! inside the data.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tic_shards::wds::{member_bytes, scan_shard};

fuzz_target!(|data: &[u8]| {
    let scan = scan_shard(data, "fuzz.tar");
    for s in &scan.samples {
        for m in &s.members {
            assert!(m.data_offset + m.size <= data.len() as u64);
            let _ = member_bytes(data, m);
        }
    }
});
