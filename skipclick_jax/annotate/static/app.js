// SkipClick annotate: the page. Plain JS + canvas, no build step.
//
// Every action goes through one promise queue, so requests reach the server in the order the annotator
// made them and responses are drawn in that order. The latency shown for a click is measured from the
// mouse event to the moment the new overlay has been drawn on the canvas (performance.now around the
// request, the PNG decode and the draw); the server's own time and the model step come from the
// X-Annotate-State header of the reply.
"use strict";

const $ = (id) => document.getElementById(id);
const canvas = $("canvas");
const ctx = canvas.getContext("2d");

const S = {
  info: null,
  images: [],
  current: null, // the server's state of the open image (id, width, height, object, clicks, ...)
  image: null, // ImageBitmap of the open image
  overlay: null, // ImageBitmap: current object's mask (transparent PNG)
  saved: null, // ImageBitmap: this image's saved objects
  pending: [], // clicks sent but not answered yet (drawn hollow)
  scale: 1, // CSS pixels per image pixel
  k: 1, // canvas pixels per image pixel
  queue: Promise.resolve(),
};

// Read by the browser test and handy in the console.
window.annotate = { ready: false, busy: 0, stats: [], state: S, errors: [] };

// --- plumbing -----------------------------------------------------------------------------------------
function message(text, kind = "") {
  const el = $("message");
  el.textContent = text;
  el.className = kind;
  if (kind === "error") window.annotate.errors.push(text);
}

function enqueue(job) {
  window.annotate.busy += 1;
  S.queue = S.queue
    .then(job)
    .catch((err) => message(err.message, "error"))
    .finally(() => { window.annotate.busy -= 1; });
  return S.queue;
}

async function api(method, path, body) {
  const opts = { method, headers: {} };
  if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  const resp = await fetch(path, opts);
  if (!resp.ok) {
    let text = resp.statusText;
    try { text = (await resp.json()).error; } catch (_) { /* not JSON */ }
    throw new Error(`${resp.status}: ${text}`);
  }
  return resp;
}

async function bitmap(resp) {
  return createImageBitmap(await resp.blob());
}

function fmt(ms) {
  return ms === undefined || ms === null ? "–" : `${ms.toFixed(ms < 10 ? 1 : 0)} ms`;
}

// --- drawing ------------------------------------------------------------------------------------------
// The canvas backing store has the *displayed* size (times devicePixelRatio), not the image's: large
// images are drawn once downscaled (cheap per redraw), small ones upscaled with crisp mask pixels, and
// click markers keep a constant on-screen size. `k` maps image pixels to canvas pixels.
function fitCanvas() {
  if (!S.current) return;
  const { width, height } = S.current;
  const wrap = $("canvas-wrap");
  const availW = $("viewer").clientWidth - 2;
  const availH = Math.max(200, window.innerHeight - wrap.getBoundingClientRect().top - 110);
  S.scale = Math.min(availW / width, availH / height);
  const cssW = Math.max(1, Math.round(width * S.scale));
  const cssH = Math.max(1, Math.round(height * S.scale));
  const dpr = window.devicePixelRatio || 1;
  canvas.style.width = `${cssW}px`;
  canvas.style.height = `${cssH}px`;
  canvas.width = Math.round(cssW * dpr);
  canvas.height = Math.round(cssH * dpr);
  S.k = canvas.width / width;
  draw();
}

function dot(x, y, color, filled) {
  const dpr = window.devicePixelRatio || 1;
  const r = 6 * dpr;
  ctx.beginPath();
  ctx.arc((x + 0.5) * S.k, (y + 0.5) * S.k, r, 0, 2 * Math.PI);
  ctx.lineWidth = 1.5 * dpr;
  if (filled) {
    ctx.fillStyle = color;
    ctx.fill();
    ctx.strokeStyle = "#fff";
  } else {
    ctx.strokeStyle = color;
  }
  ctx.stroke();
}

