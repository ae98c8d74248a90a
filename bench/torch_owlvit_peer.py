#!/usr/bin/python3
"""Peer benchmark: PyTorch (Debian python3-torch 1.13) running transformers 4.30's
OwlViTForObjectDetection forward, re-implemented op for op (transformers itself is not
installable here): the CLIP vision tower over all tokens as CLIPAttention/CLIPMLP compute it,
post_layernorm, class-token merge, layer_norm, box head (exact GELU) + corner box bias, class
head, and the text tower (causal mask, argmax pooling) for the queries. Loads a transformers
layout directory (config.json + model.safetensors, e.g. `clipserve synth-model --arch
owlvit-base-patch32`), checks its logits/boxes against clipserve's `detect --dump` output
(`--check-dir`), and prints per-call medians as JSON lines. Used by bench/peer_owlvit.sh.
usage: torch_owlvit_peer.py MODEL_DIR --pixels X.npy --ids IDS.npy --batch 1,4 --threads 2
       --iters 3 [--check-dir DUMP --name FILE]
"""
import argparse, json, math, struct, statistics, time

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
        a, b = info["data_offsets"]
        out[name] = torch.from_numpy(np.frombuffer(data[a:b], dtype="<f4").reshape(info["shape"]).copy())
    return out


def linear(x, w, p):
    return F.linear(x, w[p + ".weight"], w.get(p + ".bias"))


def encoder(x, w, prefix, layers, heads, mask=None):
    b, n, d = x.shape
    hd = d // heads
    for i in range(layers):
        p = f"{prefix}.encoder.layers.{i}"
        h = F.layer_norm(x, (d,), w[p + ".layer_norm1.weight"], w[p + ".layer_norm1.bias"], 1e-5)
        q = linear(h, w, p + ".self_attn.q_proj") * hd ** -0.5
        k = linear(h, w, p + ".self_attn.k_proj")
        v = linear(h, w, p + ".self_attn.v_proj")
        shape = lambda t: t.view(b, n, heads, hd).transpose(1, 2).reshape(b * heads, n, hd)
        q, k, v = shape(q), shape(k), shape(v)
        a = torch.bmm(q, k.transpose(1, 2))
        if mask is not None:
            a = (a.view(b, heads, n, n) + mask).view(b * heads, n, n)
        a = torch.bmm(F.softmax(a, dim=-1), v)
        a = a.view(b, heads, n, hd).transpose(1, 2).reshape(b, n, d)
        x = x + linear(a, w, p + ".self_attn.out_proj")
        h = F.layer_norm(x, (d,), w[p + ".layer_norm2.weight"], w[p + ".layer_norm2.bias"], 1e-5)
        h = linear(h, w, p + ".mlp.fc1")
        h = h * torch.sigmoid(1.702 * h)  # quick_gelu
        x = x + linear(h, w, p + ".mlp.fc2")
    return x


def image_embedder(pixels, w, vc):
    p = "owlvit.vision_model"
    patch = vc["patch_size"]
    d = vc["hidden_size"]
    x = F.conv2d(pixels, w[p + ".embeddings.patch_embedding.weight"], stride=patch)
    x = x.flatten(2).transpose(1, 2)
    cls = w[p + ".embeddings.class_embedding"].expand(x.shape[0], 1, -1)
    x = torch.cat([cls, x], dim=1) + w[p + ".embeddings.position_embedding.weight"]
    x = F.layer_norm(x, (d,), w[p + ".pre_layernorm.weight"], w[p + ".pre_layernorm.bias"], 1e-5)
    x = encoder(x, w, p, vc["num_hidden_layers"], vc["num_attention_heads"])
    x = F.layer_norm(x, (d,), w[p + ".post_layernorm.weight"], w[p + ".post_layernorm.bias"], 1e-5)
    x = x[:, 1:, :] * x[:, :1, :]
    return F.layer_norm(x, (d,), w["layer_norm.weight"], w["layer_norm.bias"], 1e-5)


