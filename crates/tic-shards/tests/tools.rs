//! End-to-end tests of `tic-stats`, `tic-sizes`, `tic-wds-convert` and `tic-make-tars`.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use tic_shards::wds::TarSampleWriter;
use tic_shards::{npy, Uid};
use tic_testkit::shards::{pool_uids, read_samples, reshard_args, write_subset};
use tic_testkit::{failed_stderr, fixture_dir, ok, run};

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A temporary folder with a synthetic pool of `samples` samples in 2 shards and, under
/// `splits/2014`, its first 30 samples resharded 8 to a shard; returns the folder, the pool and
/// the `splits` root.
fn pool_and_2014_split(samples: usize) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let (d, pool) = temp_pool(samples, 2);
    let root = d.path().join("splits");
    reshard_into(&pool, &root.join("2014"), 30, 8);
    (d, pool, root)
}

/// `tic-make-tars`' arguments packing the images under `imgs` that the TSV `input` lists into
/// `out` (`--input INPUT --image-dir IMGS --output-dir OUT`), then `extra`.
fn make_tars_args(input: &str, imgs: &Path, out: &Path, extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = [
        "--input",
        input,
        "--image-dir",
        s(imgs),
        "--output-dir",
        s(out),
    ]
    .iter()
    .map(|x| x.to_string())
    .collect();
    v.extend(extra.iter().map(|x| x.to_string()));
    v
}

