#!/usr/bin/env python3
"""Render the "glyphs" data set: 62 classes of printed characters (Chars74K-Fnt / notMNIST style).

Classes, in label order: digits '0'-'9' (labels 0-9), 'A'-'Z' (10-35), 'a'-'z' (36-61).
Images: 28x28 8-bit greyscale, white glyph on black (0 = background, 255 = ink), as MNIST.

Fonts: the TrueType/OpenType faces of the Debian font packages in PACKAGES (all must be
installed: `apt-get install -y <PACKAGES>`; the script stops and names any that is not),
filtered by select_faces() and dedup_and_group(): only the Latin families of fonts-noto-core;
symbol / math / dingbat, capitals-only, small-caps, unicase and non-Latin faces out; faces
lacking a cmap entry for any of the 62 characters out; weights under 300 (hairline strokes at
28 px) out; within a family, width and slant one face per weight bucket (light / regular /
bold / heavy); the same family + style from a second package or file out; and faces whose
un-jittered renderings are within DUP_DISTANCE of a preferred face out. (Packages
that only repeat designs of these, such as fonts-texgyre, are not in PACKAGES.)
--list-faces prints every candidate with the reason it was left out.

Rendering keeps case and size information: all 62 characters of a face are drawn with the
same font size and the same baseline. The face's size is chosen so that the ink of its 62
characters (the highest ascender to the lowest descender) spans INNER px of the 28 px frame
(smaller when its widest glyph would be wider than MAX_WIDTH px), and that span is centred
vertically; each glyph is centred horizontally by its ink box. So 'o' stays smaller than 'O',
'p' sits lower than 'P', and so on. Drawn at OVERSAMPLE x the final size, jittered by a
seeded affine transform (rotation, scale, shift: ROTATION, SCALE, SHIFT times --strength),
kept MARGIN px inside the frame, in 10% of the images thickened and in 5% thinned (3x3
max / min filter at the oversampled size, about 1/4 px), in 25% blurred (Gaussian, radius
0.3-0.7 px), then box-downsampled.

Split by font family: faces are grouped by family_key() (family name without width / weight /
optical-size words, plus FAMILY_KEY_ALIAS for design lineages) and by rendering similarity
(faces within GROUP_DISTANCE join their groups); a seeded shuffle of the groups fills the
test set up to --test-fraction of the faces (groups over 5% of the faces stay in train), so
the bold / italic / condensed faces of a test family, and its look-alikes, are test faces
too. Each (face, character) gets --train-variants / --test-variants jittered copies, each
from its own seeded generator (seed, face path, character, variant).

Writes to --output (default Data/glyphs):
    train-images-idx3-ubyte.gz  train-labels-idx1-ubyte.gz
    t10k-images-idx3-ubyte.gz   t10k-labels-idx1-ubyte.gz     (MNIST IDX, gzip with mtime 0)
    classes.txt                 (62 lines: the character of each label)
    fonts.tsv                   (one line per face: split, package, version, path, family,
                                 style, licence from /usr/share/doc/<package>/copyright)
    SHA256SUMS                  (sha256sum format, of the six files above)
Images of a split are in a seeded random order (any prefix samples all faces and classes).

Deterministic: the same package versions (fonts), Pillow (with its FreeType) and numpy give
byte-identical files. Needs python3 with pillow, numpy and fontTools (pip install fonttools).

    python3 Scripts/make_glyphs.py --output Data/glyphs
"""

import argparse
import fnmatch
import gzip
import hashlib
import io
import logging
import math
import os
import re
import struct
import subprocess
import sys
import zlib

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont, features

try:
    from fontTools.ttLib import TTFont
except ImportError:  # pragma: no cover
    sys.exit("make_glyphs.py needs fontTools: pip install fonttools")
logging.getLogger("fontTools").setLevel(logging.ERROR)

