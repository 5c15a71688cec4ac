// The review page: reads /api/items, draws the grid, sends each decision to /api/decision.
// Nothing is kept only here: every change is shown as saved once the server answers, and a
// reload draws what the server's review.sqlite holds. The token comes from the URL fragment
// (#token=…), which the browser never sends to any server.
"use strict";

const token = new URLSearchParams(location.hash.slice(1)).get("token") || "";
const state = { items: [], byKey: new Map(), images: new Map(), ab: [], mode: "side", showing: "a",
  saving: 0, writes: 0 };  // decisions in flight, and finished (see poll)
const $ = (sel, root = document) => root.querySelector(sel);
const FILTER_FACETS = ["prompt", "segment", "style", "seed"];

function status(text, error = false) {
  const el = $("#status");
  el.textContent = text;
  el.classList.toggle("error", error);
}

async function api(path, body) {
  const init = { headers: { Authorization: `Bearer ${token}` } };
  if (body !== undefined) {
    init.method = "POST";
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try { message = (await response.json()).message || message; } catch (_) { /* not JSON */ }
    throw new Error(message);
  }
  return response;
}

// kind "thumb" for the grid (small, made by the server), "file" for A/B (the output itself)
async function image(key, kind = "thumb") {
  const id = `${kind}/${key}`;
  if (!state.images.has(id)) {
    state.images.set(id, api(`/api/${kind}/${encodeURIComponent(key)}`)
      .then((r) => r.blob()).then((b) => URL.createObjectURL(b)));
  }
  return state.images.get(id);
}

function facetValue(item, facet) {
  if (facet === "segment") return item.segment || "all";
  return String(item[facet]);
}

function visible(item) {
  for (const facet of FILTER_FACETS) {
    const want = $(`#filter-${facet}`).value;
    if (want && facetValue(item, facet) !== want) return false;
  }
  const show = $("#show").value;
  if (show === "star") return item.star;
  if (show === "comment") return item.comment !== "";
  return !show || item.decision === show;
}

function buildFilters() {
  const box = $("#filters");
  box.textContent = "";
  for (const facet of FILTER_FACETS) {
    const values = [...new Set(state.items.map((i) => facetValue(i, facet)))];
    if (values.length < 2) continue;
    const label = document.createElement("label");
    label.textContent = `${facet} `;
    const select = document.createElement("select");
    select.id = `filter-${facet}`;
    select.add(new Option("all", ""));
    for (const v of values) select.add(new Option(v, v));
    select.addEventListener("change", render);
    label.append(select);
    box.append(label);
  }
  for (const facet of FILTER_FACETS) {  // a facet with one value still answers visible()
    if (!$(`#filter-${facet}`)) {
      const hidden = document.createElement("select");
      hidden.id = `filter-${facet}`;
      hidden.hidden = true;
      hidden.add(new Option("all", ""));
      box.append(hidden);
    }
  }
}

function card(item) {
  const node = $("#card").content.firstElementChild.cloneNode(true);
  node.dataset.key = item.key;
  $(".label", node).textContent = item.prompt;
  $(".label", node).title = item.full_prompt;
  $(".facts", node).textContent =
    `${item.segment || "all"} · ${item.style} · seed ${item.seed} · ${item.width}×${item.height}`;
  image(item.key).then((url) => { $("img", node).src = url; }, (e) => status(e.message, true));
  $("img", node).alt = item.full_prompt;
  $(".pick", node).addEventListener("click", () =>
    decide(item.key, { decision: state.byKey.get(item.key).decision === "pick" ? "none" : "pick" }));
  $(".reject", node).addEventListener("click", () =>
    decide(item.key, { decision: state.byKey.get(item.key).decision === "reject" ? "none" : "reject" }));
  $(".star", node).addEventListener("click", () =>
    decide(item.key, { star: !state.byKey.get(item.key).star }));
  const comment = $(".comment", node);
  comment.value = item.comment;
  comment.addEventListener("change", () => decide(item.key, { comment: comment.value }));
  const tick = $(".ab-pick", node);
  tick.checked = state.ab.includes(item.key);
  tick.addEventListener("change", () => {
    state.ab = state.ab.filter((k) => k !== item.key);
    if (tick.checked) state.ab.push(item.key);
    if (state.ab.length > 2) state.ab = state.ab.slice(-2);
    document.querySelectorAll(".card").forEach((c) => {
      $(".ab-pick", c).checked = state.ab.includes(c.dataset.key);
    });
    $("#compare").disabled = state.ab.length !== 2;
  });
  paint(node, item);
  return node;
}

function paint(node, item) {
  node.dataset.decision = item.decision;
  node.dataset.star = String(item.star);
  node.dataset.comment = item.comment;
  const comment = $(".comment", node);
  if (comment && document.activeElement !== comment) comment.value = item.comment;
}

function render() {
  const grid = $("#grid");
  grid.textContent = "";
  const group = $("#group").value;
  const groups = new Map();
  for (const item of state.items.filter(visible)) {
    const name = group ? `${group}: ${facetValue(item, group)}` : "";
    if (!groups.has(name)) groups.set(name, []);
    groups.get(name).push(item);
  }
  for (const [name, items] of groups) {
    const section = document.createElement("section");
    section.className = "group";
    if (name) {
      const h = document.createElement("h2");
      h.textContent = `${name} (${items.length})`;
      section.append(h);
    }
    const cards = document.createElement("div");
    cards.className = "cards";
    for (const item of items) cards.append(card(item));
    section.append(cards);
    grid.append(section);
  }
  if (!groups.size) grid.textContent = "Nothing matches these filters.";
  counts();
}

