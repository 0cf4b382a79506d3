// The explorer page: asks the service's /explorer/api endpoints and draws the answers.
// Plain JavaScript, no library; every text from the data goes through textContent.
"use strict";

const API = "/explorer/api";
const state = { liked: new Map(), unixTimes: true };

function $(id) { return document.getElementById(id); }

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(typeof child === "string" || typeof child === "number" ? String(child) : child);
  }
  return node;
}

function status(text, isError) {
  const box = $("status");
  box.textContent = text || "";
  box.classList.toggle("error", Boolean(isError));
}

async function api(path, options) {
  const headers = { "Accept": "application/json" };
  const key = sessionStorage.getItem("explorer-api-key");
  if (key) headers["X-API-Key"] = key;
  if (options && options.body) headers["Content-Type"] = "application/json";
  const response = await fetch(API + path, { ...(options || {}), headers });
  let body = null;
  try { body = await response.json(); } catch (err) { body = null; }
  if (response.status === 401) {
    $("key-form").hidden = false;
    $("api-key").focus();
  }
  if (!response.ok) {
    const detail = body && body.detail ? body.detail : response.statusText;
    throw new Error(`${response.status}: ${detail}`);
  }
  return body;
}

async function guarded(label, work) {
  status(label + "…");
  try {
    await work();
    status("");
  } catch (err) {
    status(err.message, true);
  }
}

function fmt(x, digits) { return x === null || x === undefined ? "n/a" : Number(x).toFixed(digits); }

function when(t) {
  if (!state.unixTimes) return `#${t}`;
  return new Date(t * 1000).toISOString().slice(0, 10);
}

function itemLine(item) {
  const line = el("li", { class: item.hit ? "hit" : "" });
  if (item.hit) line.append(el("span", { class: "hit-mark", title: "in the held-out test items" }, "✓ "));
  line.append(el("span", { class: "title" }, item.title));
  if (item.genres && item.genres.length) line.append(" ", el("span", { class: "genres" }, item.genres.join(", ")));
  if (item.hit) line.append(el("span", { class: "visually-hidden" }, " (held-out test item)"));
  let why = item.reason;
  if (item.because && item.because.length) {
    why = "because you liked " + item.because.map(
      (b) => b.share === null ? b.title : `${b.title} (${Math.round(100 * b.share)}%)`).join(", ");
  }
  line.append(el("span", { class: "why" }, why));
  return line;
}

function modelCard(list) {
  const heading = el("h3", {}, el("span", {}, list.label));
  if ("ndcg@10" in list) {
    const value = list["ndcg@10"] === null ? "no test items" : `nDCG@10 ${fmt(list["ndcg@10"], 3)} · ${list.hits} hit${list.hits === 1 ? "" : "s"}`;
    heading.append(el("span", { class: "metric" }, value));
  }
  const card = el("article", { class: "card", "data-model": list.model, "aria-label": list.label + " recommendations" },
    heading, el("p", { class: "rule" }, list.rule));
  const ol = el("ol", {});
  for (const item of list.items) ol.append(itemLine(item));
  card.append(ol);
  return card;
}

// ------------------------------------------------------------------ provenance
async function loadProvenance() {
  const p = await api("/provenance");
  state.unixTimes = p.times_are_unix_seconds;
  const fitted = p.fitted_at.replace("T", " ").replace("+00:00", " UTC");
  $("provenance").textContent = `Dataset ${p.dataset} (${p.n_users} users, ${p.n_items} items, ` +
    `${p.n_train} train and ${p.n_test} held-out interactions) · ${p.split} · fitted ${fitted} · ` +
    `recsys_lib ${p.library_version}`;
  const rules = $("rules");
  rules.replaceChildren();
  for (const [model, rule] of Object.entries(p.rules)) {
    rules.append(el("dt", {}, p.models[model].label), el("dd", {}, rule));
  }
  for (const [model, why] of Object.entries(p.absent || {})) {
    rules.append(el("dt", {}, `${model} (not shown)`), el("dd", {}, why));
  }
  const describe = (params) => Object.entries(params || {}).map(([k, v]) => `${k} = ${v}`).join(", ");
  const rows = Object.values(p.models).map((m) => {
    let params = describe(m.params);
    if (m.encoder) params = `encoder ${m.encoder === "default" ? "all-MiniLM-L6-v2" : m.encoder}, template “${m.template}”`;
    return el("tr", {}, el("th", { scope: "row" }, m.label), el("td", {}, params || "none"),
      el("td", {}, m.params_source || (m.encoder ? "the course's sentence encoder" : "counted on train")));
  });
  rows.push(el("tr", {}, el("th", { scope: "row" }, "New film (text → ALS factors)"),
    el("td", {}, `ridge alpha = ${p.cold_film.ridge_alpha}`), el("td", {}, p.cold_film.params_source)));
  $("params").tBodies[0].replaceChildren(...rows);
}

