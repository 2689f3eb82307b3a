"""Regenerate ftfy_html_entities.tsv: the HTML entity table ftfy 6.x's unescape_html uses.

The table is data (the WHATWG HTML5 entity list from Python's `html.entities.html5`, the
names ending in ';', plus ftfy's all-caps variants of lowercase names when `html.unescape`
leaves the all-caps spelling alone). Each line: entity TAB code points in hex, space-separated.
Run: python make_ftfy_tables.py  (only the Python standard library is needed).
"""
import html
import html.entities
import os

rows = {}
for name, char in html.entities.html5.items():
    if name.endswith(";"):
        rows["&" + name] = char
        if name == name.lower():
            upper = "&" + name.upper()
            if html.unescape(upper) == upper:
                rows[upper] = char.upper()

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ftfy_html_entities.tsv")
with open(out, "w", encoding="utf-8", newline="\n") as f:
    for k in sorted(rows):
        f.write(k + "\t" + " ".join(f"{ord(c):x}" for c in rows[k]) + "\n")
print(f"wrote {len(rows)} entities to {out}")
