// clipserve's web page logic: same-origin calls to the server's API, no framework, no CDN.
"use strict";

const $ = (id) => document.getElementById(id);
let apiKey = sessionStorage.getItem("clipserve-key") || "";

// ---- API ----
class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function api(method, path, body) {
  const headers = {};
  if (apiKey) headers["Authorization"] = "Bearer " + apiKey;
  const init = { method, headers };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const res = await fetch(path, init);
  if (res.status === 401) {
    showKeyBox(apiKey ? "that key was refused" : "");
    throw new ApiError(401, "this server needs an API key");
  }
  const type = res.headers.get("Content-Type") || "";
  const data = type.includes("json") ? await res.json() : await res.text();
  if (!res.ok) {
    const msg = (data && data.error && (data.error.message || data.error)) || res.statusText;
    throw new ApiError(res.status, typeof msg === "string" ? msg : JSON.stringify(msg));
  }
  return data;
}

async function blobUrl(path) {
  const headers = apiKey ? { Authorization: "Bearer " + apiKey } : {};
  const res = await fetch(path, { headers });
  if (!res.ok) return null;
  return URL.createObjectURL(await res.blob());
}

function showKeyBox(err) {
  $("keybox").hidden = false;
  $("key-error").textContent = err || "";
  $("apikey").focus();
}

$("keybox").addEventListener("submit", (e) => {
  e.preventDefault();
  apiKey = $("apikey").value.trim();
  sessionStorage.setItem("clipserve-key", apiKey);
  $("keybox").hidden = true;
  init();
});

function fmtTimings(t) {
  if (!t || typeof t !== "object") return "";
  return Object.entries(t).filter(([, v]) => typeof v === "number")
    .map(([k, v]) => k.endsWith("_ms")
      ? `${k.slice(0, -3)} ${v < 10 ? v.toFixed(2) : v.toFixed(0)} ms`
      : `${k} ${Math.round(v)}`)
    .join(" · ");
}

function readDataUrl(file) {
  return new Promise((resolve, reject) => {
    const r = new FileReader();
    r.onload = () => resolve(r.result);
    r.onerror = () => reject(new Error("cannot read " + file.name));
    r.readAsDataURL(file);
  });
}

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v; else if (k === "text") e.textContent = v; else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
}

// ---- status strip ----
let models = [];
let detectServed = null;
async function refreshStatus() {
  try {
    const m = await api("GET", "/v1/models");
    models = m.data || [];
    const first = models[0] || {};
    const prec = first.precision ? ` · ${first.precision}` : "";
    $("st-model").textContent = "model: " + (models.map((x) => x.id).join(", ") || "?") + prec;
    if (detectServed === null) {
      // POST /detect exists only when the server was started with --detect-model: an empty
      // request is a 400 there and a 404 elsewhere.
      try {
        const r = await fetch("/detect", { method: "POST", body: "{}",
          headers: Object.assign({ "Content-Type": "application/json" },
                                 apiKey ? { Authorization: "Bearer " + apiKey } : {}) });
        detectServed = r.status !== 404 && r.status !== 401;
      } catch (e) { detectServed = false; }
      $("tab-detect").hidden = !detectServed;
    }
  } catch (e) { $("st-model").textContent = "model: " + e.message; }
  try {
    const r = await fetch("/health/ready");
    const s = (await r.json()).status || (r.ok ? "ready" : "not ready");
    $("st-ready").textContent = s;
    $("st-ready").className = "pill " + (r.ok ? "ready" : "down");
  } catch (e) { $("st-ready").textContent = "unreachable"; $("st-ready").className = "pill down"; }
  try {
    const text = await api("GET", "/metrics");
    let q = 0;
    for (const line of String(text).split("\n")) {
      if (line.startsWith("clipserve_queue_depth")) q += Number(line.split(" ").pop()) || 0;
    }
    $("st-queue").textContent = "queue: " + q;
  } catch (e) { $("st-queue").textContent = "queue: ?"; }
}

// ---- tabs (arrow keys move between them) ----
const tabs = ["search", "classify", "detect"];
function select(name) {
  for (const t of tabs) {
    const on = t === name;
    $("tab-" + t).setAttribute("aria-selected", on);
    $("tab-" + t).tabIndex = on ? 0 : -1;
    $("view-" + t).hidden = !on;
  }
}
for (const t of tabs) {
  $("tab-" + t).addEventListener("click", () => select(t));
  $("tab-" + t).addEventListener("keydown", (e) => {
    if (e.key !== "ArrowRight" && e.key !== "ArrowLeft") return;
    const visible = tabs.filter((x) => !$("tab-" + x).hidden);
    const i = visible.indexOf(t) + (e.key === "ArrowRight" ? 1 : -1);
    const next = visible[(i + visible.length) % visible.length];
    select(next);
    $("tab-" + next).focus();
  });
}

