// The live page: one user's list pushed over server-sent events, and two side panels
// (similar items, trending) polled with ETags. Plain browser JavaScript, no framework and
// no build step, so that it can be read top to bottom and copied piece by piece.
"use strict";

const LIST_SIZE = 10;
const SIDE_SIZE = 8;
const SIDE_REFRESH_MS = 5000;   // item lists change once per bucket: no need to push them

const $ = (id) => document.getElementById(id);

const state = {
  user: null,        // the user watched
  source: null,      // their EventSource
  list: null,        // the last list received for them
  similarTo: null,   // the item of the similar panel
  pinned: false,     // true once that item was clicked: it no longer follows the list's top item
  shown: {},         // panel -> {url, etag} of what it shows, for conditional requests
  titles: new Map(), // item id -> title, from every list shown
};

// --- the user's list: server-sent events -------------------------------------------------

function watch(user) {
  if (state.source) state.source.close();
  Object.assign(state, { user, list: null, pinned: false });
  $("user-id").textContent = user;
  $("user-input").value = user;
  history.replaceState(null, "", `?user=${user}`);   // a reload or a shared link keeps the user
  setConnection("connecting");

  // EventSource reconnects by itself after a cut, sending the id of the last event it got,
  // so the server only sends a list newer than the one shown.
  const source = new EventSource(`/v1/users/${user}/stream?n=${LIST_SIZE}`);
  source.addEventListener("recommendations", (event) => {
    setConnection("live");
    showList(JSON.parse(event.data));
  });
  source.addEventListener("missing", () => { setConnection("live"); showMissing(); });
  source.addEventListener("unavailable", () => setConnection("unavailable"));
  source.onerror = () => setConnection("reconnecting");
  state.source = source;
}

function showList(list) {
  const before = state.list ? new Set(state.list.items.map((item) => item.item_id)) : null;
  state.list = list;
  $("user-panel").dataset.version = list.version;     // for tests and debugging
  $("user-version").textContent = list.version;
  $("model-version").textContent = list.model_version || "none";
  $("event-time").textContent = formatDate(list.event_time_ms);
  $("fallback-note").hidden = !list.fallback;
  $("missing-note").hidden = true;
  const top = Math.max(...list.items.map((item) => item.score), 0);
  $("user-items").replaceChildren(...list.items.map((item) => itemRow(item, {
    value: list.fallback ? String(item.score) : item.score.toFixed(3),
    share: top > 0 ? item.score / top : 0,
    detail: item.reason,
    isNew: before !== null && !before.has(item.item_id),   // flash what this update brought
  })));
  showAge();
  if (!state.pinned) showSimilar(list.items.length ? list.items[0].item_id : null);
}

function showMissing() {
  state.list = null;
  $("user-version").textContent = "–";
  $("missing-note").hidden = false;
  $("fallback-note").hidden = true;
  $("user-items").replaceChildren();
  showAge();
}

// The list's age ticks between updates: how long ago the job ranked it (wall clock).
function showAge() {
  const ranked = state.list && state.list.generated_at_ms;
  $("list-age").textContent = ranked ? `${formatAge(Date.now() - ranked)} ago` : "–";
}

function setConnection(name) {
  const labels = { connecting: "connecting", live: "live", reconnecting: "reconnecting",
                   unavailable: "store unavailable" };
  $("connection").dataset.state = name;
  $("connection").textContent = labels[name];
}

// --- side panels: polled, with ETags ----------------------------------------------------

// GET url for a panel, sending the ETag of what the panel shows: an unchanged list costs
// a bodiless 304 and no redraw. Calls render(body) (null for a 404) when it changed.
async function refresh(panel, url, render) {
  const shown = state.shown[panel];
  const headers = shown && shown.url === url && shown.etag ? { "If-None-Match": shown.etag } : {};
  let response;
  try {
    response = await fetch(url, { headers, cache: "no-store" });   // we do the revalidation ourselves
  } catch (error) {
    return;                                                        // offline: the stream's status says so
  }
  if (response.status === 304) return;
  if (!response.ok && response.status !== 404) return;            // 503: keep what is shown
  state.shown[panel] = { url, etag: response.headers.get("ETag") };
  render(response.ok ? await response.json() : null);
}

function showSimilar(itemId) {
  state.similarTo = itemId;
  if (itemId === null) {
    $("similar-title").textContent = "–";
    $("similar-items").replaceChildren();
    return;
  }
  $("similar-title").textContent = titleOf(itemId);
  refresh("similar", `/v1/items/${itemId}/similar?n=${SIDE_SIZE}`, (body) => {
    if (body && body.title) $("similar-title").textContent = body.title;
    $("similar-empty").hidden = body !== null;
    $("similar-items").replaceChildren(...(body ? body.neighbors : []).map((item) =>
      itemRow(item, { value: item.score.toFixed(3), detail: `co-occurrences ${item.co_count.toFixed(1)}` })));
  });
}

function showTrending() {
  refresh("trending", `/v1/trending?n=${SIDE_SIZE}`, (body) => {
    $("trending-empty").hidden = body !== null;
    $("trending-items").replaceChildren(...(body ? body.items : []).map((item) =>
      itemRow(item, { value: String(item.count), detail: "" })));
  });
}

// --- rendering -------------------------------------------------------------------------

// One <li>: the title (a button: it shows the item's similar items), a score and a line of
// detail. textContent everywhere: titles and reasons are data, never markup.
function itemRow(item, { value, detail, share = null, isNew = false }) {
  if (item.title) state.titles.set(item.item_id, item.title);
  const row = document.createElement("li");
  row.dataset.itemId = item.item_id;
  if (isNew) row.classList.add("new");
  const title = document.createElement("button");
  title.type = "button";
  title.className = "title";
  title.textContent = item.title || `item ${item.item_id}`;
  title.addEventListener("click", () => { state.pinned = true; showSimilar(item.item_id); });
  const score = document.createElement("span");
  score.className = "score";
  score.textContent = value;
  row.append(title, score);
  if (share !== null) {
    const bar = document.createElement("span");
    bar.className = "bar";
    bar.style.width = `${Math.round(share * 100)}%`;
    row.append(bar);
  }
  if (detail) {
    const reason = document.createElement("span");
    reason.className = "reason";
    reason.textContent = detail;
    row.append(reason);
  }
  return row;
}

function titleOf(itemId) {
  return state.titles.get(itemId) || `item ${itemId}`;
}

function formatDate(ms) {
  return new Date(ms).toISOString().replace("T", " ").slice(0, 19) + " UTC";
}

function formatAge(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s`;
  // seconds up to an hour, so that the age visibly ticks while a list is minutes old
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86400)} days`;
}

// --- start ------------------------------------------------------------------------------

$("user-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const user = Number($("user-input").value);
  if (Number.isInteger(user) && user >= 0) watch(user);
});

setInterval(showAge, 1000);
setInterval(() => {
  showTrending();
  if (state.similarTo !== null) showSimilar(state.similarTo);
}, SIDE_REFRESH_MS);
showTrending();
const asked = new URLSearchParams(location.search).get("user") || "";
watch(/^\d+$/.test(asked) ? Number(asked) : 1);   // ?user=86, else user 1
