// Shared by the Node.js tests: a synthetic tiny model and a real `clipserve serve` on a free
// loopback port, ready before the promise resolves.
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

const here = path.dirname(new URL(import.meta.url).pathname);
export const repo = path.resolve(here, "../..");
export const cli = process.env.CLIPSERVE_CLI || path.join(repo, "build/clipserve");

/// A fresh temporary directory and the tiny synthetic model in it: {tmp, model}.
export function tinyModel(prefix, seed = 0) {
  const tmp = mkdtempSync(path.join(tmpdir(), prefix));
  const model = path.join(tmp, "tiny");
  execFileSync(cli, ["synth-model", "--config", path.join(repo, "tests/data/engine/tiny_config.json"),
    "--seed", String(seed), "--out", model], { stdio: "ignore" });
  return { tmp, model };
}

/// Starts `clipserve serve --model MODEL --port 0 --no-warmup EXTRA...`; resolves with
/// {base, proc, log()} once /health/ready answers 200.
export async function serve(model, extra = []) {
  const proc = spawn(cli, ["serve", "--model", model, "--port", "0", "--no-warmup", ...extra],
    { stdio: ["ignore", "ignore", "pipe"] });
  let log = "";
  const port = await new Promise((resolve, reject) => {
    proc.stderr.on("data", (d) => {
      log += d;
      const m = /listening on http:\/\/[^:]+:(\d+)/.exec(log);
      if (m) resolve(Number(m[1]));
    });
    proc.on("exit", (c) => reject(new Error("serve exited " + c + ": " + log)));
    setTimeout(() => reject(new Error("serve did not start: " + log)), 60000);
  });
  const base = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 300; i++) {
    try { if ((await fetch(base + "/health/ready")).ok) break; } catch (e) { /* not yet */ }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { base, proc, log: () => log };
}
