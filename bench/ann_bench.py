#!/usr/bin/python3
"""Vector search benchmark: clipserve collections vs hnswlib and faiss (IndexHNSWFlat).

Same data, same graph degree (M) and construction beam, interleaved in one run:
  gen    N unit vectors (dim 512) from a mixture of anisotropic clusters (stand-ins for
         image embeddings), in-distribution queries (new draws from the mixture) and
         cross-modal queries (the same draws shifted by one common offset and renormalized,
         as CLIP's text embeddings sit apart from its image embeddings), exact top-10.
  run    for each engine in its own process: build time, peak RSS, recall@10 and queries/s
         on 1 and 2 threads for a sweep of efSearch, for both query sets; clipserve also
         reports reopen time and bytes per vector on disk.

  /usr/bin/python3 bench/ann_bench.py --n 100000 --work /tmp/annbench --bin build/bench/bench_collection

Needs python3-numpy, python3-hnswlib, python3-faiss (scripts/setup.sh --bench).
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

DIM = 512
K = 10
EFS = [10, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512]


def unit(x):
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def mixture(rng, centers, bases, scales, n):
    """n draws: a cluster center plus noise in its own random 24-dim subspace (decaying
    variances: anisotropic) plus a little isotropic noise."""
    c = rng.integers(0, len(centers), n)
    z = rng.standard_normal((n, bases.shape[1])).astype(np.float32) * scales
    x = centers[c] + np.einsum("nk,nkd->nd", z, bases[c]) + 0.02 * rng.standard_normal((n, DIM)).astype(np.float32)
    return unit(x)


def gen(args):
    os.makedirs(args.work, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    clusters = args.clusters
    centers = unit(rng.standard_normal((clusters, DIM)).astype(np.float32))
    sub = 24
    bases = rng.standard_normal((clusters, sub, DIM)).astype(np.float32) / np.sqrt(DIM)
    scales = (0.9 * 0.85 ** np.arange(sub)).astype(np.float32)
    base = np.concatenate([mixture(rng, centers, bases, scales, min(5000, args.n - i))
                           for i in range(0, args.n, 5000)])
    q_in = np.concatenate([mixture(rng, centers, bases, scales, min(5000, args.queries - i))
                           for i in range(0, args.queries, 5000)])
    offset = unit(rng.standard_normal((1, DIM)).astype(np.float32))[0]
    # CLIP-like modality gap: matched text-image cosines ~0.3, far below image-image ones.
    q_cross = unit(q_in + 1.2 * offset + 0.3 * rng.standard_normal(q_in.shape).astype(np.float32) / np.sqrt(DIM))
    np.save(f"{args.work}/base.npy", base)
    for name, q in (("in", q_in), ("cross", q_cross)):
        np.save(f"{args.work}/q_{name}.npy", q)
        gt = np.empty((len(q), K), dtype=np.int64)
        for s in range(0, len(q), 100):
            sims = q[s:s + 100] @ base.T
            top = np.argpartition(-sims, K, axis=1)[:, :K]
            order = np.argsort(-np.take_along_axis(sims, top, 1), axis=1)
            gt[s:s + 100] = np.take_along_axis(top, order, 1)
        np.save(f"{args.work}/gt_{name}.npy", gt)
        print(f"gen: {name} queries: mean top-1 cosine "
              f"{float(np.mean(np.max(q @ base[:20000].T, axis=1))):.3f} (first 20k)", file=sys.stderr)


def recall(found, gt):
    return float(np.mean([len(set(f[:K]) & set(g)) / K for f, g in zip(found, gt)]))


def peer(args):
    base = np.load(f"{args.work}/base.npy")
    n = len(base)
    out = {"engine": args.engine, "n": n}
    t0 = time.perf_counter()
    if args.engine == "hnswlib":
        import hnswlib
        idx = hnswlib.Index(space="ip", dim=DIM)
        idx.init_index(max_elements=n, ef_construction=args.efc, M=args.m)
        idx.add_items(base, np.arange(n), num_threads=2)

        def search(q, ef, threads):
            idx.set_ef(ef)
            return idx.knn_query(q, k=K, num_threads=threads)[0]
    else:
        import faiss
        faiss.omp_set_num_threads(2)
        idx = faiss.IndexHNSWFlat(DIM, args.m, faiss.METRIC_INNER_PRODUCT)
        idx.hnsw.efConstruction = args.efc
        idx.add(base)

        def search(q, ef, threads):
            faiss.omp_set_num_threads(threads)
            idx.hnsw.efSearch = ef
            return idx.search(q, K)[1]
    out["build_s"] = time.perf_counter() - t0
    del base
    out["results"] = []
    for qs in ("in", "cross"):
        q = np.load(f"{args.work}/q_{qs}.npy")
        gt = np.load(f"{args.work}/gt_{qs}.npy")
        for ef in EFS:
            for threads in (1, 2):
                t = time.perf_counter()
                found = search(q, ef, threads)
                dt = time.perf_counter() - t
                out["results"].append({"queries": qs, "ef": ef, "threads": threads,
                                       "recall": recall(found, gt), "qps": len(q) / dt})
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(out))


def table(runs):
    lines = []
    for qs in ("in", "cross"):
        for target in (0.95, 0.99):
            lines.append(f"\n{qs}-distribution queries, recall@10 >= {target}:" if qs == "in"
                         else f"\ncross-modal queries, recall@10 >= {target}:")
            lines.append("| engine | efSearch | recall@10 | QPS 1 thread | QPS 2 threads |")
            lines.append("|---|---|---|---|---|")
            for r in runs:
                rows = {}
                for x in r["results"]:
                    if x["queries"] == qs:
                        rows.setdefault(x["ef"], {})[x["threads"]] = x
                hit = next((ef for ef in sorted(rows) if rows[ef][1]["recall"] >= target), None)
                if hit is None:
                    best = max(rows[ef][1]["recall"] for ef in rows)
                    lines.append(f"| {r['engine']} | - | max {best:.4f} | - | - |")
                else:
                    a, b = rows[hit][1], rows[hit][2]
                    lines.append(f"| {r['engine']} | {hit} | {a['recall']:.4f} | {a['qps']:.0f} | {b['qps']:.0f} |")
    lines.append("\n| engine | build s | peak RSS MB | reopen s | bytes/vector on disk |")
    lines.append("|---|---|---|---|---|")
    for r in runs:
        lines.append(f"| {r['engine']} | {r['build_s']:.1f} | {r['peak_rss_mb']:.0f} | "
                     f"{r.get('reopen_s', float('nan')):.2f} | {r.get('bytes_per_vector', float('nan')):.0f} |")
    return "\n".join(lines)


def run(args):
    if not os.path.exists(f"{args.work}/gt_cross.npy") or args.regen:
        gen(args)
    runs = []
    for engine in ("clipserve", "hnswlib", "faiss"):
        if engine == "clipserve":
            cmd = [args.bin, "--data", args.work, "--out", f"{args.work}/coll", "--m", str(args.m),
                   "--efc", str(args.efc), "--efs", ",".join(map(str, EFS))]
        else:
            cmd = [sys.executable, __file__, "peer", "--engine", engine, "--work", args.work,
                   "--m", str(args.m), "--efc", str(args.efc)]
        print(f"run: {engine} ...", file=sys.stderr, flush=True)
        res = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True)
        runs.append(json.loads(res.stdout.strip().splitlines()[-1]))
    with open(f"{args.work}/results.json", "w") as f:
        json.dump(runs, f, indent=1)
    print(f"N = {runs[0]['n']}, dim {DIM}, M = {args.m}, efConstruction = {args.efc}, "
          f"{args.queries} queries per set")
    print(table(runs))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd", choices=["gen", "peer", "run"])
    ap.add_argument("--n", type=int, default=100000)
    ap.add_argument("--clusters", type=int, default=3000)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", default="/tmp/annbench")
    ap.add_argument("--engine", choices=["hnswlib", "faiss"])
    ap.add_argument("--m", type=int, default=16)
    ap.add_argument("--efc", type=int, default=200)
    ap.add_argument("--bin", default="build/bench/bench_collection")
    ap.add_argument("--regen", action="store_true")
    args = ap.parse_args()
    {"gen": gen, "peer": peer, "run": run}[args.cmd](args)


if __name__ == "__main__":
    main()
