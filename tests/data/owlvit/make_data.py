#!/usr/bin/env python3
"""Builds the compact OWL-ViT fixtures of tests/data/owlvit from ../shared (run from the repo
root with /usr/bin/python3; needs python3-torch and numpy). The patch16-256 checkpoint becomes
a zlib-compressed model.safetensors whose token embedding keeps only the rows of the test
queries (the others are zero: the tests never read them); goldens are copied as they are."""
import json, os, shutil, struct, sys, zlib
import numpy as np
import torch

SHARED = sys.argv[1] if len(sys.argv) > 1 else "../shared"
FX = f"{SHARED}/fixtures"
G = f"{FX}/golden/owlvit"
OUT = "tests/data/owlvit"
MODEL = "patch16-256"

sd = torch.load(f"{FX}/models/owlvit-tiny/{MODEL}/pytorch_model.bin", map_location="cpu")
ids = set()
for q in ("q2", "q5"):
    ids |= set(np.load(f"{G}/{MODEL}/queries/{q}.input_ids.npy").ravel().tolist())
tok = "owlvit.text_model.embeddings.token_embedding.weight"
keep = torch.zeros_like(sd[tok])
for i in sorted(ids):
    keep[i] = sd[tok][i]
sd[tok] = keep
header, blobs, off = {}, [], 0
for name, t in sd.items():
    if t.dtype != torch.float32:
        continue  # position_ids buffers (int64): the loader ignores them anyway
    b = t.contiguous().numpy().astype("<f4").tobytes()
    header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
    blobs.append(b)
    off += len(b)
header["__metadata__"] = {"format": "pt", "note": "token rows outside the test queries zeroed"}
h = json.dumps(header, separators=(",", ":")).encode()
h += b" " * (-len(h) % 8)
raw = struct.pack("<Q", len(h)) + h + b"".join(blobs)
with open(f"{OUT}/{MODEL}.model.safetensors.zlib", "wb") as f:
    f.write(zlib.compress(raw, 9))
for fn in ("config.json", "preprocessor_config.json"):
    shutil.copy(f"{FX}/models/owlvit-tiny/{MODEL}/{fn}", f"{OUT}/{MODEL}.{fn}")

for img in ("n03804744_nail.JPEG", "n01871265_tusker.JPEG", "n01440764_tench.JPEG"):
    shutil.copy(f"{FX}/images/{img}", f"{OUT}/{img}")
os.makedirs(f"{OUT}/golden", exist_ok=True)
copies = ["box_bias.npy", "queries/q2.input_ids.npy", "queries/q5.input_ids.npy",
          "image_guided/query_embeds.npy", "image_guided/logits.npy",
          "image_guided/target_pred_boxes.npy"]
for f in ("image_embeds", "pred_boxes", "class_embeds", "q2.logits", "q2.text_embeds",
          "q5.logits", "q5.text_embeds"):
    copies.append(f"n03804744_nail.JPEG/{f}.npy")
for c in copies:
    shutil.copy(f"{G}/{MODEL}/{c}", f"{OUT}/golden/{c.replace('/', '.')}")
m = json.load(open(f"{G}/manifest.json"))
pp = json.load(open(f"{G}/{MODEL}/postprocess.json"))
small = {
    "source": f"shared/fixtures/golden/owlvit ({MODEL}), see make_data.py",
    "preprocess_256_sha256": {k: v["pixel_values_sha256"] for k, v in m["preprocess"]["256"].items()
                              if k in ("n03804744_nail.JPEG", "n01871265_tusker.JPEG",
                                       "n01440764_tench.JPEG")},
    "image_guided": m["models"][MODEL]["image_guided"],
    "object_detection": {k: v for k, v in pp["object_detection"].items()
                         if k.startswith("n03804744_nail.JPEG/q2") or k.startswith("n03804744_nail.JPEG/q5")},
    "image_guided_postprocess": pp["image_guided"],
}
json.dump(small, open(f"{OUT}/golden/goldens.json", "w"), indent=1)
