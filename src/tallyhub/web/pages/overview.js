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

  async function refresh() {
    await Promise.all([
      leads().catch((e) => failed(["tile-leads-today", "tile-duplicate-rate", "tile-accounts"], e)),
      clicks().catch((e) => failed(["tile-clicks-today"], e)),
      jobs().catch((e) => failed(["tile-failed-runs"], e)),
    ]);
    document.getElementById("updated").textContent = t("overview.updated", { time: fmt.whenShort(new Date().toISOString()) });
  }
  refresh();
  setInterval(refresh, 30000);
})();
