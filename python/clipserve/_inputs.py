"""Turning the image inputs Python users have into what the engine or the server takes.

In-process, images become ``(kind, payload, name)`` items for the native module: file paths
are read and decoded on the engine's worker pool; PIL images in the modes clipserve decodes
(1, L, P, LA, RGB, RGBA, CMYK, I) go as raw pixels through the same Pillow-exact resize,
crop and convert as a file; PIL images in any other mode are resized, cropped and converted
by Pillow itself, with torchvision's geometry, which is what open_clip's transform does.
For the client, every image becomes encoded bytes (lossless PNG where it must be made).
"""
from __future__ import annotations

import io
import os
import struct
import zlib
from typing import Any, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from ._errors import InvalidInput, TooLarge, Unsupported

try:  # Pillow is optional: only PIL.Image inputs need it
    from PIL import Image as _PILImage
except ImportError:  # pragma: no cover - exercised where Pillow is absent
    _PILImage = None

# Pillow modes the native preprocessing handles from raw pixels (Pillow-exact resize per mode).
NATIVE_MODES = frozenset({"1", "L", "P", "LA", "RGB", "RGBA", "CMYK", "I"})
# Modes a PNG stores losslessly and clipserve's decoder reads back in the same mode.
PNG_MODES = frozenset({"1", "L", "P", "LA", "RGB", "RGBA"})

# The engine's decompression-bomb guard (PreprocessOptions::max_pixels, Pillow's limit).
MAX_PIXELS = 2 * 89478485

Item = Tuple[str, Any, Optional[str]]


def is_pil(x: Any) -> bool:
    return _PILImage is not None and isinstance(x, _PILImage.Image)


def _is_single(x: Any) -> bool:
    if isinstance(x, (str, bytes, bytearray, memoryview, os.PathLike)) or is_pil(x):
        return True
    if isinstance(x, np.ndarray):
        return x.ndim in (2, 3)
    return False


def as_image_list(images: Any) -> List[Any]:
    """One image or a sequence of images -> a list; a (N, 3, S, S) array -> N tensors."""
    if not isinstance(images, np.ndarray) and hasattr(images, "__array__") and \
            not _is_single(images) and not isinstance(images, (list, tuple)):
        images = np.asarray(images)  # e.g. a torch tensor
    if isinstance(images, np.ndarray) and images.ndim == 4:
        return list(images)
    if _is_single(images):
        return [images]
    try:
        out = list(images)
    except TypeError:
        raise InvalidInput(f"images: expected an image or a sequence of images, got "
                           f"{type(images).__name__}") from None
    if not out:
        raise InvalidInput("no images given")
    return out


def as_text_list(texts: Any) -> List[str]:
    if isinstance(texts, str):
        return [texts]
    if isinstance(texts, (bytes, bytearray)):
        raise InvalidInput("texts: expected str, got bytes (decode it first)")
    try:
        out = list(texts)
    except TypeError:
        raise InvalidInput(f"texts: expected a str or a sequence of str, got "
                           f"{type(texts).__name__}") from None
    if not out:
        raise InvalidInput("no texts given")
    for i, t in enumerate(out):
        if not isinstance(t, str):
            raise InvalidInput(f"texts[{i}] must be a str, got {type(t).__name__}")
    return out


def resize_crop_pil(im: Any, size: int) -> Any:
    """open_clip's eval transform up to the tensor, done by Pillow: torchvision's
    Resize(size, BICUBIC) (no-op when the size would not change), CenterCrop(size), then
    convert("RGB"). Returns a size x size RGB image."""
    w, h = im.size
    if w <= 0 or h <= 0:
        raise InvalidInput(f"image of size {w}x{h}")
    short, long_ = (w, h) if w <= h else (h, w)
    new_long = int(size * long_ / short)
    new_w, new_h = (size, new_long) if w <= h else (new_long, size)
    if (new_w, new_h) != (w, h):
        im = im.resize((new_w, new_h), _PILImage.BICUBIC)
    left = int(round((new_w - size) / 2.0))
    top = int(round((new_h - size) / 2.0))
    return im.crop((left, top, left + size, top + size)).convert("RGB")


def _pil_palette(im: Any) -> Optional[bytes]:
    """The RGB palette of a P image, or None when an index lies past a short palette (then
    Pillow's own conversion is used, whatever this Pillow version fills unset entries with)."""
    pal = im.getpalette()
    if pal is None:
        return None
    pal = bytes(pal[:768])
    if len(pal) < 768:
        lo, hi = im.getextrema()
        if hi >= len(pal) // 3:
            return None
    return pal


def pil_item(im: Any, name: str, size: int) -> Item:
    w, h = im.size
    label = f"{name} (PIL {im.mode} {w}x{h})"
    mode = im.mode
    if mode in NATIVE_MODES:
        palette = None
        if mode == "P":
            palette = _pil_palette(im)
        if mode != "P" or palette is not None:
            data = im.tobytes("raw", "L") if mode == "1" else im.tobytes()
            return ("pixels", (mode, w, h, data, palette), label)
    return ("pixels", ("RGB", size, size, _pillow_crop(im, label, size).tobytes(), None), label)


def _pillow_crop(im: Any, label: str, size: int) -> Any:
    try:
        return resize_crop_pil(im, size)
    except (ValueError, OSError) as e:  # e.g. "image has wrong mode" (I;16), as open_clip
        raise Unsupported(f"{label}: Pillow cannot resize/convert it: {e}") from None