CLASSES = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
SIZE = 28          # final image side
OVERSAMPLE = 4     # drawn at SIZE * OVERSAMPLE, box-downsampled
INNER = 20.0       # px (final scale) that a face's ink spans vertically (ascender to descender)
MAX_WIDTH = 23.0   # px: a face whose widest glyph would be wider is drawn smaller
MARGIN = 1.0       # px: the jitter keeps every glyph's ink this far inside the frame
# Jitter ranges at --strength 1. The default --strength 2.5 makes them +-15 deg, scale 0.8-1.2,
# shift +-3.75 px, which puts a 784-512-62 MLP at about 89% test accuracy (95% at strength 1).
ROTATION = 6.0     # degrees
SCALE = 0.08       # relative
SHIFT = 1.5        # px
CANVAS = 192       # side of the oversampled canvas a glyph is first drawn on (room to rotate)

# Debian packages whose faces are used, in order of preference when two faces are the same
# family + style or near-duplicates (the earlier one is kept): the original designs first
# (DejaVu before its Hack / Verana derivatives, Open Sans before Noto Sans, Liberation 2 before
# Liberation 1), then alphabetical. Not used, though they install cleanly: fonts-texgyre
# (TeX Gyre: the URW base35 designs again), fonts-freefont-ttf (FreeSans / FreeSerif / FreeMono:
# URW Nimbus outlines), fonts-croscore (Arimo / Tinos / Cousine: the Liberation 2 designs),
# fonts-humor-sans (lower case drawn as capitals), fonts-dkg-handwriting (x-height about a
# quarter of the ink span: the lower case is illegible at 28 px).
PACKAGES = [
    "fonts-dejavu-core", "fonts-dejavu-extra", "fonts-open-sans", "fonts-liberation2",
    "fonts-liberation",
    "fonts-adf-accanthis", "fonts-adf-baskervald", "fonts-adf-berenis", "fonts-adf-gillius",
    "fonts-adf-ikarius", "fonts-adf-irianis", "fonts-adf-libris", "fonts-adf-mekanus",
    "fonts-adf-oldania", "fonts-adf-romande", "fonts-adf-tribun", "fonts-adf-universalis",
    "fonts-adf-verana",
    "fonts-averia-gwf", "fonts-averia-sans-gwf", "fonts-averia-serif-gwf",
    "fonts-b612", "fonts-cabin", "fonts-cantarell", "fonts-century-catalogue", "fonts-cmu",
    "fonts-comic-neue", "fonts-crosextra-caladea", "fonts-crosextra-carlito",
    "fonts-dosis",
    "fonts-ebgaramond", "fonts-fantasque-sans", "fonts-firacode",
    "fonts-go", "fonts-hack", "fonts-inconsolata", "fonts-inter",
    "fonts-jetbrains-mono", "fonts-junicode", "fonts-lato", "fonts-league-spartan",
    "fonts-linuxlibertine", "fonts-mononoki",
    "fonts-noto-core", "fonts-noto-mono", "fonts-oldstandard",
    "fonts-paratype", "fonts-play", "fonts-prociono", "fonts-quicksand",
    "fonts-roboto-unhinted", "fonts-sil-andika", "fonts-sil-charis", "fonts-sil-doulos",
    "fonts-sil-gentiumplus", "fonts-urw-base35", "fonts-yanone-kaffeesatz",
]

# fonts-noto-core has hundreds of faces for other scripts: only these Latin families are used.
NOTO_CORE_FAMILIES = {"Noto Sans", "Noto Serif", "Noto Sans Display", "Noto Serif Display"}

# Faces left out by family name (regular expressions, searched case-insensitively).
EXCLUDE_FAMILY = [
    (r"math|symbol|dingbat|emoji|D050000L", "symbol / math / dingbat face"),
    (r"initials|titling", "capitals-only face"),
    (r"smallcaps|small caps|ADF Style", "small-caps face (lower case drawn as capitals)"),
    (r"keyboard", "decorative (keyboard keycaps)"),
    (r"nushu", "non-Latin face"),
    (r"Inter Display", "optical-size twin of Inter"),
]

