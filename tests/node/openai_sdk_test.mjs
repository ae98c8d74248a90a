// The OpenAI Node SDK (npm `openai`, pinned in package-lock.json) against a real
// `clipserve serve` (synthetic tiny model, free loopback port): text and image embeddings,
// base64 encoding, model listing, and the SDK's error classes with their status, type, code
// and param; then a server hosting two models (serve --model A --model B --unload-after):
// the SDK's model name picks the engine, an idle model is unloaded and reloaded on demand.
// Exit 77 (ctest: skipped) when the package is not installed.
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import assert from "node:assert/strict";
import { repo, tinyModel, serve } from "./serve.mjs";

const here = path.dirname(new URL(import.meta.url).pathname);
let OpenAI;
try {
  OpenAI = (await import(path.join(here, "node_modules/openai/index.mjs"))).default;
} catch (e) {
  console.log("SKIPPED: the openai package is not installed (npm ci --prefix tests/node; scripts/setup.sh does it)");
  process.exit(77);
}

const { model } = tinyModel("clipserve-openai-");
const server = await serve(model, ["--model-id", "clip-tiny", "--api-key", "sk-test"]);
const { base, proc } = server;
const log = server.log;

const client = new OpenAI({ baseURL: base + "/v1", apiKey: "sk-test", maxRetries: 0 });
const native = async (body) => (await fetch(base + "/embed", {
  method: "POST", headers: { "Content-Type": "application/json", Authorization: "Bearer sk-test" },
  body: JSON.stringify(body) })).json();
let failed = false;
try {
  // Texts: the SDK's float embeddings equal the native API's rows.
  const r = await client.embeddings.create({ model: "clip-tiny", input: ["a photo of a dog", "a diagram"] });
  assert.equal(r.data.length, 2);
  assert.equal(r.model, "clip-tiny");
  const want = await native({ texts: ["a photo of a dog", "a diagram"] });
  for (let i = 0; i < 2; i++) {
    assert.equal(r.data[i].embedding.length, want.dim);
    r.data[i].embedding.forEach((v, k) => assert.ok(Math.abs(v - want.text_embeddings[i][k]) < 1e-6));
  }
  assert.ok(r.usage.prompt_tokens > 0);
  // The SDK's default base64 transport decodes to the same floats.
  const b = await client.embeddings.create({ model: "clip-tiny", input: "a diagram", encoding_format: "base64" });
  assert.equal(typeof b.data[0].embedding, "string");
  const f32 = new Float32Array(new Uint8Array(Buffer.from(b.data[0].embedding, "base64")).buffer);
  f32.forEach((v, k) => assert.ok(Math.abs(v - want.text_embeddings[1][k]) < 1e-6));
  // Images, the Infinity way (modality + data URI), through the same SDK call; the model may
  // also be named by the --model argument.
  const jpeg = readFileSync(path.join(repo, "tests/data/image/rgb_420.jpg")).toString("base64");
  const im = await client.embeddings.create({ model: model, input: ["data:image/jpeg;base64," + jpeg],
    modality: "image", encoding_format: "float" });
  const wantImg = await native({ images: [jpeg] });
  im.data[0].embedding.forEach((v, k) => assert.ok(Math.abs(v - wantImg.image_embeddings[0][k]) < 1e-6));
  // Models.
  const list = await client.models.list();
  assert.equal(list.data[0].id, "clip-tiny");
  assert.ok(list.data[0].created > 1700000000);
  assert.equal((await client.models.retrieve("clip-tiny")).id, "clip-tiny");
  // Error classes.
  await assert.rejects(client.embeddings.create({ model: "gpt-4", input: "x" }), (e) => {
    assert.ok(e instanceof OpenAI.NotFoundError, e.constructor.name);
    assert.equal(e.status, 404);
    assert.equal(e.code, "model_not_found");
    assert.equal(e.type, "invalid_request_error");
    assert.equal(e.param, "model");
    return true;
  });
  await assert.rejects(client.embeddings.create({ model: "clip-tiny", input: "x", normalise: false }), (e) => {
    assert.ok(e instanceof OpenAI.BadRequestError, e.constructor.name);
    assert.equal(e.param, "normalise");
    assert.match(e.message, /unknown field 'normalise'/);
    return true;
  });
  await assert.rejects(client.models.retrieve("nope"), (e) => e instanceof OpenAI.NotFoundError);
  const anon = new OpenAI({ baseURL: base + "/v1", apiKey: "wrong", maxRetries: 0 });
  await assert.rejects(anon.embeddings.create({ model: "clip-tiny", input: "x" }), (e) => {
    assert.ok(e instanceof OpenAI.AuthenticationError, e.constructor.name);
    assert.equal(e.code, "invalid_api_key");
    return true;
  });
  console.log("OpenAI SDK test passed (one model)");
} catch (e) {
  failed = true;
  console.error(e);
  console.error("server log:\n" + log());
} finally {
  proc.kill("SIGTERM");
}
if (failed) process.exit(1);