def array_item(a: np.ndarray, name: str) -> Item:
    if a.ndim == 3 and a.shape[0] == 3 and a.dtype.kind == "f":
        return ("tensor", np.ascontiguousarray(a, dtype=np.float32), name)
    if a.dtype == np.uint8:
        if a.ndim in (2, 3) and a.shape[0] * a.shape[1] > MAX_PIXELS:
            raise TooLarge(f"{name}: image size {a.shape[1]}x{a.shape[0]} exceeds the limit of "
                           f"{MAX_PIXELS} pixels (decompression bomb guard)")
        mode = {2: "L", 3: {3: "RGB", 4: "RGBA"}.get(a.shape[-1])}.get(a.ndim) \
            if a.ndim in (2, 3) else None
        if mode is not None:
            a = np.ascontiguousarray(a)
            return ("pixels", (mode, a.shape[1], a.shape[0], a, None), name)
    raise InvalidInput(
        f"{name}: numpy array of shape {a.shape} and dtype {a.dtype} is not an image: expected "
        f"uint8 (H, W, 3) RGB (or (H, W) gray, (H, W, 4) RGBA, as Image.fromarray reads them) "
        f"or a float32 (3, S, S) preprocessed tensor")


def engine_items(images: Any, size: int, first_index: int = 0) -> List[Item]:
    """Items for the native engine, one per image (named from ``images[first_index]``)."""
    items: List[Item] = []
    for i, x in enumerate(as_image_list(images), first_index):
        name = f"images[{i}]"
        if isinstance(x, (str, os.PathLike)):
            items.append(("path", os.fspath(x), os.fspath(x)))
        elif isinstance(x, (bytes, bytearray, memoryview)):
            if len(x) == 0:
                raise InvalidInput(f"{name}: empty image")
            if isinstance(x, memoryview) and not x.c_contiguous:
                x = x.tobytes()
            items.append(("bytes", x, name))
        elif is_pil(x):
            items.append(pil_item(x, name, size))
        elif isinstance(x, np.ndarray) or hasattr(x, "__array__"):
            items.append(array_item(np.asarray(x), name))
        else:
            raise InvalidInput(f"{name}: unsupported image type {type(x).__name__} (expected a "
                               f"path, bytes, a PIL.Image, or a numpy array)")
    return items


def png_bytes(a: np.ndarray) -> bytes:
    """A lossless PNG of a uint8 (H, W), (H, W, 3) or (H, W, 4) array (standard library only)."""
    h, w = a.shape[:2]
    channels = 1 if a.ndim == 2 else a.shape[2]
    color = {1: 0, 3: 2, 4: 6}[channels]
    rows = np.zeros((h, 1 + w * channels), dtype=np.uint8)
    rows[:, 1:] = a.reshape(h, w * channels)

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + \
            struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, color, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows.tobytes(), 1)) + chunk(b"IEND", b""))


def encoded_image(x: Any, name: str, size_fn) -> bytes:
    """Encoded bytes of one image for the server (``size_fn()`` gives the model's image size
    when a PIL image must be transformed here first)."""
    if isinstance(x, (str, os.PathLike)):
        path = os.fspath(x)
        try:
            with open(path, "rb") as f:
                return f.read()
        except FileNotFoundError:
            from ._errors import NotFound
            raise NotFound(f"{path}: open: no such file") from None
        except OSError as e:
            from ._errors import IoError
            raise IoError(f"{path}: {e}") from None
    if isinstance(x, (bytes, bytearray, memoryview)):
        if len(x) == 0:
            raise InvalidInput(f"{name}: empty image")
        return bytes(x)
    if is_pil(x):
        label = f"{name} (PIL {x.mode} {x.size[0]}x{x.size[1]})"
        im = x if x.mode in PNG_MODES else _pillow_crop(x, label, size_fn())
        buf = io.BytesIO()
        im.save(buf, format="PNG", compress_level=1)
        return buf.getvalue()
    if isinstance(x, np.ndarray) or hasattr(x, "__array__"):
        kind, payload, _ = array_item(np.asarray(x), name)
        if kind == "tensor":
            raise Unsupported(f"{name}: preprocessed tensors can only be encoded in-process "
                              f"(clipserve.load); the server takes encoded images")
        return png_bytes(payload[3])
    raise InvalidInput(f"{name}: unsupported image type {type(x).__name__} (expected a path, "
                       f"bytes, a PIL.Image, or a numpy array)")


def template_list(templates: Any, imagenet: Sequence[str], simple: Sequence[str]) -> List[str]:
    """None -> [] (the engine's default "a photo of a {}."), "imagenet"/"simple" -> the
    built-in sets, a str -> one template, else a list of str."""
    if templates is None:
        return []
    if isinstance(templates, str):
        if templates in ("imagenet", "openai_imagenet"):
            return list(imagenet)
        if templates == "simple":
            return list(simple)
        return [templates]
    out = list(templates)
    for i, t in enumerate(out):
        if not isinstance(t, str):
            raise InvalidInput(f"templates[{i}] must be a str, got {type(t).__name__}")
    return out


def label_list(labels: Iterable[Any]) -> List[str]:
    if isinstance(labels, str):
        return [labels]
    out = list(labels)
    for i, t in enumerate(out):
        if not isinstance(t, str):
            raise InvalidInput(f"labels[{i}] must be a str, got {type(t).__name__}")
    return out
