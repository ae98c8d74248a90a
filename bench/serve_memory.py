#!/usr/bin/env python3
"""Resting and peak RSS of `clipserve serve`: starts the server (port 0), waits for ready,
samples VmRSS at rest, runs a mixed soak (image clients posting a JPEG to /embed, text
clients posting to /v1/embeddings, one /classify client with 10 new labels x 8 templates
per request) while sampling every 50 ms, then samples the rest again. Prints one JSON object.

  clipserve synth-model --arch ViT-B-32 --seed 0 --out /tmp/vitb32
  python3 bench/serve_memory.py --cli build/clipserve --model /tmp/vitb32 --seconds 30
"""
import argparse
import base64
import json
import os
import re
import subprocess
import sys
import threading
import time
import http.client


def rss_mb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def weights_mb(model):
    return sum(os.path.getsize(os.path.join(model, f)) for f in os.listdir(model)
               if f.endswith(".safetensors")) / (1024.0 * 1024.0)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--cli", default="build/clipserve")
    ap.add_argument("--model", required=True)
    ap.add_argument("--image", default=os.path.join(os.path.dirname(__file__), "..", "tests",
                                                    "data", "engine", "photo_640x425.jpg"))
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--image-clients", type=int, default=8)
    ap.add_argument("--text-clients", type=int, default=4)
    ap.add_argument("--serve-arg", action="append", default=[])
    args = ap.parse_args()

    proc = subprocess.Popen([args.cli, "serve", "--model", args.model, "--port", "0"] +
                            args.serve_arg, stderr=subprocess.PIPE, text=True)
    port = None
    for line in proc.stderr:
        m = re.search(r"listening on http://[^:]+:(\d+)", line)
        if m:
            port = int(m.group(1))
            break
    threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()

    statuses = {}

    def call(method, path, body=b"", ctype="application/json", conn=None):
        c = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        c.request(method, path, body=body, headers={"Content-Type": ctype})
        r = c.getresponse()
        r.read()
        if r.status != 200:
            statuses[r.status] = statuses.get(r.status, 0) + 1
        return r.status

    while True:
        try:
            if call("GET", "/health/ready") == 200:
                break
        except OSError:
            pass
        time.sleep(0.2)
    time.sleep(2)
    rest_before = rss_mb(proc.pid)

    jpeg = open(args.image, "rb").read()
    stop = threading.Event()
    counts = {"image": 0, "text": 0, "classify": 0, "errors": 0}

    def image_client():
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        while not stop.is_set():
            ok = call("POST", "/embed", jpeg, "image/jpeg", c) == 200
            counts["image" if ok else "errors"] += 1

    def text_client(i):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        n = 0
        while not stop.is_set():
            body = json.dumps({"input": ["text %d of client %d" % (n, i)] * 8}).encode()
            ok = call("POST", "/v1/embeddings", body, conn=c) == 200
            counts["text" if ok else "errors"] += 1
            n += 1

    def classify_client():
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        b64 = base64.b64encode(jpeg).decode()
        n = 0
        while not stop.is_set():
            labels = ["label %d-%d" % (n, k) for k in range(10)]  # new labels: prompt encoding
            templates = ["a photo of a {}.", "a drawing of a {}.", "a {} in the wild.",
                         "a close-up of a {}.", "a blurry photo of a {}.", "art of a {}.",
                         "a small {}.", "a big {}."]
            body = json.dumps({"images": [b64], "labels": labels, "templates": templates}).encode()
            ok = call("POST", "/classify", body, conn=c) == 200
            counts["classify" if ok else "errors"] += 1
            n += 1

    threads = [threading.Thread(target=image_client) for _ in range(args.image_clients)]
    threads += [threading.Thread(target=text_client, args=(i,)) for i in range(args.text_clients)]
    threads.append(threading.Thread(target=classify_client))
    for t in threads:
        t.start()
    peak, samples = 0.0, []
    t_end = time.monotonic() + args.seconds
    while time.monotonic() < t_end:
        r = rss_mb(proc.pid)
        samples.append(r)
        peak = max(peak, r)
        time.sleep(0.05)
    stop.set()
    for t in threads:
        t.join()
    time.sleep(3)
    rest_after = rss_mb(proc.pid)
    proc.terminate()
    proc.wait(timeout=60)
    w = weights_mb(args.model)
    samples.sort()
    print(json.dumps({
        "weights_mb": round(w, 1), "rest_mb": round(rest_before, 1),
        "rest_ratio": round(rest_before / w, 2), "peak_mb": round(peak, 1),
        "peak_ratio": round(peak / w, 2), "p50_during_soak_mb": round(samples[len(samples) // 2], 1),
        "rest_after_soak_mb": round(rest_after, 1), "requests": counts, "error_statuses": statuses,
        "serve_args": args.serve_arg}, indent=1))


if __name__ == "__main__":
    main()