# Faces left out by path (regular expressions).
EXCLUDE_PATH = [
    (r"/fantasque-sans/(LargeLineHeight|NoLoopK|LargeLineHeight-NoLoopK)/",
     "variant of the Normal Fantasque Sans Mono build (line height / k only)"),
    (r"/JunicodeTwoBeta-(Semi)?(Condensed|Expanded)", "width variant of Junicode"),
    (r"/opentype/play/", "OpenType build of the truetype/play faces (the copyright file gives "
     "the licence of Play-*.ttf)"),
]

MIN_WEIGHT = 300   # OS/2 usWeightClass below this (thin, hairline, extra-light) is left out
# Weight buckets (lo, hi, preferred weight): within a family, width and slant, one face per bucket.
WEIGHT_BUCKETS = [(300, 400, 300), (400, 600, 400), (600, 800, 700), (800, 1001, 900)]

# Licences of packages whose copyright file is not in the machine-readable (DEP-5) format,
# as stated in /usr/share/doc/<package>/copyright.
LICENCE_FALLBACK = {
    "fonts-century-catalogue": "OFL-1.0",
    "fonts-inconsolata": "OFL-1.0",
    "fonts-liberation": "GPL-2 with font exception",
    "fonts-oldstandard": "OFL-1.0",
}

# Two faces whose un-jittered 28x28 renderings of the 62 characters differ by less than
# DUP_DISTANCE (mean absolute difference, as a fraction of 255) are near-duplicates: the one
# less preferred (see PACKAGES; then the weight farther from 400; then path) is left out.
# Faces closer than GROUP_DISTANCE put their families into one split group (with the family
# keys below), so that look-alike families are all train or all test.
DUP_DISTANCE = 0.010
GROUP_DISTANCE = 0.015

# Spellings of one licence in the copyright files, written one way (the texts say which version).
LICENCE_ALIASES = {
    "SIL Open Font License": "OFL-1.1", "SIL-OFL-1.1": "OFL-1.1",
    "SIL_Open_Font_License_1.1": "OFL-1.1", "Apache-2": "Apache-2.0",
    "GPL-2+FE": "GPL-2+ with font exception", "GPL-2+ with Font exception":
    "GPL-2+ with font exception", "bitstream-vera": "Bitstream-Vera",
    "BitstreamVera": "Bitstream-Vera", "AGPL-3 with Font exception": "AGPL-3 with font exception",
}

# Family-name words dropped to form the family key of the split (so that "PT Sans Caption" and
# "PT Sans", "Gillius ADF No2" and "Gillius ADF" land in the same split).
FAMILY_KEY_DROP = r"\b(std|pro|no\d|style|display|caption|book|narrow|condensed|cond|cn|" \
                  r"demi|medium|light|extra|upright italic|variable width|plus|o|gwf|" \
                  r"classical|mono|sans|serif|text|ps|script)\b"
# Families of one design lineage that the words above do not join.
FAMILY_KEY_ALIAS = {
    "noto": "open",                    # Noto Sans was drawn from Open Sans / Droid Sans
    "nimbus": "liberation",            # Helvetica / Times / Courier look-alikes
    "nimbus roman": "liberation",
    "hack": "dejavu", "verana": "dejavu",  # both derived from Bitstream Vera, as DejaVu is
    "cmu bright": "cmu", "cmu concrete": "cmu", "cmu typewriter": "cmu",
    "linux biolinum": "linux libertine",
}


def run(cmd):
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def package_version(pkg):
    try:
        out = run(["dpkg-query", "-W", "-f=${Status}\t${Version}", pkg])
    except subprocess.CalledProcessError:
        return None
    except FileNotFoundError:
        sys.exit("make_glyphs.py needs Debian's dpkg and the font packages in PACKAGES")
    status, version = out.split("\t")
    return version if status.endswith(" installed") else None