// Several models in one server: clip-a, clip-b (other weights) from the command line, and
// clip-c (clip-b's weights, own settings, unloaded after 1 s idle) from a --models file.
const { tmp: tmpB, model: modelB } = tinyModel("clipserve-openai-b-", 7);
const modelsFile = path.join(tmpB, "models.json");
writeFileSync(modelsFile, JSON.stringify({ models: [
  { model: modelB, id: "clip-c", aliases: ["c-alias"], max_queue: 8, unload_after: 1 }] }));
const two = await serve(model, ["--model-id", "clip-a", "--model", modelB, "--model-id", "clip-b",
  "--models", modelsFile]);
try {
  const sdk = new OpenAI({ baseURL: two.base + "/v1", apiKey: "unused", maxRetries: 0 });
  const nativeOf = async (m, body) => (await fetch(two.base + "/embed?model=" + m, {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) })).json();
  const a = await sdk.embeddings.create({ model: "clip-a", input: "a photo of a dog" });
  const b = await sdk.embeddings.create({ model: "clip-b", input: "a photo of a dog" });
  assert.equal(a.model, "clip-a");
  assert.equal(b.model, "clip-b");
  const wantA = await nativeOf("clip-a", { texts: ["a photo of a dog"] });
  const wantB = await nativeOf("clip-b", { texts: ["a photo of a dog"] });
  a.data[0].embedding.forEach((v, k) => assert.ok(Math.abs(v - wantA.text_embeddings[0][k]) < 1e-6));
  b.data[0].embedding.forEach((v, k) => assert.ok(Math.abs(v - wantB.text_embeddings[0][k]) < 1e-6));
  assert.ok(a.data[0].embedding.some((v, k) => Math.abs(v - b.data[0].embedding[k]) > 1e-3),
    "two models, two different embeddings");
  const ids = (await sdk.models.list()).data.map((m) => m.id);
  assert.deepEqual(ids, ["clip-a", "clip-b", "clip-c"]);
  await assert.rejects(sdk.embeddings.create({ model: "gpt-4", input: "x" }), (e) => {
    assert.ok(e instanceof OpenAI.NotFoundError, e.constructor.name);
    assert.match(e.message, /serves 'clip-a', 'clip-b', 'clip-c'/);
    return true;
  });
  const c = await sdk.embeddings.create({ model: "c-alias", input: "a photo of a dog" });
  assert.equal(c.model, "clip-c");
  c.data[0].embedding.forEach((v, k) => assert.ok(Math.abs(v - b.data[0].embedding[k]) < 1e-6));
  const loads0 = (await sdk.models.retrieve("clip-c")).loads;  // 2 if it idled out before that
  // clip-c idle for over a second: unloaded (still ready); clip-b (no unload_after) stays.
  let info;
  for (let i = 0; i < 100; i++) {
    await new Promise((r) => setTimeout(r, 100));
    info = (await sdk.models.retrieve("clip-c"));
    if (info.loaded === false) break;
  }
  assert.equal(info.loaded, false, JSON.stringify(info));
  assert.equal((await sdk.models.retrieve("clip-b")).loaded, true);
  assert.equal((await fetch(two.base + "/health/ready")).status, 200);
  // The next request reloads it, warmed up, and its timings show the wait.
  const again = await (await fetch(two.base + "/v1/embeddings", { method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ model: "clip-c", input: "a photo of a dog", timings: true }) })).json();
  assert.ok(again.timings.model_load_ms > 0, JSON.stringify(again.timings));
  again.data[0].embedding.forEach((v, k) => assert.ok(Math.abs(v - b.data[0].embedding[k]) < 1e-6));
  assert.equal((await sdk.models.retrieve("clip-c")).loads, loads0 + 1);
  const metrics = await (await fetch(two.base + "/metrics")).text();
  assert.match(metrics, /clipserve_items_encoded_total\{model="clip-c",tower="text"\} \d+/);
  assert.match(metrics, new RegExp(`clipserve_model_loads_total\\{model="clip-c"\\} ${loads0 + 1}`));
  assert.match(metrics, /clipserve_model_loaded\{model="clip-b"\} 1/);
  console.log("OpenAI SDK test passed (two models, idle unload)");
} catch (e) {
  failed = true;
  console.error(e);
  console.error("server log:\n" + two.log());
} finally {
  two.proc.kill("SIGTERM");
}
process.exit(failed ? 1 : 0);
