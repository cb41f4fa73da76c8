// DOU+: the connected accounts with their status and each sync stream's last success (an
// account that needs re-authorization first, in the warning colour, with the reason), today's
// tiles, the orders with their own figures (filters, sort, pages) and the video ranking.
// Writers sync an account now (incremental or full, followed until it ends), connect one
// with its tokens and disconnect one. Every 30 s; the lists are read again when a sync has
// landed, and only on their first page (a later page would shift under the reader's eyes).
"use strict";
(() => {
  const { t, fmt, el, api } = TH;
  const D = window.Douplus;
  const $ = (id) => document.getElementById(id);
  const REFRESH_MS = 30000, POLL_MS = 1000, POLL_LIMIT = 300, PAGE_SIZE = 20;
  const STREAMS = [
    ["orders_full", t("douplus.stream.orders_full")],
    ["orders_incremental", t("douplus.stream.orders_incremental")],
    ["stats", t("douplus.stream.stats")],
  ];
  const ACCOUNT_STATUS = { active: t("douplus.account.active"), needs_reauth: t("douplus.account.needs_reauth"), disabled: t("douplus.account.disabled") };
  const ACCOUNT_KIND = { active: "good", needs_reauth: "warn", disabled: "disabled" };
  const FIRST = { needs_reauth: 0, active: 1, disabled: 2 };
  const FIELDS = { aweme_sec_uid: t("douplus.connect.sec_uid"), nickname: t("douplus.connect.nickname"),
    access_token: t("douplus.connect.access_token"), refresh_token: t("douplus.connect.refresh_token"), expires_in: t("douplus.connect.expires_in") };
  const filters = $("order-filters");
  const syncing = new Set();
  const orders = { page: 1, asked: 0 }, videos = { page: 1, sort: "total_cost", asked: 0 };
  let accounts = [], lastSync;

  const nameOf = (a) => a.nickname || D.shortId(a.aweme_sec_uid);
  const accountName = (id) => { const a = accounts.find((x) => x.id === id); return a ? nameOf(a) : `#${id}`; };
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  const failed = (error) => TH.toast(t("state.error", { message: error.message }), "error");

  // ---------------------------------------------------------------- tiles
  function tile(id, value, sub, kind) {
    const box = $(id), valueBox = box.querySelector("[data-value]");
    if (valueBox.textContent !== value && valueBox.textContent !== "…") TH.flash(valueBox);
    valueBox.textContent = value;
    if (sub === undefined) return;
    const subBox = box.querySelector("[data-sub]");
    subBox.textContent = sub;
    subBox.className = "sub " + (kind || "");
  }
  async function summary() {
    const s = await api("/api/douplus/summary");
    tile("tile-accounts", fmt.int(s.accounts), s.needs_reauth ? t("douplus.tile.needs_reauth", { n: fmt.int(s.needs_reauth) }) : t("douplus.tile.all_active"), s.needs_reauth ? "down" : "");
    tile("tile-orders-today", fmt.int(s.orders_today));
    tile("tile-cost-today", fmt.money(s.cost_today));
    tile("tile-plays-today", fmt.int(s.plays_today));
    const last = $("tile-last-sync");
    last.querySelector("[data-value]").replaceChildren(D.when(s.last_sync_at));
    last.querySelector("[data-sub]").textContent = s.last_sync_at ? fmt.whenShort(s.last_sync_at) : "";
    const moved = lastSync !== undefined && s.last_sync_at !== lastSync;
    lastSync = s.last_sync_at;
    return moved;
  }

  // ---------------------------------------------------------------- accounts
  function accountCell(a) {
    return el("span", { class: "account-name" }, el("strong", { text: nameOf(a) }), el("br"),
      el("small", { class: "muted", title: a.aweme_sec_uid, text: D.shortId(a.aweme_sec_uid) }));
  }
  // A failure recorded under another name than the three streams (a sync asked for that
  // failed before any stream ran: "requested"), while no success came after it.
  function otherFailures(a) {
    const shown = new Set(STREAMS.map(([name]) => name));
    const lastSuccess = Math.max(0, ...a.streams.map((s) => Date.parse(s.last_success_at || 0)));
    return a.streams.filter((s) => !shown.has(s.stream) && s.last_error && Date.parse(s.last_attempt_at) > lastSuccess);
  }
  const errorLine = (s) => el("small", { class: "error-line", title: s.last_error,
    text: t("douplus.stream.failed", { time: fmt.whenShort(s.last_attempt_at), error: s.last_error }) });
  function statusCell(a) {
    const parts = [TH.badge(ACCOUNT_STATUS[a.status] || a.status, ACCOUNT_KIND[a.status])];
    if (syncing.has(a.id)) parts.push(" ", TH.badge(t("douplus.sync.running"), "running"));
    if (a.status_reason) parts.push(el("br"), el("small", { class: "reason", text: a.status_reason }));
    for (const failure of otherFailures(a)) parts.push(el("br"), errorLine(failure));
    return el("span", { class: "stream" }, parts);
  }
  // The stream's last success as "3 minutes ago" (exact time in the title); its error when
  // its last try failed.
  function streamCell(a, name) {
    const s = a.streams.find((x) => x.stream === name);
    if (!s) return el("span", { class: "muted", text: t("douplus.never") });
    const parts = [D.when(s.last_success_at)];
    if (s.last_error) parts.push(el("br"), errorLine(s));
    return el("span", { class: "stream" }, parts);
  }
  function actions(a) {
    const name = nameOf(a), busy = syncing.has(a.id), buttons = [];
    if (a.status === "active") {
      buttons.push(
        el("button", { type: "button", class: "sync-now", disabled: busy, text: t("douplus.sync.now"), "aria-label": t("douplus.sync.now_named", { name }), onclick: () => sync(a, "incremental") }),
        el("button", { type: "button", class: "sync-full", disabled: busy, text: t("douplus.sync.full"), "aria-label": t("douplus.sync.full_named", { name }), onclick: () => sync(a, "full") }));
    } else {
      buttons.push(el("button", { type: "button", class: "reconnect primary", text: t("douplus.account.reconnect"), "aria-label": t("douplus.account.reconnect_named", { name }), onclick: () => openConnect(a) }));
    }
    buttons.push(el("button", { type: "button", class: "danger", disabled: busy, text: t("douplus.account.disconnect"), "aria-label": t("douplus.account.disconnect_named", { name }), onclick: () => disconnect(a) }));
    return el("span", { class: "row-actions" }, buttons);
  }
  const ACCOUNT_COLUMNS = [
    { label: t("douplus.col.account"), value: accountCell },
    { label: t("douplus.col.status"), key: "status", value: statusCell },
    { label: t("douplus.col.orders"), key: "orders", num: true, value: (a) => fmt.int(a.order_count) },
    ...STREAMS.map(([name, label]) => ({ label, key: name, value: (a) => streamCell(a, name) })),
  ];
  if (TH.canWrite) ACCOUNT_COLUMNS.push({ label: t("douplus.col.actions"), value: actions });

  function drawAccounts() {
    const box = $("accounts");
    if (!accounts.length) { TH.state.empty(box, t("douplus.no_accounts")); }
    else {
      box.replaceChildren(TH.table(ACCOUNT_COLUMNS, accounts, { rowId: (a) => `douplus-account-${a.id}` }));
      accounts.filter((a) => a.status === "needs_reauth").forEach((a) => $(`douplus-account-${a.id}`).classList.add("needs-reauth"));
    }
    const waiting = accounts.filter((a) => a.status === "needs_reauth");
    const banner = $("reauth-banner");
    banner.hidden = !waiting.length;
    banner.textContent = waiting.length ? t("douplus.reauth.banner", { n: fmt.int(waiting.length), names: waiting.map(nameOf).join(t("douplus.list_separator")) }) : "";
    accountFilter();
  }
  async function loadAccounts() {
    const items = await TH.all("/api/douplus/accounts");
    accounts = items.map((a, i) => ({ a, i })).sort((x, y) => (FIRST[x.a.status] ?? 3) - (FIRST[y.a.status] ?? 3) || x.i - y.i).map((x) => x.a);
    drawAccounts();
  }
  function accountFilter() {
    const select = filters.elements.account_id, chosen = select.value;
    select.replaceChildren(el("option", { value: "", text: t("douplus.filter.all") }),
      ...accounts.map((a) => el("option", { value: String(a.id), text: nameOf(a) })));
    select.value = accounts.some((a) => String(a.id) === chosen) ? chosen : "";
  }

  // ---------------------------------------------------------------- syncs
  // A stream (or the sync asked for) was tried since `before`.
  const tried = (before, s) => !before || !before.streams.some((b) => b.stream === s.stream && b.last_attempt_at === s.last_attempt_at);
  // Until no DOU+ job runs and the account's sync has ended: its request taken, or a try
  // recorded (a failed sync keeps its request for the next run), or the account stopped
  // being active. The account as it is then; null once disconnected; undefined when it is
  // still going after POLL_LIMIT polls.
  async function follow(id, before) {
    for (let polls = 0; polls < POLL_LIMIT; polls++) {
      const status = await api("/api/douplus/sync/status?page_size=200");
      const account = status.accounts.find((a) => a.id === id);
      const ended = !account || account.status !== "active" || !account.sync_requested
        || account.streams.some((s) => s.last_error && tried(before, s));
      if (!status.running.length && ended) return account || null;
      await sleep(POLL_MS);
    }
    return undefined;
  }
  // What a finished sync did, in words: re-authorization needed, a failure, or done.
  function outcome(before, after, name) {
    if (after === undefined) return TH.toast(t("douplus.sync.still_running", { name }), "error");
    if (after === null) return TH.toast(t("douplus.sync.gone", { name }), "error");
    if (after.status === "needs_reauth") return TH.toast(t("douplus.sync.needs_reauth", { name, reason: after.status_reason || "" }), "error");
    const broken = after.streams.filter((s) => s.last_error && tried(before, s));
    if (broken.length) return TH.toast(t("douplus.sync.failed", { name, error: broken[0].last_error }), "error");
    return TH.toast(t("douplus.sync.done", { name }));
  }
  async function followAndSay(id, before, name) {
    syncing.add(id); drawAccounts();
    try { outcome(before, await follow(id, before), name); }
    catch (error) { TH.toast(error.message, "error"); }
    finally { syncing.delete(id); await refresh(true); }
  }
  async function sync(a, mode) {
    const name = nameOf(a);
    syncing.add(a.id); drawAccounts();
    TH.toast(t(mode === "full" ? "douplus.sync.started_full" : "douplus.sync.started", { name }));
    try { await api("/api/douplus/sync", { method: "POST", json: { account_id: a.id, mode } }); }
    catch (error) { syncing.delete(a.id); TH.toast(error.message, "error"); await refresh(true); return; }
    await followAndSay(a.id, a, name);
  }

  // ---------------------------------------------------------------- connect and disconnect
  // A validation answer names the body's field ("body.expires_in: …"): say the form's label.
  function inWords(error) {
    if (error.status !== 422) return error.message;
    return error.message.split("; ").map((part) => {
      const at = part.indexOf(": ");
      const field = part.slice(0, at).split(".").find((p) => FIELDS[p]);
      return field ? `${FIELDS[field]}: ${part.slice(at + 2)}` : part;
    }).join("; ");
  }
  function openConnect(account) {
    const dialog = $("connect-dialog"), form = $("connect-form");
    form.reset();
    form.querySelector(".form-error").textContent = "";
    $("connect-title").textContent = account ? t("douplus.connect.reconnect_title", { name: nameOf(account) }) : t("douplus.connect.title");
    if (account) { form.elements.aweme_sec_uid.value = account.aweme_sec_uid; form.elements.nickname.value = account.nickname || ""; }
    dialog.showModal();
  }
  async function connect(data) {
    const body = { aweme_sec_uid: data.aweme_sec_uid.trim(), nickname: data.nickname.trim() || null,
      access_token: data.access_token, refresh_token: data.refresh_token, expires_in: Number(data.expires_in) };
    const known = accounts.find((a) => a.aweme_sec_uid === body.aweme_sec_uid);
    let account;
    try { account = await api("/api/douplus/accounts", { method: "POST", json: body }); }
    catch (error) { throw new Error(inWords(error)); }
    $("connect-dialog").close();
    const name = nameOf(account);
    TH.toast(known ? t("douplus.connect.updated", { name }) : t("douplus.connect.created", { name }));
    await refresh(true);
    followAndSay(account.id, account, name);
  }
  function ask(title, text) {
    const box = $("confirm-dialog");
    $("confirm-title").textContent = title;
    $("confirm-text").textContent = text;
    box.returnValue = "";
    box.showModal();
    return new Promise((resolve) => box.addEventListener("close", () => resolve(box.returnValue === "confirm"), { once: true }));
  }
  async function disconnect(a) {
    const name = nameOf(a);
    if (!(await ask(t("douplus.account.disconnect_title", { name }), t("douplus.account.confirm_disconnect", { name })))) return;
    try { await api(`/api/douplus/accounts/${a.id}`, { method: "DELETE" }); TH.toast(t("douplus.account.disconnected", { name })); }
    catch (error) { TH.toast(error.message, "error"); }
    await refresh(true);
  }
  function writerControls() {
    const button = $("connect-account");
    if (!button) return;
    button.addEventListener("click", () => openConnect(null));
    $("connect-dialog").querySelectorAll("[data-close]").forEach((b) => b.addEventListener("click", () => $("connect-dialog").close()));
    TH.form($("connect-form"), connect);
    // OAuth: Ocean Engine asks the account's owner, then sends them to /douplus/oauth.
    const oauth = $("oauth-dialog");
    $("oauth-open").addEventListener("click", () => { $("oauth-form").reset(); oauth.querySelector(".form-error").textContent = ""; oauth.showModal(); });
    oauth.querySelector("[data-close]").addEventListener("click", () => oauth.close());
    TH.form($("oauth-form"), async (data) => {
      const query = new URLSearchParams({ aweme_sec_uid: data.aweme_sec_uid.trim() });
      location.assign((await api(`/api/douplus/oauth/authorize-url?${query}`)).url);
    });
  }

  // ---------------------------------------------------------------- orders
  function orderQuery(page) {
    const query = new URLSearchParams({ page, page_size: PAGE_SIZE });
    for (const [name, value] of new FormData(filters)) if (String(value).trim()) query.set(name, String(value).trim());
    return query;
  }
  const ORDER_COLUMNS = D.orderColumns({ accountName });
  async function loadOrders(page = orders.page) {
    const box = $("orders"), pagerBox = $("orders-pager"), asked = ++orders.asked;
    if (!filters.checkValidity()) { TH.state.empty(box, t("douplus.filter.item_invalid")); pagerBox.replaceChildren(); return; }
    try {
      const body = await api(`/api/douplus/orders?${orderQuery(page)}`);
      if (asked !== orders.asked) return;  // a later filter's answer is (or will be) shown
      orders.page = body.page;
      if (!body.items.length && page > 1) return loadOrders(1);
      if (!body.items.length) TH.state.empty(box, t("douplus.no_orders"));
      else box.replaceChildren(TH.table(ORDER_COLUMNS, body.items, { rowId: (o) => `douplus-order-${o.order_id}` }));
      D.pager(pagerBox, body, loadOrders);
    } catch (error) { TH.state.error(box, error); pagerBox.replaceChildren(); }
  }
  function wireFilters() {
    const select = filters.elements.status;
    select.append(...Object.entries(D.STATUS).map(([value, text]) => el("option", { value, text })));
    filters.addEventListener("change", () => loadOrders(1));
    filters.addEventListener("submit", (event) => { event.preventDefault(); loadOrders(1); });
  }

  // ---------------------------------------------------------------- videos
  const number = new Intl.NumberFormat(TH.lang, { maximumFractionDigits: 0 });
  const VIDEO_COLUMNS = [
    { label: t("douplus.col.rank"), num: true, value: (v) => fmt.int(v.rank) },
    { label: t("douplus.col.video"), value: (v) => el("span", { class: "order-name" },
      el("a", { href: D.videoHref(v.item_id), text: v.title || v.item_id }), el("br"), el("small", { class: "muted", text: v.item_id })) },
    { label: t("douplus.col.account"), value: (v) => accountName(v.account_id) },
    { label: t("douplus.col.orders"), key: "orders", num: true, value: (v) => fmt.int(v.order_count) },
    { label: t("douplus.col.cost"), key: "cost", num: true, value: (v) => fmt.money(v.total_cost) },
    { label: t("douplus.col.plays"), key: "plays", num: true, value: (v) => fmt.int(v.total_play) },
    { label: t("douplus.col.per_100"), key: "per_100", num: true, value: (v) => number.format(Number(v.play_per_100_cost)) },
    { label: t("douplus.col.like_rate"), num: true, value: (v) => D.ratePct(v.like_rate) },
    { label: t("douplus.col.share_rate"), num: true, value: (v) => D.ratePct(v.share_rate) },
    { label: t("douplus.col.convert_cost"), num: true, value: (v) => (v.total_convert ? fmt.money(v.avg_convert_cost) : "–") },
    { label: t("douplus.col.rate_5s"), num: true, value: (v) => (v.total_play ? D.ratePct(v.avg_5s_rank) : "–") },
  ];
  async function loadVideos(page = videos.page) {
    const box = $("videos"), pagerBox = $("videos-pager"), asked = ++videos.asked;
    try {
      const body = await api(`/api/douplus/videos?sort=${videos.sort}&page=${page}&page_size=${PAGE_SIZE}`);
      if (asked !== videos.asked) return;
      videos.page = body.page;
      if (!body.items.length && page > 1) return loadVideos(1);
      const rows = body.items.map((v, i) => ({ ...v, rank: (body.page - 1) * body.page_size + i + 1 }));
      if (!rows.length) TH.state.empty(box, t("douplus.no_videos"));
      else box.replaceChildren(TH.table(VIDEO_COLUMNS, rows, { rowId: (v) => `douplus-video-${v.item_id}` }));
      D.pager(pagerBox, body, loadVideos);
    } catch (error) { TH.state.error(box, error); pagerBox.replaceChildren(); }
  }
  function wireVideoSort() {
    const chips = [...$("video-sort").querySelectorAll("button")];
    for (const chip of chips) {
      chip.addEventListener("click", () => {
        chips.forEach((other) => other.setAttribute("aria-pressed", String(other === chip)));
        videos.sort = chip.dataset.sort;
        loadVideos(1);
      });
    }
  }

  // ---------------------------------------------------------------- start and refresh
  // Tiles and accounts every time; the lists when a sync landed (or `all`), on page 1 only
  // unless `all`.
  async function refresh(all = false) {
    const [moved] = await Promise.all([
      summary().catch((error) => { failed(error); return false; }),
      loadAccounts().catch((error) => TH.state.error($("accounts"), error)),
    ]);
    const lists = [];
    if (all || (moved && orders.page === 1)) lists.push(loadOrders());
    if (all || (moved && videos.page === 1)) lists.push(loadVideos());
    await Promise.all(lists);
    $("updated").textContent = t("douplus.updated", { time: fmt.whenShort(new Date().toISOString()) });
  }
  wireFilters();
  wireVideoSort();
  writerControls();
  ["accounts", "orders", "videos"].forEach((id) => TH.state.loading($(id)));
  refresh(true);
  setInterval(() => { if (!document.hidden) refresh(); }, REFRESH_MS);
})();
