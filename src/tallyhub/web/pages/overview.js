// Overview: one tile per figure, each read from its domain's summary API and linking to
// its page; refreshed every 30 s. A tile that cannot load says why, in words.
(() => {
  const { t, fmt, api } = TH;

  function show(id, value, sub, kind) {
    const tile = document.getElementById(id);
    const valueBox = tile.querySelector("[data-value]");
    if (valueBox.textContent !== value && valueBox.textContent !== "…") TH.flash(valueBox);
    valueBox.textContent = value;
    const subBox = tile.querySelector("[data-sub]");
    subBox.textContent = sub || "";
    subBox.className = "sub " + (kind || "");
  }
  function failed(ids, error) {
    for (const id of ids) show(id, "–", t("state.error", { message: error.message }), "down");
  }

  function change(now, before) {
    const diff = now - before;
    const sign = diff > 0 ? "+" : diff < 0 ? "−" : "±";
    const share = before ? " (" + sign + fmt.pct(Math.abs(diff) / before) + ")" : "";
    return [t("overview.vs_yesterday", { change: sign + fmt.int(Math.abs(diff)) + share }), diff > 0 ? "up" : diff < 0 ? "down" : ""];
  }

  async function leads() {
    const s = await api("/api/leads/summary");
    show("tile-leads-today", fmt.int(s.today_incoming), ...change(s.today_incoming, s.yesterday_same_time));
    show("tile-duplicate-rate", fmt.ratio(s.today_duplicates, s.today_incoming),
      t("overview.duplicates_today", { n: fmt.int(s.today_duplicates) }));
    show("tile-accounts", `${fmt.int(s.online_accounts)} / ${fmt.int(s.total_accounts)}`,
      t("overview.groups", { n: fmt.int(s.groups) }));
  }
  async function clicks() {
    const s = await api("/api/clicks/summary");
    show("tile-clicks-today", fmt.int(s.today_clicks),
      t("overview.unique_users", { n: fmt.int(s.today_unique_users) }));
  }
  async function jobs() {
    const since = new Date(Date.now() - 24 * 3600 * 1000).toISOString();
    const page = await api(`/api/jobs/runs?status=failed&since=${encodeURIComponent(since)}&page_size=1`);
    show("tile-failed-runs", fmt.int(page.total), t("overview.last_24h"), page.total ? "down" : "");
  }

  // The busiest groups and campaigns today, from the same lists their pages read.
  async function busiest(boxId, path, columns, today) {
    const box = document.getElementById(boxId);
    try {
      const items = (await TH.all(path)).sort((a, b) => today(b) - today(a)).slice(0, 8);
      if (!items.length) TH.state.empty(box);
      else box.replaceChildren(TH.table(columns, items));
    } catch (error) { TH.state.error(box, error); }
  }
  const GROUPS = [
    { label: t("leads.col.group"), value: (g) => TH.el("a", { href: `/leads/groups/${g.id}`, text: g.remark || `#${g.id}` }) },
    { label: t("leads.col.today"), num: true, value: (g) => fmt.int(g.today_incoming) },
    { label: t("leads.col.duplicate_rate"), num: true, value: (g) => fmt.ratio(g.duplicate_incoming, g.total_incoming) },
    { label: t("leads.col.online"), num: true, value: (g) => `${fmt.int(g.online_accounts)} / ${fmt.int(g.total_accounts)}` },
  ];
  const CAMPAIGNS = [
    { label: t("overview.campaign"), value: (c) => TH.el("a", { href: `/clicks/campaigns/${c.id}`, text: c.name }) },
    { label: t("clicks.col.today"), num: true, value: (c) => fmt.int(c.today_clicks) },
    { label: t("clicks.col.total"), num: true, value: (c) => fmt.int(c.clicked_count) },
    { label: t("clicks.col.unique_users"), num: true, value: (c) => fmt.int(c.unique_users) },
  ];

  async function refresh() {
    await Promise.all([
      busiest("groups-today", "/api/leads/groups", GROUPS, (g) => g.today_incoming),
      busiest("campaigns-today", "/api/clicks/campaigns", CAMPAIGNS, (c) => c.today_clicks),
      leads().catch((e) => failed(["tile-leads-today", "tile-duplicate-rate", "tile-accounts"], e)),
      clicks().catch((e) => failed(["tile-clicks-today"], e)),
      jobs().catch((e) => failed(["tile-failed-runs"], e)),
    ]);
    document.getElementById("updated").textContent = t("overview.updated", { time: fmt.whenShort(new Date().toISOString()) });
  }
  refresh();
  setInterval(refresh, 30000);
})();
