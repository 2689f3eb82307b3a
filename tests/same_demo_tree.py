#!/usr/bin/env python3
"""Compares two `make demo` output trees, timings aside (issue 28's before/after proof).

    python3 tests/same_demo_tree.py BEFORE_DIR AFTER_DIR

Every file must exist in both trees with the same bytes, except the fields that measure time
on the machine that ran the demo, which are masked before comparing:

- `metrics.jsonl`: the keys `samples_per_s`, `data_wait_s`, `step_s` of each line;
- `out.log`: the `N samples/s` figure of tic-train's last line;
- `tic-eval.md`: the `seconds`, `images/s`, `texts/s` columns;
- `report.md`: the `Training time` and `Samples/s` columns of the training-runs table;
- `meta.json` (tic-reshard): the `cwd` the resharder ran in (where the checkout lies, so two
  checkouts can be compared).

Checkpoints, eval records, metrics, tables, plots and every other file compare byte for byte.
Exits 1 listing each difference (the first differing line of a text file), 0 when the trees
are the same.
"""
import json
import re
import sys
from pathlib import Path

TIMING_KEYS = ("samples_per_s", "data_wait_s", "step_s")


def mask_metrics(text: str) -> str:
    out = []
    for line in text.splitlines():
        rec = json.loads(line)
        for k in TIMING_KEYS:
            rec.pop(k, None)
        out.append(json.dumps(rec, sort_keys=True))
    return "\n".join(out)


def mask_table_columns(text: str, header_cells: tuple) -> str:
    """Blanks the named columns of every Markdown table whose header names them."""
    out, cols = [], None
    for line in text.splitlines():
        if line.startswith("|"):
            cells = line.split("|")
            if cols is None and any(c.strip() in header_cells for c in cells):
                cols = [i for i, c in enumerate(cells) if c.strip() in header_cells]
            elif cols is not None:
                for i in cols:
                    if i < len(cells) and not set(cells[i].strip()) <= set("-:"):
                        cells[i] = " * "
                line = "|".join(cells)
        else:
            cols = None
        out.append(line)
    return "\n".join(out)


def mask_cwd(text: str) -> str:
    meta = json.loads(text)
    if isinstance(meta, dict) and "cwd" in meta:
        meta["cwd"] = "*"
    return json.dumps(meta, sort_keys=True)


def masked(rel: str, data: bytes):
    name = rel.rsplit("/", 1)[-1]
    if name == "meta.json":
        return mask_cwd(data.decode())
    if name == "metrics.jsonl":
        return mask_metrics(data.decode())
    if name == "out.log":
        return re.sub(r"[0-9.]+ samples/s", "* samples/s", data.decode())
    if name == "tic-eval.md":
        return mask_table_columns(data.decode(), ("seconds", "images/s", "texts/s"))
    if name == "report.md":
        return mask_table_columns(data.decode(), ("Training time", "Samples/s"))
    return data


def files(root: Path) -> set:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def first_difference(a, b) -> str:
    if isinstance(a, str):
        for i, (x, y) in enumerate(zip(a.splitlines(), b.splitlines()), 1):
            if x != y:
                return f"line {i}: {x[:160]!r} != {y[:160]!r}"
        return "lengths differ"
    return f"{len(a)} vs {len(b)} bytes"


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    before, after = Path(sys.argv[1]), Path(sys.argv[2])
    fa, fb = files(before), files(after)
    problems = [f"only in {before}: {r}" for r in sorted(fa - fb)]
    problems += [f"only in {after}: {r}" for r in sorted(fb - fa)]
    for rel in sorted(fa & fb):
        a = masked(rel, (before / rel).read_bytes())
        b = masked(rel, (after / rel).read_bytes())
        if a != b:
            problems.append(f"differs: {rel}: {first_difference(a, b)}")
    for p in problems:
        print(p)
    print(f"{len(fa & fb)} files compared, {len(problems)} differences")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
