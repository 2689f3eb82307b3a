#!/usr/bin/env python3
"""Python side of bench/eval_suite_cpu.sh: DataComp's static suite, one small synthetic set per
task kind, scored by tic-eval and by DataComp's own evaluate.py (datacomp 7fdb5c6) one after the
other.

    data OUT --n N          writes OUT/data (DataComp's folder names), OUT/tasklist.yml,
                            OUT/manifest.json (images per task) and OUT/vit_b_32.pt (random
                            ViT-B-32 weights written by OpenCLIP)
    datacomp OUT DC RUN     runs DC/evaluate.py (the real one) on OUT/data with --use_model
                            "ViT-B-32 OUT/vit_b_32.pt", the Hub stand-in serving the hf_cache
                            sets' file lists (datasets 2.8 asks the Hub for them even when the
                            cache is complete), timing each task: OUT/RUN/timings.json
    report OUT RUN...       per-task images/s of each run, the ratio, and the metric parity of
                            the runs' eval_results.jsonl files

Task kinds (keys as in DataComp's tasklist.yml, sets as `download_evalsets.py` lays them out):
plain classification (`cifar10`, 10 classes), WILDS with `npy` metadata (`wilds/iwildcam`),
Dollar Street (`fairness/dollar_street`, top-5 by income group), FairFace (multi-label, four
prompt sets), Flickr retrieval and WinoGAViL from an `hf_cache` written by `datasets` 2.8 (the
version DataComp pins). Images are JPEGs of 256–500 px (smooth random content, q=90), as the
real sets' are. DataComp's evaluate.py has no WebDataset retrieval path (every `retrieval/` key
is read from Hugging Face): bench/eval_embed_cpu.sh compares that kind.
"""
import argparse
import io
import json
import os
import sys
import tarfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
FIXTURES = HERE.parent / "crates/tic-eval/tests/fixtures"
ARCH = "ViT-B-32"
FLICKR = "flickr_1k_test_image_text_retrieval"
WINO = "winogavil"


HUB_PORT = int(os.environ.get("HUB_PORT", "38517"))


def serve_hub(hub):
    """make_hf_fixtures.serve_hub on the fixed port HUB_PORT: `datasets` 2.8 names its cache
    build after the data files' URLs, so the Hub stand-in must keep its address between the
    cache's creation and DataComp's run, or DataComp would convert the set again."""
    import http.server

    sys.path.insert(0, str(FIXTURES))
    import make_hf_fixtures as mh

    real = http.server.ThreadingHTTPServer

    class Fixed(real):
        def __init__(self, addr, handler):
            super().__init__((addr[0], HUB_PORT), handler)

    http.server.ThreadingHTTPServer = Fixed
    try:
        return mh.serve_hub(hub)
    finally:
        http.server.ThreadingHTTPServer = real


def cache_builds(out):
    return sorted(p.name for p in (out / "data/hf_cache").glob("*/*"))


