// One DOU+ order: its status, budget and own current figures, a chart of its cost and plays
// per 5-minute window (growth, or the cumulative figures) and the windows as a table.
// Read again every 60 s (a window is 5 minutes).
"use strict";
(() => {
  const { t, fmt, el, api } = TH;
  const D = window.Douplus;
  const $ = (id) => document.getElementById(id);
  const id = TH.page.order_id;
  const REFRESH_MS = 60000;
  let order = null, windows = [], mode = null;

  function tile(tileId, value, sub) {
    const node = document.querySelector(`#${tileId} [data-value]`);
    if (node.textContent !== value && node.textContent !== "…") TH.flash(node);
    node.textContent = value;
    document.querySelector(`#${tileId} [data-sub]`).textContent = sub || "";
  }
  async function accountName(accountId) {
    try { const a = await api(`/api/douplus/accounts/${accountId}`); return a.nickname || D.shortId(a.aweme_sec_uid); }
    catch (error) { return `#${accountId}`; }
  }
  async function header(o) {
    document.title = `${o.title || o.order_id} · TallyHub`;
    $("order-title").textContent = o.title || o.order_id;
    $("order-status").replaceChildren(D.statusBadge(o.status));
    $("order-line").textContent = t("douplus.order.line", { id: o.order_id, created: fmt.when(o.order_create_time), budget: fmt.money(o.budget) });
    $("order-links").replaceChildren(
      t("douplus.order.account", { name: await accountName(o.account_id) }), " · ",
      el("a", { href: D.videoHref(o.item_id), text: t("douplus.order.video", { id: o.item_id }) }));
  }
  function figures(o) {
    tile("tile-cost", fmt.money(o.stat_cost), t("douplus.order.of_budget", { budget: fmt.money(o.budget) }));
    tile("tile-plays", fmt.int(o.total_play), t("douplus.order.shares_comments", { shares: fmt.int(o.dy_share), comments: fmt.int(o.dy_comment) }));
    tile("tile-likes", fmt.int(o.custom_like), o.total_play ? t("douplus.order.like_rate", { rate: fmt.ratio(o.custom_like, o.total_play) }) : "");
    tile("tile-conversions", fmt.int(o.dp_target_convert_cnt), o.dp_target_convert_cnt ? t("douplus.order.convert_cost", { cost: fmt.money(o.custom_convert_cost) }) : "");
    tile("tile-rate-5s", o.total_play ? D.ratePct(o.play_duration_5s_rank) : "–", o.stat_time ? t("douplus.order.as_of", { time: fmt.whenShort(o.stat_time) }) : t("douplus.order.no_figures"));
  }
  function draw() {
    D.chart($("window-chart"), windows, mode, order.order_create_time);
    const extra = [
      { label: t("douplus.col.likes"), num: true, value: (w) => fmt.int(w.custom_like) },
      { label: t("douplus.col.shares"), num: true, value: (w) => fmt.int(w.dy_share) },
      { label: t("douplus.col.conversions"), num: true, value: (w) => fmt.int(w.dp_target_convert_cnt) },
      { label: t("douplus.col.rate_5s"), num: true, value: (w) => (w.plays ? D.ratePct(w.play_duration_5s_rank) : "–") },
    ];
    if (!windows.length) { TH.state.empty($("windows"), t("douplus.chart.empty")); $("windows-pager").replaceChildren(); return; }
    D.pagedTable($("windows"), $("windows-pager"), D.windowColumns(order.order_create_time, windows, extra), [...windows].reverse());
  }
  async function load() {
    order = await api(`/api/douplus/orders/${encodeURIComponent(id)}`);
    windows = D.windowsOf(order.windows, "stat_cost", "total_play");
    // Growth needs a window before it, or an order that started within the first one.
    if (mode === null) mode = D.growth(windows, order.order_create_time).some((g) => g.cost !== null) ? "growth" : "total";
    figures(order);
    $("updated").textContent = t("douplus.updated", { time: fmt.whenShort(new Date().toISOString()) });
  }
  // The newest window changes until its 5 minutes are over, then a new one comes.
  const latest = () => { const w = windows[windows.length - 1]; return w ? `${w.stat_time} ${w.cost} ${w.plays}` : ""; };
  async function refresh() {
    const before = latest();
    try { await load(); } catch (error) { TH.toast(t("state.error", { message: error.message }), "error"); return; }
    if (latest() !== before) draw();
  }
  async function start() {
    const stateBox = $("order-state");
    TH.state.loading(stateBox);
    try { await load(); await header(order); } catch (error) { TH.state.error(stateBox, error); return; }
    stateBox.replaceChildren();
    $("order-body").hidden = false;
    D.modeSwitch($("chart-mode"), mode, (chosen) => { mode = chosen; D.chart($("window-chart"), windows, mode, order.order_create_time); });
    draw();
    setInterval(() => { if (!document.hidden) refresh(); }, REFRESH_MS);
  }
  start();
})();
