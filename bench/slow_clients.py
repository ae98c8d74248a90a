#!/usr/bin/env python3
"""Slow-client benchmark for `clipserve serve`: N connections drip a request one header byte
at a time while a liveness canary and a well-behaved embedding client measure the service.

Starts the server itself (port 0), waits for /health/ready, runs for --seconds, then sends
SIGTERM with the dripping connections still open and times the exit. Bounded in time: every
socket has a timeout, the whole run ends after --seconds plus the shutdown wait.

  clipserve synth-model --arch ViT-B-32 --seed 0 --out /tmp/vitb32
  python3 bench/slow_clients.py --cli build/clipserve --model /tmp/vitb32 \
      --drippers 300 --drip-interval 10 --seconds 60
"""
import argparse
import json
import re
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time


def pct(values, p):
    if not values:
        return float("nan")
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100.0 * (len(v) - 1))))]


def http_request(port, raw, timeout):
    """Sends one raw request on a fresh connection; returns (status, seconds) or (None, s)."""
    t0 = time.monotonic()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(raw)
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
            m = re.match(rb"HTTP/1\.[01] (\d+)", data)
            return (int(m.group(1)) if m else None), time.monotonic() - t0
    except OSError:
        return None, time.monotonic() - t0


class KeepAliveClient:
    """A minimal HTTP/1.1 keep-alive client (Content-Length responses only)."""

    def __init__(self, port, timeout):
        self.port, self.timeout, self.sock, self.buf = port, timeout, None, b""

    def request(self, raw):
        for attempt in range(2):
            try:
                if self.sock is None:
                    self.sock = socket.create_connection(("127.0.0.1", self.port),
                                                         timeout=self.timeout)
                    self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    self.buf = b""
                self.sock.sendall(raw)
                while b"\r\n\r\n" not in self.buf:
                    chunk = self.sock.recv(65536)
                    if not chunk:
                        raise OSError("closed")
                    self.buf += chunk
                head, _, rest = self.buf.partition(b"\r\n\r\n")
                m = re.search(rb"Content-Length: (\d+)", head, re.I)
                n = int(m.group(1)) if m else 0
                while len(rest) < n:
                    chunk = self.sock.recv(65536)
                    if not chunk:
                        raise OSError("closed")
                    rest += chunk
                self.buf = rest[n:]
                return int(head[9:12])
            except OSError as e:
                import os
                if os.environ.get("SLOW_DEBUG"):
                    print("embed client:", attempt, repr(e), self.buf[:120], file=sys.stderr)
                if self.sock:
                    self.sock.close()
                self.sock = None
                if attempt == 1:
                    return None
        return None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--cli", default="build/clipserve")
    ap.add_argument("--model", required=True)
    ap.add_argument("--drippers", type=int, default=300)
    ap.add_argument("--drip-interval", type=float, default=10.0,
                    help="seconds between the bytes a dripping connection sends")
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--canary-interval", type=float, default=0.1)
    ap.add_argument("--timeout", type=float, default=10.0, help="client timeout per request")
    ap.add_argument("--shutdown-wait", type=float, default=100.0,
                    help="seconds to wait for the server to exit after SIGTERM")
    ap.add_argument("--serve-arg", action="append", default=[],
                    help="extra argument for clipserve serve (repeatable)")
    args = ap.parse_args()

    cmd = [args.cli, "serve", "--model", args.model, "--port", "0"] + args.serve_arg
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    port = None
    for line in proc.stderr:
        sys.stderr.write(line)
        m = re.search(r"listening on http://[^:]+:(\d+)", line)
        if m:
            port = int(m.group(1))
            break
    if port is None:
        sys.exit("the server did not start")
    threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()
    ready_deadline = time.monotonic() + 300
    while http_request(port, b"GET /health/ready HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 5)[0] != 200:
        if time.monotonic() > ready_deadline or proc.poll() is not None:
            sys.exit("the server did not become ready")
        time.sleep(0.2)

    print("slow_clients: server ready on port %d" % port, file=sys.stderr, flush=True)
    stop = threading.Event()  # the dripping connections
    stop_clients = threading.Event()  # the canary and the embedding client
    stats = {"drip_opened": 0, "drip_closed_by_server": 0, "drip_408": 0}
    drippers = []

    def open_dripper():
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=args.timeout)
            s.setblocking(False)
            s.send(b"POST /embed HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            stats["drip_opened"] += 1
            return s
        except OSError:
            return None

    def drip_loop():
        for _ in range(args.drippers):
            s = open_dripper()
            if s:
                drippers.append(s)
        while not stop.is_set():
            stop.wait(args.drip_interval)
            for i, s in enumerate(list(drippers)):
                try:
                    data = s.recv(4096)  # an answer (408) or EOF: the server cut it
                    if data.startswith(b"HTTP/1.1 408"):
                        stats["drip_408"] += 1
                    stats["drip_closed_by_server"] += 1
                    s.close()
                    drippers[i] = open_dripper() or s
                    continue
                except BlockingIOError:
                    pass
                except OSError:
                    stats["drip_closed_by_server"] += 1
                    drippers[i] = open_dripper() or s
                    continue
                try:
                    s.send(b"x")
                except OSError:
                    pass

    canary = {"lat": [], "fail": 0}

    def canary_loop():
        while not stop_clients.is_set():
            status, sec = http_request(
                port, b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
                args.timeout)
            if status == 200:
                canary["lat"].append(sec * 1000)
            else:
                canary["fail"] += 1
            stop_clients.wait(args.canary_interval)

    embed = {"lat": [], "fail": 0, "fail_status": {}}
    body = json.dumps({"input": ["a photo of a slow client"]}).encode()
    req = (b"POST /v1/embeddings HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
           b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)

    def embed_loop():
        c = KeepAliveClient(port, args.timeout)
        while not stop_clients.is_set():
            t0 = time.monotonic()
            status = c.request(req)
            if status == 200:
                embed["lat"].append((time.monotonic() - t0) * 1000)
            else:
                embed["fail"] += 1
                embed["fail_status"][str(status)] = embed["fail_status"].get(str(status), 0) + 1

    threads = [threading.Thread(target=f) for f in (drip_loop, canary_loop, embed_loop)]
    t_start = time.monotonic()
    for t in threads:
        t.start()
    time.sleep(args.seconds)
    print("slow_clients: measuring done, stopping the clients", file=sys.stderr, flush=True)
    stop_clients.set()
    threads[1].join()
    threads[2].join()
    print("slow_clients: SIGTERM", file=sys.stderr, flush=True)
    # Shutdown with the dripping connections still open.
    t_term = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=args.shutdown_wait)
        exit_s = time.monotonic() - t_term
    except subprocess.TimeoutExpired:
        proc.kill()
        exit_s = float("inf")
    stop.set()
    for t in threads:
        t.join(timeout=args.timeout + args.drip_interval + 5)
    elapsed = t_term - t_start
    cl, el = canary["lat"], embed["lat"]
    print(json.dumps({
        "drippers": args.drippers, "drip_interval_s": args.drip_interval, "seconds": elapsed,
        "canary": {"ok": len(cl), "failed": canary["fail"], "p50_ms": pct(cl, 50),
                   "p99_ms": pct(cl, 99), "max_ms": max(cl) if cl else None},
        "embeddings": {"ok": len(el), "failed": embed["fail"], "failed_by_status":
                       embed["fail_status"], "per_s": len(el) / elapsed,
                       "p50_ms": pct(el, 50), "p99_ms": pct(el, 99)},
        "dripping": stats, "sigterm_exit_s": exit_s, "exit_status": proc.returncode,
        "serve_args": args.serve_arg,
    }, indent=1))


if __name__ == "__main__":
    main()
