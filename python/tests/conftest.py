"""Shared fixtures: the CLI, test data, a tiny synthetic model, a loaded model, and a real
`clipserve serve` on a free loopback port."""
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
CLI = os.environ.get("CLIPSERVE_CLI", str(REPO / "build" / "clipserve"))
TEST_DATA = Path(os.environ.get("CLIPSERVE_TEST_DATA", REPO / "tests" / "data"))
SHARED = Path(os.environ.get("CLIPSERVE_SHARED_DIR", REPO.parent / "shared"))
IMAGE_DIR = TEST_DATA / "image"
PHOTO = TEST_DATA / "engine" / "photo_640x425.jpg"

import clipserve  # noqa: E402  (PYTHONPATH=build/python, set by ctest)

# The test images of tests/data/image that Pillow (and so open_clip) can process, with modes.
TEST_IMAGES = sorted(p for p in IMAGE_DIR.iterdir()
                     if p.suffix in (".png", ".jpg", ".gif", ".bmp", ".tif", ".webp"))


def run_cli(*args, check=True):
    r = subprocess.run([CLI, *map(str, args)], capture_output=True, text=True)
    if check and r.returncode != 0:
        raise AssertionError(f"clipserve {' '.join(map(str, args))} failed: {r.stderr}")
    return r


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    """The synthetic tiny model the C++ tests use (tests/data/engine/tiny_config.json, seed 0)."""
    d = tmp_path_factory.mktemp("model") / "tiny"
    run_cli("synth-model", "--config", TEST_DATA / "engine" / "tiny_config.json", "--seed", "0",
            "--out", d)
    return d


@pytest.fixture(scope="session")
def model(tiny_dir):
    m = clipserve.load(tiny_dir)
    yield m
    m.close()


@pytest.fixture(scope="session")
def cli_embed(tiny_dir, tmp_path_factory):
    """`clipserve embed` of the given inputs (paths, .npy tensors, text:...): (N, D) float32."""
    out_dir = tmp_path_factory.mktemp("embed")
    counter = [0]

    def embed(inputs, raw=False):
        counter[0] += 1
        out = out_dir / f"out{counter[0]}.npy"
        run_cli("embed", "--model", tiny_dir, "--out", out, *(["--raw"] if raw else []),
                *inputs)
        return np.load(out)

    return embed


def serve(*args, api_key=None, timeout=60):
    """Starts `clipserve serve ARGS` on a free loopback port; yields its base URL once ready,
    then stops it (a generator for fixtures)."""
    cmd = [CLI, "serve", *map(str, args), "--host", "127.0.0.1", "--port", "0"]
    if api_key:
        cmd += ["--api-key", api_key]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    url = None
    deadline = time.monotonic() + timeout
    lines = []
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        lines.append(line)
        m = re.search(r"listening on (http://127\.0\.0\.1:\d+)", line)
        if m:
            url = m.group(1)
            break
    if url is None:
        proc.kill()
        raise AssertionError("clipserve serve did not start: " + "".join(lines))
    # Keep draining stderr so the server never blocks on a full pipe.
    import threading
    threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()
    clipserve.Client(url, api_key=api_key).wait_ready(timeout)
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="session")
def server(tiny_dir):
    """A real `clipserve serve` of the tiny model on a free loopback port: its base URL."""
    yield from serve("--model", tiny_dir, api_key="test-key")


def golden_tensor(u8_rgb, mean=(0.48145466, 0.4578275, 0.40821073),
                  std=(0.26862954, 0.26130258, 0.27577711)):
    """ToTensor + Normalize as torchvision computes them, in float32 (true divisions)."""
    x = np.asarray(u8_rgb, dtype=np.uint8).astype(np.float32) / np.float32(255)
    x = (x - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def open_clip_transform(im, size=224):
    """open_clip's eval transform written out from torchvision 0.14's rules (Resize(size,
    BICUBIC) -> CenterCrop(size) -> convert('RGB') -> ToTensor -> Normalize) on Pillow."""
    from PIL import Image
    w, h = im.size
    if w <= h:
        ow, oh = size, int(size * h / w)
    else:
        ow, oh = int(size * w / h), size
    if (ow, oh) != (w, h):
        im = im.resize((ow, oh), Image.BICUBIC)
    top, left = int(round((oh - size) / 2.0)), int(round((ow - size) / 2.0))
    im = im.crop((left, top, left + size, top + size)).convert("RGB")
    return golden_tensor(np.asarray(im))


sys.modules.setdefault("conftest", sys.modules[__name__])
