//! End-to-end tests of `tic-reshard` on synthetic pools.

mod common;

use common::*;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use tic_shards::wds::TarSampleWriter;
use tic_shards::{npy, pickle, Uid};
use tic_testkit::shards::{pool_uids, read_samples, synth_pool, write_subset};

fn p(x: &Path) -> &str {
    x.to_str().unwrap()
}

/// A subset of every third uid, one uid listed twice, and one uid absent from the pool.
fn make_subset(uids: &[Uid]) -> Vec<Uid> {
    let mut s: Vec<Uid> = uids.iter().step_by(3).copied().collect();
    s.push(uids[3]); // listed twice
    s.push(Uid(12345)); // not in the pool
    s.sort();
    s
}

#[test]
fn selects_copies_and_is_independent_of_workers() {
    let (d, pool) = temp_pool(300, 4);
    let all = pool_uids(&pool);
    let uids: Vec<Uid> = all.iter().map(|x| x.0).collect();
    let subset = make_subset(&uids);
    let sub = d.path().join("subset.npy");
    std::fs::write(&sub, npy::write_uids(&subset)).unwrap();

    let out1 = d.path().join("out1/nested"); // missing parents are created
    let out3 = d.path().join("out3");
    for (out, j) in [(&out1, "1"), (&out3, "3")] {
        let extra = ["-j", j, "--shard-size", "17", "--write-shard-table"];
        reshard_ok(&reshard_cmd(&pool, out, &sub, &extra));
    }
    // Same bytes whatever -j is.
    assert_eq!(tree(&out1, &["meta.json"]), tree(&out3, &["meta.json"]));
    assert_eq!(meta_stable(&out1), meta_stable(&out3));

    let got = read_samples(&out1);
    let expected: usize = subset.len() - 1 /* absent */;
    assert_eq!(got.len(), expected);
    // Each output sample is an exact copy of its input sample, under {uid}-{j}.
    let by_uid: HashMap<Uid, &BTreeMap<String, Vec<u8>>> =
        all.iter().map(|(u, m)| (*u, m)).collect();
    for (key, members) in &got {
        let (u, j) = key.rsplit_once('-').unwrap();
        let uid = Uid::parse(u).unwrap();
        assert!(j == "0" || (uid == uids[3] && j == "1"), "{key}");
        assert_eq!(&members, by_uid.get(&uid).unwrap(), "{key}");
    }
    assert!(got.contains_key(&format!("{}-1", uids[3])));

    let meta = read_meta(&out1);
    assert_eq!(meta["output_count"], expected);
    assert_eq!(meta["processed_count"], 300);
    assert_eq!(meta["not_found_count"], 1);
    assert_eq!(meta["output_shard_count"], expected.div_ceil(17));
    assert_eq!(meta["shard_size"], "17");
    assert_eq!(meta["output_shard_format"], "{:08d}.tar");
    assert_eq!(meta["cls_file"], "None");
    // convert_wds.sh's sed regex finds the counts.
    let text = String::from_utf8(std::fs::read(out1.join("meta.json")).unwrap()).unwrap();
    assert!(
        text.contains(&format!("\"output_count\": {expected}, ")),
        "{text}"
    );
    assert!(text.contains(&format!(
        "\"output_shard_count\": {}, ",
        expected.div_ceil(17)
    )));
    // Stats files and the shard table agree with the shards.
    let sizes: BTreeMap<String, u64> =
        serde_json::from_slice(&std::fs::read(out1.join("sizes.json")).unwrap()).unwrap();
    assert_eq!(sizes.len(), expected.div_ceil(17));
    assert_eq!(sizes.values().sum::<u64>() as usize, expected);
    let st: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out1.join("00000000_stats.json")).unwrap()).unwrap();
    assert_eq!(st, serde_json::json!({"successes": 17}));
    assert_eq!(
        std::fs::read(out1.join("sample_ids.npy")).unwrap(),
        std::fs::read(&sub).unwrap()
    );
    assert!(!out1.join(tic_shards::reshard::PLAN_FILE).exists());

    // A rerun of the same command finds the work done and changes nothing.
    let before = tree(&out1, &[]);
    let extra = ["--shard-size", "17", "--write-shard-table"];
    reshard_ok(&reshard_cmd(&pool, &out1, &sub, &extra));
    assert_eq!(before, tree(&out1, &[]));
}

