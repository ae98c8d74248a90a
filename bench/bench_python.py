#!/usr/bin/python3
"""Python in-process encode vs `clipserve embed` (vs an open_clip-equivalent PyTorch peer when
python3-torch is installed), interleaved rounds in one run: 64 JPEG files, batch 16.

The Python overhead is what a call costs beyond the engine's own time: the wall time of
`model.encode_image(16 paths)` minus the engine's `timings.total_ms` for it (argument
conversion, blob packing, result wrapping, GIL hand-offs). It is compared, per image, with
the C++ CLI's time per image (`clipserve embed` of the 64 files minus the same command's
load-only run). The peer is open_clip's recipe: PIL.Image.open + the eval transform (Pillow
resize/crop, ToTensor/Normalize) + torch.stack + the ViT image tower of bench/torch_peer.py.

usage: /usr/bin/python3 bench/bench_python.py [--build build] [--rounds 5] [--threads 0]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]


def make_jpegs(out_dir, n=64):
    """n distinct 640x480-ish JPEG photos: crops of the test photo at different places."""
    base = Image.open(REPO / "tests" / "data" / "engine" / "photo_640x425.jpg").convert("RGB")
    paths = []
    for i in range(n):
        w, h = 400 + (i % 5) * 40, 300 + (i % 3) * 30
        x, y = (i * 37) % (base.width - w), (i * 23) % (base.height - h)
        im = base.crop((x, y, x + w, y + h)).resize((640, 480 - (i % 4) * 20), Image.BICUBIC)
        p = out_dir / f"img{i:02d}.jpg"
        im.save(p, quality=88 + i % 8)
        paths.append(str(p))
    return paths


def timed(cmd, env=None):
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    return (time.perf_counter() - t0) * 1e3


def torch_peer(model_dir, threads):
    try:
        import torch
    except ImportError:
        return None
    sys.path.insert(0, str(REPO / "bench"))
    import torch_peer as tp
    if threads:
        torch.set_num_threads(threads)
    cfg = json.load(open(model_dir / "open_clip_config.json"))
    visual = tp.Visual(tp.load_safetensors(str(model_dir / "open_clip_model.safetensors")),
                       cfg).eval()
    mean = torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(3, 1, 1)
    std = torch.tensor([0.26862954, 0.26130258, 0.27577711]).view(3, 1, 1)

    def transform(im, size=224):  # open_clip's eval transform (torchvision 0.14 rules)
        w, h = im.size
        ow, oh = (size, int(size * h / w)) if w <= h else (int(size * w / h), size)
        if (ow, oh) != (w, h):
            im = im.resize((ow, oh), Image.BICUBIC)
        top, left = int(round((oh - size) / 2.0)), int(round((ow - size) / 2.0))
        im = im.crop((left, top, left + size, top + size)).convert("RGB")
        x = torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1).float() / 255
        return (x - mean) / std

    def encode(paths):
        with torch.no_grad():
            x = torch.stack([transform(Image.open(p)) for p in paths])
            f = visual(x)
            return (f / f.norm(dim=-1, keepdim=True)).numpy()

    return encode, torch.__version__


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=str(REPO / "build"))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0, help="0 = all cores")
    ap.add_argument("--model", help="model directory (default: synthetic ViT-B-32, seed 0)")
    a = ap.parse_args()
    sys.path.insert(0, str(Path(a.build) / "python"))
    import clipserve

    cli = str(Path(a.build) / "clipserve")
    tmp = Path(tempfile.mkdtemp(prefix="bench_python."))
    model_dir = Path(a.model) if a.model else tmp / "vit-b-32"
    if not a.model:
        subprocess.run([cli, "synth-model", "--arch", "ViT-B-32", "--seed", "0", "--out",
                        str(model_dir)], check=True, stdout=subprocess.DEVNULL)
    paths = make_jpegs(tmp)
    thr = ["--threads", str(a.threads)] if a.threads else []
    model = clipserve.load(model_dir, threads=a.threads or None, max_batch=16)
    peer = torch_peer(model_dir, a.threads)

    # Same results first (the CLI batches 16 in order; the engine's batches may differ).
    cli_out = tmp / "cli.npy"
    subprocess.run([cli, "embed", "--model", str(model_dir), "--out", str(cli_out), *thr,
                    *paths], check=True, stderr=subprocess.DEVNULL)
    ours = np.concatenate([model.encode_image(paths[i:i + 16]) for i in range(0, 64, 16)])
    diff = float(np.abs(ours - np.load(cli_out)).max())
    print(f"# check: python vs clipserve embed max |diff| = {diff:.2e}")
    if peer:
        ref = peer[0](paths[:16])
        print(f"# check: open_clip-equivalent torch peer vs clipserve: min cosine = "
              f"{float((ref * ours[:16]).sum(1).min()):.6f}")

    rows = {"cli": [], "cli_load": [], "py_wall": [], "py_engine": [], "peer": []}
    for r in range(a.rounds):
        rows["cli"].append(timed([cli, "embed", "--model", str(model_dir), "--out",
                                  str(cli_out), *thr, *paths]))
        rows["cli_load"].append(timed([cli, "embed", "--model", str(model_dir), "--out",
                                       str(tmp / "load.npy"), *thr, "text:x"]))
        wall = eng = 0.0
        for i in range(0, 64, 16):
            t0 = time.perf_counter()
            e = model.encode_image(paths[i:i + 16])
            wall += (time.perf_counter() - t0) * 1e3
            eng += e.timings.total_ms
        rows["py_wall"].append(wall)
        rows["py_engine"].append(eng)
        if peer:
            t0 = time.perf_counter()
            for i in range(0, 64, 16):
                peer[0](paths[i:i + 16])
            rows["peer"].append((time.perf_counter() - t0) * 1e3)
        print(f"# round {r + 1}: cli {rows['cli'][-1]:.0f} ms (load-only "
              f"{rows['cli_load'][-1]:.0f}), python {wall:.0f} ms (engine {eng:.0f})"
              + (f", torch peer {rows['peer'][-1]:.0f} ms" if peer else ""), flush=True)

    med = {k: statistics.median(v) for k, v in rows.items() if v}
    cli_img = (med["cli"] - med["cli_load"]) / 64
    overhead = statistics.median(w - e for w, e in zip(rows["py_wall"], rows["py_engine"])) / 64
    result = {
        "images": 64, "batch": 16, "rounds": a.rounds, "threads": a.threads or os.cpu_count(),
        "cli_ms_per_image": cli_img, "python_ms_per_image": med["py_wall"] / 64,
        "python_engine_ms_per_image": med["py_engine"] / 64,
        "python_overhead_ms_per_image": overhead,
        "overhead_vs_cli_percent": 100 * overhead / cli_img,
        "torch_peer_ms_per_image": med["peer"] / 64 if peer else None,
        "torch": peer[1] if peer else "not installed (bash scripts/setup.sh --bench)",
    }
    print(json.dumps(result))
    model.close()


if __name__ == "__main__":
    main()