def package_fonts(pkg):
    paths = []
    for line in run(["dpkg", "-L", pkg]).splitlines():
        if line.lower().endswith((".ttf", ".otf")) and os.path.isfile(line) \
                and not os.path.islink(line):
            paths.append(line)
    return sorted(set(paths))


def parse_dep5(text):
    """Stanzas of a DEP-5 copyright file as (files patterns, licence short name)."""
    stanzas = []
    for block in re.split(r"\n\s*\n", text):
        fields, key = {}, None
        for line in block.splitlines():
            m = re.match(r"^([A-Za-z-]+):(.*)$", line)
            if m:
                key = m.group(1).lower()
                fields[key] = m.group(2).strip()
            elif key == "files" and line[:1] in (" ", "\t"):
                fields[key] += " " + line.strip()   # Files continues; License text does not
        if fields.get("files") and fields.get("license"):
            stanzas.append((fields["files"].split(), fields["license"]))
    return stanzas


def licence_of(pkg, path, cache={}):
    if pkg not in cache:
        fn = f"/usr/share/doc/{pkg}/copyright"
        text = open(fn, encoding="utf-8", errors="replace").read() if os.path.exists(fn) else ""
        cache[pkg] = parse_dep5(text) if text.startswith("Format:") else None
    stanzas = cache[pkg]
    if stanzas is None:
        return LICENCE_FALLBACK.get(pkg, "see /usr/share/doc/%s/copyright" % pkg)
    found = None
    for patterns, lic in stanzas:  # the last matching stanza wins (DEP-5)
        for pat in patterns:
            if pat.startswith("debian/"):
                continue
            if pat == "*" or fnmatch.fnmatchcase(path, "*/" + pat) \
                    or fnmatch.fnmatchcase(os.path.basename(path), pat):
                found = lic
    found = found or LICENCE_FALLBACK.get(pkg, "see /usr/share/doc/%s/copyright" % pkg)
    return " and ".join(LICENCE_ALIASES.get(p, p) for p in found.split(" and "))


def face_info(path):
    t = TTFont(path, lazy=True, fontNumber=0)
    name = t["name"]
    family = name.getBestFamilyName() or os.path.basename(path)
    style = name.getBestSubFamilyName() or "Regular"
    os2 = t["OS/2"]
    italic = bool(os2.fsSelection & 0x201 or t["head"].macStyle & 2
                  or re.search(r"italic|oblique|slant", style, re.I))
    cmap = t.getBestCmap() or {}
    missing = "".join(c for c in CLASSES if ord(c) not in cmap)
    glyphs = [cmap.get(ord(c)) for c in CLASSES]
    # lower-case code points mapped to the capital's glyph: a capitals-only face
    same_case = sum(1 for i in range(26) if glyphs[10 + i] and glyphs[10 + i] == glyphs[36 + i])
    t.close()
    case_ratio, x_span, empty = 0.0, 1.0, ""
    if not missing:
        # ink height of x-height letters over their capitals' (about 0.7 in most faces; 1 in a
        # face that draws the lower case as capitals under other glyph names)
        font = ImageFont.truetype(path, 100, layout_engine=ImageFont.Layout.BASIC)
        ratios = []
        for c in "acemnorsuvwxz":
            lo, up = font.getbbox(c, anchor="ls"), font.getbbox(c.upper(), anchor="ls")
            ratios.append((lo[3] - lo[1]) / max(1, up[3] - up[1]))
        case_ratio = float(np.median(ratios))
        # ink height of 'x' over the ink span of all 62 characters (about 0.5 in most faces)
        boxes = [font.getbbox(c, anchor="ls") for c in CLASSES]
        empty = "".join(c for c, b in zip(CLASSES, boxes) if b[2] <= b[0] or b[3] <= b[1])
        xb = boxes[CLASSES.index("x")]
        x_span = (xb[3] - xb[1]) / (max(b[3] for b in boxes) - min(b[1] for b in boxes))
    return dict(family=family.strip(), style=style.strip(), weight=int(os2.usWeightClass),
                width=int(os2.usWidthClass), italic=italic, missing=missing,
                same_case=same_case, case_ratio=case_ratio, x_span=x_span, empty=empty)