function draw() {
  if (!S.current || !S.image) return;
  const w = canvas.width;
  const h = canvas.height;
  ctx.globalAlpha = 1;
  ctx.clearRect(0, 0, w, h);
  ctx.imageSmoothingEnabled = true;
  ctx.imageSmoothingQuality = "high";
  ctx.drawImage(S.image, 0, 0, w, h);
  ctx.imageSmoothingEnabled = false; // masks: crisp pixel edges, no blended halo
  if (S.saved) {
    ctx.globalAlpha = 0.4;
    ctx.drawImage(S.saved, 0, 0, w, h);
  }
  if (S.overlay) {
    ctx.globalAlpha = 0.5;
    ctx.drawImage(S.overlay, 0, 0, w, h);
  }
  ctx.globalAlpha = 1;
  for (const c of S.current.clicks) dot(c.x, c.y, c.positive ? "#1a9e3a" : "#d12a2a", true);
  for (const c of S.pending) dot(c.x, c.y, c.positive ? "#1a9e3a" : "#d12a2a", false);
}

function showState(st) {
  S.current = st;
  $("image-name").textContent = st.name;
  $("object").textContent = st.object;
  $("clicks").textContent = st.clicks.length;
  $("dirty").hidden = !st.dirty;
  const n = st.saved_objects.length;
  $("saved-info").textContent = n ? `saved: ${st.saved_objects.join(", ")}` : "nothing saved yet";
  document.body.dataset.clicks = String(st.clicks.length);
  if (st.area !== undefined) document.body.dataset.area = String(st.area);
}

function recordLatency(total, fetchMs, st) {
  const rec = { total, fetch: fetchMs, server: st.server_ms, model: st.model_ms, render: st.render_ms, area: st.area };
  window.annotate.stats.push(rec);
  $("lat-total").textContent = fmt(total);
  $("lat-server").textContent = fmt(st.server_ms);
  $("lat-model").textContent = fmt(st.model_ms);
  const last = window.annotate.stats.slice(-10).map((r) => r.total).sort((a, b) => a - b);
  $("lat-median").textContent = fmt(last[Math.floor(last.length / 2)]);
}

// Apply an overlay reply (click / undo / reset / overlay.png): new state, new overlay, redraw.
async function applyOverlay(resp, openId) {
  const st = JSON.parse(resp.headers.get("X-Annotate-State"));
  const bmp = await bitmap(resp);
  if (!S.current || S.current.id !== openId) return st; // the annotator moved on meanwhile
  if (S.overlay) S.overlay.close();
  S.overlay = bmp;
  showState(st);
  draw();
  return st;
}

async function loadSaved(id) {
  const bmp = await bitmap(await api("GET", `/api/images/${id}/saved.png`));
  if (S.saved) S.saved.close();
  S.saved = bmp;
}

// --- actions ------------------------------------------------------------------------------------------
async function refreshList() {
  S.images = await (await api("GET", "/api/images")).json();
  const ul = $("images");
  ul.replaceChildren();
  for (const img of S.images) {
    const li = document.createElement("li");
    li.textContent = img.name;
    li.dataset.id = String(img.id);
    const count = document.createElement("span");
    count.className = "count";
    count.textContent = img.saved_objects ? String(img.saved_objects) : "";
    li.appendChild(count);
    if (S.current && S.current.id === img.id) li.className = "current";
    li.addEventListener("click", () => openImage(img.id));
    ul.appendChild(li);
  }
}

function openImage(id) {
  return enqueue(async () => {
    message(`opening ${S.images.find((i) => i.id === id)?.name ?? id}…`);
    window.annotate.ready = false;
    const t0 = performance.now();
    const st = await (await api("POST", `/api/images/${id}/open`)).json();
    const img = await bitmap(await api("GET", `/api/images/${id}/image.jpg`));
    if (S.image) S.image.close();
    if (S.overlay) S.overlay.close();
    S.image = img;
    S.overlay = null;
    S.pending = [];
    showState(st);
    fitCanvas();
    await loadSaved(id);
    if (st.clicks.length) await applyOverlay(await api("GET", `/api/images/${id}/overlay.png`), id);
    draw();
    for (const li of $("images").children) li.className = li.dataset.id === String(id) ? "current" : "";
    const how = st.prefetched ? "encoded ahead" : `encoded in ${fmt(st.encode_ms)}`;
    message(`${st.name}: ${st.width}×${st.height}, ${how}, ready in ${fmt(performance.now() - t0)}`, "ok");
    document.body.dataset.image = String(id);
    window.annotate.ready = true;
  });
}