// Drop zones: drag and drop, Enter/Space opens the file chooser.
function dropZone(zone, input, onFiles) {
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    onFiles([...e.dataTransfer.files]);
  });
  zone.addEventListener("keydown", (e) => {
    if (e.key === "Enter" || e.key === " ") { e.preventDefault(); input.click(); }
  });
  input.addEventListener("change", () => onFiles([...input.files]));
}

// ---- search ----
async function loadCollections() {
  const sel = $("collection");
  sel.textContent = "";
  let names = [];
  try {
    const r = await api("GET", "/indexes");
    const list = r.results || r.indexes || [];
    names = list.map((x) => (typeof x === "string" ? x : x.indexName || x.name)).filter(Boolean);
  } catch (e) {
    if (e.status !== 404) $("search-error").textContent = e.message;
  }
  for (const n of names) sel.append(el("option", { value: n, text: n }));
  $("no-collections").hidden = names.length > 0;
}

let lastSearch = null;
async function search(query) {
  const name = $("collection").value;
  $("search-error").textContent = "";
  if (!name) { $("search-error").textContent = "pick a collection first"; return; }
  const body = Object.assign({ limit: 24 }, query);
  const filter = $("filter").value.trim();
  if (filter) body.filter = filter;
  // Lexical and hybrid search need words; an image or "more like this" is a vector search.
  body.searchMethod = query.q ? document.querySelector('input[name="method"]:checked').value
                              : "TENSOR";
  lastSearch = body;
  const t0 = performance.now();
  try {
    const r = await api("POST", `/indexes/${encodeURIComponent(name)}/search`, body);
    renderHits(name, r.hits || []);
    const ms = (performance.now() - t0).toFixed(0);
    $("search-info").textContent = `${(r.hits || []).length} hits · ${ms} ms in the browser` +
      (r.timings ? " · " + fmtTimings(r.timings) : "") +
      (r.processingTimeMs !== undefined ? ` · server ${Number(r.processingTimeMs).toFixed(1)} ms` : "");
  } catch (e) {
    $("results").textContent = "";
    $("search-info").textContent = "";
    $("search-error").textContent = e.message;
  }
}

function renderHits(name, hits) {
  const ol = $("results");
  ol.textContent = "";
  for (const h of hits) {
    const id = h._id;
    const meta = Object.entries(h).filter(([k]) => !k.startsWith("_"))
      .map(([k, v]) => `${k}: ${typeof v === "object" ? JSON.stringify(v) : v}`).join(" · ");
    const pic = el("div", { class: "noimg", text: id });
    const more = el("button", { type: "button", text: "more like this",
                                "aria-label": "more like " + id });
    more.addEventListener("click", () => search({ id }));
    const li = el("li", { "data-id": id }, pic,
      el("div", { class: "meta" }, el("b", { text: id }), el("br"),
         el("span", { class: "score", text: "score " + Number(h._score).toFixed(4) }), el("br"),
         el("span", { text: meta })), more);
    ol.append(li);
    blobUrl(`/indexes/${encodeURIComponent(name)}/documents/${encodeURIComponent(id)}/thumbnail`)
      .then((url) => { if (url) pic.replaceWith(el("img", { src: url, alt: "thumbnail of " + id })); });
  }
}

$("search-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const q = $("query").value.trim();
  if (!q) { $("search-error").textContent = "type a query, or drop an image"; return; }
  search({ q });
});
dropZone($("search-drop"), $("search-image"), async (files) => {
  if (files.length) search({ image: await readDataUrl(files[0]) });
});

// ---- classify ----
let classifyFiles = [];
async function loadLabelSets() {
  try {
    const r = await api("GET", "/labelsets");
    const sel = $("labelset");
    for (const n of r.labelsets || []) sel.append(el("option", { value: n, text: n }));
  } catch (e) { /* optional */ }
}

function labelList() {
  return $("labels").value.split(/[,\n]/).map((s) => s.trim()).filter(Boolean);
}

