// One DOU+ video: its orders' summed figures per 5-minute window (the rollup), as a chart
// of cost and plays (growth per window, or cumulative) and a table, and its orders, each
// with its own figures. Read again every 60 s (a window is 5 minutes).
"use strict";
(() => {
  const { t, fmt, api } = TH;
  const D = window.Douplus;
  const $ = (id) => document.getElementById(id);
  const id = TH.page.item_id;
  const base = `/api/douplus/orders?item_id=${encodeURIComponent(id)}`;
  const REFRESH_MS = 60000, PAGE_SIZE = 20;
  let windows = [], mode = null, firstOrder = null, ordersPage = 1;

  function tile(tileId, value, sub) {
    const node = document.querySelector(`#${tileId} [data-value]`);
    if (node.textContent !== value && node.textContent !== "…") TH.flash(node);
    node.textContent = value;
    document.querySelector(`#${tileId} [data-sub]`).textContent = sub || "";
  }
  // The video's title and account come with its orders (the oldest one started it).
  async function header() {
    const oldest = await api(`${base}&sort=order_create_time&page_size=1`);
    firstOrder = oldest.items[0] || null;
    const title = firstOrder ? firstOrder.title : id;
    document.title = `${title} · TallyHub`;
    $("video-title").textContent = title;
    let account = "";
    if (firstOrder) {
      try { const a = await api(`/api/douplus/accounts/${firstOrder.account_id}`); account = a.nickname || D.shortId(a.aweme_sec_uid); }
      catch (error) { account = `#${firstOrder.account_id}`; }
    }
    $("video-line").textContent = t("douplus.video.line", { id, account, since: firstOrder ? fmt.when(firstOrder.order_create_time) : "–" });
  }
  const startedAt = () => (firstOrder ? firstOrder.order_create_time : null);
  async function loadWindows() {
    windows = D.windowsOf(await api(`/api/douplus/videos/${encodeURIComponent(id)}/windows`), "total_cost", "total_play");
    const now = windows[windows.length - 1];
    if (mode === null) mode = D.growth(windows, startedAt()).some((g) => g.cost !== null) ? "growth" : "total";
    tile("tile-orders", fmt.int(now.order_count), t("douplus.order.as_of", { time: fmt.whenShort(now.stat_time) }));
    tile("tile-cost", fmt.money(D.yuan(now.cost)));
    tile("tile-plays", fmt.int(now.plays), now.cost ? t("douplus.video.per_100", { n: fmt.int(Math.round((now.plays * 10000) / now.cost)) }) : "");
  }
  function drawWindows() {
    D.chart($("window-chart"), windows, mode, startedAt());
    const extra = [{ label: t("douplus.col.orders"), num: true, value: (w) => fmt.int(w.order_count) }];
    D.pagedTable($("windows"), $("windows-pager"), D.windowColumns(startedAt(), windows, extra), [...windows].reverse());
  }
  const ORDER_COLUMNS = D.orderColumns({ video: false });
  async function loadOrders(page = ordersPage) {
    const box = $("orders"), pagerBox = $("orders-pager");
    try {
      const body = await api(`${base}&page=${page}&page_size=${PAGE_SIZE}`);
      ordersPage = body.page;
      if (!body.items.length) { TH.state.empty(box, t("douplus.no_orders")); pagerBox.replaceChildren(); return; }
      box.replaceChildren(TH.table(ORDER_COLUMNS, body.items, { rowId: (o) => `douplus-order-${o.order_id}` }));
      D.pager(pagerBox, body, loadOrders);
    } catch (error) { TH.state.error(box, error); pagerBox.replaceChildren(); }
  }
  const latest = () => { const w = windows[windows.length - 1]; return w ? `${w.stat_time} ${w.cost} ${w.plays}` : ""; };
  async function refresh() {
    const before = latest();
    try { await loadWindows(); } catch (error) { TH.toast(t("state.error", { message: error.message }), "error"); return; }
    if (latest() !== before) { drawWindows(); if (ordersPage === 1) await loadOrders(1); }
    $("updated").textContent = t("douplus.updated", { time: fmt.whenShort(new Date().toISOString()) });
  }
  async function start() {
    const stateBox = $("video-state");
    TH.state.loading(stateBox);
    try { await header(); await loadWindows(); } catch (error) { TH.state.error(stateBox, error); return; }
    stateBox.replaceChildren();
    $("video-body").hidden = false;
    D.modeSwitch($("chart-mode"), mode, (chosen) => { mode = chosen; D.chart($("window-chart"), windows, mode, startedAt()); });
    drawWindows();
    await loadOrders(1);
    $("updated").textContent = t("douplus.updated", { time: fmt.whenShort(new Date().toISOString()) });
    setInterval(() => { if (!document.hidden) refresh(); }, REFRESH_MS);
  }
  start();
})();
