#!/usr/bin/python3
"""Peer benchmark: PyTorch (Debian python3-torch 1.13) running open_clip's ViT image tower
on the same weights as clipserve. It loads an open_clip safetensors model directory, checks
its output against clipserve's (`--check FILE.npy`, from `clipserve embed --raw`) and prints
per-call medians as JSON lines. Used by bench/peer_torch.sh.
usage: torch_peer.py MODEL_DIR --batch 1,16 --threads 2 --iters 20 [--check OUT.npy --input X.npy]
"""
import argparse, json, struct, statistics, time

import numpy as np
import torch
import torch.nn.functional as F


def load_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] == "F32", (name, info["dtype"])
        a, b = info["data_offsets"]
        out[name] = torch.from_numpy(np.frombuffer(data[a:b], dtype="<f4").reshape(info["shape"]).copy())
    return out


class Block(torch.nn.Module):
    def __init__(self, w, prefix, width, heads, quick_gelu):
        super().__init__()
        self.attn = torch.nn.MultiheadAttention(width, heads, batch_first=True)
        self.ln_1 = torch.nn.LayerNorm(width)
        self.ln_2 = torch.nn.LayerNorm(width)
        self.c_fc = torch.nn.Linear(width, 4 * width)
        self.c_proj = torch.nn.Linear(4 * width, width)
        self.quick_gelu = quick_gelu
        sd = {k[len(prefix):]: v for k, v in w.items() if k.startswith(prefix)}
        sd = {k.replace("mlp.", ""): v for k, v in sd.items()}
        self.load_state_dict(sd, strict=True)

    def forward(self, x):
        h = self.ln_1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        h = self.c_fc(self.ln_2(x))
        h = h * torch.sigmoid(1.702 * h) if self.quick_gelu else F.gelu(h)
        return x + self.c_proj(h)


class Visual(torch.nn.Module):
    def __init__(self, w, cfg):
        super().__init__()
        v = cfg["model_cfg"]["vision_cfg"]
        self.patch = v.get("patch_size", 16)
        width = v["width"]
        heads = width // v.get("head_width", 64)
        q = cfg["model_cfg"].get("quick_gelu", False)
        self.w = w
        self.blocks = torch.nn.ModuleList(
            Block(w, f"visual.transformer.resblocks.{i}.", width, heads, q) for i in range(v["layers"]))

    def forward(self, x):
        w = self.w
        x = F.conv2d(x, w["visual.conv1.weight"], stride=self.patch)
        x = x.flatten(2).transpose(1, 2)
        cls = w["visual.class_embedding"].expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], 1) + w["visual.positional_embedding"]
        x = F.layer_norm(x, x.shape[-1:], w["visual.ln_pre.weight"], w["visual.ln_pre.bias"])
        for b in self.blocks:
            x = b(x)
        x = F.layer_norm(x[:, 0], x.shape[-1:], w["visual.ln_post.weight"], w["visual.ln_post.bias"])
        return x @ w["visual.proj"]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("model")
    p.add_argument("--batch", default="1,16")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--check")
    p.add_argument("--input")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    cfg = json.load(open(a.model + "/open_clip_config.json"))
    model = Visual(load_safetensors(a.model + "/open_clip_model.safetensors"), cfg).eval()
    size = cfg["model_cfg"]["vision_cfg"]["image_size"]
    with torch.no_grad():
        if a.check:
            x = torch.from_numpy(np.load(a.input)[None])
            ours = np.load(a.check)[0]
            ref = model(x)[0].numpy()
            cos = float(ours @ ref / np.linalg.norm(ours) / np.linalg.norm(ref))
            print(json.dumps({"check": "torch vs clipserve", "cosine": cos,
                              "max_abs_diff": float(np.abs(ours - ref).max())}))
            return
        for b in [int(s) for s in a.batch.split(",")]:
            x = torch.randn(b, 3, size, size)
            for _ in range(2):
                model(x)
            t = []
            for _ in range(a.iters):
                t0 = time.perf_counter()
                model(x)
                t.append((time.perf_counter() - t0) * 1e3)
            med = statistics.median(t)
            print(json.dumps({"engine": "pytorch-" + torch.__version__, "batch": b, "threads": a.threads,
                              "median_ms": med, "min_ms": min(t), "max_ms": max(t),
                              "items_per_s": b * 1e3 / med}))


if __name__ == "__main__":
    main()