async function classify(files) {
  $("classify-error").textContent = "";
  if (!files.length) { $("classify-error").textContent = "choose or drop at least one image"; return; }
  const body = { images: [] };
  for (const f of files) body.images.push(await readDataUrl(f));
  if ($("labelset").value) body.labelset = $("labelset").value; else body.labels = labelList();
  if (!body.labelset && !body.labels.length) { $("classify-error").textContent = "enter some labels"; return; }
  body.timings = true;
  const ul = $("classify-results");
  try {
    const r = await api("POST", "/classify", body);
    ul.textContent = "";
    (r.results || []).forEach((res, i) => {
      const li = el("li", { "data-index": i });
      li.append(el("img", { src: body.images[i], alt: files[i].name }), el("b", { text: files[i].name }));
      if (res.error) {
        const msg = typeof res.error === "string" ? res.error : res.error.message;
        li.append(el("p", { class: "error", role: "alert", text: msg }));
      }
      for (const l of res.labels || []) {
        const pct = (100 * l.prob).toFixed(1);
        const fill = el("div", { class: "fill" });
        fill.style.width = pct + "%";
        li.append(el("div", { class: "bar", role: "meter", "aria-valuenow": pct, "aria-valuemin": 0,
                              "aria-valuemax": 100, "aria-label": l.label },
          el("span", { class: "name", text: l.label }), el("div", { class: "track" }, fill),
          el("span", { text: pct + "%" })));
      }
      ul.append(li);
    });
    $("classify-info").textContent = fmtTimings(r.timings);
  } catch (e) {
    ul.textContent = "";  // results of an earlier request would read as this one's
    $("classify-info").textContent = "";
    $("classify-error").textContent = e.message;
  }
}

$("classify-form").addEventListener("submit", (e) => { e.preventDefault(); classify(classifyFiles); });
dropZone($("classify-drop"), $("classify-images"), (files) => {
  classifyFiles = files;
  $("classify-drop").textContent = files.map((f) => f.name).join(", ") || "drop / paste images here";
});

// Paste an image: searches with it, or adds it to the images to classify.
document.addEventListener("paste", (e) => {
  const files = [...(e.clipboardData || {}).files || []].filter((f) => f.type.startsWith("image/"));
  if (!files.length) return;
  if (!$("view-search").hidden) readDataUrl(files[0]).then((u) => search({ image: u }));
  else if (!$("view-classify").hidden) { classifyFiles = files; classify(files); }
});

// ---- detect ----
$("detect-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  $("detect-error").textContent = "";
  const f = $("detect-image").files[0];
  if (!f) { $("detect-error").textContent = "choose an image"; return; }
  const image = await readDataUrl(f);
  const queries = $("queries").value.split(",").map((s) => s.trim()).filter(Boolean);
  try {
    const body = { image, queries, threshold: Number($("threshold").value) };
    // The best N boxes, sorted by score (0 = all, in transformers' patch order); optional NMS.
    const topk = Number($("topk").value);
    if (topk > 0) { body.top_k = topk; body.sort = true; }
    if ($("nms").value.trim() !== "") body.nms = Number($("nms").value);
    const r = await api("POST", "/detect", body);
    const dets = r.detections || (r.results && r.results[0] && r.results[0].detections) || [];
    drawDetections(image, dets);
    $("detect-info").textContent = `${dets.length} found · ` + fmtTimings(r.timings);
  } catch (err) { $("detect-error").textContent = err.message; }
});

function drawDetections(src, dets) {
  const img = new Image();
  img.onload = () => {
    const c = $("detect-canvas");
    c.width = img.naturalWidth; c.height = img.naturalHeight;
    const g = c.getContext("2d");
    g.drawImage(img, 0, 0);
    g.lineWidth = Math.max(2, c.width / 300);
    g.font = `${Math.max(12, c.width / 40)}px sans-serif`;
    const list = $("detect-list");
    list.textContent = "";
    for (const d of dets) {
      const b = Array.isArray(d.box) ? d.box : [d.box.xmin, d.box.ymin, d.box.xmax, d.box.ymax];
      const label = d.label || d.query || "";
      g.strokeStyle = "#f0a500"; g.fillStyle = "#f0a500";
      g.strokeRect(b[0], b[1], b[2] - b[0], b[3] - b[1]);
      g.fillText(`${label} ${Number(d.score).toFixed(2)}`, b[0] + 3, Math.max(12, b[1] - 4));
      list.append(el("li", { text: `${label}: ${Number(d.score).toFixed(3)} at [${b.map((x) => Math.round(x)).join(", ")}]` }));
    }
  };
  img.src = src;
}

// ---- start ----
async function init() {
  await refreshStatus();
  await Promise.all([loadCollections(), loadLabelSets()]);
}
init();
setInterval(refreshStatus, 5000);
