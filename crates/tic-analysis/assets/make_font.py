#!/usr/bin/env python
"""Make assets/TicPlotSans.ttf: DejaVu Sans (Debian fonts-dejavu-core) cut to the glyphs our
plots use, renamed as the Bitstream Vera licence requires for modified fonts.

    apt-get install fonts-dejavu-core && pip install fonttools
    python crates/tic-analysis/assets/make_font.py
"""
import os
from fontTools import subset
from fontTools.ttLib import TTFont

SRC = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "TicPlotSans.ttf")
# Printable ASCII plus a few symbols used in labels.
TEXT = "".join(chr(c) for c in range(0x20, 0x7F)) + "×–—·≥≤→∗…µΔ"

opts = subset.Options()
opts.layout_features = ["kern"]
opts.name_IDs = ["*"]
opts.notdef_outline = True
opts.hinting = False
font = TTFont(SRC)
sub = subset.Subsetter(opts)
sub.populate(text=TEXT)
sub.subset(font)
for rec in font["name"].names:
    if rec.nameID in (1, 3, 4, 6, 16):
        old = rec.toUnicode()
        new = old.replace("DejaVu Sans", "TicPlot Sans").replace("DejaVuSans", "TicPlotSans")
        rec.string = new
font.save(OUT)
print(OUT, os.path.getsize(OUT))