#[test]
fn cls_member_and_missing_class() {
    let (d, pool) = temp_pool(120, 2);
    let uids: Vec<Uid> = pool_uids(&pool).iter().map(|x| x.0).collect();
    let sub = d.path().join("s.npy");
    let subset = write_subset(&sub, &uids[..40]);
    let classes: HashMap<Uid, i64> = subset
        .iter()
        .enumerate()
        .map(|(i, u)| (*u, (i * 37 % 1000) as i64))
        .collect();
    let cls = d.path().join("c.pkl");
    std::fs::write(&cls, pickle::write_uid_classes(classes.iter())).unwrap();
    let out = d.path().join("out");
    reshard_ok(&reshard_cmd(&pool, &out, &sub, &["-c", p(&cls)]));
    let got = read_samples(&out);
    assert_eq!(got.len(), 40);
    for (key, m) in &got {
        let uid = Uid::parse(key.split('-').next().unwrap()).unwrap();
        assert_eq!(m["cls"], classes[&uid].to_string().into_bytes());
        assert_eq!(m.keys().collect::<Vec<_>>(), ["cls", "jpg", "json", "txt"]);
    }
    // Member order inside the tar is sorted by extension, cls first.
    let data = std::fs::read(out.join("00000000.tar")).unwrap();
    let scan = tic_shards::wds::scan_shard(&data, "x");
    let exts: Vec<&str> = scan.samples[0]
        .members
        .iter()
        .map(|m| m.ext.as_str())
        .collect();
    assert_eq!(exts, ["cls", "jpg", "json", "txt"]);

    // A subset uid without a class: the sample is dropped, the uid named, exit status 1.
    let partial: HashMap<Uid, i64> = classes
        .iter()
        .filter(|(u, _)| **u != subset[5])
        .map(|(u, c)| (*u, *c))
        .collect();
    std::fs::write(&cls, pickle::write_uid_classes(partial.iter())).unwrap();
    let out2 = d.path().join("out2");
    let o = run_reshard(&reshard_cmd(&pool, &out2, &sub, &["-c", p(&cls)]));
    assert_eq!(o.status.code(), Some(1));
    let meta = std::fs::read_to_string(out2.join("meta.json")).unwrap();
    assert!(meta.contains(&subset[5].to_hex()), "{meta}");
    assert_eq!(read_samples(&out2).len(), 39);
}

/// Issue 15 item 6: a `.npy`-named subset without numpy's magic is refused naming the file
/// (it used to be read as raw uids when its size was a multiple of 16); the same bytes under
/// another name are a raw memmap, as in resharder.py.
#[test]
fn npy_named_subset_without_magic_is_refused() {
    let (d, pool) = temp_pool(20, 1);
    let uids: Vec<Uid> = pool_uids(&pool).iter().map(|x| x.0).collect();
    let raw: Vec<u8> = uids[..4]
        .iter()
        .flat_map(|u| {
            let (hi, lo) = ((u.0 >> 64) as u64, u.0 as u64);
            [hi.to_le_bytes(), lo.to_le_bytes()].concat()
        })
        .collect();
    assert_eq!(raw.len(), 64);
    let sub = d.path().join("raw_uids.npy");
    std::fs::write(&sub, &raw).unwrap();
    let out = d.path().join("out");
    let o = run_reshard(&reshard_cmd(&pool, &out, &sub, &[]));
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains("raw_uids.npy") && err.contains("not a numpy file"),
        "{err}"
    );
    assert!(!out.exists());
    let sub = d.path().join("raw_uids.bin");
    std::fs::write(&sub, &raw).unwrap();
    reshard_ok(&reshard_cmd(&pool, &out, &sub, &[]));
    assert_eq!(read_samples(&out).len(), 4);
}

#[test]
fn bad_subset_fails_before_writing() {
    let (d, pool) = temp_pool(20, 1);
    // An npy of the wrong dtype (a 2-D float array header).
    let mut bad = b"\x93NUMPY\x01\x00".to_vec();
    let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }";
    let mut h = header.to_string();
    while (10 + h.len() + 1) % 64 != 0 {
        h.push(' ');
    }
    h.push('\n');
    bad.extend_from_slice(&(h.len() as u16).to_le_bytes());
    bad.extend_from_slice(h.as_bytes());
    bad.extend_from_slice(&[0u8; 16]);
    let sub = d.path().join("bad.npy");
    std::fs::write(&sub, bad).unwrap();
    let out = d.path().join("out");
    let o = run_reshard(&reshard_cmd(&pool, &out, &sub, &[]));
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(err.contains("bad.npy") && err.contains("u8,u8"), "{err}");
    assert!(!out.exists());
    // An unreadable class pickle also fails before writing.
    let good = d.path().join("good.npy");
    std::fs::write(&good, npy::write_uids(&[Uid(1)])).unwrap();
    let cls = d.path().join("c.pkl");
    std::fs::write(&cls, b"not a pickle").unwrap();
    let o = run_reshard(&reshard_cmd(&pool, &out, &good, &["-c", p(&cls)]));
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("c.pkl"));
    assert!(!out.exists());
}

#[test]
fn unsorted_subset_gives_the_sorted_answer() {
    let (d, pool) = temp_pool(90, 2);
    let uids: Vec<Uid> = pool_uids(&pool).iter().map(|x| x.0).collect();
    let mut subset: Vec<Uid> = uids.iter().step_by(2).copied().collect();
    subset.sort();
    let sorted = d.path().join("sorted.npy");
    std::fs::write(&sorted, npy::write_uids(&subset)).unwrap();
    subset.reverse();
    let unsorted = d.path().join("unsorted.npy");
    std::fs::write(&unsorted, npy::write_uids(&subset)).unwrap();
    let (a, b) = (d.path().join("a"), d.path().join("b"));
    reshard_ok(&reshard_cmd(&pool, &a, &sorted, &[]));
    let o = reshard_ok(&reshard_cmd_loud(&pool, &b, &unsorted, &[]));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not sorted"));
    assert_eq!(read_samples(&a), read_samples(&b));
    assert_eq!(read_samples(&a).len(), 45);
}

