#!/usr/bin/env python3
"""Writes the image-folder fixtures of Tests/DataFormatsTests (Pillow): two classes of 8x8 images, PNG and JPEG,
grey and RGB, plus folders with a corrupt image and with mixed sizes.

    python3 Scripts/make_image_fixtures.py
"""
import os
from PIL import Image, ImageDraw

ROOT = os.path.join(os.path.dirname(__file__), "..", "Tests", "DataFormatsTests", "Fixtures")


def shape(kind, size=8, colour=(255, 255, 255), mode="L"):
    image = Image.new(mode, (size, size), 0)
    draw = ImageDraw.Draw(image)
    fill = colour if mode == "RGB" else 255
    if kind == "square":
        draw.rectangle([2, 2, size - 3, size - 3], fill=fill)
    else:
        draw.ellipse([1, 1, size - 2, size - 2], fill=fill)
    return image


def main():
    good = os.path.join(ROOT, "images")
    for kind in ["circle", "square"]:
        os.makedirs(os.path.join(good, kind), exist_ok=True)
        shape(kind).save(os.path.join(good, kind, "a.png"))
        shape(kind, colour=(255, 0, 0), mode="RGB").save(os.path.join(good, kind, "b.png"))
        shape(kind, mode="L").save(os.path.join(good, kind, "c.jpg"), quality=95)
    bad = os.path.join(ROOT, "bad-images")
    for kind in ["circle", "square"]:
        os.makedirs(os.path.join(bad, kind), exist_ok=True)
        shape(kind).save(os.path.join(bad, kind, "a.png"))
    with open(os.path.join(bad, "square", "broken.png"), "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + b"not a real png" * 4)
    mixed = os.path.join(ROOT, "mixed-sizes")
    for kind in ["circle", "square"]:
        os.makedirs(os.path.join(mixed, kind), exist_ok=True)
        shape(kind).save(os.path.join(mixed, kind, "a.png"))
    shape("square", size=10).save(os.path.join(mixed, "square", "b.png"))


if __name__ == "__main__":
    main()
