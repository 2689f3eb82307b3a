#!/usr/bin/env python3
"""Fails when the modules of a crate import each other in a cycle (docs/architecture.md).

    python3 tests/module_cycles.py [CRATES_DIR]

A module is a top-level file or folder under `crates/<crate>/src` (`src/bin` aside); it uses
another when its non-test code names `crate::<other>`. Comments and `#[cfg(test)]` items are
left out: tests may reach anywhere. Prints each cycle with one `crate::` use per edge, and exits 1
if there is any.
"""
import re
import sys
from pathlib import Path

USE = re.compile(r"\bcrate::([a-z_][a-z_0-9]*)")


def without_tests(text: str) -> str:
    """The text without `#[cfg(test)]` items (brace-matched) and `//` comments."""
    out, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        if lines[i].strip() == "#[cfg(test)]":
            depth, opened = 0, False
            i += 1
            while i < len(lines):
                code = re.sub(r"//.*", "", lines[i])
                depth += code.count("{") - code.count("}")
                opened = opened or "{" in code
                i += 1
                if (opened and depth <= 0) or (not opened and code.rstrip().endswith(";")):
                    break
            continue
        out.append(re.sub(r"//.*", "", lines[i]))
        i += 1
    return "\n".join(out)


def module_uses(src: Path) -> dict:
    """`{module: {used module: example file}}` for one crate's `src`."""
    uses = {}
    for f in sorted(src.rglob("*.rs")):
        parts = f.relative_to(src).parts
        module = parts[0].removesuffix(".rs")
        if module in ("lib", "main", "bin"):
            continue
        for used in USE.findall(without_tests(f.read_text())):
            if used != module:
                uses.setdefault(module, {}).setdefault(used, str(f))
    return uses


def cycles(uses: dict) -> list:
    """The strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in uses.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(set(uses) | {w for ws in uses.values() for w in ws}):
        if v not in index:
            visit(v)
    return found


def main() -> int:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "crates")
    bad = 0
    for crate in sorted(p for p in root.iterdir() if (p / "src").is_dir()):
        uses = module_uses(crate / "src")
        for comp in cycles(uses):
            bad += 1
            print(f"{crate.name}: modules in a cycle: {', '.join(comp)}")
            for a in comp:
                for b, where in uses.get(a, {}).items():
                    if b in comp:
                        print(f"  {a} uses crate::{b} ({where})")
    if bad:
        print("a module must not use one that is built on it: move the shared piece below both")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
