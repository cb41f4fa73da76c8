// One campaign: its settings, today's and all-time figures (people's clicks and bots'
// apart), clicks per day over a chosen range, what the range's clicks were made of (tags,
// sources, interaction types) and who made them (devices, OS, browsers, referrers, and the
// bots kept out of the counts), the per-user summaries and the interaction log. Refreshed
// every 10 s (clicks are not pushed live). Writers edit the campaign and make signed
// /__track links here.
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

  const DEVICES = {
    desktop: t("campaign.device.desktop"), phone: t("campaign.device.phone"), tablet: t("campaign.device.tablet"),
    bot: t("campaign.device.bot"), other: t("campaign.device.other"),
  };
  const BOT_KINDS = { preview: t("campaign.bot_kind.preview"), crawler: t("campaign.bot_kind.crawler"), tool: t("campaign.bot_kind.tool") };
  const REFERRERS = { direct: t("campaign.referrer.direct"), unknown: t("campaign.referrer.unknown") };
  const typeName = (key) => TYPES[key] || key;
  const familyName = (key) => (key === "Other" ? t("campaign.other_value") : key);
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
    const bots = campaign.filter_bots ? t("campaign.filter_on") : t("campaign.filter_off");
    $("campaign-settings").textContent = `${t("campaign.settings", { zone: campaign.timezone, created: fmt.when(campaign.created_at) })} · ${bots}`;
    $("campaign-hosts").textContent = campaign.allowed_hosts.length
      ? t("campaign.hosts_line", { hosts: campaign.allowed_hosts.join(", ") })
      : t("clicks.no_hosts");
    tile("tile-today", fmt.int(campaign.today_clicks), t("campaign.today_sub", { day: fmt.day(campaign.business_date), zone: campaign.timezone }));
    tile("tile-total", fmt.int(campaign.clicked_count), campaign.filter_bots ? t("campaign.total_sub_people") : t("campaign.total_sub_all"));
    tile("tile-unique", fmt.int(campaign.unique_users));
    tile("tile-bots", fmt.int(campaign.bot_clicks), campaign.filter_bots ? t("campaign.bots_sub") : t("campaign.bots_sub_off"));
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
  // Who clicked: one breakdown per dimension, read from the per-day rows.
  const DIMENSIONS = [
    { dimension: "device", box: "by-device", label: t("campaign.col.device"), name: (k) => DEVICES[k] || k },
    { dimension: "os", box: "by-os", label: t("campaign.col.os"), name: familyName },
    { dimension: "browser", box: "by-browser", label: t("campaign.col.browser"), name: familyName },
    { dimension: "referrer", box: "by-referrer", label: t("campaign.col.referrer"), name: (k) => REFERRERS[k] || k },
    { dimension: "bot", box: "by-bot", label: t("campaign.col.bot"), name: (k) => k },
  ];
  async function visitors() {
    try {
      const answers = await Promise.all(DIMENSIONS.map((d) => api(`${base}/breakdown?dimension=${d.dimension}&from=${range.start}&to=${range.end}`)));
      const [devices, , , , bots] = answers;
      $("visitors-range").textContent = t("campaign.visitors_range", {
        start: fmt.day(devices.start), end: fmt.day(devices.end), people: fmt.int(devices.clicks), bots: fmt.int(bots.clicks),
      });
      DIMENSIONS.forEach((d, n) => showTop(d.box, answers[n].values, answers[n].clicks, d.label, d.name));
    } catch (error) { DIMENSIONS.forEach((d) => TH.state.error($(d.box), error)); }
  }
  function onRange(picked) { range = picked; daily(); breakdown(); visitors(); }

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
  function visitor(i) {
    if (!i.agent_kind) return "–";
    if (i.agent_kind === "unknown") return t("campaign.visitor.unknown");
    const who = i.agent_kind === "bot"
      ? t("campaign.visitor.bot", { name: i.bot_name, kind: BOT_KINDS[i.bot_kind] || i.bot_kind })
      : `${DEVICES[i.device] || i.device} · ${familyName(i.browser_family)}`;
    return i.counted ? who : t("campaign.visitor.not_counted", { who });
  }
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
    { label: t("campaign.col.visitor"), value: visitor },
    { label: t("campaign.col.source"), value: (i) => sourceName(i.source_campaign_id) },
    { label: t("campaign.col.type"), value: (i) => typeName(i.interaction_type) },
    { label: t("campaign.col.target"), value: (i) => el("span", { class: "wrap-url", text: i.interaction_value }) },
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
    const before = [campaign.clicked_count, campaign.bot_clicks];
    try { await loadCampaign(); } catch (error) { TH.toast(t("state.error", { message: error.message }), "error"); return; }
    if (campaign.clicked_count !== before[0] || campaign.bot_clicks !== before[1]) {
      const lists = [users, interactions].filter((load) => load.state.page === 1);
      await Promise.all([daily(), breakdown(), visitors(), ...lists.map((load) => load())]);
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