/// Runs `bin` with owned `args`; returns its output.
fn run_strings(bin: &str, args: &[String]) -> std::process::Output {
    run(bin, &args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// Asserts that each file `rel` below `root` holds exactly the text `want`, for each
/// `(rel, want)` of `files`.
fn assert_file_texts(root: &Path, files: &[(&str, &str)]) {
    for (rel, want) in files {
        assert_eq!(std::fs::read_to_string(root.join(rel)).unwrap(), *want);
    }
}

/// Reshards the first `n` pool samples into `out`.
fn reshard_into(pool: &Path, out: &Path, n: usize, shard_size: usize) {
    let uids: Vec<Uid> = pool_uids(pool).iter().map(|x| x.0).take(n).collect();
    let sub = pool.join(format!("subset-{n}-{shard_size}.npy"));
    write_subset(&sub, &uids);
    ok(&run_strings(
        RESHARD,
        &reshard_args(pool, out, &sub, shard_size),
    ));
}

#[test]
fn stats_and_sizes_over_both_layouts() {
    let (_d, pool, root) = pool_and_2014_split(100);
    reshard_into(&pool, &root.join("2015/0"), 20, 8);
    // A shard with one sample lacking json: it is not counted.
    let mut w = TarSampleWriter::new(Vec::new());
    w.append("a", "jpg", b"1", 0).unwrap();
    w.append("b", "jpg", b"1", 0).unwrap();
    w.append("b", "json", b"{}", 0).unwrap();
    std::fs::write(root.join("2015/0/00000099.tar"), w.finish().unwrap()).unwrap();
    for f in std::fs::read_dir(root.join("2014")).unwrap() {
        let p = f.unwrap().path();
        if p.to_string_lossy().ends_with("_stats.json") {
            std::fs::remove_file(p).unwrap();
        }
    }
    std::fs::remove_file(root.join("2015/0/00000001_stats.json")).unwrap();
    let o = run(
        env!("CARGO_BIN_EXE_tic-stats"),
        &["--url", s(&root), "--num-proc", "2", "-q"],
    );
    ok(&o);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("6 shards counted"), "{err}"); // 4 in 2014, 00000001 and 00000099 in 2015/0
    assert!(err.contains("2 already had stats"), "{err}");
    assert_file_texts(
        &root,
        &[
            ("2014/00000003_stats.json", "{\"successes\": 6}"),
            ("2015/0/00000099_stats.json", "{\"successes\": 1}"),
        ],
    );
    // Rerun: nothing left to do.
    let o = run(env!("CARGO_BIN_EXE_tic-stats"), &["--url", s(&root), "-q"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("0 shards counted"));

    ok(&run(env!("CARGO_BIN_EXE_tic-sizes"), &["--url", s(&root)]));
    assert_file_texts(
        &root,
        &[
            (
                "2014/sizes.json",
                "{\"00000000.tar\": 8, \"00000001.tar\": 8, \"00000002.tar\": 8, \"00000003.tar\": 6}",
            ),
            (
                "2015/0/sizes.json",
                "{\"00000000.tar\": 8, \"00000001.tar\": 8, \"00000002.tar\": 4, \"00000099.tar\": 1}",
            ),
        ],
    );
}

/// `--json` on tic-stats and tic-sizes: one JSON object on stdout equal to the counts printed
/// on stderr and written in the stats / sizes files; nothing on stdout without it.
#[test]
fn stats_and_sizes_json_equal_the_counts() {
    let (_d, pool, root) = pool_and_2014_split(60);
    reshard_into(&pool, &root.join("2015"), 20, 8);
    std::fs::remove_file(root.join("2014/00000001_stats.json")).unwrap();
    std::fs::remove_file(root.join("2015/00000002_stats.json")).unwrap();
    let stats = env!("CARGO_BIN_EXE_tic-stats");
    let sizes = env!("CARGO_BIN_EXE_tic-sizes");
    let parse = |o: &std::process::Output| -> serde_json::Value {
        ok(o);
        let text = String::from_utf8(o.stdout.clone()).unwrap();
        assert_eq!(text.lines().count(), 1, "one JSON line: {text}");
        serde_json::from_str(&text).unwrap()
    };

    let o = run(stats, &["--url", s(&root), "-q", "--json"]);
    let v = parse(&o);
    let err = String::from_utf8_lossy(&o.stderr);
    // 2014/00000001 holds 8 samples, 2015/00000002 the last 4 of 20.
    assert_eq!(
        v,
        serde_json::json!({"shards_counted": 2, "samples": 12, "shards_skipped": 5, "failed": []})
    );
    assert!(
        err.contains("2 shards counted (12 samples), 5 already had stats, 0 failed"),
        "{err}"
    );

    let o = run(sizes, &["--url", s(&root), "--json"]);
    let v = parse(&o);
    let mut listed = 0u64;
    for split in ["2014", "2015"] {
        let t: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(&std::fs::read(root.join(split).join("sizes.json")).unwrap())
                .unwrap();
        listed += t.values().map(|x| x.as_u64().unwrap()).sum::<u64>();
    }
    assert_eq!(listed, 50);
    assert_eq!(
        v,
        serde_json::json!({"splits": 2, "samples": listed, "missing_stats": []})
    );
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("in 2 splits (50 samples)"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );

    // Without --json, stdout stays empty (the human summary is on stderr, unchanged).
    for o in [
        run(stats, &["--url", s(&root), "-q"]),
        run(sizes, &["--url", s(&root)]),
    ] {
        ok(&o);
        assert_no_stdout(&o);
    }
}

/// Issue 16: `pipe:` patterns on tic-stats / tic-sizes count from the streams: the same table
/// as the files' sizes.json, nothing written; a failing or truncated stream is a named error.
#[test]
fn stats_and_sizes_count_pipe_streams() {
    let (_d, _pool, root) = pool_and_2014_split(60);
    ok(&run(env!("CARGO_BIN_EXE_tic-sizes"), &["--url", s(&root)]));
    let want = std::fs::read_to_string(root.join("2014/sizes.json")).unwrap();
    let before: Vec<_> = std::fs::read_dir(root.join("2014")).unwrap().collect();
    let url = format!(
        "pipe:cat {}/{{00000000..00000003}}.tar",
        root.join("2014").display()
    );
    let o = run(env!("CARGO_BIN_EXE_tic-sizes"), &["--url", &url]);
    ok(&o);
    assert_eq!(String::from_utf8(o.stdout).unwrap().trim_end(), want);
    let o = run(
        env!("CARGO_BIN_EXE_tic-stats"),
        &["--url", &url, "-q", "--json"],
    );
    ok(&o);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        (v["shards_counted"].as_u64(), v["samples"].as_u64()),
        (Some(4), Some(30))
    );
    assert_eq!(
        v["shards"],
        serde_json::from_str::<serde_json::Value>(&want).unwrap()
    );
    assert_eq!(
        std::fs::read_dir(root.join("2014")).unwrap().count(),
        before.len()
    );
    let cut = format!(
        "pipe:head -c 1000 {}/00000000.tar",
        root.join("2014").display()
    );
    for (url, want) in [
        ("pipe:false", "exit status: 1"),
        (cut.as_str(), "truncated tar stream"),
    ] {
        for bin in [
            env!("CARGO_BIN_EXE_tic-stats"),
            env!("CARGO_BIN_EXE_tic-sizes"),
        ] {
            let o = run(bin, &["--url", url]);
            let err = String::from_utf8_lossy(&o.stderr);
            assert!(!o.status.success(), "{bin} {url}");
            assert!(
                err.contains(url) && err.contains(want),
                "{bin} {url}: {err}"
            );
        }
    }
}

/// Issue 16: `tic-make-tars --input -` reads the TSV from stdin and writes the same shards as
/// the file (named by --name, which it requires); stdout stays empty.
#[test]
fn make_tars_reads_the_tsv_from_stdin() {
    let d = tempfile::tempdir().unwrap();
    let imgs = d.path().join("imgs");
    std::fs::create_dir_all(&imgs).unwrap();
    let mut tsv = String::from("path\tcaption\n");
    for i in 0..5 {
        std::fs::write(imgs.join(format!("{i}.jpg")), format!("jpeg{i}")).unwrap();
        tsv.push_str(&format!("{i}.jpg\tcaption {i}\n"));
    }
    let csv = d.path().join("train_batch_1.csv");
    std::fs::write(&csv, &tsv).unwrap();
    let bin = env!("CARGO_BIN_EXE_tic-make-tars");
    let args = |input: &str, out: &Path| -> Vec<String> {
        make_tars_args(input, &imgs, out, &["-z", "2", "--datacomp-compat", "-q"])
    };
    let with_stdin = |argv: &[String]| run_stdin(bin, argv, &csv);
    let from_file = d.path().join("file");
    ok(&run_strings(bin, &args(s(&csv), &from_file)));
    let from_stdin = d.path().join("stdin");
    let mut argv = args("-", &from_stdin);
    argv.extend(["--name", "train_batch_1"].map(String::from));
    let o = with_stdin(&argv);
    ok(&o);
    assert_no_stdout(&o);
    assert!(from_stdin.join("train_batch_1__00000002.tar").exists());
    assert_eq!(tree(&from_file, &[]), tree(&from_stdin, &[]));

    // Without --name there is no file stem to name the shards after.
    let o = with_stdin(&args("-", &d.path().join("noname")));
    let err = failed_stderr(&o);
    assert!(err.contains("--input -") && err.contains("--name"), "{err}");
    // A bad header is named as standard input.
    std::fs::write(&csv, "file\tcaption\n0.jpg\tx\n").unwrap();
    let mut argv = args("-", &d.path().join("badhdr"));
    argv.extend(["--name", "x"].map(String::from));
    let o = with_stdin(&argv);
    let err = failed_stderr(&o);
    assert!(
        err.contains("standard input") && err.contains("no \"path\" column"),
        "{err}"
    );
}

#[test]
fn wds_convert_retrieval_and_classification() {
    let (d, pool) = temp_pool(60, 1);
    let out = d.path().join("ret");
    reshard_into(&pool, &out, 25, 10);
    let bin = env!("CARGO_BIN_EXE_tic-wds-convert");
    ok(&run(bin, &[s(&out), "retrieval"]));
    let read = |p: &str| std::fs::read_to_string(out.join(p)).unwrap();
    assert_eq!(read("nshards.txt"), "3\n");
    assert_eq!(read("count.txt"), "25\n");
    assert_eq!(read("dataset_type.txt"), "retrieval\n");
    for i in 0..3 {
        assert!(out.join(format!("{i}.tar")).exists() && out.join(format!("{i}.json")).exists());
    }
    assert!(!out.join("00000000.tar").exists() && !out.join("classnames.txt").exists());
    // Rerun is harmless; classification adds class names and templates.
    ok(&run(bin, &[s(&out), "classification"]));
    assert_eq!(read("classnames.txt").lines().count(), 1000);
    assert!(read("zeroshot_classification_templates.txt").contains("a photo of a {c}."));
    assert_eq!(read_samples(&out).len(), 25);
    // A folder with neither meta.json nor sizes.json is refused with a clear message.
    let bare = d.path().join("bare");
    std::fs::create_dir(&bare).unwrap();
    std::fs::copy(pool.join("00000000.tar"), bare.join("00000000.tar")).unwrap();
    let o = run(bin, &[s(&bare), "retrieval"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("neither meta.json"));
    assert!(bare.join("00000000.tar").exists(), "nothing renamed");
}

#[test]
fn make_tars_packs_and_keeps_sources_unless_asked() {
    let d = tempfile::tempdir().unwrap();
    let imgs = d.path().join("imgs");
    std::fs::create_dir_all(imgs.join("sub")).unwrap();
    for i in 0..4 {
        std::fs::write(imgs.join(format!("sub/{i}.jpg")), format!("jpeg{i}")).unwrap();
    }
    let csv = d.path().join("train_batch_0.csv");
    std::fs::write(
        &csv,
        "path\tcaption\nsub/0.jpg\ta dog\nsub/missing.jpg\tgone\nsub/1.jpg\tcafé \"quoted\"\nsub/2.jpg\tc2\nsub/3.jpg\tc3\n",
    )
    .unwrap();
    let out = d.path().join("tars");
    let bin = env!("CARGO_BIN_EXE_tic-make-tars");
    let o = run_strings(bin, &make_tars_args(s(&csv), &imgs, &out, &["-z", "2"]));
    ok(&o);
    assert!(String::from_utf8_lossy(&o.stderr).contains("skipped 1 annotations"));
    let got = read_samples(&out);
    assert_eq!(got.len(), 4);
    assert_eq!(got["0"]["jpg"], b"jpeg0");
    assert_eq!(got["0"]["json"], b"{\"caption\": \"a dog\"}");
    // Row index 2 (the missing image was row 1); pandas-style quoting is undone.
    assert_eq!(
        got["2"]["json"],
        b"{\"caption\": \"caf\\u00e9 \\\"quoted\\\"\"}"
    );
    assert!(out.join("train_batch_0__00000000.tar").exists());
    assert!(out.join("train_batch_0__00000001.tar").exists());
    assert!(
        !out.join("train_batch_0__00000002.tar").exists(),
        "no empty trailing shard"
    );
    assert!(
        imgs.join("sub/0.jpg").exists(),
        "sources are kept by default"
    );

    let out2 = d.path().join("tars2");
    let extra = ["--datacomp-compat", "--delete-source", "-q"];
    ok(&run_strings(
        bin,
        &make_tars_args(s(&csv), &imgs, &out2, &extra),
    ));
    let got = read_samples(&out2);
    assert_eq!(got["3"]["txt"], b"c2");
    let j: serde_json::Value = serde_json::from_slice(&got["3"]["json"]).unwrap();
    assert_eq!(j["uid"].as_str().unwrap().len(), 32);
    assert_eq!(
        std::fs::read_to_string(out2.join("sizes.json")).unwrap(),
        "{\"train_batch_0__00000000.tar\": 4}"
    );
    assert!(!imgs.join("sub/0.jpg").exists(), "--delete-source deletes");

    // tic-sizes rebuilds the same table from the _stats.json files (names with `_` included).
    std::fs::remove_file(out2.join("sizes.json")).unwrap();
    let parent = d.path().join("sizes-check");
    std::fs::create_dir(&parent).unwrap();
    std::fs::rename(&out2, parent.join("tars2")).unwrap();
    let out2 = parent.join("tars2");
    ok(&run(
        env!("CARGO_BIN_EXE_tic-sizes"),
        &["--url", s(&parent)],
    ));
    assert_eq!(
        std::fs::read_to_string(out2.join("sizes.json")).unwrap(),
        "{\"train_batch_0__00000000.tar\": 4}"
    );
    // ... and tic-wds-convert turns the folder into a CLIP_benchmark retrieval set.
    ok(&run(
        env!("CARGO_BIN_EXE_tic-wds-convert"),
        &[s(&out2), "retrieval"],
    ));
    assert!(out2.join("0.tar").exists() && out2.join("0.json").exists());
    assert_eq!(
        std::fs::read_to_string(out2.join("count.txt")).unwrap(),
        "4\n"
    );
    assert_eq!(
        std::fs::read_to_string(out2.join("sizes.json")).unwrap(),
        "{\"0.tar\": 4}"
    );

    // A CSV without a caption column is an error that names the file.
    std::fs::write(&csv, "path\ttext\nsub/0.jpg\tx\n").unwrap();
    let o = run_strings(bin, &make_tars_args(s(&csv), &imgs, &out, &[]));
    let e = failed_stderr(&o);
    assert!(
        e.contains("train_batch_0.csv") && e.contains("caption"),
        "{e}"
    );
}

#[test]
fn npy_writer_matches_numpy_np_save() {
    let dir = fixture_dir("tic-shards").join("npy");
    for n in [0, 1, 3, 1000] {
        let text = std::fs::read_to_string(dir.join(format!("uids_{n}.txt"))).unwrap();
        let mut uids: Vec<Uid> = text.lines().map(|l| Uid::parse(l).unwrap()).collect();
        tic_shards::uid::sort_unique(&mut uids);
        let want = std::fs::read(dir.join(format!("uids_{n}.npy"))).unwrap();
        assert_eq!(npy::write_uids(&uids), want, "n = {n}");
        assert_eq!(npy::read_uids(&want, "x").unwrap(), uids);
    }
}

#[test]
fn pickle_readers_match_python_pickles() {
    use std::collections::BTreeMap;
    let dir = fixture_dir("tic-shards").join("pickle");
    let expected: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("expected.json")).unwrap()).unwrap();
    let uids = |v: &serde_json::Value| -> Vec<Uid> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|u| Uid::parse(u.as_str().unwrap()).unwrap())
            .collect()
    };
    for proto in [2, 4, 5] {
        let read = |n: &str| std::fs::read(dir.join(format!("{n}.p{proto}.pkl"))).unwrap();
        let got = tic_shards::pickle::read_year_uids(&read("year_uids"), "y").unwrap();
        let want: BTreeMap<String, Vec<Uid>> = expected["year_uids"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), uids(v)))
            .collect();
        assert_eq!(got, want, "protocol {proto}");
        let got =
            tic_shards::pickle::read_year_synset_uids(&read("year_synset_uids"), "s").unwrap();
        assert_eq!(
            got["2016"]["n01440764"],
            uids(&expected["year_synset_uids"]["2016"]["n01440764"])
        );
        assert_eq!(got["2016"].len(), 2);
        let got = tic_shards::pickle::read_uid_classes(&read("uid_classes"), "c").unwrap();
        assert_eq!(got.len(), 20);
        for (u, c) in expected["uid_classes"].as_object().unwrap() {
            assert_eq!(got[&Uid::parse(u).unwrap()], c.as_i64().unwrap());
        }
    }
}