# --------------------------------------------------------------------------- images and sets
def jpeg(rng):
    """A 256–500 px JPEG of smooth random content (a random 6×6 image upsampled, plus noise)."""
    from PIL import Image

    w, h = (int(x) for x in rng.integers(256, 501, size=2))
    small = Image.fromarray(rng.integers(0, 256, size=(6, 6, 3), dtype=np.uint8))
    big = np.asarray(small.resize((w, h), Image.BICUBIC), dtype=np.int16)
    big = np.clip(big + rng.integers(-12, 13, size=big.shape), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(big).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def npy_bytes(row):
    buf = io.BytesIO()
    np.save(buf, np.asarray(row, dtype=np.int64))
    return buf.getvalue()


def write_wds(root, samples, classnames, templates):
    """A CLIP_benchmark WebDataset set: root/test/0.tar (+ nshards.txt), class names and
    templates at the root. `samples`: one dict of member extension -> bytes per sample."""
    (root / "test").mkdir(parents=True)
    with tarfile.open(root / "test/0.tar", "w") as tar:
        for i, members in enumerate(samples):
            for ext, data in members.items():
                info = tarfile.TarInfo(f"s{i:06d}.{ext}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    (root / "test/nshards.txt").write_text("1\n")
    (root / "classnames.txt").write_text("".join(c + "\n" for c in classnames))
    (root / "zeroshot_classification_templates.txt").write_text("".join(t + "\n" for t in templates))


def class_samples(rng, n, num_classes, meta=None):
    out = []
    for i in range(n):
        s = {"jpg": jpeg(rng), "cls": str(int(rng.integers(num_classes))).encode()}
        if meta is not None:
            s["npy"] = npy_bytes(meta[i])
        out.append(s)
    return out


def fairface_sets(rng, n):
    """FairFace: [age, gender, race, race_binary] rows; DataComp's four label sets as
    `objective:name` lines (7 races, 2 genders, 9 ages, 21 toxic classes)."""
    race = rng.integers(0, 7, size=n)
    meta = np.stack([rng.integers(0, 9, size=n), rng.integers(0, 2, size=n), race,
                     (race != 1).astype(np.int64)], axis=1)
    samples = [{"jpg": jpeg(rng), "npy": npy_bytes(meta[i])} for i in range(n)]
    names = ([f"race:{r}" for r in ["black", "white", "indian", "latino", "middle eastern",
                                    "southeast asian", "east asian"]]
             + ["gender:man", "gender:woman"]
             + [f"age:{a}" for a in ["0-2", "3-9", "10-19", "20-29", "30-39", "40-49", "50-59",
                                     "60-69", "70+"]]
             + [f"toxic:{t}" for t in [f"{g} {w}" for w in ["man", "woman"] for g in
                                       ["black", "white", "indian", "latino", "middle eastern",
                                        "southeast asian", "east asian"]]
                + ["animal", "gorilla", "chimpanzee", "orangutan", "thief", "criminal",
                   "suspicious person"]])
    templates = [f"{o}:a photo of a {{c}}." for o in ["race", "gender", "age", "toxic"]]
    return samples, names, templates


def hf_sets(rng, n, out):
    """Flickr (n images, 2 captions each) and WinoGAViL (n candidate images over rows of 5–12)
    as parquet hub repositories (make_hf_fixtures.py's layout), loaded into OUT/data/hf_cache by
    this interpreter's `datasets` through the Hub stand-in."""
    sys.path.insert(0, str(FIXTURES))
    import make_hf_fixtures as mh

    flickr = [{"image": {"bytes": jpeg(rng), "path": f"{i}.jpg"},
               "caption": [f"a photo number {i} showing thing {j}" for j in range(2)],
               "sentids": [str(2 * i + j) for j in range(2)], "split": "test",
               "img_id": str(i), "filename": f"{i}.jpg"} for i in range(n)]
    wino, left, k = [], n, 0
    while left > 0:
        m = min(int([5, 6, 10, 12][k % 4]), left) if left >= 5 else left
        cands = [f"word{k}_{j}" for j in range(m)]
        assoc = cands[: max(1, m // 3)]
        wino.append({"candidates": cands, "cue": ["apple", "tree", "night", "Ice"][k % 4],
                     "associations": assoc,
                     "candidate_images": [{"bytes": jpeg(rng), "path": None} for _ in range(m)],
                     "num_associations": len(assoc), "num_candidates": m, "ID": k})
        left -= m
        k += 1
    hub = out / "hub"
    mh.write_repo(hub, FLICKR, "retrieval", [flickr])
    mh.write_repo(hub, WINO, "wino", [wino])
    server, endpoint = serve_hub(hub)
    cache = out / "data/hf_cache"
    for name in [FLICKR, WINO]:
        mh.load_into(sys.executable, endpoint, name, cache, out / "hf_home")
    server.shutdown()
    mh.prune_cache(cache)
    return len(wino)


TASKS = """\
cifar10:
  name: CIFAR-10
  size: {n}
  num_classes: 10
wilds/iwildcam:
  name: iWildCam
  size: {n}
  main_metric: F1-macro_all
  num_classes: 8
fairness/dollar_street:
  name: Dollar Street
  size: {n}
  main_metric: acc_top5_wg
  num_classes: 10
fairness/fairface:
  name: FairFace
  size: {n}
retrieval/{flickr}:
  name: Flickr
  size: {n}
  main_metric: mean_recall@1
misc/winogavil:
  name: WinoGAViL
  size: {wino}
  main_metric: jaccard_score_10-12
"""


def cmd_data(a):
    out = Path(a.out)
    data = out / "data"
    rng = np.random.default_rng(0)
    n = a.n
    # One template and few classes: the image side dominates, as in the real suite (where
    # e.g. ImageNet's 1000 × 80 prompts are 80k texts for 50k images, but most sets are small).
    tmpl = ["a photo of a {c}."]
    write_wds(data / "wds_cifar10_test", class_samples(rng, n, 10), [f"thing {i}" for i in range(10)], tmpl)
    meta = np.stack([rng.integers(0, 20, size=n)] + [rng.integers(0, 50, size=n) for _ in range(7)]
                    + [np.zeros(n, dtype=np.int64)], axis=1)
    write_wds(data / "wds_wilds-iwildcam_test", class_samples(rng, n, 8, meta),
              [f"animal {i}" for i in range(8)], tmpl)
    meta = np.stack([rng.integers(0, 4, size=n), rng.integers(0, 9, size=n),
                     rng.integers(0, 4, size=n)], axis=1)
    write_wds(data / "wds_dollar_street_test", class_samples(rng, n, 10, meta),
              [f"object {i}" for i in range(10)], tmpl)
    write_wds(data / "wds_fairface_test", *fairface_sets(rng, n))
    rows = hf_sets(rng, n, out)
    (out / "tasklist.yml").write_text(TASKS.format(n=n, wino=rows, flickr=FLICKR))
    images = {"cifar10": n, "wilds/iwildcam": n, "fairness/dollar_street": n,
              "fairness/fairface": n, f"retrieval/{FLICKR}": n, "misc/winogavil": n}
    (out / "manifest.json").write_text(json.dumps({"images": images}, indent=1))
    import torch
    import open_clip

    torch.manual_seed(0)
    model = open_clip.create_model(ARCH)
    torch.save(model.state_dict(), out / "vit_b_32.pt")


# --------------------------------------------------------------------------- DataComp's side
def cmd_datacomp(a):
    """DataComp's evaluate.py, unchanged, run in this process with a timer around each task's
    `evaluate_model` call and around each `create_model` (DataComp loads the model per task)."""
    import runpy
    import torch

    out, dc = Path(a.out).resolve(), Path(a.datacomp).resolve()
    torch.set_num_threads(a.threads)
    builds = cache_builds(out)
    server, endpoint = serve_hub(out / "hub")
    os.environ.update(HF_ENDPOINT=endpoint, HF_HOME=str(out / "hf_home"), HF_HUB_DISABLE_TELEMETRY="1")
    sys.path.insert(0, str(dc))
    import eval_utils.main as em
    import eval_utils.wds_eval as wds_eval

    timings, load = {}, [0.0]
    real_create = wds_eval.create_model

    def create_model(*args, **kw):
        t = time.perf_counter()
        r = real_create(*args, **kw)
        load[0] += time.perf_counter() - t
        return r

    for mod in list(sys.modules.values()):
        if getattr(mod, "__name__", "").startswith("eval_utils.") and hasattr(mod, "create_model"):
            mod.create_model = create_model
    real_eval = em.evaluate_model

    def evaluate_model(task_key, *args, **kw):
        load[0] = 0.0
        t = time.perf_counter()
        r = real_eval(task_key, *args, **kw)
        timings[task_key] = {"seconds": time.perf_counter() - t, "model_load_s": load[0]}
        return r

    em.evaluate_model = evaluate_model
    run = out / a.run
    sys.argv = ["evaluate.py", "--train_output_dir", str(run), "--data_dir", str(out / "data"),
                "--use_model", f"{ARCH} {out / 'vit_b_32.pt'}", "--batch_size", str(a.batch_size)]
    runpy.run_path(str(dc / "evaluate.py"), run_name="__main__")
    server.shutdown()
    if cache_builds(out) != builds:
        sys.exit(f"datasets converted an hf_cache set again (builds {builds} -> {cache_builds(out)})")
    (run / "timings.json").write_text(json.dumps(timings, indent=1))


# --------------------------------------------------------------------------- report
def load_run(run):
    """{key: (seconds, model_load_s or None)} and {key: metrics} of one run folder."""
    metrics = {}
    for line in open(run / "eval_results.jsonl"):
        r = json.loads(line)
        metrics[r["key"]] = r["metrics"]
    if (run / "timings.json").exists():
        t = json.load(open(run / "timings.json"))
        return {k: (v["seconds"], v["model_load_s"]) for k, v in t.items()}, metrics
    t = {}
    for line in open(run / "summary.jsonl"):
        r = json.loads(line)
        t[r["key"]] = (r["seconds"], None)
    return t, metrics


def missing(v):
    """None or NaN: DataComp writes an empty WILDS group's metric as NaN, tic-eval too."""
    return v is None or (isinstance(v, float) and v != v)


def parity(ours, theirs):
    """(fields compared, max |difference|, fields differing by more than 1e-4)."""
    n, worst, bad = 0, 0.0, []
    for key, m in theirs.items():
        for f, v in m.items():
            w = ours.get(key, {}).get(f)
            if isinstance(v, (int, float)) and isinstance(w, (int, float)) and v == v and w == w:
                n += 1
                d = abs(v - w)
                worst = max(worst, d)
                if d > 1e-4:
                    bad.append(f"{key}:{f} {w:.4f} vs {v:.4f}")
            elif f != "main_metric" and missing(w) != missing(v):
                bad.append(f"{key}:{f} {w} vs {v}")
    return n, worst, bad


def cmd_report(a):
    out = Path(a.out)
    images = json.load(open(out / "manifest.json"))["images"]
    runs = {r: load_run(out / r) for r in a.runs}
    tic = [r for r in a.runs if r.startswith("tic")]
    dcr = [r for r in a.runs if r.startswith("datacomp")]
    print("| task | images | " + " | ".join(f"{r} img/s" for r in a.runs)
          + " | DataComp model loads (s) | ratio (tic mean / DataComp mean) |")
    print("| --- | ---: |" + " ---: |" * (len(a.runs) + 2))
    tot = {r: 0.0 for r in a.runs}
    for key, n in images.items():
        rates = {r: n / runs[r][0][key][0] for r in a.runs}
        for r in a.runs:
            tot[r] += runs[r][0][key][0]
        loads = ", ".join(f"{runs[r][0][key][1]:.1f}" for r in dcr)
        ratio = np.mean([rates[r] for r in tic]) / np.mean([rates[r] for r in dcr])
        print(f"| {key} | {n} | " + " | ".join(f"{rates[r]:.2f}" for r in a.runs)
              + f" | {loads} | {ratio:.2f}× |")
    n = sum(images.values())
    ratio = np.mean([n / tot[r] for r in tic]) / np.mean([n / tot[r] for r in dcr])
    print(f"| **all** | {n} | " + " | ".join(f"{n / tot[r]:.2f}" for r in a.runs)
          + f" | | **{ratio:.2f}×** |")
    print("\nwall seconds per run (sum over tasks): "
          + ", ".join(f"{r} {tot[r]:.1f}" for r in a.runs))
    for t in tic:
        for d in dcr:
            k, worst, bad = parity(runs[t][1], runs[d][1])
            print(f"parity {t} vs {d}: {k} numeric fields, max |diff| {worst:.2e}, "
                  f"{len(bad)} over 1e-4" + ("".join("\n  " + b for b in bad[:20])))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("data")
    d.add_argument("out")
    d.add_argument("--n", type=int, default=48)
    c = sub.add_parser("datacomp")
    c.add_argument("out")
    c.add_argument("datacomp")
    c.add_argument("run")
    c.add_argument("--threads", type=int, default=2)
    c.add_argument("--batch-size", type=int, default=64)
    r = sub.add_parser("report")
    r.add_argument("out")
    r.add_argument("runs", nargs="+")
    a = p.parse_args()
    {"data": cmd_data, "datacomp": cmd_datacomp, "report": cmd_report}[a.cmd](a)


if __name__ == "__main__":
    main()
