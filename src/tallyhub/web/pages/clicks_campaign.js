// One campaign: its settings, today's and all-time figures, clicks per day over a chosen
// range, what the range's clicks were made of (tags, sources, interaction types), the
// per-user summaries and the interaction log. Refreshed every 10 s (clicks are not pushed
// live). Writers edit the campaign and make signed /__track links here.
"use strict";
(() => {
  const { t, fmt, el, api } = TH;
  const $ = (id) => document.getElementById(id);
  const id = TH.page.campaign_id;
  const base = `/api/clicks/campaigns/${id}`;
  const REFRESH_MS = 10000;
  const PAGE_SIZE = 20;
  const TYPES = {
    image_click: t("campaign.type.image_click"),
    button_url: t("campaign.type.button_url"),
    carousel_click: t("campaign.type.carousel_click"),
    text_link: t("campaign.type.text_link"),
    rich_menu: t("campaign.type.rich_menu"),
  };
  let campaign = null;
  let range = null;

  const typeName = (key) => TYPES[key] || key;
  const sourceName = (key) => (String(key) === "0" ? t("campaign.source.none") : t("campaign.source.id", { id: key }));

  // ---------------------------------------------------------------- header and tiles
  function tile(tileId, value, sub) {
    const node = document.querySelector(`#${tileId} [data-value]`);
    if (node.textContent !== value && node.textContent !== "…") TH.flash(node);
    node.textContent = value;
    const subBox = document.querySelector(`#${tileId} [data-sub]`);
    if (subBox && sub !== undefined) subBox.textContent = sub;
  }
  async function loadCampaign() {
    campaign = await api(base);
    document.title = `${campaign.name} · TallyHub`;
    $("campaign-name").textContent = campaign.name;
    $("campaign-settings").textContent = t("campaign.settings", { zone: campaign.timezone, created: fmt.when(campaign.created_at) });
    $("campaign-hosts").textContent = campaign.allowed_hosts.length
      ? t("campaign.hosts_line", { hosts: campaign.allowed_hosts.join(", ") })
      : t("clicks.no_hosts");
    tile("tile-today", fmt.int(campaign.today_clicks), t("campaign.today_sub", { day: fmt.day(campaign.business_date), zone: campaign.timezone }));
    tile("tile-total", fmt.int(campaign.clicked_count));
    tile("tile-unique", fmt.int(campaign.unique_users));
  }

  // ---------------------------------------------------------------- the range: chart and breakdown
  async function daily() {
    const box = $("daily-chart");
    try {
      const rows = await api(`${base}/daily?from=${range.start}&to=${range.end}`);
      const series = { name: t("campaign.series.clicks"), x: rows.map((r) => r.business_date), y: rows.map((r) => r.clicks), color: "#2459d6" };
      TH.chart(box, [series], { empty: t("campaign.no_clicks") });
    } catch (error) { TH.state.error(box, error); }
  }
  function topTable(list, clicks, label, name) {
    const rows = list.items.map((item) => ({ ...item, name: name(item.key) }));
    if (list.others) rows.push({ name: t("campaign.others", { n: fmt.int(list.distinct - list.items.length) }), count: list.others });
    return TH.table([
      { label, value: (r) => r.name },
      { label: t("campaign.col.clicks"), num: true, value: (r) => fmt.int(r.count) },
      { label: t("campaign.col.share"), num: true, value: (r) => fmt.pct(r.count / clicks) },
    ], rows);
  }
  function showTop(boxId, list, clicks, label, name) {
    const box = $(boxId);
    if (!list.items.length) TH.state.empty(box, t("campaign.no_clicks"));
    else box.replaceChildren(topTable(list, clicks, label, name));
  }
  async function breakdown() {
    const boxes = ["top-tags", "top-sources", "top-types"];
    try {
      const b = await api(`${base}/breakdown?from=${range.start}&to=${range.end}`);
      $("breakdown-range").textContent = t("campaign.breakdown_range", { start: fmt.day(b.start), end: fmt.day(b.end), n: fmt.int(b.clicks) });
      showTop("top-tags", b.tags, b.clicks, t("campaign.col.tag"), (k) => k);
      showTop("top-sources", b.sources, b.clicks, t("campaign.col.source"), sourceName);
      showTop("top-types", b.interaction_types, b.clicks, t("campaign.col.type"), typeName);
    } catch (error) { boxes.forEach((box) => TH.state.error($(box), error)); }
  }
  function onRange(picked) { range = picked; daily(); breakdown(); }

  // ---------------------------------------------------------------- paginated lists
  function pager(box, state, total, reload) {
    const pages = Math.max(1, Math.ceil(total / PAGE_SIZE));
    const go = (page) => { state.page = page; reload(); };
    box.replaceChildren(
      el("span", { class: "muted", text: t("pager.page", { page: fmt.int(state.page), pages: fmt.int(pages), total: fmt.int(total) }) }),
      el("button", { type: "button", text: t("action.previous"), disabled: state.page <= 1, onclick: () => go(state.page - 1) }),
      el("button", { type: "button", text: t("action.next"), disabled: state.page >= pages, onclick: () => go(state.page + 1) }));
  }
  function pagedList(path, boxId, columns, emptyText) {
    const state = { page: 1 };
    async function load() {
      const box = $(boxId), pagerBox = $(`${boxId}-pager`);
      try {
        const body = await api(`${base}/${path}?page=${state.page}&page_size=${PAGE_SIZE}`);
        if (!body.items.length && state.page > 1) { state.page = 1; return load(); }
        if (!body.items.length) { TH.state.empty(box, emptyText); pagerBox.replaceChildren(); return; }
        box.replaceChildren(TH.table(columns, body.items));
        pager(pagerBox, state, body.total, load);
      } catch (error) { TH.state.error(box, error); }
    }
    load.state = state;
    return load;
  }
  const tagList = (tags) => (tags.length ? tags.join(", ") : "–");
  const users = pagedList("users", "users", [
    { label: t("campaign.col.user"), value: (u) => u.line_id },
    { label: t("campaign.col.display_name"), value: (u) => u.display_name || "–" },
    { label: t("campaign.col.source"), value: (u) => sourceName(u.source_campaign_id) },
    { label: t("campaign.col.clicks"), num: true, value: (u) => fmt.int(u.total_clicks) },
    { label: t("campaign.col.tags"), value: (u) => el("span", { class: "wrap-text", text: tagList(u.tags) }) },
    { label: t("campaign.col.last_click"), value: (u) => fmt.when(u.last_clicked_at) },
  ], t("campaign.no_users"));
  const interactions = pagedList("interactions", "interactions", [
    { label: t("campaign.col.time"), value: (i) => fmt.when(i.triggered_at) },
    { label: t("campaign.col.user"), value: (i) => i.line_id || t("campaign.anonymous") },
    { label: t("campaign.col.source"), value: (i) => sourceName(i.source_campaign_id) },
    { label: t("campaign.col.type"), value: (i) => typeName(i.interaction_type) },
    { label: t("campaign.col.target"), value: (i) => i.interaction_value },
    { label: t("campaign.col.tags"), value: (i) => tagList(i.tags) },
  ], t("campaign.no_interactions"));

  // ---------------------------------------------------------------- writers: edit, signed links
  function writerControls() {
    const edit = $("edit-campaign");
    if (edit) edit.addEventListener("click", () => CampaignForm.open(campaign, () => loadCampaign().catch((error) => TH.toast(t("state.error", { message: error.message }), "error"))));
    const form = $("link-form");
    if (!form) return;
    form.elements.type.replaceChildren(...Object.entries(TYPES).map(([value, text]) => el("option", { value, text })));
    TH.form(form, async (data) => {
      const body = { cid: id, to: data.to, src: Number(data.src || 0), type: data.type, tag: data.tag || null };
      if (data.uid) body.uid = data.uid;
      const link = await api("/api/clicks/links", { method: "POST", json: body });
      $("link-url").textContent = link.url;
      $("link-result").hidden = false;
      const copy = $("link-copy");
      copy.onclick = () => TH.copy(link.url, copy);
    });
  }

  // ---------------------------------------------------------------- start and refresh
  function stamp() { $("updated").textContent = t("campaign.updated", { time: fmt.whenShort(new Date().toISOString()) }); }
  // Every 10 s: the campaign's figures; the rest is read again only when clicks came in,
  // and a list only on its first page (a later page would shift under the reader's eyes).
  async function refresh() {
    const before = campaign.clicked_count;
    try { await loadCampaign(); } catch (error) { TH.toast(t("state.error", { message: error.message }), "error"); return; }
    if (campaign.clicked_count !== before) {
      const lists = [users, interactions].filter((load) => load.state.page === 1);
      await Promise.all([daily(), breakdown(), ...lists.map((load) => load())]);
    }
    stamp();
  }
  async function start() {
    const stateBox = $("campaign-state");
    TH.state.loading(stateBox);
    try { await loadCampaign(); } catch (error) { TH.state.error(stateBox, error); return; }
    stateBox.replaceChildren();
    $("campaign-body").hidden = false;
    TH.rangePicker($("range"), campaign.business_date, onRange, 14);
    writerControls();
    await Promise.all([users(), interactions()]);
    stamp();
    setInterval(refresh, REFRESH_MS);
  }
  start();
})();
