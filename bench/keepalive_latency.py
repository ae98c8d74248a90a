#!/usr/bin/env python3
"""Latency of a reused (keep-alive) connection vs a new one, against a running server:
GET /health/live and POST /v1/embeddings (one text), median of --n requests each, with the
client writing like cpp-httplib and requests do (headers and body in two writes, no
TCP_NODELAY).

  python3 bench/keepalive_latency.py --port 8080 --n 50
"""
import argparse
import http.client
import json
import statistics
import time


def timed(fn, n):
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return statistics.median(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--n", type=int, default=50)
    args = ap.parse_args()
    body = json.dumps({"input": "a photo of a dog"}).encode()
    hdr = {"Content-Type": "application/json"}

    def call(conn, method, path, b=None):
        conn.request(method, path, body=b, headers=hdr if b else {})
        r = conn.getresponse()
        r.read()
        assert r.status == 200, r.status

    reused = http.client.HTTPConnection("127.0.0.1", args.port, timeout=30)
    call(reused, "GET", "/health/live")
    res = {}
    for name, method, path, b in [("health_live", "GET", "/health/live", None),
                                  ("v1_embeddings", "POST", "/v1/embeddings", body)]:
        res[name] = {
            "new_connection_ms": round(timed(lambda: call(
                http.client.HTTPConnection("127.0.0.1", args.port, timeout=30), method, path, b),
                args.n), 2),
            "reused_connection_ms": round(timed(lambda: call(reused, method, path, b), args.n), 2),
        }
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
