#!/usr/bin/env python3
"""Writes the image fixtures ImageFileTests and ResizeTests read (not run in CI).

    pip install numpy Pillow scikit-image
    python3 Tests/DataTests/Fixtures/make_image_fixtures.py

Everything goes next to this script:

* photo-*.jpg: 300x200 crops of scikit-image's sample photographs (chelsea,
  coffee, astronaut in colour; camera in grey), JPEG quality 90 by Pillow.
* resize-*.png: Pillow's Image.resize((W, H), Image.BILINEAR) of Pillow's
  decode of a photo, stored losslessly as PNG.
* photos.json: per photo, Pillow's decoded rows 0, 20, 40, ... (hex) and the
  CRC-32 of the whole decode, to compare decoders without storing whole images.
* cmyk.jpg + cmyk.json: a CMYK JPEG written by Pillow and Pillow's
  convert("RGB") of it.
* tiny.jpg + orientation.json: a 5x3 JPEG, and for every EXIF orientation 1-8
  the index map of Pillow's ImageOps.exif_transpose (output pixel -> stored
  pixel index).
* png-*.png + png.json: PNGs of every colour type and bit depth, plain and
  Adam7-interlaced, written by the small encoder below (Pillow cannot write
  interlaced PNG) with the scanline filter cycling through all five types, and
  the pixels Pillow decodes from each (alpha dropped, palettes expanded), which
  must equal what the encoder was given.
* png-grey16.png: a 16-bit PNG, which the reader refuses.
"""

import json
import os
import struct
import zlib

import numpy as np
import skimage
from PIL import Image, ImageOps

HERE = os.path.dirname(os.path.abspath(__file__))
SKIMAGE_DATA = os.path.join(os.path.dirname(skimage.__file__), "data")


def out(name):
    return os.path.join(HERE, name)


# --- photographs and Pillow's resize -------------------------------------------------

PHOTOS = {  # name: (skimage file, left, top)
    "chelsea": ("chelsea.png", 75, 50),
    "coffee": ("coffee.png", 150, 100),
    "astronaut": ("astronaut.png", 150, 30),
    "camera": ("camera.png", 150, 50),
}
RESIZES = {  # name: sizes (W, H)
    "chelsea": [(256, 256), (64, 64), (32, 32), (150, 333)],
    "coffee": [(64, 64), (32, 32)],
    "astronaut": [(64, 64), (32, 32), (100, 67)],
    "camera": [(256, 256), (64, 64), (32, 32)],
}


def photos():
    summary = {}
    for name, (file, left, top) in PHOTOS.items():
        src = Image.open(os.path.join(SKIMAGE_DATA, file))
        src = src.convert("L" if name == "camera" else "RGB").crop((left, top, left + 300, top + 200))
        path = out(f"photo-{name}.jpg")
        src.save(path, quality=90)
        decoded = Image.open(path)
        decoded.load()
        pixels = np.asarray(decoded)
        channels = 1 if pixels.ndim == 2 else pixels.shape[2]
        summary[name] = {
            "width": decoded.width,
            "height": decoded.height,
            "channels": channels,
            "crc32": zlib.crc32(pixels.tobytes()),
            "rows": {str(y): pixels[y].tobytes().hex() for y in range(0, decoded.height, 20)},
        }
        for w, h in RESIZES[name]:
            decoded.resize((w, h), Image.BILINEAR).save(out(f"resize-{name}-{w}x{h}.png"), optimize=True)
    with open(out("photos.json"), "w") as f:
        json.dump(summary, f, indent=1, sort_keys=True)


# --- CMYK -----------------------------------------------------------------------------

def cmyk():
    src = Image.open(os.path.join(SKIMAGE_DATA, "coffee.png")).convert("RGB").crop((200, 120, 224, 136))
    src = src.convert("CMYK")
    path = out("cmyk.jpg")
    src.save(path, quality=90)
    im = Image.open(path)
    assert im.mode == "CMYK"
    rgb = im.convert("RGB")
    with open(out("cmyk.json"), "w") as f:
        json.dump({"width": rgb.width, "height": rgb.height, "rgb": rgb.tobytes().hex()}, f, indent=1)


# --- EXIF orientation -----------------------------------------------------------------

def orientation():
    w, h = 5, 3
    colours = [(255 * (i % 2), 40 * i % 256, 255 - 17 * i) for i in range(w * h)]
    tiny = Image.new("RGB", (w, h))
    tiny.putdata(colours)
    tiny.save(out("tiny.jpg"), quality=95)
    maps = {}
    for k in range(1, 9):
        index = Image.fromarray(np.arange(w * h, dtype=np.int32).reshape(h, w), mode="I")
        exif = index.getexif()
        exif[0x0112] = k
        turned = ImageOps.exif_transpose(index)
        maps[str(k)] = {
            "width": turned.width,
            "height": turned.height,
            "index": np.asarray(turned).reshape(-1).tolist(),
        }
    with open(out("orientation.json"), "w") as f:
        json.dump({"width": w, "height": h, "orientations": maps}, f, indent=1)


