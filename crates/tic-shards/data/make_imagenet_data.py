"""Regenerate imagenet/*.txt (beside this script) from the timm and clip_benchmark wheels on PyPI."""
import glob
import json
import os
import subprocess
import sys
import tempfile
import zipfile

here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "imagenet")
with tempfile.TemporaryDirectory() as d:
    subprocess.check_call([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", d,
                           "clip_benchmark==1.4.0", "timm"])
    cb = zipfile.ZipFile(glob.glob(f"{d}/clip_benchmark-*.whl")[0])
    names = json.loads(cb.read("clip_benchmark/datasets/en_classnames.json"))["imagenet1k"]
    templates = json.loads(cb.read("clip_benchmark/datasets/en_zeroshot_classification_templates.json"))["imagenet1k"]
    tm = zipfile.ZipFile(glob.glob(f"{d}/timm-*.whl")[0])
    synsets = tm.read("timm/data/_info/imagenet_synsets.txt").decode().split()
assert len(names) == len(synsets) == 1000 and len(templates) == 80
for fname, lines in [("classnames.txt", names), ("zeroshot_classification_templates.txt", templates),
                     ("synsets.txt", synsets)]:
    with open(os.path.join(here, fname), "w") as f:
        f.write("\n".join(lines) + "\n")
print("wrote", here)