/// Writes a shard by hand from (key, members) pairs.
type HandSample<'a> = (&'a str, Vec<(&'a str, Vec<u8>)>);

fn write_shard(path: &Path, samples: &[HandSample]) {
    let mut w = TarSampleWriter::new(Vec::new());
    for (k, ms) in samples {
        for (e, b) in ms {
            w.append(k, e, b, 0).unwrap();
        }
    }
    std::fs::write(path, w.finish().unwrap()).unwrap();
}

#[test]
fn bad_samples_are_reported_and_others_complete() {
    let (d, pool) = temp_pool(60, 3);
    let all = pool_uids(&pool);
    let dup = all[0].0;
    let json = |u: &str| format!("{{\"uid\": \"{u}\"}}").into_bytes();
    // Shard 3: a sample without json, one without uid, one with a bad uid, one good sample
    // repeating a uid of shard 0 (kept under the next key number).
    write_shard(
        &pool.join("00000003.tar"),
        &[
            ("a", vec![("jpg", b"x".to_vec())]),
            ("b", vec![("json", b"{\"caption\": 1}".to_vec())]),
            ("c", vec![("json", json("zz"))]),
            (
                "d",
                vec![("jpg", b"dup".to_vec()), ("json", json(&dup.to_hex()))],
            ),
        ],
    );
    // Shard 4: truncated in the middle of a member.
    let full = std::fs::read(pool.join("00000001.tar")).unwrap();
    std::fs::write(pool.join("00000004.tar"), &full[..full.len() / 2 + 100]).unwrap();
    std::fs::remove_file(pool.join("sizes.json")).unwrap();

    let sub = d.path().join("s.npy");
    write_subset(&sub, &all.iter().map(|x| x.0).collect::<Vec<Uid>>());
    let out = d.path().join("out");
    let o = run_reshard(&reshard_cmd(&pool, &out, &sub, &["-j", "2"]));
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let meta = read_meta(&out);
    let errors: Vec<String> = meta["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap().to_string())
        .collect();
    let has = |needle: &str| errors.iter().any(|e| e.contains(needle));
    assert!(
        has("00000003.tar: sample \"a\" at byte 0: no json member"),
        "{errors:?}"
    );
    assert!(
        has("member b.json at byte 1024: json has no uid"),
        "{errors:?}"
    );
    assert!(has("member c.json") && has("\"zz\""), "{errors:?}");
    assert!(
        has("00000004.tar: corrupt or truncated tar at byte"),
        "{errors:?}"
    );
    assert_eq!(meta["dropped_count"], 3);
    let got = read_samples(&out);
    // The complete samples of the cut shard repeat shard 1's uids: they continue at -1, like the
    // good sample of shard 3 that repeats a uid of shard 0.
    let cut = std::fs::read(pool.join("00000004.tar")).unwrap();
    let n4 = tic_shards::wds::scan_shard(&cut, "x").samples.len();
    assert!(n4 > 0);
    assert_eq!(got.keys().filter(|k| k.ends_with("-1")).count(), 1 + n4);
    assert_eq!(got[&format!("{dup}-1")]["jpg"], b"dup");
    assert_eq!(got.len(), 60 + 1 + n4);
}

#[test]
fn refuses_foreign_output_unless_overwrite() {
    let (d, pool) = temp_pool(30, 1);
    let uids: Vec<Uid> = pool_uids(&pool).iter().map(|x| x.0).collect();
    let sub = d.path().join("s.npy");
    let s = write_subset(&sub, &uids[..10]);
    let out = d.path().join("out");
    std::fs::create_dir_all(out.join("old_dir")).unwrap();
    std::fs::write(out.join("00000099.tar"), b"old").unwrap();
    let o = run_reshard(&reshard_cmd(&pool, &out, &sub, &[]));
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--overwrite"));
    assert_eq!(std::fs::read(out.join("00000099.tar")).unwrap(), b"old");
    reshard_ok(&reshard_cmd(&pool, &out, &sub, &["--overwrite"]));
    assert!(!out.join("00000099.tar").exists() && !out.join("old_dir").exists());
    assert_eq!(read_samples(&out).len(), 10);
    // A different subset into the same folder is refused too.
    std::fs::write(&sub, npy::write_uids(&s[..5])).unwrap();
    let o = run_reshard(&reshard_cmd(&pool, &out, &sub, &[]));
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("different reshard"));
}

#[test]
fn shuffle_is_seeded_and_a_permutation() {
    let (d, pool) = temp_pool(80, 2);
    let sub = d.path().join("s.npy");
    all_uids_subset(&pool, &sub);
    let outs: Vec<_> = ["a", "b", "c"].iter().map(|n| d.path().join(n)).collect();
    for (o, seed) in outs.iter().zip(["1", "1", "2"]) {
        let extra = [
            "--shuffle-bufsize",
            "20",
            "--shuffle-seed",
            seed,
            "--shard-size",
            "40",
        ];
        reshard_ok(&reshard_cmd(&pool, o, &sub, &extra));
    }
    assert_eq!(
        tree(&outs[0], &["meta.json"]),
        tree(&outs[1], &["meta.json"])
    );
    assert_ne!(
        tree(&outs[0], &["meta.json"]),
        tree(&outs[2], &["meta.json"])
    );
    assert_eq!(read_samples(&outs[0]), read_samples(&outs[2]));
}

#[test]
fn kill_at_any_moment_then_rerun_gives_identical_output() {
    let d = tempfile::tempdir().unwrap();
    let pool = synth_pool(&d.path().join("syn"), 4000, 8, 96);
    let half: Vec<Uid> = pool_uids(&pool).iter().map(|x| x.0).step_by(2).collect();
    let sub = d.path().join("s.npy");
    write_subset(&sub, &half);
    let reference = d.path().join("ref");
    let args = |out: &Path| reshard_cmd(&pool, out, &sub, &["--shard-size", "50", "-j", "2"]);
    let t0 = std::time::Instant::now();
    reshard_ok(&args(&reference));
    let full = t0.elapsed();
    let want = tree(&reference, &["meta.json"]);
    let want_meta = meta_stable(&reference);
    let mut interrupted = 0;
    // Kill at spread-out moments of a run (from start-up to the last shard's rename).
    for (i, frac) in [0.02f64, 0.15, 0.3, 0.45, 0.6, 0.75, 0.9]
        .into_iter()
        .enumerate()
    {
        let delay = full.mul_f64(frac);
        let out = d.path().join(format!("run{i}"));
        let mut child = std::process::Command::new(RESHARD)
            .args(args(&out))
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        // SIGKILL: no cleanup handlers run.
        let _ = child.kill();
        let status = child.wait().unwrap();
        if !status.success() {
            interrupted += 1;
        }
        reshard_ok(&args(&out));
        assert_eq!(
            tree(&out, &["meta.json"]),
            want,
            "after kill at {delay:?} of {full:?}"
        );
        assert_eq!(meta_stable(&out), want_meta);
    }
    assert!(
        interrupted >= 3,
        "only {interrupted} runs were interrupted; the test lost its point"
    );
}

#[test]
fn input_range_output_names_and_dry_run() {
    let (d, pool) = temp_pool(120, 4);
    // Every uid of the pool, so the selection is decided by the input shard range alone.
    let sub = d.path().join("all.npy");
    let all = all_uids_subset(&pool, &sub);
    let shard_uids = |name: &str| -> Vec<Uid> {
        let one = d.path().join(format!("one-{name}"));
        std::fs::create_dir_all(&one).unwrap();
        std::fs::copy(pool.join(name), one.join(name)).unwrap();
        pool_uids(&one).iter().map(|x| x.0).collect()
    };
    let mut want: Vec<Uid> = [shard_uids("00000001.tar"), shard_uids("00000002.tar")].concat();
    want.sort();

    // --dry-run counts and writes nothing.
    let dry = d.path().join("dry");
    let o = reshard_ok(&reshard_cmd_loud(&pool, &dry, &sub, &["--dry-run"]));
    let err = stderr(&o);
    assert!(
        err.contains(&format!("{} would be written", all.len())),
        "{err}"
    );
    assert!(!dry.exists() || std::fs::read_dir(&dry).unwrap().count() == 0);

    // --first-shard 1 -n 2 reads input shards 1 and 2 only; output and stats names follow the
    // --output-* formats; a missing --shard-table means counting by reading.
    let out = d.path().join("out");
    reshard_ok(&reshard_cmd_loud(
        &pool,
        &out,
        &sub,
        &[
            "--first-shard",
            "1",
            "-n",
            "2",
            "--shard-size",
            "25",
            "--output-shard-format",
            "part-{}.tar",
            "--output-shard-stats-format",
            "part-{:03d}.stats.json",
            "--shard-table",
            "no-such-table.json",
            "-q",
        ],
    ));
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("part-"))
        .collect();
    names.sort();
    let n_out = want.len().div_ceil(25);
    let mut expected: Vec<String> = (0..n_out)
        .flat_map(|i| [format!("part-{i}.tar"), format!("part-{i:03}.stats.json")])
        .collect();
    expected.sort();
    assert_eq!(names, expected);
    let mut got: Vec<Uid> = pool_uids(&out).iter().map(|x| x.0).collect();
    got.sort();
    assert_eq!(got, want);
    let meta = read_meta(&out);
    assert_eq!(meta["output_count"], want.len() as u64);
    assert_eq!(meta["output_shard_format"], "part-{}.tar");
}