function click(event) {
  if (!S.current || (event.button !== 0 && event.button !== 2)) return;
  event.preventDefault();
  const t0 = performance.now();
  const rect = canvas.getBoundingClientRect();
  const { width, height, id } = S.current;
  const x = Math.min(width - 1, Math.max(0, Math.floor(((event.clientX - rect.left) * width) / rect.width)));
  const y = Math.min(height - 1, Math.max(0, Math.floor(((event.clientY - rect.top) * height) / rect.height)));
  const c = { x, y, positive: event.button === 0 };
  S.pending.push(c);
  draw();
  enqueue(async () => {
    try {
      const resp = await api("POST", `/api/images/${id}/click`, c);
      const tFetch = performance.now();
      S.pending = S.pending.filter((p) => p !== c);
      const st = await applyOverlay(resp, id);
      recordLatency(performance.now() - t0, tFetch - t0, st);
    } finally {
      S.pending = S.pending.filter((p) => p !== c);
      draw();
    }
  });
}

function overlayAction(action) {
  if (!S.current) return;
  const id = S.current.id;
  enqueue(async () => {
    await applyOverlay(await api("POST", `/api/images/${id}/${action}`), id);
    message(action === "undo" ? "undone" : "clicks cleared");
  });
}

function saveAction(action) {
  if (!S.current) return;
  const id = S.current.id;
  enqueue(async () => {
    const st = await (await api("POST", `/api/images/${id}/${action}`)).json();
    if (action === "next") {
      if (S.overlay) S.overlay.close();
      S.overlay = null;
    }
    await loadSaved(id);
    showState(st);
    draw();
    await refreshList();
    const saved = st.saved ? `saved ${st.saved}` : "nothing to save";
    message(action === "next" ? `${saved}; now object ${st.object}` : saved, st.saved || action === "next" ? "ok" : "");
  });
}

async function upload(file) {
  if (S.info && file.size > S.info.max_upload_bytes) {
    message(`${file.name} is ${(file.size / 2 ** 20).toFixed(1)} MiB; the server accepts up to ` +
      `${(S.info.max_upload_bytes / 2 ** 20).toFixed(1)} MiB`, "error");
    return;
  }
  await enqueue(async () => {
    const resp = await fetch(`/api/upload?name=${encodeURIComponent(file.name)}`, {
      method: "POST",
      body: file,
      headers: { "Content-Type": file.type || "application/octet-stream" },
    });
    const data = await resp.json();
    if (!resp.ok) throw new Error(`${resp.status}: ${data.error}`);
    await refreshList();
    openImage(data.id);
  });
}

// --- wiring -------------------------------------------------------------------------------------------
canvas.addEventListener("mousedown", click);
canvas.addEventListener("contextmenu", (e) => e.preventDefault());
window.addEventListener("resize", () => { fitCanvas(); });
$("upload").addEventListener("change", (e) => {
  if (e.target.files.length) upload(e.target.files[0]);
  e.target.value = "";
});
document.addEventListener("keydown", (e) => {
  if (e.ctrlKey || e.metaKey || e.altKey || e.target instanceof HTMLInputElement) return;
  const actions = {
    u: () => overlayAction("undo"),
    r: () => overlayAction("reset"),
    n: () => saveAction("next"),
    s: () => saveAction("save"),
  };
  const act = actions[e.key.toLowerCase()];
  if (act) {
    e.preventDefault();
    act();
  }
});
window.addEventListener("beforeunload", (e) => {
  if (S.current && S.current.dirty) {
    e.preventDefault(); // unsaved clicks: let the browser ask
    e.returnValue = "";
  }
});

(async function init() {
  try {
    S.info = await (await api("GET", "/api/info")).json();
    $("weights").textContent = `${S.info.weights} · network ${S.info.size}px · flip ${S.info.flip ? "on" : "off"} · ` +
      `${S.info.dtype} · ${S.info.device}`;
    $("random-banner").hidden = !S.info.random_weights;
    $("threshold").textContent = String(S.info.threshold);
    await refreshList();
    if (S.images.length) openImage(S.images[0].id);
    else message("no images in the folder: upload one", "");
  } catch (err) {
    message(`cannot reach the server: ${err.message}`, "error");
  }
})();