def select_faces():
    """All candidate faces, in path order; 'reason' is None for a kept face, else why not."""
    versions, faces = {}, []
    missing_pkgs = [p for p in PACKAGES if package_version(p) is None]
    if missing_pkgs:
        sys.exit("not installed: " + " ".join(missing_pkgs)
                 + "\n  apt-get update && apt-get install -y " + " ".join(missing_pkgs))
    seen_paths = set()
    for rank, pkg in enumerate(PACKAGES):
        versions[pkg] = package_version(pkg)
        for path in package_fonts(pkg):
            real = os.path.realpath(path)
            if real in seen_paths:
                continue
            seen_paths.add(real)
            f = dict(path=path, package=pkg, version=versions[pkg], rank=rank, reason=None)
            f.update(face_info(path))
            faces.append(f)
    faces.sort(key=lambda f: f["path"])

    def out(f, reason):
        if f["reason"] is None:
            f["reason"] = reason

    for f in faces:
        if f["package"] == "fonts-noto-core" and f["family"] not in NOTO_CORE_FAMILIES:
            out(f, "fonts-noto-core: not one of the Latin families used")
        for pat, why in EXCLUDE_FAMILY:
            if re.search(pat, f["family"] + " " + os.path.basename(f["path"]), re.I):
                out(f, why)
        for pat, why in EXCLUDE_PATH:
            if re.search(pat, f["path"]):
                out(f, why)
        if f["missing"]:
            out(f, "no glyph for " + f["missing"])
        if f["empty"]:
            out(f, "no ink in the glyph for " + f["empty"])
        if f["same_case"] >= 13:
            out(f, "capitals-only face (lower case maps to the capitals' glyphs)")
        if f["case_ratio"] > 0.9:
            out(f, "lower case as tall as the capitals (x/X ink height %.2f)" % f["case_ratio"])
        if f["x_span"] < 0.35:
            out(f, "x-height only %.2f of the ink span (lower case illegible at 28 px)"
                % f["x_span"])
        if f["weight"] < MIN_WEIGHT:
            out(f, "weight %d < %d (hairline strokes at 28 px)" % (f["weight"], MIN_WEIGHT))

    # the same family + style from two packages (or two files): keep the preferred one
    by_name = {}
    for f in sorted((f for f in faces if f["reason"] is None),
                    key=lambda f: (f["rank"], f["path"])):
        key = (f["family"].lower(), f["style"].lower())
        if key in by_name:
            out(f, "same family + style as " + by_name[key]["path"])
        else:
            by_name[key] = f

    # a family's near-identical weights: one face per (family, width, slant, weight bucket)
    buckets = {}
    for f in faces:
        if f["reason"] is not None:
            continue
        b = next(i for i, (lo, hi, _) in enumerate(WEIGHT_BUCKETS) if lo <= f["weight"] < hi)
        buckets.setdefault((f["family"], f["width"], f["italic"], b), []).append(f)
    for (_, _, _, b), group in sorted(buckets.items(), key=lambda kv: kv[1][0]["path"]):
        pref = WEIGHT_BUCKETS[b][2]
        group.sort(key=lambda f: (abs(f["weight"] - pref), f["path"]))
        for f in group[1:]:
            out(f, "weight %d in the same weight bucket as %s (%d)"
                % (f["weight"], os.path.basename(group[0]["path"]), group[0]["weight"]))
    return faces, versions


def family_key(family):
    k = family.lower().replace("-", " ")
    k = re.sub(FAMILY_KEY_DROP, " ", k)
    k = re.sub(r"\s+", " ", k).strip()
    return FAMILY_KEY_ALIAS.get(k, k)


