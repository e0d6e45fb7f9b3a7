// hoi-edge live page: no build step, no framework. Streams and stats from /v1/streams (polled), the
// triplets of every frame from /v1/events (Server-Sent Events, one connection for all streams), the newest
// annotated frame of a stream from /v1/streams/{id}/frame.jpg (fetched when an event says there is one).
// Everything from the server is shown with textContent, never parsed as HTML.
"use strict";

const $ = (sel, root = document) => root.querySelector(sel);
const cards = new Map();          // stream id -> {el, img, loading, pendingSeq}
let events = null;

async function api(path, options = {}) {
  const r = await fetch(path, { credentials: "same-origin", ...options });
  if (r.status === 401) { askForKey(); throw new Error("this server needs its API key"); }
  const text = await r.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch (e) { body = { error: text }; }
  if (!r.ok) throw new Error((body && body.error) || (body && body.detail && JSON.stringify(body.detail)) || r.statusText);
  return body;
}

function askForKey() {
  $("#key-box").hidden = false;
}

$("#key-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const key = $("#key-input").value.trim();
  if (!/^[\x21-\x7e]+$/.test(key) || /[;,]/.test(key)) return;
  document.cookie = "hoi_edge_key=" + key + "; path=/; SameSite=Strict";
  location.reload();
});

function setStatus(el, text, good) {
  el.textContent = text;
  el.className = "status " + (good ? "good" : "bad");
}

function card(id) {
  let c = cards.get(id);
  if (c) return c;
  const el = $("#stream-template").content.firstElementChild.cloneNode(true);
  el.dataset.id = id;
  $(".sid", el).textContent = id;
  $(".remove", el).addEventListener("click", async () => {
    try { await api("/v1/streams/" + encodeURIComponent(id), { method: "DELETE" }); } catch (e) { alert(e.message); }
    refreshStreams();
  });
  const img = $("img.view", el);
  c = { el, img, loading: false, pendingSeq: null };
  img.addEventListener("load", () => { c.loading = false; nextFrame(id, c); });
  img.addEventListener("error", () => { c.loading = false; });
  $("#streams").appendChild(el);
  cards.set(id, c);
  return c;
}

function nextFrame(id, c) {
  if (c.loading || c.pendingSeq === null) return;
  const seq = c.pendingSeq;
  c.pendingSeq = null;
  c.loading = true;
  c.img.src = "/v1/streams/" + encodeURIComponent(id) + "/frame.jpg?seq=" + seq;
}

function classes(n) { return n === 1 ? "1 class" : n + " classes"; }

function fmt(v, unit) { return v === null || v === undefined ? "-" : v + unit; }

function renderStats(s) {
  const c = card(s.id);
  $(".source", c.el).textContent = s.source;
  const st = $(".state", c.el);
  st.textContent = s.state;
  st.className = "state " + s.state;
  $(".stats", c.el).textContent =
    `${s.fps.toFixed(1)} fps | latency p50 ${fmt(s.latency_ms.p50, " ms")} p95 ${fmt(s.latency_ms.p95, " ms")} | ` +
    `${s.frames_processed} processed, ${s.dropped} dropped of ${s.frames_read} read | ${s.reconnects} reconnects`;
  $(".error", c.el).textContent = s.error || "";
}

async function refreshStreams() {
  let list;
  try { list = await api("/v1/streams"); } catch (e) { return; }
  const ids = new Set(list.map((s) => s.id));
  for (const [id, c] of cards) if (!ids.has(id)) { c.el.remove(); cards.delete(id); }
  list.forEach(renderStats);
  $("#no-streams").hidden = list.length > 0;
}

function onFrame(msg) {
  const ev = JSON.parse(msg.data);
  const c = card(ev.stream);
  const ol = $("ol.triplets", c.el);
  ol.replaceChildren(...ev.detections.map((d) => {
    const li = document.createElement("li");
    li.textContent = `${d.verb.replace(/_/g, " ")} ${d.object_label}  ${d.score.toPrecision(2)}`;
    return li;
  }));
  c.pendingSeq = ev.seq;
  nextFrame(ev.stream, c);
}

function listen() {
  if (events) events.close();
  events = new EventSource("/v1/events");
  events.addEventListener("frame", onFrame);
}

function showVocabulary(v) {
  $("#vocab-name").textContent = `${v.name} (${classes(v.pairs.length)})`;
  const box = $("#vocab-text");
  box.value = v.pairs.join("\n");
  box.disabled = !v.editable;
  $("#vocab-apply").disabled = !v.editable;
  if (!v.editable) setStatus($("#vocab-status"), "The vocabulary cannot be changed here: " + v.reason, false);
}

$("#vocab-apply").addEventListener("click", async () => {
  const status = $("#vocab-status");
  const button = $("#vocab-apply");
  button.disabled = true;
  setStatus(status, "baking...", true);
  try {
    const v = await api("/v1/vocabulary", {
      method: "PUT", headers: { "content-type": "application/json" },
      body: JSON.stringify({ text: $("#vocab-text").value }),
    });
    showVocabulary(v);
    setStatus(status, `vocabulary '${v.name}' with ${classes(v.pairs.length)} is live`, true);
  } catch (e) {
    setStatus(status, e.message, false);
  } finally {
    button.disabled = false;
  }
});

$("#add-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const status = $("#add-status");
  try {
    const s = await api("/v1/streams", {
      method: "POST", headers: { "content-type": "application/json" },
      body: JSON.stringify({ source: $("#add-source").value.trim() }),
    });
    setStatus(status, "started " + s.id, true);
    $("#add-source").value = "";
    refreshStreams();
  } catch (err) {
    setStatus(status, err.message, false);
  }
});

async function start() {
  let info;
  try { info = await api("/v1/info"); } catch (e) { return; }
  $("#model").textContent = `${info.name} on ${info.backend}`;
  showVocabulary(info.vocabulary);
  await refreshStreams();
  listen();
  setInterval(refreshStreams, 1000);
}

start();