/// Issue 15 item 1: a kill during `--overwrite` of a finished output must never leave the old
/// meta.json beside a partly deleted output (a rerun of the old command would then say
/// "nothing to do" with shards missing).
#[test]
fn overwrite_invalidates_meta_json_before_any_shard() {
    let (d, pool) = temp_pool(400, 2);
    let old_sub = d.path().join("old.npy");
    let all = all_uids_subset(&pool, &old_sub);
    let half: Vec<Uid> = all.iter().step_by(2).copied().collect();
    let new_sub = d.path().join("new.npy");
    write_subset(&new_sub, &half);
    // Many small shards: clearing the old output takes long enough to be caught in the middle.
    let old_cmd = |out: &Path| reshard_cmd(&pool, out, &old_sub, &["--shard-size", "1", "-j", "2"]);
    let reference = d.path().join("ref");
    reshard_ok(&old_cmd(&reference));
    let want = tree(&reference, &["meta.json"]);
    let n_old = want.keys().filter(|k| k.ends_with(".tar")).count();
    assert_eq!(n_old, 400);
    let new_ref = d.path().join("newref");
    reshard_ok(&reshard_cmd(
        &pool,
        &new_ref,
        &new_sub,
        &["--shard-size", "1"],
    ));
    let want_new = tree(&new_ref, &["meta.json"]);

    let mut caught_mid_clear = 0;
    for attempt in 0..5 {
        if caught_mid_clear >= 2 {
            break;
        }
        let out = d.path().join(format!("out{attempt}"));
        reshard_ok(&old_cmd(&out));
        let mut child = std::process::Command::new(RESHARD)
            .args(reshard_cmd(
                &pool,
                &out,
                &new_sub,
                &["--shard-size", "1", "--overwrite"],
            ))
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Kill as soon as the first old shard is gone.
        let t0 = std::time::Instant::now();
        loop {
            let tars = std::fs::read_dir(&out)
                .unwrap()
                .filter(|e| {
                    let n = e.as_ref().unwrap().file_name();
                    let n = n.to_string_lossy();
                    n.ends_with(".tar") && !n.starts_with('.')
                })
                .count();
            if tars < n_old || t0.elapsed().as_secs() > 20 {
                break;
            }
        }
        let _ = child.kill();
        child.wait().unwrap();
        let tars_left = std::fs::read_dir(&out)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".tar")
            })
            .count();
        if tars_left > 0 && tars_left < n_old {
            caught_mid_clear += 1;
        }
        // The invariant: a meta.json of the old reshard only beside all of its shards.
        if out.join("meta.json").exists() {
            let m = read_meta(&out);
            if m["subset_file"] == p(&old_sub) {
                let missing = want.keys().filter(|k| !out.join(k).exists()).count();
                assert_eq!(
                    missing, 0,
                    "the old meta.json is left beside an output missing {missing} of its files"
                );
            }
        }
        // Rerunning the old command never exits 0 on an incomplete folder.
        let o = run_reshard(&old_cmd(&out));
        if o.status.success() {
            assert_eq!(tree(&out, &["meta.json"]), want, "{}", stderr(&o));
        } else {
            assert!(stderr(&o).contains("--overwrite"), "{}", stderr(&o));
        }
        // And the interrupted --overwrite command, rerun, finishes the new output.
        reshard_ok(&reshard_cmd(
            &pool,
            &out,
            &new_sub,
            &["--shard-size", "1", "--overwrite"],
        ));
        assert_eq!(tree(&out, &["meta.json"]), want_new);
        assert_eq!(meta_stable(&out)["output_count"], 200);
    }
    assert!(
        caught_mid_clear >= 1,
        "no kill landed while the old output was being cleared; the test lost its point"
    );
}

