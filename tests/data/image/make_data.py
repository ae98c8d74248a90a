#!/usr/bin/python3
# Regenerates tests/data/image: small images in the formats/modes clipserve decodes (made with
# Pillow 9.4 from a seeded generator, so deterministic) and, for each image and size S, the
# uint8 RGB crop Pillow + torchvision's rules give (saved as PNG): resize(S short side, long
# side int(S*long/short), BICUBIC; NEAREST for P/1) in the decoded mode, CenterCrop with
# Python round, convert('RGB'). The float tensor is (u/255 - mean)/std of that crop.
# Run: /usr/bin/python3 tests/data/image/make_data.py   (needs python3-pil 9.4, numpy)
import io, os, struct, zlib
import numpy as np
from PIL import Image, ImageOps

HERE = os.path.dirname(os.path.abspath(__file__))
SIZES = [32, 80, 224]
rng = np.random.default_rng(1234)


def smooth_rgb(w, h):
    # A smooth colour field plus noise: exercises resampling without being incompressible.
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    r = 127 + 100 * np.sin(x / 7.0) * np.cos(y / 11.0)
    g = 127 + 100 * np.cos((x + y) / 9.0)
    b = 127 + 100 * np.sin(x * y / 300.0)
    img = np.stack([r, g, b], -1) + rng.normal(0, 12, (h, w, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def save(im, name, **kw):
    path = os.path.join(HERE, name)
    im.save(path, **kw)
    return name


def pillow_crop(path, s):
    im = Image.open(path)
    w, h = im.size
    short, long = min(w, h), max(w, h)
    new_long = int(s * long / short)
    ow, oh = (s, new_long) if w <= h else (new_long, s)
    if (ow, oh) != (w, h):
        im = im.resize((ow, oh), Image.BICUBIC)
    left, top = int(round((ow - s) / 2.0)), int(round((oh - s) / 2.0))
    return im.crop((left, top, left + s, top + s)).convert("RGB")


def main():
    names = []
    rgb = smooth_rgb(157, 103)
    names.append(save(Image.fromarray(rgb), "rgb_420.jpg", quality=88, subsampling=2))
    names.append(save(Image.fromarray(smooth_rgb(90, 131)), "rgb_444_progressive.jpg",
                      quality=92, subsampling=0, progressive=True))
    names.append(save(Image.fromarray(smooth_rgb(250, 171)), "rgb_422.jpg", quality=85,
                      subsampling=1))
    names.append(save(Image.fromarray(rgb[:, :, 1]), "gray.jpg", quality=90))
    cmyk = Image.fromarray(smooth_rgb(73, 64)).convert("CMYK")
    names.append(save(cmyk, "cmyk.jpg", quality=90))
    # EXIF orientation 6 (stored landscape, displayed portrait).
    exif = Image.Exif()
    exif[0x0112] = 6
    names.append(save(Image.fromarray(smooth_rgb(96, 64)), "exif_orientation6.jpg",
                      quality=90, exif=exif.tobytes()))
    alpha = np.clip(np.linspace(0, 255, 120)[None, :] + rng.normal(0, 30, (77, 120)), 0, 255)
    rgba = np.concatenate([smooth_rgb(120, 77), alpha.astype(np.uint8)[..., None]], -1)
    rgba[:5, :5, 3] = 0
    names.append(save(Image.fromarray(rgba, "RGBA"), "rgba.png"))
    names.append(save(Image.fromarray(rgba[:, :, [0, 3]], "LA"), "la.png"))
    names.append(save(Image.fromarray(rgb[:60, :45, 2]), "gray.png"))
    pal = Image.fromarray(smooth_rgb(70, 50)).quantize(37)
    names.append(save(pal, "palette.png"))
    names.append(save(pal, "palette_trns.png", transparency=3))
    names.append(save(Image.fromarray(smooth_rgb(33, 29)).quantize(4), "palette_2bit.png",
                      bits=2))
    names.append(save(Image.fromarray(rgb[:, :, 0] > 128), "bilevel.png"))
    g16 = (np.linspace(0, 300, 40 * 30).reshape(30, 40)).astype(np.int32)
    names.append(save(Image.fromarray(g16, "I"), "gray16.png"))
    names.append(save(pal, "palette.gif"))
    names.append(save(Image.fromarray(smooth_rgb(61, 47)), "rgb24.bmp"))
    names.append(save(Image.fromarray(smooth_rgb(88, 66)), "lossy.webp", quality=80))
    names.append(save(Image.fromarray(rgba, "RGBA"), "lossless_alpha.webp", lossless=True))
    names.append(save(Image.fromarray(rgb[:40, :30, 1]), "gray.tif"))
    # A 16-bit RGB PNG (Pillow keeps the high byte), written by hand.
    w, h = 23, 17
    data16 = (rng.integers(0, 65536, (h, w, 3))).astype(">u2")
    raw = b"".join(b"\0" + data16[y].tobytes() for y in range(h))
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)) +
           chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    open(os.path.join(HERE, "rgb16.png"), "wb").write(png)
    names.append("rgb16.png")
    # Interlaced PNG (Adam7) through Pillow.
    names.append(save(Image.fromarray(smooth_rgb(37, 41)), "interlaced.png", interlace=1))

    lines = []
    for name in names:
        path = os.path.join(HERE, name)
        mode = Image.open(path).mode
        for s in SIZES:
            crop = pillow_crop(path, s)
            gname = f"golden/{name}.{s}.png"
            os.makedirs(os.path.join(HERE, "golden"), exist_ok=True)
            crop.save(os.path.join(HERE, gname), optimize=True)
            lines.append(f"{name} {mode} {s} {gname}")
        if name.startswith("exif"):
            t = ImageOps.exif_transpose(Image.open(path))
            t.save(os.path.join(HERE, "golden/exif_transposed.png"))
            lines.append(f"{name} transposed 0 golden/exif_transposed.png")
    open(os.path.join(HERE, "index.txt"), "w").write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