def signature(path):
    """The face's 62 un-jittered characters at the final size, as one uint8 vector."""
    r = FaceRenderer(path)
    off = (CANVAS - SIZE * OVERSAMPLE) // 2
    box = (off, off, off + SIZE * OVERSAMPLE, off + SIZE * OVERSAMPLE)
    return np.concatenate([np.asarray(r.base(k).crop(box).reduce(OVERSAMPLE), np.uint8).ravel()
                           for k in range(len(CLASSES))])


def dedup_and_group(faces):
    """Leave out near-duplicate faces; give each kept face its split group (f['group'])."""
    kept = [f for f in faces if f["reason"] is None]
    sig = np.stack([signature(f["path"]) for f in kept]).astype(np.int32)
    scale = 255 * sig.shape[1]
    # integer sums of absolute differences: exact, so the thresholds cut the same everywhere
    dist = np.stack([np.abs(sig - sig[i]).sum(axis=1) for i in range(len(kept))])
    alive = []
    # preference: package order in PACKAGES, then the weight nearest 400, then path
    for i in sorted(range(len(kept)), key=lambda i: (kept[i]["rank"],
                                                      abs(kept[i]["weight"] - 400),
                                                      kept[i]["path"])):
        f = kept[i]
        near = [j for j in alive if dist[i, j] < DUP_DISTANCE * scale]
        if near:
            j = min(near, key=lambda j: (dist[i, j], j))
            f["reason"] = "near-duplicate of %s (distance %.4f)" % (kept[j]["path"],
                                                                    dist[i, j] / scale)
        else:
            alive.append(i)
    parent = {}

    def root(k):
        while parent.get(k, k) != k:
            k = parent[k]
        return k

    keys = {i: family_key(kept[i]["family"]) for i in alive}
    for a in alive:
        for b in alive:
            if a < b and dist[a, b] < GROUP_DISTANCE * scale:
                ra, rb = root(keys[a]), root(keys[b])
                if ra != rb:
                    parent[max(ra, rb)] = min(ra, rb)
    for i in alive:
        kept[i]["group"] = root(keys[i])


# ---------------------------------------------------------------------------------- rendering

class FaceRenderer:
    """Draws the 62 characters of one face at one size and baseline (oversampled)."""

    def __init__(self, path):
        probe = 400.0
        font = ImageFont.truetype(path, probe, layout_engine=ImageFont.Layout.BASIC)
        boxes = [font.getbbox(c, anchor="ls") for c in CLASSES]
        top = min(b[1] for b in boxes)
        bottom = max(b[3] for b in boxes)
        width = max(b[2] - b[0] for b in boxes)
        size = probe * min(INNER / (bottom - top), MAX_WIDTH / width) * OVERSAMPLE
        self.size = round(size, 2)
        self.font = ImageFont.truetype(path, self.size, layout_engine=ImageFont.Layout.BASIC)
        self.boxes = [self.font.getbbox(c, anchor="ls") for c in CLASSES]
        self.top = min(b[1] for b in self.boxes)
        self.bottom = max(b[3] for b in self.boxes)

    def base(self, k):
        """Character k on a CANVAS x CANVAS image, the face's ink span centred vertically and
        the glyph's ink box centred horizontally, at the canvas centre."""
        x0, _, x1, _ = self.boxes[k]
        img = Image.new("L", (CANVAS, CANVAS), 0)
        ox = CANVAS / 2 - (x0 + x1) / 2
        oy = CANVAS / 2 - (self.top + self.bottom) / 2
        ImageDraw.Draw(img).text((round(ox), round(oy)), CLASSES[k], fill=255, font=self.font,
                                 anchor="ls")
        return img


