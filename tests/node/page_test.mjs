// Browser test of the web page: a real `clipserve serve` (synthetic tiny model) on a free
// loopback port, headless Debian Chromium driven by playwright-core. Classifies images, checks
// the bars against the API's own answer, shows an error for a corrupt image and stays usable,
// searches a collection when the server has collections, detects with an OWL-ViT model (the
// compact checkpoint in tests/data/owlvit) and draws the API's boxes, asks for the API key when one is set,
// and takes screenshots of each view at desktop and phone width into $CLIPSERVE_SCREENSHOTS.
// Exit 77 (ctest: skipped) with a message when Chromium or playwright-core is missing.
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { inflateSync } from "node:zlib";
import path from "node:path";
import assert from "node:assert/strict";
import { repo, tinyModel, serve as serveModel } from "./serve.mjs";

const here = path.dirname(new URL(import.meta.url).pathname);
const chromium = process.env.CHROMIUM || "/usr/bin/chromium";
const shots = process.env.CLIPSERVE_SCREENSHOTS || path.join(repo, "build/screenshots");

function skip(why) {
  console.log("SKIPPED: " + why);
  process.exit(77);
}
if (!existsSync(chromium)) skip(`${chromium} not found (Debian package chromium; scripts/setup.sh installs it)`);
let pw;
try {
  pw = await import(path.join(here, "node_modules/playwright-core/index.mjs"));
} catch (e) {
  skip("playwright-core not installed (npm ci --prefix tests/node; scripts/setup.sh does it)");
}

const { tmp, model } = tinyModel("clipserve-browser-");
const images = ["rgb_420.jpg", "gray.jpg", "palette.png"].map((f) => path.join(repo, "tests/data/image", f));
const corrupt = path.join(tmp, "corrupt.jpg");
writeFileSync(corrupt, readFileSync(images[0]).subarray(0, 300));

async function apiJson(base, method, p, body, key) {
  const headers = { "Content-Type": "application/json" };
  if (key) headers.Authorization = "Bearer " + key;
  const r = await fetch(base + p, { method, headers, body: body && JSON.stringify(body) });
  return { status: r.status, body: await r.json() };
}
const dataUrl = (f) => "data:image/" + (f.endsWith(".png") ? "png" : "jpeg") + ";base64," +
  readFileSync(f).toString("base64");

