#!/usr/bin/python3
# Times Pillow doing open_clip's eval transform (decode, Resize(S, bicubic) by torchvision's
# rule, CenterCrop, convert('RGB'), ToTensor+Normalize via numpy) per image, single thread.
# Prints one JSON line per file: {"file", "median_ms", "min_ms", "reps"}.
import json, sys, time
import numpy as np
from PIL import Image

MEAN = np.array([0.48145466, 0.4578275, 0.40821073], dtype=np.float32).reshape(3, 1, 1)
STD = np.array([0.26862954, 0.26130258, 0.27577711], dtype=np.float32).reshape(3, 1, 1)


def preprocess(path, s):
    im = Image.open(path)
    w, h = im.size
    short, long = min(w, h), max(w, h)
    new_long = int(s * long / short)
    ow, oh = (s, new_long) if w <= h else (new_long, s)
    if (ow, oh) != (w, h):
        im = im.resize((ow, oh), Image.BICUBIC)
    left, top = int(round((ow - s) / 2.0)), int(round((oh - s) / 2.0))
    im = im.crop((left, top, left + s, top + s)).convert("RGB")
    x = np.asarray(im, dtype=np.uint8).transpose(2, 0, 1).astype(np.float32) / np.float32(255)
    return (x - MEAN) / STD


def main():
    s = int(sys.argv[1])
    reps = int(sys.argv[2])
    for path in sys.argv[3:]:
        preprocess(path, s)  # warm-up
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            preprocess(path, s)
            times.append((time.perf_counter() - t0) * 1e3)
        times.sort()
        print(json.dumps({"file": path, "median_ms": times[len(times) // 2],
                          "min_ms": times[0], "reps": reps}))


if __name__ == "__main__":
    main()