// ------------------------------------------------------------------ one user
async function findUsers(query) {
  const found = await api(`/users?q=${encodeURIComponent(query)}&limit=12`);
  const list = $("user-results");
  list.replaceChildren();
  for (const u of found.users) {
    list.append(el("li", {}, el("button", { type: "button", "data-user": u.user_id,
      onclick: () => guarded("Ranking for user " + u.user_id, () => showUser(u.user_id)) },
      `user ${u.user_id}`), el("span", { class: "genres" }, ` ${u.n_train} train · ${u.n_test} test`)));
  }
  if (!found.users.length) list.append(el("li", {}, "no user id contains that"));
  const exact = found.users.find((u) => String(u.user_id) === query.trim());
  if (exact) await showUser(exact.user_id);
}

async function showUser(userId) {
  const view = await api(`/user?user_id=${encodeURIComponent(userId)}&k=10`);
  $("user-view").hidden = false;
  $("user-title").textContent = `User ${view.user_id}: ${view.n_train} train items, ${view.n_test} held out`;
  const drawHistory = (all) => {
    const shown = all ? view.history : view.history.slice(0, 12);
    $("history").replaceChildren(...shown.map(
      (h) => el("li", {}, el("time", {}, when(h.time)), " ", el("span", {}, h.title))));
    $("history-more").hidden = all || view.history.length <= 12;
  };
  drawHistory(false);
  $("history-more").onclick = () => drawHistory(true);
  const lists = $("model-lists");
  lists.replaceChildren(...view.lists.map(modelCard));
}

// ------------------------------------------------------------------ new user
function drawLiked() {
  const names = [...state.liked.values()];
  $("liked-list").textContent = names.length ? names.join("; ") : "nothing yet";
  $("cold-user-go").disabled = names.length === 0;
}

async function findItems(query) {
  const found = await api(`/items?q=${encodeURIComponent(query)}&limit=12`);
  const list = $("item-results");
  list.replaceChildren();
  for (const item of found.items) {
    const id = `like-${item.item_id}`;
    const box = el("input", { type: "checkbox", id, "data-item": item.item_id });
    box.checked = state.liked.has(String(item.item_id));
    box.addEventListener("change", () => {
      if (box.checked) state.liked.set(String(item.item_id), item.title);
      else state.liked.delete(String(item.item_id));
      drawLiked();
    });
    list.append(el("li", {}, el("label", { for: id }, box, item.title)));
  }
  if (!found.items.length) list.append(el("li", {}, "no title contains that"));
}

async function coldUser() {
  const ids = [...state.liked.keys()];  // as text: the service reads them in the catalogue's type
  const answer = await api("/cold-user", { method: "POST", body: JSON.stringify({ item_ids: ids, k: 10 }) });
  $("cold-user-lists").replaceChildren(...answer.lists.map(modelCard));
}

// ------------------------------------------------------------------ new film
async function coldFilm() {
  const body = {
    title: $("film-title").value,
    genres: $("film-genres").value,
    description: $("film-description").value,
    n_users: 10,
  };
  const answer = await api("/cold-film", { method: "POST", body: JSON.stringify(body) });
  $("film-result").hidden = false;
  $("film-text").textContent = `Encoded text: “${answer.text}” (${answer.note}).`;
  $("film-reach").textContent = `It would enter the top 10 of ${answer.reach} of ${answer.n_users} users; ` +
    `the median user would rank it ${answer.median_rank} among their unseen films.`;
  $("film-similar").replaceChildren(...answer.similar_items.map(
    (s) => el("li", {}, `${s.title} `, el("span", { class: "genres" }, `cosine ${fmt(s.cosine, 2)}`))));
  const rows = answer.users.map((u) => el("tr", {},
    el("td", {}, el("button", { type: "button", class: "link",
      onclick: () => guarded("Ranking for user " + u.user_id, async () => {
        await showUser(u.user_id);
        $("user-section").scrollIntoView();
      }) }, String(u.user_id))),
    el("td", {}, u.rank <= 10 ? `${u.rank} (in the top 10)` : String(u.rank)),
    el("td", {}, Number(u.score).toPrecision(3)),
    el("td", {}, u.recent.join("; "))));
  $("film-users").tBodies[0].replaceChildren(...rows);
}

// ------------------------------------------------------------------ wiring
function start() {
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem("explorer-api-key", $("api-key").value);
    $("key-form").hidden = true;
    guarded("Loading", loadProvenance);
  });
  $("user-form").addEventListener("submit", (event) => {
    event.preventDefault();
    guarded("Searching users", () => findUsers($("user-query").value));
  });
  $("item-form").addEventListener("submit", (event) => {
    event.preventDefault();
    guarded("Searching films", () => findItems($("item-query").value));
  });
  $("cold-user-go").addEventListener("click", () => guarded("Recommending", coldUser));
  $("cold-user-clear").addEventListener("click", () => {
    state.liked.clear();
    for (const box of document.querySelectorAll("#item-results input")) box.checked = false;
    $("cold-user-lists").replaceChildren();
    drawLiked();
  });
  $("film-form").addEventListener("submit", (event) => {
    event.preventDefault();
    guarded("Placing the new film (the first one loads the text encoder)", coldFilm);
  });
  guarded("Loading", loadProvenance);
}

document.addEventListener("DOMContentLoaded", start);