const browser = await pw.chromium.launch({
  executablePath: chromium,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
mkdirSync(shots, { recursive: true });
const servers = [];
let failed = false;
try {
  const s = await serveModel(model, ["--collections", path.join(tmp, "collections")]);
  // A small collection: texts with metadata, and images.
  assert.equal((await apiJson(s.base, "POST", "/indexes/photos", {})).status < 300, true);
  const docs = [
    { _id: "dog1", text: "a brown dog on the beach", kind: "animal" },
    { _id: "dog2", text: "a small dog in the snow", kind: "animal" },
    { _id: "car1", text: "a red car at night", kind: "vehicle" },
    { _id: "img1", image: readFileSync(images[0]).toString("base64"), kind: "photo" },
    { _id: "img2", image: readFileSync(images[1]).toString("base64"), kind: "photo" },
  ];
  const add = await apiJson(s.base, "POST", "/indexes/photos/documents", { documents: docs });
  assert.equal(add.status, 200, JSON.stringify(add.body));
  assert.equal(add.body.errors, false, JSON.stringify(add.body));
  const thumb = await fetch(s.base + "/indexes/photos/documents/img1/thumbnail");
  assert.equal(thumb.status, 200);
  assert.equal(thumb.headers.get("content-type"), "image/jpeg");
  assert.equal((await fetch(s.base + "/indexes/photos/documents/dog1/thumbnail")).status, 404);
  servers.push(s);
  for (const [wname, viewport] of [["desktop", { width: 1280, height: 860 }], ["phone", { width: 390, height: 844 }]]) {
    const page = await browser.newPage({ viewport });
    const errors = [];
    page.on("pageerror", (e) => errors.push(e.message));
    await page.goto(s.base + "/");
    await page.waitForFunction(() => document.getElementById("st-ready").textContent === "ready");
    assert.match(await page.textContent("#st-model"), /model: tiny/);

    // Search view: a text search shows the API's hits, in its order.
    await page.waitForFunction(() => document.querySelectorAll("#collection option").length > 0);
    const ids = async () => page.$$eval("#results li", (lis) => lis.map((li) => li.dataset.id));
    await page.fill("#query", "a dog");
    await page.click("#search-form button[type=submit]");
    await page.waitForSelector("#results li");
    const wantHits = await apiJson(s.base, "POST", "/indexes/photos/search",
      { q: "a dog", limit: 24, searchMethod: "TENSOR" });
    assert.deepEqual(await ids(), wantHits.body.hits.map((h) => h._id));
    assert.equal((await ids()).length, 5);
    // Image documents show their thumbnail (loaded), text documents their id.
    await page.waitForFunction(() => {
      const img = document.querySelector('#results li[data-id="img1"] img');
      return img && img.complete && img.naturalWidth > 0;
    });
    assert.equal(await page.$('#results li[data-id="dog1"] img'), null);
    await page.screenshot({ path: path.join(shots, `search-${wname}.png`), fullPage: true });
    // A filter and lexical search.
    await page.fill("#filter", "kind:animal");
    await page.check('input[name="method"][value="LEXICAL"]');
    await page.click("#search-form button[type=submit]");
    await page.waitForFunction(() => document.querySelectorAll("#results li").length === 2);
    const lex = await apiJson(s.base, "POST", "/indexes/photos/search",
      { q: "a dog", limit: 24, filter: "kind:animal", searchMethod: "LEXICAL" });
    assert.deepEqual(await ids(), lex.body.hits.map((h) => h._id));
    await page.fill("#filter", "");
    await page.check('input[name="method"][value="TENSOR"]');
    // Search by image: the same image comes first.
    await page.setInputFiles("#search-image", [images[1]]);
    await page.waitForFunction(() => document.querySelector("#results li")?.dataset.id === "img2");
    // "More like this" on a result.
    await page.click('#results li[data-id="car1"] button');
    await page.waitForFunction(() => document.querySelector("#results li")?.dataset.id === "car1");
    // A bad filter: the error is shown, the page stays usable.
    await page.fill("#filter", "kind:(");
    await page.click("#search-form button[type=submit]");
    await page.waitForFunction(() => document.getElementById("search-error").textContent.length > 0);
    await page.screenshot({ path: path.join(shots, `search-error-${wname}.png`), fullPage: true });
    await page.fill("#filter", "");

    // Keyboard: the tabs move with the arrow keys.
    await page.focus("#tab-search");
    await page.keyboard.press("ArrowRight");
    assert.equal(await page.getAttribute("#tab-classify", "aria-selected"), "true");
    assert.equal(await page.isVisible("#view-classify"), true);

    // Classify three images; the bars are the API's answer, in its order.
    await page.setInputFiles("#classify-images", images);
    await page.fill("#labels", "dog, cat\ncar");
    await page.click("#classify-form button[type=submit]");
    await page.waitForSelector("#classify-results li");
    const cards = await page.$$eval("#classify-results li", (lis) => lis.map((li) =>
      [...li.querySelectorAll(".bar")].map((b) => [b.getAttribute("aria-label"), Number(b.getAttribute("aria-valuenow"))])));
    assert.equal(cards.length, 3);
    const want = await apiJson(s.base, "POST", "/classify", { images: images.map(dataUrl), labels: ["dog", "cat", "car"] });
    assert.equal(want.status, 200);
    want.body.results.forEach((r, i) => {
      assert.deepEqual(cards[i].map((c) => c[0]), r.labels.map((l) => l.label), `labels of image ${i}`);
      cards[i].forEach((c, k) => assert.ok(Math.abs(c[1] - 100 * r.labels[k].prob) < 0.051, `prob ${i}/${k}`));
    });
    await page.screenshot({ path: path.join(shots, `classify-${wname}.png`), fullPage: true });

    // A corrupt image: a visible error, and the page still works afterwards.
    await page.setInputFiles("#classify-images", [corrupt]);
    await page.click("#classify-form button[type=submit]");
    await page.waitForFunction(() => {
      const top = document.getElementById("classify-error").textContent;
      const card = document.querySelector("#classify-results li .error");
      return top.length > 0 || (card && card.textContent.length > 0);
    });
    const msg = (await page.textContent("#classify-error")) ||
      (await page.textContent("#classify-results li .error"));
    assert.match(msg, /corrupt|truncated|image|decode|JPEG/i, "error message: " + msg);
    await page.screenshot({ path: path.join(shots, `classify-error-${wname}.png`), fullPage: true });
    await page.setInputFiles("#classify-images", [images[1]]);
    await page.click("#classify-form button[type=submit]");
    await page.waitForFunction(() => document.querySelectorAll("#classify-results li .bar").length === 3 &&
      document.getElementById("classify-error").textContent === "");
    assert.deepEqual(errors, [], "no script errors");
    await page.close();
  }

  // Detection: the Detect tab appears when the server has --detect-model; the list and the
  // canvas show the API's own answer.
  const owl = path.join(tmp, "owlvit");
  mkdirSync(owl);
  const od = path.join(repo, "tests/data/owlvit");
  writeFileSync(path.join(owl, "model.safetensors"),
    inflateSync(readFileSync(path.join(od, "patch16-256.model.safetensors.zlib"))));
  copyFileSync(path.join(od, "patch16-256.config.json"), path.join(owl, "config.json"));
  copyFileSync(path.join(od, "patch16-256.preprocessor_config.json"), path.join(owl, "preprocessor_config.json"));
  const d = await serveModel(model, ["--detect-model", owl]);
  servers.push(d);
  const fish = path.join(od, "n01440764_tench.JPEG");
  for (const [wname, viewport] of [["desktop", { width: 1280, height: 860 }], ["phone", { width: 390, height: 844 }]]) {
    const page = await browser.newPage({ viewport });
    const errors = [];
    page.on("pageerror", (e) => errors.push(e.message));
    await page.goto(d.base + "/");
    await page.waitForSelector("#tab-detect:not([hidden])");
    await page.click("#tab-detect");
    await page.setInputFiles("#detect-image", [fish]);
    await page.fill("#queries", "a fish, a nail");
    await page.fill("#threshold", "0.2");
    await page.fill("#topk", "5");
    await page.click("#detect-form button[type=submit]");
    await page.waitForSelector("#detect-list li");
    const items = await page.$$eval("#detect-list li", (lis) => lis.map((li) => li.textContent));
    const want = await apiJson(d.base, "POST", "/detect",
      { image: dataUrl(fish).replace("image/jpeg", "image/jpeg"), queries: ["a fish", "a nail"], threshold: 0.2, top_k: 5, sort: true });
    assert.equal(want.status, 200, JSON.stringify(want.body));
    assert.equal(want.body.detections.length, 5);
    assert.deepEqual(items, want.body.detections.map((x) =>
      `${x.label}: ${Number(x.score).toFixed(3)} at [${x.box.map((v) => Math.round(v)).join(", ")}]`));
    // The canvas holds the picture at its own size, with boxes drawn on it.
    const size = await page.$eval("#detect-canvas", (c) => [c.width, c.height]);
    assert.deepEqual(size, want.body.image_size);
    assert.match(await page.textContent("#detect-info"), /5 found/);
    await page.screenshot({ path: path.join(shots, `detect-${wname}.png`), fullPage: true });
    // A corrupt image: an error, and the next detection works.
    await page.setInputFiles("#detect-image", [corrupt]);
    await page.click("#detect-form button[type=submit]");
    await page.waitForFunction(() => document.getElementById("detect-error").textContent.length > 0);
    await page.setInputFiles("#detect-image", [fish]);
    await page.click("#detect-form button[type=submit]");
    await page.waitForFunction(() => document.getElementById("detect-error").textContent === "" &&
      document.querySelectorAll("#detect-list li").length === 5);
    assert.deepEqual(errors, [], "no script errors");
    await page.close();
  }

  // With --api-key the page asks for the key once, then works.
  const k = await serveModel(model, ["--api-key", "sesame"]);
  servers.push(k);
  const page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
  await page.goto(k.base + "/");
  await page.waitForSelector("#keybox:not([hidden])");
  await page.screenshot({ path: path.join(shots, "api-key-desktop.png") });
  await page.fill("#apikey", "sesame");
  await page.press("#apikey", "Enter");
  await page.waitForFunction(() => /model: tiny/.test(document.getElementById("st-model").textContent));
  assert.equal(await page.isHidden("#keybox"), true);
  await page.close();
  console.log("browser test passed; screenshots in " + shots);
} catch (e) {
  failed = true;
  console.error(e);
  for (const s of servers) console.error("server log:\n" + s.log());
} finally {
  await browser.close();
  for (const s of servers) s.proc.kill("SIGTERM");
}
process.exit(failed ? 1 : 0);