/// A finished reshard to lock, damage or rerun: every uid of a fresh synthetic pool (subset
/// file `s.npy`) resharded into `out` (quietly, with `extra`).
struct Finished {
    /// The temporary folder holding everything (removed when dropped).
    dir: tempfile::TempDir,
    pool: PathBuf,
    sub: PathBuf,
    out: PathBuf,
    /// The arguments that made `out`.
    args: Vec<String>,
}

/// Makes a [`Finished`] reshard of a pool of `samples` samples in `shards` shards.
fn finished_reshard(samples: usize, shards: usize, extra: &[&str]) -> Finished {
    let (dir, pool) = temp_pool(samples, shards);
    let sub = dir.path().join("s.npy");
    all_uids_subset(&pool, &sub);
    let out = dir.path().join("out");
    let args = reshard_cmd(&pool, &out, &sub, extra);
    reshard_ok(&args);
    Finished {
        dir,
        pool,
        sub,
        out,
        args,
    }
}

/// Issue 15 item 2: a second writer on a locked folder fails at once, naming the holder, and
/// touches nothing.
#[test]
fn second_writer_fails_naming_the_lock() {
    let Finished {
        dir: d,
        pool,
        sub,
        out,
        args,
    } = finished_reshard(200, 2, &["--shard-size", "30"]);
    let before = tree(&out, &[]);
    assert!(!out.join(tic_shards::lock::LOCK_FILE).exists());

    // Another writer holds the folder (this test process, through the same lock).
    let held = tic_shards::lock::DirLock::acquire(&out, "tic-reshard").unwrap();
    for extra in [&[][..], &["--overwrite"][..]] {
        let mut a = args.clone();
        a.extend(extra.iter().map(|x| x.to_string()));
        let t0 = std::time::Instant::now();
        let o = run_reshard(&a);
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        let want = format!(
            "{} is being written by another tic-reshard (pid {}, host {})",
            out.display(),
            std::process::id(),
            tic_shards::lock::hostname()
        );
        assert!(stderr(&o).contains(&want), "{}", stderr(&o));
        assert!(t0.elapsed().as_secs() < 10, "it waited for the lock");
    }
    drop(held);
    assert_eq!(
        before,
        tree(&out, &[]),
        "the refused writers changed nothing"
    );

    // Two writers started together: every one that fails names the lock, at least one
    // succeeds, and the output is whole.
    let out2 = d.path().join("out2");
    let args2 = reshard_cmd(&pool, &out2, &sub, &["--shard-size", "30", "--overwrite"]);
    let kids: Vec<_> = (0..2)
        .map(|_| {
            std::process::Command::new(RESHARD)
                .args(&args2)
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outs: Vec<_> = kids
        .into_iter()
        .map(|k| k.wait_with_output().unwrap())
        .collect();
    assert!(outs.iter().any(|o| o.status.success()));
    for o in outs.iter().filter(|o| !o.status.success()) {
        assert!(
            stderr(o).contains("is being written by another tic-reshard (pid "),
            "{}",
            stderr(o)
        );
    }
    assert_eq!(tree(&out2, &["meta.json"]), tree(&out, &["meta.json"]));
}

/// Issue 15 item 3: a finished output with a shard deleted, truncated or corrupted is not
/// "nothing to do": sizes are always checked, checksums with --verify, and damaged shards are
/// named and written again.
#[test]
fn damaged_finished_shards_are_named_and_redone() {
    let extra = ["--shard-size", "50", "--write-shard-table"];
    let Finished {
        dir: _dir,
        out,
        args,
        ..
    } = finished_reshard(300, 3, &extra);
    let want = tree(&out, &["meta.json"]);
    let want_meta = meta_stable(&out);
    // meta.json records every shard's size and CRC-32.
    let shards = want_meta["shards"].as_array().unwrap();
    assert_eq!(shards.len(), 6);
    for (i, s) in shards.iter().enumerate() {
        let name = format!("{i:08}.tar");
        let data = std::fs::read(out.join(&name)).unwrap();
        assert_eq!(s["name"], name);
        assert_eq!(s["samples"], 50);
        assert_eq!(s["bytes"], data.len() as u64);
        assert_eq!(s["crc32"], format!("{:08x}", crc32fast::hash(&data)));
    }
    assert_eq!(want_meta["complete"], true);

    // One shard deleted, one truncated.
    std::fs::remove_file(out.join("00000002.tar")).unwrap();
    let t = std::fs::read(out.join("00000004.tar")).unwrap();
    std::fs::write(out.join("00000004.tar"), &t[..t.len() - 1024]).unwrap();
    let o = reshard_ok(&args);
    let err = stderr(&o);
    assert!(
        err.contains("00000002.tar") && err.contains("00000004.tar"),
        "{err}"
    );
    assert!(!err.contains("00000003.tar"), "{err}");
    assert_eq!(tree(&out, &["meta.json"]), want);
    assert_eq!(meta_stable(&out), want_meta);

    // A byte flipped in place (same size): a plain rerun checks sizes only ...
    let mut c = std::fs::read(out.join("00000001.tar")).unwrap();
    c[700] ^= 0xff;
    std::fs::write(out.join("00000001.tar"), &c).unwrap();
    let o = reshard_ok(&args);
    assert!(!stderr(&o).contains("00000001.tar"), "{}", stderr(&o));
    // ... --verify checks the CRC-32, names the shard and writes it again.
    let mut v = args.clone();
    v.push("--verify".into());
    let o = reshard_ok(&v);
    assert!(
        stderr(&o).contains("00000001.tar") && stderr(&o).contains("CRC-32"),
        "{}",
        stderr(&o)
    );
    assert_eq!(tree(&out, &["meta.json"]), want);
    assert_eq!(meta_stable(&out), want_meta);
    let o = reshard_ok(&v);
    assert!(!stderr(&o).contains("again"), "{}", stderr(&o));
}

/// Issue 15 item 3: shards kept on resume are checked; a truncated one (with its stats file)
/// is written again.
#[test]
fn resume_checks_the_shards_it_keeps() {
    let Finished {
        dir: _dir,
        out,
        args,
        ..
    } = finished_reshard(200, 2, &["--shard-size", "40"]);
    let want = tree(&out, &["meta.json"]);
    let want_meta = meta_stable(&out);
    // The state of a run killed before meta.json: the plan file, no meta.json ...
    let m = read_meta(&out);
    std::fs::write(
        out.join(tic_shards::reshard::PLAN_FILE),
        format!(
            "{{\"plan_fingerprint\": \"{}\", \"output_count\": 200}}",
            m["plan_fingerprint"].as_str().unwrap()
        ),
    )
    .unwrap();
    std::fs::remove_file(out.join("meta.json")).unwrap();
    // ... and shards damaged: one cut at a sample boundary (scans clean, too few samples),
    // one without its end-of-archive blocks, one with a wrong stats file.
    let data = std::fs::read(out.join("00000001.tar")).unwrap();
    let scan = tic_shards::wds::scan_shard(&data, "x");
    let cut = scan.samples[20].offset() as usize;
    std::fs::write(out.join("00000001.tar"), &data[..cut]).unwrap();
    let data = std::fs::read(out.join("00000003.tar")).unwrap();
    std::fs::write(out.join("00000003.tar"), &data[..data.len() - 1024]).unwrap();
    std::fs::write(out.join("00000004_stats.json"), b"{\"successes\": 39}").unwrap();
    let o = reshard_ok(&args);
    let err = stderr(&o);
    for n in ["00000001.tar", "00000003.tar", "00000004.tar"] {
        assert!(err.contains(n), "{n}: {err}");
    }
    assert_eq!(tree(&out, &["meta.json"]), want);
    assert_eq!(meta_stable(&out), want_meta);
}

/// A kill after `meta.json` was written but before the plan file was removed: the rerun finds
/// the reshard finished and removes the leftover plan, so the folder is exactly an uninterrupted
/// run's (the crash soak's "every shard done, meta.json not yet" kill can land there).
#[test]
fn rerun_after_a_kill_between_meta_and_plan_removal_drops_the_plan() {
    let Finished {
        dir: _dir,
        out,
        args,
        ..
    } = finished_reshard(120, 2, &["--shard-size", "40"]);
    let want = tree(&out, &[]);
    let m = read_meta(&out);
    let plan = out.join(tic_shards::reshard::PLAN_FILE);
    std::fs::write(
        &plan,
        format!(
            "{{\"plan_fingerprint\": \"{}\", \"output_count\": 120}}",
            m["plan_fingerprint"].as_str().unwrap()
        ),
    )
    .unwrap();
    reshard_ok(&args);
    assert!(!plan.exists(), "the leftover plan file is still there");
    assert_eq!(tree(&out, &[]), want);
}

/// Issue 15 item 5: per-sample skips that resharder.py also makes exit 0 and are counted; lost
/// input (a truncated tar) makes the output incomplete: exit 1, `"complete": false` naming the
/// damaged input, on every rerun too.
#[test]
fn skips_exit_zero_and_lost_input_is_incomplete() {
    let (d, pool) = temp_pool(60, 3);
    let mut all: Vec<Uid> = pool_uids(&pool).iter().map(|x| x.0).collect();
    all.sort();
    let json = |u: &str| format!("{{\"uid\": \"{u}\"}}").into_bytes();
    write_shard(
        &pool.join("00000003.tar"),
        &[
            ("a", vec![("jpg", b"x".to_vec())]),
            ("b", vec![("json", b"{\"caption\": 1}".to_vec())]),
            ("c", vec![("json", b"not json".to_vec())]),
            ("e", vec![("json", json("zz"))]),
        ],
    );
    std::fs::remove_file(pool.join("sizes.json")).unwrap();
    let sub = d.path().join("s.npy");
    std::fs::write(&sub, npy::write_uids(&all)).unwrap();
    let out = d.path().join("out");
    let o = reshard_ok(&reshard_cmd(&pool, &out, &sub, &[]));
    assert!(
        stderr(&o).contains("skipped 4 input samples"),
        "{}",
        stderr(&o)
    );
    let m = read_meta(&out);
    assert_eq!(m["skipped_count"], 4);
    assert_eq!(m["dropped_count"], 4);
    assert_eq!(m["complete"], true);
    assert_eq!(m["damaged_inputs"], serde_json::json!([]));
    assert_eq!(m["output_count"], 60);

    // A truncated input shard: its tail is lost.
    let full = std::fs::read(pool.join("00000001.tar")).unwrap();
    std::fs::write(pool.join("00000004.tar"), &full[..full.len() / 2 + 100]).unwrap();
    let out2 = d.path().join("out2");
    for attempt in 0..2 {
        let o = run_reshard(&reshard_cmd(&pool, &out2, &sub, &[]));
        assert_eq!(
            o.status.code(),
            Some(1),
            "attempt {attempt}: {}",
            stderr(&o)
        );
        assert!(
            stderr(&o).contains("INCOMPLETE") && stderr(&o).contains("00000004.tar"),
            "{}",
            stderr(&o)
        );
        let m = read_meta(&out2);
        assert_eq!(m["complete"], false);
        assert_eq!(m["damaged_inputs"], serde_json::json!(["00000004.tar"]));
        assert_eq!(m["skipped_count"], 4);
    }
}

/// `--json`: one JSON object on stdout whose counts are meta.json's; nothing on stdout without
/// it (logs stay on stderr); a rerun of a finished output reports the same counts.
#[test]
fn json_counts_equal_meta_json() {
    let (d, pool) = temp_pool(120, 3);
    let uids: Vec<Uid> = pool_uids(&pool).iter().map(|x| x.0).collect();
    let sub = d.path().join("subset.npy");
    std::fs::write(&sub, npy::write_uids(&make_subset(&uids))).unwrap();

    let plain = d.path().join("plain");
    let o = reshard_ok(&reshard_cmd(&pool, &plain, &sub, &["--shard-size", "9"]));
    assert!(o.stdout.is_empty(), "stdout without --json: {:?}", o.stdout);

    let out = d.path().join("out");
    let args = reshard_cmd(&pool, &out, &sub, &["--shard-size", "9", "--json"]);
    for rerun in [false, true] {
        let o = reshard_ok(&args);
        let text = String::from_utf8(o.stdout).unwrap();
        assert_eq!(text.lines().count(), 1, "one JSON line: {text}");
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let meta = read_meta(&out);
        for k in [
            "processed_count",
            "output_count",
            "output_shard_count",
            "dropped_count",
            "skipped_count",
            "error_count",
            "not_found_count",
            "complete",
        ] {
            assert_eq!(v[k], meta[k], "{k} (rerun: {rerun}): {text}");
        }
        assert_eq!(v["output_count"], 40 + 1 /* uid listed twice */);
        assert_eq!(v["not_found_count"], 1);
        assert_eq!(v["already_complete"], rerun);
        assert_eq!(v["succeeded"], true);
        assert_eq!(v["damaged_inputs"], serde_json::json!([]));
    }
}

/// meta.json without the keys that name where the arguments came from.
fn meta_counts(out: &Path) -> serde_json::Value {
    let mut v = meta_stable(out);
    for k in ["subset_file", "cls_file"] {
        v.as_object_mut().unwrap().remove(k);
    }
    v
}

/// Issue 16: `-s -` (npy bytes or raw 16-byte records on stdin) and `-c -` write the same
/// bytes as the files; nothing goes to stdout; both on stdin at once is refused.
#[test]
fn subset_and_class_file_from_stdin() {
    let (d, pool) = temp_pool(120, 2);
    let uids: Vec<Uid> = pool_uids(&pool).iter().map(|x| x.0).collect();
    let subset = make_subset(&uids);
    let sub = d.path().join("subset.npy");
    let npy_bytes = npy::write_uids(&subset);
    std::fs::write(&sub, &npy_bytes).unwrap();
    // The same uids as a raw memmap (resharder's other format): the npy's data part.
    let raw = d.path().join("subset.raw");
    std::fs::write(&raw, &npy_bytes[npy_bytes.len() - 16 * subset.len()..]).unwrap();
    let classes: HashMap<Uid, i64> = subset
        .iter()
        .map(|u| (*u, (u.lo() % 1000) as i64))
        .collect();
    let cls = d.path().join("c.pkl");
    std::fs::write(&cls, pickle::write_uid_classes(classes.iter())).unwrap();
    let dash = Path::new("-");

    let from_file = d.path().join("file");
    reshard_ok(&reshard_cmd(
        &pool,
        &from_file,
        &sub,
        &["--shard-size", "7"],
    ));
    let o = stdin_ok(
        RESHARD,
        &reshard_cmd(&pool, &d.path().join("npy"), dash, &["--shard-size", "7"]),
        &sub,
    );
    assert_no_stdout(&o);
    assert_eq!(
        tree(&from_file, &["meta.json"]),
        tree(&d.path().join("npy"), &["meta.json"])
    );
    assert_eq!(meta_counts(&from_file), meta_counts(&d.path().join("npy")));
    assert_eq!(read_meta(&d.path().join("npy"))["subset_file"], "-");

    // Raw records on stdin: no magic, so raw (a raw *file* named .npy would be refused).
    reshard_ok(&reshard_cmd(
        &pool,
        &d.path().join("rawf"),
        &raw,
        &["--shard-size", "7"],
    ));
    stdin_ok(
        RESHARD,
        &reshard_cmd(&pool, &d.path().join("raw"), dash, &["--shard-size", "7"]),
        &raw,
    );
    assert_eq!(
        tree(&d.path().join("rawf"), &["meta.json"]),
        tree(&d.path().join("raw"), &["meta.json"])
    );
    assert_eq!(
        tree(&from_file, &["meta.json", "sample_ids.npy"]),
        tree(&d.path().join("raw"), &["meta.json", "sample_ids.npy"])
    );
    // Raw records of a wrong length on stdin are refused, naming standard input.
    let bad = d.path().join("bad.raw");
    std::fs::write(&bad, [0u8; 17]).unwrap();
    let o = run_stdin(
        RESHARD,
        &reshard_cmd(&pool, &d.path().join("bad"), dash, &[]),
        &bad,
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("standard input"), "{}", stderr(&o));

    // -c -: the class pickle on stdin.
    let cls_file = d.path().join("clsf");
    reshard_ok(&reshard_cmd(&pool, &cls_file, &sub, &["-c", p(&cls)]));
    stdin_ok(
        RESHARD,
        &reshard_cmd(&pool, &d.path().join("clss"), &sub, &["-c", "-"]),
        &cls,
    );
    assert_eq!(
        tree(&cls_file, &["meta.json"]),
        tree(&d.path().join("clss"), &["meta.json"])
    );
    assert_eq!(meta_counts(&cls_file), meta_counts(&d.path().join("clss")));

    let o = run_stdin(
        RESHARD,
        &reshard_cmd(&pool, &d.path().join("both"), dash, &["-c", "-"]),
        &sub,
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("both read standard input"),
        "{}",
        stderr(&o)
    );
}
