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
  // Today's DOU+ spend and orders; accounts that need re-authorization (they stopped
  // syncing) said in the warning colour.
  async function douplus() {
    const s = await api("/api/douplus/summary");
    show("tile-douplus", fmt.money(s.cost_today), t("overview.douplus_orders", { n: fmt.int(s.orders_today) }));
    if (s.needs_reauth) {
      document.querySelector("#tile-douplus [data-sub]").append(TH.el("br"),
        TH.badge(t("overview.douplus_needs_reauth", { n: fmt.int(s.needs_reauth) }), "warn"));
    }
  }
  // The latest scanned day's task completions and accounts; callbacks not delivered yet,
  // or failed for good, as badges (the partner is waiting for them).
  async function taskstats() {
    const s = await api("/api/taskstats/summary");
    const sub = s.latest_date
      ? t("overview.taskstats_accounts", { n: fmt.int(s.accounts), date: fmt.day(s.latest_date) })
      : t("overview.taskstats_no_day");
    show("tile-taskstats", fmt.int(s.completions), sub);
    const box = document.querySelector("#tile-taskstats [data-sub]");
    if (s.callbacks_pending) {
      box.append(TH.el("br"), TH.badge(t("overview.taskstats_pending", { n: fmt.int(s.callbacks_pending) }), "warn"));
    }
    if (s.callbacks_failed) {
      box.append(TH.el("br"), TH.badge(t("overview.taskstats_failed", { n: fmt.int(s.callbacks_failed) }), "bad"));
    }
  }
  // Today's 9-yuan and 1-yuan intentions (the server's today) from the call-center cache
  // (computed on the first ask of the day), saying where they came from and when.
  async function callcenter() {
    const g = (await api(`/api/stats/grade-stats?date=${TH.page.today}`)).data;
    const sub = g.from_cache ? "overview.callcenter_cached" : "overview.callcenter_computed";
    show("tile-callcenter", `${fmt.int(g.grade_9)} / ${fmt.int(g.grade_1)}`, t(sub, { time: fmt.whenShort(g.calculated_at) }));
    document.querySelector("#tile-callcenter [data-sub]").title = fmt.when(g.calculated_at);
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
      douplus().catch((e) => failed(["tile-douplus"], e)),
      taskstats().catch((e) => failed(["tile-taskstats"], e)),
      callcenter().catch((e) => failed(["tile-callcenter"], e)),
      jobs().catch((e) => failed(["tile-failed-runs"], e)),
    ]);
    document.getElementById("updated").textContent = t("overview.updated", { time: fmt.whenShort(new Date().toISOString()) });
  }
  refresh();
  setInterval(refresh, 30000);
})();