# --- PNG ------------------------------------------------------------------------------

ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
SAMPLES = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


def chunk(kind, data):
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))


def pack_row(samples, depth):
    if depth == 8:
        return bytes(samples)
    if depth == 16:
        return b"".join(struct.pack(">H", s) for s in samples)
    bits = "".join(format(s, f"0{depth}b") for s in samples)
    bits += "0" * (-len(bits) % 8)
    return bytes(int(bits[i:i + 8], 2) for i in range(0, len(bits), 8))


def paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else b if pb <= pc else c


def filter_row(row, prev, kind, bpp):
    outb = bytearray()
    for i, x in enumerate(row):
        a = row[i - bpp] if i >= bpp else 0
        b = prev[i]
        c = prev[i - bpp] if i >= bpp else 0
        pred = [0, a, b, (a + b) // 2, paeth(a, b, c)][kind]
        outb.append((x - pred) & 0xFF)
    return bytes([kind]) + bytes(outb)


def encode_png(samples, width, height, colour, depth, interlace, palette=None, trns=None):
    """samples: height x width x SAMPLES[colour] integers at `depth` bits."""
    spp = SAMPLES[colour]
    bpp = max(1, spp * depth // 8)
    passes = ADAM7 if interlace else [(0, 0, 1, 1)]
    raw = bytearray()
    row_number = 0
    for x0, y0, dx, dy in passes:
        cols = list(range(x0, width, dx))
        rows = list(range(y0, height, dy))
        if not cols or not rows:
            continue
        prev = bytes(len(pack_row([0] * (len(cols) * spp), depth)))
        for y in rows:
            row = pack_row([s for x in cols for s in samples[y][x]], depth)
            raw += filter_row(row, prev, row_number % 5, bpp)
            row_number += 1
            prev = row
    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 1 if interlace else 0)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
    if palette is not None:
        png += chunk(b"PLTE", bytes(v for rgb in palette for v in rgb))
    if trns is not None:
        png += chunk(b"tRNS", trns)
    png += chunk(b"tEXt", b"Comment\x00written by make_image_fixtures.py")
    data = zlib.compress(bytes(raw), 9)
    # Two IDAT chunks, as encoders often split the stream.
    half = len(data) // 2
    png += chunk(b"IDAT", data[:half]) + chunk(b"IDAT", data[half:]) + chunk(b"IEND", b"")
    return png


def pngs():
    width, height = 13, 11
    rng = np.random.default_rng(7)
    cases = {}

    def add(name, colour, depth, samples, expected, channels, palette=None, trns=None):
        for interlace in (False, True):
            file = f"png-{name}{'-adam7' if interlace else ''}.png"
            with open(out(file), "wb") as f:
                f.write(encode_png(samples, width, height, colour, depth, interlace, palette, trns))
            im = Image.open(out(file))
            im = im.convert("L" if channels == 1 else "RGB")
            got = np.asarray(im).reshape(-1)
            assert np.array_equal(got, np.asarray(expected, dtype=np.uint8).reshape(-1)), file
            cases[file] = {"width": width, "height": height, "channels": channels, "pixels": got.tobytes().hex()}

    def grid(spp, top):
        return [[[int(v) for v in rng.integers(0, top + 1, spp)] for _ in range(width)] for _ in range(height)]

    for depth in (1, 2, 4, 8):
        g = grid(1, (1 << depth) - 1)
        scale = 255 // ((1 << depth) - 1)
        add(f"grey{depth}", 0, depth, g, [[s[0] * scale for s in r] for r in g], 1)
    rgb = grid(3, 255)
    add("rgb8", 2, 8, rgb, rgb, 3)
    for depth in (1, 2, 4, 8):
        entries = min(1 << depth, 200)
        palette = [tuple(int(v) for v in rng.integers(0, 256, 3)) for _ in range(entries)]
        idx = grid(1, entries - 1)
        trns = bytes(int(v) for v in rng.integers(0, 256, entries // 2 or 1))
        add(f"palette{depth}", 3, depth, idx, [[palette[s[0]] for s in r] for r in idx], 3, palette, trns)
    ga = grid(2, 255)
    add("greyalpha8", 4, 8, ga, [[s[0] for s in r] for r in ga], 1)
    rgba = grid(4, 255)
    add("rgba8", 6, 8, rgba, [[s[:3] for s in r] for r in rgba], 3)
    with open(out("png.json"), "w") as f:
        json.dump(cases, f, indent=1, sort_keys=True)
    g16 = grid(1, 65535)
    with open(out("png-grey16.png"), "wb") as f:
        f.write(encode_png(g16, width, height, 0, 16, False))


if __name__ == "__main__":
    photos()
    cmyk()
    orientation()
    pngs()
    total = sum(os.path.getsize(out(f)) for f in os.listdir(HERE))
    print(f"fixtures written to {HERE}: {total} bytes")