def box_bias(g):
    c = np.stack(np.meshgrid(np.arange(1, g + 1), np.arange(1, g + 1)), axis=-1).astype(np.float32)
    c /= np.array([g, g], np.float32)
    c = torch.from_numpy(c.reshape(g * g, 2)).clip(0.0, 1.0)
    cb = torch.log(c + 1e-4) - torch.log1p(-c + 1e-4)
    s = torch.full_like(cb, 1.0 / g)
    sb = torch.log(s + 1e-4) - torch.log1p(-s + 1e-4)
    return torch.cat([cb, sb], dim=-1)


def text_embeds(ids, w, tc):
    p = "owlvit.text_model"
    n = ids.shape[1]
    x = w[p + ".embeddings.token_embedding.weight"][ids] + w[p + ".embeddings.position_embedding.weight"][:n]
    mask = torch.full((n, n), torch.finfo(torch.float32).min).triu(1)[None, None]
    x = encoder(x, w, p, tc["num_hidden_layers"], tc["num_attention_heads"], mask)
    x = F.layer_norm(x, (tc["hidden_size"],), w[p + ".final_layer_norm.weight"],
                     w[p + ".final_layer_norm.bias"], 1e-5)
    pooled = x[torch.arange(x.shape[0]), ids.argmax(-1)]
    t = F.linear(pooled, w["owlvit.text_projection.weight"])
    return t / t.norm(dim=-1, keepdim=True)


def detect(pixels, ids, w, cfg, bias):
    feats = image_embedder(pixels, w, cfg["vision_config"])
    q = text_embeds(ids, w, cfg["text_config"])
    h = F.gelu(linear(feats, w, "box_head.dense0"))
    h = F.gelu(linear(h, w, "box_head.dense1"))
    boxes = torch.sigmoid(linear(h, w, "box_head.dense2") + bias)
    ce = linear(feats, w, "class_head.dense0")
    ce = ce / (ce.norm(dim=-1, keepdim=True) + 1e-6)
    q = q / (q.norm(dim=-1, keepdim=True) + 1e-6)
    logits = torch.einsum("bpd,qd->bpq", ce, q)
    shift = linear(feats, w, "class_head.logit_shift")
    scale = F.elu(linear(feats, w, "class_head.logit_scale")) + 1
    return (logits + shift) * scale, boxes


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--pixels", required=True)
    ap.add_argument("--ids", required=True)
    ap.add_argument("--batch", default="1,4")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--check-dir")
    ap.add_argument("--name")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    cfg = json.load(open(a.model + "/config.json"))
    w = load_safetensors(a.model + "/model.safetensors")
    vc = cfg["vision_config"]
    g = vc["image_size"] // vc["patch_size"]
    bias = box_bias(g)
    px = torch.from_numpy(np.load(a.pixels))[None]
    ids = torch.from_numpy(np.load(a.ids).astype(np.int64))
    with torch.no_grad():
        if a.check_dir:
            logits, boxes = detect(px, ids, w, cfg, bias)
            ours_l = np.load(f"{a.check_dir}/{a.name}.logits.npy")
            ours_b = np.load(f"{a.check_dir}/{a.name}.pred_boxes.npy")
            dl = float(np.abs(logits[0].numpy() - ours_l).max() / np.abs(ours_l).max())
            db = float(np.abs(boxes[0].numpy() - ours_b).max())
            print(json.dumps({"check": "torch peer vs clipserve", "logits_max_rel_diff": dl,
                              "pred_boxes_max_abs_diff": db}))
            assert dl < 1e-4 and db < 1e-4, "the peer disagrees with clipserve"
        for b in [int(x) for x in a.batch.split(",")]:
            x = px.expand(b, -1, -1, -1).contiguous()
            detect(x, ids, w, cfg, bias)  # first call: allocator, OpenMP team
            times = []
            for _ in range(a.iters):
                t0 = time.perf_counter()
                detect(x, ids, w, cfg, bias)
                times.append((time.perf_counter() - t0) * 1000)
            print(json.dumps({"engine": "torch-1.13 (transformers 4.30 ops)", "batch": b,
                              "threads": a.threads, "median_ms": statistics.median(times),
                              "min_ms": min(times), "ms_per_image": statistics.median(times) / b}))


if __name__ == "__main__":
    main()