function counts() {
  const n = (f) => state.items.filter(f).length;
  $("#counts").textContent = `${state.items.length} outputs · ${n((i) => i.decision === "pick")} picked · ` +
    `${n((i) => i.decision === "reject")} rejected · ${n((i) => i.star)} starred · ` +
    `${n((i) => i.comment)} commented`;
}

async function decide(key, change) {
  status("saving…");
  state.saving += 1;
  try {
    const saved = await (await api("/api/decision", { key, ...change })).json();
    const item = state.byKey.get(key);
    Object.assign(item, saved);
    document.querySelectorAll(`.card[data-key="${CSS.escape(key)}"]`).forEach((n) => paint(n, item));
    paintAB();
    counts();
    status(`saved ${key}`);
  } catch (e) {
    status(`not saved: ${e.message}`, true);
  } finally {
    state.saving -= 1;
    state.writes += 1;
  }
}

async function openAB() {
  if (state.ab.length !== 2) return;
  $("#ab").hidden = false;
  for (const [side, key] of [["a", state.ab[0]], ["b", state.ab[1]]]) {
    const pane = $(`.ab-pane[data-side="${side}"]`);
    pane.dataset.key = key;
    $("img", pane).src = await image(key, "file");
  }
  setMode(state.mode);
  paintAB();
}

function paintAB() {
  if ($("#ab").hidden) return;
  for (const pane of document.querySelectorAll(".ab-pane")) {
    const item = state.byKey.get(pane.dataset.key);
    const cap = $("figcaption", pane);
    cap.textContent = `${pane.dataset.side.toUpperCase()}: ${item.style} · seed ${item.seed} · ` +
      `${item.segment || "all"} — ${item.decision}${item.star ? " ★" : ""} `;
    for (const [label, change] of [["Pick", { decision: "pick" }], ["Reject", { decision: "reject" }],
                                   ["★", { star: !item.star }]]) {
      const b = document.createElement("button");
      b.type = "button";
      b.textContent = label;
      b.addEventListener("click", () => decide(item.key, change));
      cap.append(b);
    }
  }
}

function setMode(mode) {
  state.mode = mode;
  $("#ab-view").className = mode;
  document.querySelectorAll(".mode").forEach((b) => b.classList.toggle("active", b.dataset.mode === mode));
  $(".ab-bar").classList.toggle("swipe", mode === "swipe");
  for (const pane of document.querySelectorAll(".ab-pane")) {
    pane.dataset.showing = String(mode !== "toggle" || pane.dataset.side === state.showing);
  }
}

function toggleAB() {
  state.showing = state.showing === "a" ? "b" : "a";
  setMode("toggle");
}

async function load() {
  if (!token) {
    status("This page needs its token: open the URL that `sfumato review` printed (it ends with #token=…).", true);
    return;
  }
  try {
    const data = await (await api("/api/items")).json();
    state.items = data.items;
    state.byKey = new Map(data.items.map((i) => [i.key, i]));
    $("#title").textContent = `Review: ${data.plan}`;
    document.title = `Sfumato review: ${data.plan}`;
    $("#toolbar").hidden = false;
    buildFilters();
    render();
    status(`decisions are saved to ${data.folder}/review.sqlite as you make them` +
      (data.reviewer ? ` (reviewer ${data.reviewer})` : ""));
  } catch (e) {
    status(`cannot load the batch: ${e.message}`, true);
  }
}

// Another reviewer (another tab, another machine's browser) may decide too: every few seconds
// the page asks for the current decisions and repaints the cards that changed.
const POLL_MS = 3000;
// A poll that overlapped one of this page's own changes may carry the state from before it:
// such an answer is dropped (the next poll brings the settled state).
const same = (a, b) => a.decision === b.decision && a.star === b.star && a.comment === b.comment &&
  a.updated === b.updated;
async function poll() {
  if (document.hidden || !state.items.length || state.saving) return;
  const writes = state.writes;
  try {
    const data = await (await api("/api/items")).json();
    if (state.saving || state.writes !== writes) return;
    let changed = false;
    for (const fresh of data.items) {
      const item = state.byKey.get(fresh.key);
      if (!item || same(item, fresh)) continue;
      Object.assign(item, fresh);
      changed = true;
      document.querySelectorAll(`.card[data-key="${CSS.escape(fresh.key)}"]`).forEach((n) => paint(n, item));
    }
    if (changed) { counts(); paintAB(); }
  } catch (_) { /* the next decision reports a lost server */ }
}
setInterval(poll, POLL_MS);

$("#group").addEventListener("change", render);
$("#show").addEventListener("change", render);
$("#compare").addEventListener("click", openAB);
$("#ab-close").addEventListener("click", () => { $("#ab").hidden = true; });
document.querySelectorAll(".mode").forEach((b) => b.addEventListener("click", () => setMode(b.dataset.mode)));
$("#swipe").addEventListener("input", (e) => $("#ab-view").style.setProperty("--swipe", `${e.target.value}%`));
$("#ab-view").addEventListener("click", (e) => {
  if (state.mode === "toggle" && e.target.tagName === "IMG") toggleAB();
});
document.addEventListener("keydown", (e) => {
  if ($("#ab").hidden || e.target.tagName === "TEXTAREA") return;
  if (e.key === "Escape") $("#ab").hidden = true;
  if (e.key === " ") { e.preventDefault(); toggleAB(); }
});
load();