#[test]
fn pickle_decoder_panics_become_errors() {
    // Found by fuzz/pickles: serde-pickle panics ordering a set it builds from this input.
    let dir = fixture_dir("tic-shards").join("pickle");
    let bytes = std::fs::read(dir.join("fuzz_crash_unordered_set.pkl")).unwrap();
    let err = tic_shards::pickle::read_year_uids(&bytes, "crash.pkl").unwrap_err();
    assert!(
        err.to_string()
            .starts_with("crash.pkl: not a readable pickle"),
        "{err}"
    );
    assert!(tic_shards::pickle::read_year_synset_uids(&bytes, "crash.pkl").is_err());
    assert!(tic_shards::pickle::read_uid_classes(&bytes, "crash.pkl").is_err());
}

/// Issue 15 items 5 and 6: tic-stats and tic-sizes refuse a reshard that lost input (unless
/// --accept-incomplete), and tic-sizes names the shards it leaves out for lack of stats.
#[test]
fn stats_and_sizes_refuse_incomplete_reshards() {
    let (d, pool) = temp_pool(60, 2);
    let sub = d.path().join("all.npy");
    all_uids_subset(&pool, &sub);
    let root = d.path().join("splits");
    // A healthy split with one tar that has no stats file.
    reshard_into(&pool, &root.join("2015"), 10, 4);
    std::fs::remove_file(root.join("2015/00000001_stats.json")).unwrap();
    // A truncated input shard: the reshard is incomplete (exit 1, "complete": false).
    let full = std::fs::read(pool.join("00000001.tar")).unwrap();
    std::fs::write(pool.join("00000002.tar"), &full[..full.len() / 2 + 100]).unwrap();
    let o = run_reshard(&reshard_cmd(&pool, &root.join("2014"), &sub, &[]));
    assert_eq!(o.status.code(), Some(1));

    for bin in [
        env!("CARGO_BIN_EXE_tic-stats"),
        env!("CARGO_BIN_EXE_tic-sizes"),
    ] {
        let o = run(bin, &["--url", s(&root)]);
        assert!(!o.status.success(), "{bin}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("2014 is an incomplete reshard")
                && err.contains("00000002.tar")
                && err.contains("--accept-incomplete"),
            "{bin}: {err}"
        );
    }
    assert!(
        !root.join("2015/sizes.json").exists(),
        "refused before writing"
    );
    let o = run(
        env!("CARGO_BIN_EXE_tic-sizes"),
        &["--url", s(&root), "--accept-incomplete"],
    );
    ok(&o);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!(
            "{} has no _stats.json",
            root.join("2015/00000001.tar").display()
        )),
        "{err}"
    );
    let sizes: std::collections::BTreeMap<String, u64> =
        serde_json::from_slice(&std::fs::read(root.join("2015/sizes.json")).unwrap()).unwrap();
    assert_eq!(sizes.len(), 2);
    ok(&run(
        env!("CARGO_BIN_EXE_tic-stats"),
        &["--url", s(&root), "--accept-incomplete", "-q"],
    ));
    assert!(root.join("2015/00000001_stats.json").exists());
}

/// Every binary's `-h` / `--help` opens with its own job and the script it replaces (issue 16).
#[test]
fn help_opens_with_each_binarys_job() {
    tic_testkit::check_help!(
        ("tic-make-tars", "create_tars.py"),
        ("tic-reshard", "resharder.py"),
        ("tic-sizes", "add_sizes.py"),
        ("tic-stats", "generate_stats.py"),
        ("tic-synth", "download_upstream.py"),
        ("tic-wds-convert", "convert_wds.sh"),
    );
}