def jitter(base, rng, strength):
    """One augmented SIZE x SIZE uint8 image from an oversampled base glyph image.

    Rotation, scale and shift are drawn from ROTATION, SCALE and SHIFT times `strength`; the
    shift (and, for a glyph too big for the frame, the scale) is then limited so that the ink
    stays at least MARGIN px inside the frame: no glyph is clipped. The geometry is computed
    with Python floats and the math module (no vector code whose rounding could depend on the
    processor), so the same inputs give the same coefficients on every machine."""
    rot = math.radians(float(rng.uniform(-ROTATION, ROTATION)) * strength)
    scale = 1.0 + float(rng.uniform(-SCALE, SCALE)) * strength
    sx, sy = (float(v) * strength * OVERSAMPLE for v in rng.uniform(-SHIFT, SHIFT, size=2))
    stroke = float(rng.random())
    blur = float(rng.random())
    blur_r = float(rng.uniform(0.3, 0.7))
    big = SIZE * OVERSAMPLE
    c_in, c_out = CANVAS / 2, big / 2
    c, s = math.cos(rot), math.sin(rot)
    # where the ink's box lands: out = c_out + shift + scale * R (in - c_in), R = [[c, -s], [s, c]]
    x0, y0, x1, y1 = base.getbbox()
    xs = [c * (x - c_in) - s * (y - c_in) for x in (x0, x1) for y in (y0, y1)]
    ys = [s * (x - c_in) + c * (y - c_in) for x in (x0, x1) for y in (y0, y1)]
    m = MARGIN * OVERSAMPLE
    scale = min(scale, (big - 2 * m) / max(max(xs) - min(xs), max(ys) - min(ys)))
    sx = min(max(sx, m - (c_out + scale * min(xs))), big - m - (c_out + scale * max(xs)))
    sy = min(max(sy, m - (c_out + scale * min(ys))), big - m - (c_out + scale * max(ys)))
    # PIL's affine transform maps output to input: in = R^T (out - c_out - shift) / scale + c_in
    a, b, d, e = c / scale, s / scale, -s / scale, c / scale
    coeffs = [a, b, c_in - a * (c_out + sx) - b * (c_out + sy),
              d, e, c_in - d * (c_out + sx) - e * (c_out + sy)]
    img = base.transform((big, big), Image.Transform.AFFINE, coeffs,
                         resample=Image.Resampling.BILINEAR)
    if stroke < 0.10:
        img = img.filter(ImageFilter.MaxFilter(3))       # a little bolder
    elif stroke < 0.15:
        img = img.filter(ImageFilter.MinFilter(3))       # a little lighter
    if blur < 0.25:
        img = img.filter(ImageFilter.GaussianBlur(blur_r * OVERSAMPLE))
    return np.asarray(img.reduce(OVERSAMPLE), dtype=np.uint8)


def item_rng(seed, path, k, v):
    return np.random.default_rng([seed, zlib.crc32(path.encode()), k, v])


# ------------------------------------------------------------------------------------- output

def gz_bytes(raw):
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0, filename="", compresslevel=9) as g:
        g.write(raw)
    return buf.getvalue()


def idx_images(arr):
    n, h, w = arr.shape
    return struct.pack(">IIII", 0x00000803, n, h, w) + arr.astype(np.uint8).tobytes()


def idx_labels(arr):
    return struct.pack(">II", 0x00000801, len(arr)) + arr.astype(np.uint8).tobytes()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--output", default="Data/glyphs", help="output directory")
    ap.add_argument("--seed", type=int, default=20150309, help="seed of split and jitter")
    ap.add_argument("--test-fraction", type=float, default=0.2, help="share of test faces")
    ap.add_argument("--train-variants", type=int, default=3, help="images per train face+char")
    ap.add_argument("--test-variants", type=int, default=3, help="images per test face+char")
    ap.add_argument("--strength", type=float, default=2.5,
                    help="multiplier of the jitter ranges ROTATION, SCALE, SHIFT")
    ap.add_argument("--list-faces", action="store_true", help="print the face selection, stop")
    args = ap.parse_args()

    faces, versions = select_faces()
    dedup_and_group(faces)
    kept = [f for f in faces if f["reason"] is None]

    # family-aware split: shuffle the split groups, fill the test set up to the fraction; the
    # largest groups (over 5% of the faces) stay in train so that the test set has many families
    groups = sorted({f["group"] for f in kept})
    order = np.random.default_rng([args.seed, 1]).permutation(len(groups))
    n_faces = {g: sum(1 for f in kept if f["group"] == g) for g in groups}
    test_groups, n_test, target = set(), 0, args.test_fraction * len(kept)
    for i in order:
        g = groups[i]
        if n_faces[g] <= 0.05 * len(kept) and n_test + n_faces[g] <= target + 2:
            test_groups.add(g)
            n_test += n_faces[g]
    for f in kept:
        f["split"] = "test" if f["group"] in test_groups else "train"
        f["licence"] = licence_of(f["package"], f["path"])
    if args.list_faces:
        for f in faces:
            print("\t".join([f.get("split", "-"), f["reason"] or "KEEP", f.get("group", "-"),
                             f["package"], f["path"], f["family"], f["style"],
                             str(f["weight"]), f.get("licence", "-")]))
        print(f"{len(kept)} faces kept of {len(faces)}", file=sys.stderr)
        return

    os.makedirs(args.output, exist_ok=True)
    results = {}
    for split, variants, prefix in (("train", args.train_variants, "train"),
                                    ("test", args.test_variants, "t10k")):
        imgs, labels = [], []
        for f in (f for f in kept if f["split"] == split):
            r = FaceRenderer(f["path"])
            for k in range(len(CLASSES)):
                base = r.base(k)
                for v in range(variants):
                    imgs.append(jitter(base, item_rng(args.seed, f["path"], k, v), args.strength))
                    labels.append(k)
        # a seeded shuffle, so that any prefix of the file is a sample of all faces and classes
        order = np.random.default_rng([args.seed, 2 if split == "train" else 3]).permutation(
            len(labels))
        imgs = np.stack(imgs)[order]
        labels = np.array(labels, dtype=np.uint8)[order]
        results[split] = (imgs, labels)
        with open(os.path.join(args.output, f"{prefix}-images-idx3-ubyte.gz"), "wb") as fh:
            fh.write(gz_bytes(idx_images(imgs)))
        with open(os.path.join(args.output, f"{prefix}-labels-idx1-ubyte.gz"), "wb") as fh:
            fh.write(gz_bytes(idx_labels(labels)))
        nf = sum(1 for f in kept if f["split"] == split)
        print(f"{split}: {nf} faces x {len(CLASSES)} classes x {variants} variants = "
              f"{len(labels)} images; per class min {np.bincount(labels).min()} "
              f"max {np.bincount(labels).max()}")

    with open(os.path.join(args.output, "classes.txt"), "w", newline="\n") as fh:
        fh.write("".join(c + "\n" for c in CLASSES))
    with open(os.path.join(args.output, "fonts.tsv"), "w", newline="\n") as fh:
        fh.write("split\tpackage\tversion\tpath\tfamily\tstyle\tlicence\n")
        for f in kept:
            fh.write("\t".join([f["split"], f["package"], f["version"], f["path"], f["family"],
                                f["style"], f["licence"]]) + "\n")
    names = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
             "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", "classes.txt",
             "fonts.tsv"]
    with open(os.path.join(args.output, "SHA256SUMS"), "w", newline="\n") as fh:
        for n in names:
            h = hashlib.sha256(open(os.path.join(args.output, n), "rb").read()).hexdigest()
            fh.write(f"{h}  {n}\n")
    print(f"faces: {len(kept)} ({sum(f['split'] == 'train' for f in kept)} train, "
          f"{sum(f['split'] == 'test' for f in kept)} test) of {len(faces)} candidates; "
          f"pillow {Image.__version__}, freetype {features.version('freetype2')}, "
          f"numpy {np.__version__}")


if __name__ == "__main__":
    main()
