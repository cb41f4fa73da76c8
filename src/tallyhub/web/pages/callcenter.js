// Call center: a day's figures from the two per-day caches (the day from the picker, the
// server's today by default, kept in the address as ?date=), each tile saying whether it
// came from the cache or was computed now, and when (the seed's planned 显示数据来源 /
// 缓存更新时间); writers refresh the day (both dimensions computed now). A past day not
// synced yet says so, with the refresh. Over the range picker: the trend (9-yuan, 1-yuan
// and connected rate per day), the agent ranking (sortable), the hour-of-day chart and the
// export links. The API keeps the seed's envelope ({"success": true, "data": …}).
"use strict";
(() => {
  const { t, fmt, el, api, lang } = TH;
  const $ = (id) => document.getElementById(id);
  const TODAY = TH.page.today;
  const REFRESH_MS = 60000, AGENTS = 20;
  const COLOR = { grade_9: "#2459d6", grade_1: "#d97706", rate: "#147a3d", calls: "#b8c4d6", connected: "#6b7a90" };
  const picker = $("day-picker");
  const range = { start: null, end: null, asked: 0 }, ranking = { sort: "grade_9", asked: 0 };
  let day = null, asked = 0;

  const stats = async (path, options) => (await api(path, options)).data;
  // An answer, a day not synced yet (404), or a failure, so that one dimension's trouble
  // does not hide the other's figures.
  const settle = (promise) => promise.then((data) => ({ data }),
    (error) => (error.status === 404 ? { missing: true, error } : { error }));

  // ---------------------------------------------------------------- words for times
  const relative = new Intl.RelativeTimeFormat(lang, { numeric: "auto" });
  function ago(iso) {
    const seconds = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
    const past = (n, unit) => relative.format(-Math.round(n) || 0, unit);
    if (seconds < 45) return past(seconds, "second");
    if (seconds < 45 * 60) return past(seconds / 60, "minute");
    if (seconds < 22 * 3600) return past(seconds / 3600, "hour");
    return past(seconds / 86400, "day");
  }
  // "updated 3 minutes ago", the exact time (and zone) in the title; kept current.
  function updated(iso) {
    const [before, after] = t("callcenter.updated", { time: "\u0000" }).split("\u0000");
    const time = el("time", { datetime: iso, title: fmt.when(iso), text: ago(iso) });
    return el("span", { class: "updated" }, before, time, after);
  }
  function source(row) {
    const label = row.from_cache ? t("callcenter.from_cache") : t("callcenter.computed_now");
    const how = t("callcenter.computed_in", { s: row.elapsed_time.toLocaleString(lang, { maximumFractionDigits: 3 }), type: row.sync_type });
    const badge = TH.badge(label, row.from_cache ? "off" : "good");
    badge.title = how;
    badge.dataset.source = row.from_cache ? "cache" : "live";
    return [badge, el("br"), updated(row.calculated_at)];
  }

  // ---------------------------------------------------------------- tiles
  function tile(id, value, sub, kind) {
    const box = $(id), valueBox = box.querySelector("[data-value]");
    if (![value, "…"].includes(valueBox.textContent) && value !== "…") TH.flash(valueBox);
    valueBox.textContent = value;
    const subBox = box.querySelector("[data-sub]");
    subBox.replaceChildren(...[].concat(sub));
    subBox.className = "sub " + (kind || "");
  }
  const GRADE_TILES = ["tile-grade-9", "tile-grade-1", "tile-success"];
  function absent(ids, answer) {
    const [sub, kind] = answer.missing ? [t("callcenter.not_synced_short"), "warn-text"] : [t("state.error", { message: answer.error.message }), "down"];
    for (const id of ids) tile(id, "–", sub, kind);
  }
  function showGrades(answer) {
    if (!answer.data) return absent(GRADE_TILES, answer);
    const g = answer.data;
    tile("tile-grade-9", fmt.int(g.grade_9), source(g));
    tile("tile-grade-1", fmt.int(g.grade_1), source(g));
    tile("tile-success", fmt.int(g.total_success),
      [t("callcenter.of_records", { n: fmt.int(g.total_records) }), el("br"), ...source(g)]);
  }
  // A day without calls has no connected rate (the API's 0 would read as "none connected").
  const rateOf = (row) => (row && row.callout_number ? Number(row.connected_rate) : null);
  function showTasks(answer) {
    if (!answer.data) return absent(["tile-connected"], answer);
    const s = answer.data;
    tile("tile-connected", rateOf(s) === null ? "–" : fmt.pct(rateOf(s)),
      [t("callcenter.connected_of", { called: fmt.int(s.called_number), callout: fmt.int(s.callout_number) }), el("br"), ...source(s)]);
  }
  // The banner over the tiles when the day (either dimension) has not been synced yet.
  function notSynced(chosen, answers) {
    const missing = answers.some((a) => a.missing);
    $("not-synced").hidden = !missing;
    $("not-synced-text").textContent = missing ? t("callcenter.not_synced", { date: fmt.day(chosen) }) : "";
  }
  function show(chosen, grades, tasks) {
    showGrades(grades);
    showTasks(tasks);
    notSynced(chosen, [grades, tasks]);
  }
  async function loadDay(chosen) {
    const mine = ++asked;
    const q = `?date=${encodeURIComponent(chosen)}`;
    const [grades, tasks] = await Promise.all([
      settle(stats(`/api/stats/grade-stats${q}`)), settle(stats(`/api/stats/task-stats${q}`))]);
    if (mine === asked) show(chosen, grades, tasks);
  }
  function pick(chosen) {
    day = chosen;
    picker.value = chosen;
    const address = new URL(location.href);
    if (chosen === TODAY) address.searchParams.delete("date"); else address.searchParams.set("date", chosen);
    history.replaceState(null, "", address);
    GRADE_TILES.concat("tile-connected").forEach((id) => tile(id, "…", ""));
    return loadDay(chosen);
  }

  // ---------------------------------------------------------------- refresh (writers)
  // Both dimensions of the day computed now; the new figures shown from the answers. A
  // refresh that fails (the vendor, or fewer records than cached) leaves the cache as it
  // was: said in a toast, and the stored figures read again.
  async function refresh(buttons) {
    const chosen = day, mine = ++asked, body = { json: { date: chosen }, method: "POST" };
    buttons.forEach((b) => { b.disabled = true; b.setAttribute("aria-busy", "true"); });
    TH.toast(t("callcenter.refreshing", { date: fmt.day(chosen) }));
    try {
      const [grades, tasks] = await Promise.all([
        settle(stats("/api/stats/grade-stats/refresh", body)), settle(stats("/api/stats/task-stats/refresh", body))]);
      const failures = [grades, tasks].filter((a) => a.error).map((a) => a.error.message);
      if (failures.length) {
        TH.toast(t("state.error", { message: failures.join(" · ") }), "error");
        if (mine === asked) await loadDay(chosen);
      } else {
        if (mine === asked) show(chosen, grades, tasks);
        TH.toast(t("callcenter.refreshed", { date: fmt.day(chosen) }));
      }
      if (range.start && chosen >= range.start && chosen <= range.end) await loadRange();
    } finally {
      buttons.forEach((b) => { b.disabled = false; b.removeAttribute("aria-busy"); });
    }
  }
  function writerControls() {
    const buttons = [$("refresh"), $("refresh-missing")].filter(Boolean);
    buttons.forEach((b) => b.addEventListener("click", () => refresh(buttons)));
  }

  // ---------------------------------------------------------------- the range
  function everyDay(start, end) {
    const days = [];
    for (let d = start; d <= end; d = TH.daysAgo(d, -1)) days.push(d);
    return days;
  }
  const hover = (name) => "%{customdata[0]}<br>" + name + ": %{customdata[1]}<extra></extra>";
  const LAYOUT = {
    margin: { l: 48, r: 56, t: 12, b: 40 }, height: 300, legend: { orientation: "h", y: -0.2 },
    paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)", font: { family: "system-ui, sans-serif", size: 12 },
  };
  // 9-yuan and 1-yuan per day as bars, the connected rate as a line on the right-hand
  // axis; every day of the range on the axis, a day without a cache as a gap.
  function trendChart(box, rows) {
    if (!rows.length) { TH.state.empty(box, t("callcenter.no_days")); return; }
    const byDay = new Map(rows.map((r) => [r.date, r]));
    const x = everyDay(range.start, range.end), of = (d, key) => (byDay.get(d) || {})[key] ?? null;
    const bars = ["grade_9", "grade_1"].map((key) => {
      const name = t(`callcenter.series.${key}`), y = x.map((d) => of(d, key));
      return { type: "bar", name, x, y, marker: { color: COLOR[key] },
        customdata: x.map((d, i) => [fmt.day(d), fmt.int(y[i])]), hovertemplate: hover(name) };
    });
    const rateName = t("callcenter.series.connected_rate");
    const rates = x.map((d) => rateOf(byDay.get(d)));
    const line = { type: "scatter", mode: "lines+markers", name: rateName, x, y: rates, yaxis: "y2", connectgaps: false,
      marker: { color: COLOR.rate }, line: { color: COLOR.rate },
      customdata: x.map((d, i) => [fmt.day(d), fmt.pct(rates[i])]), hovertemplate: hover(rateName) };
    const layout = { ...LAYOUT, barmode: "group",
      xaxis: { type: "date", tickformat: "%m-%d", fixedrange: true },
      yaxis: { rangemode: "tozero", fixedrange: true, separatethousands: true, tickformat: ",d" },
      yaxis2: { overlaying: "y", side: "right", range: [0, 1], dtick: 0.2, fixedrange: true, tickformat: ".0%", showgrid: false } };
    box.replaceChildren();
    window.Plotly.newPlot(box, [...bars, line], layout, { displayModeBar: false, responsive: true });
  }
  // Calls and connected calls per hour of day as bars, 9-yuan and 1-yuan as lines on the
  // right-hand axis.
  function hourChart(box, hours) {
    if (!hours.some((h) => h.calls)) { TH.state.empty(box, t("callcenter.no_calls")); return; }
    const x = hours.map((h) => h.hour), label = (hour) => `${String(hour).padStart(2, "0")}:00`;
    const series = (key, type, axis) => {
      const name = t(`callcenter.series.${key}`), y = hours.map((h) => h[key]);
      return { type: type === "bar" ? "bar" : "scatter", mode: type === "bar" ? undefined : "lines+markers", name, x, y, yaxis: axis,
        marker: { color: COLOR[key] }, line: { color: COLOR[key] },
        customdata: x.map((hour, i) => [label(hour), fmt.int(y[i])]), hovertemplate: hover(name) };
    };
    const layout = { ...LAYOUT, barmode: "group",
      xaxis: { type: "linear", fixedrange: true, tickangle: 0, tick0: 0, dtick: 3, tickformat: "02d", range: [-0.5, 23.5] },
      yaxis: { rangemode: "tozero", fixedrange: true, separatethousands: true, tickformat: ",d" },
      yaxis2: { overlaying: "y", side: "right", rangemode: "tozero", tickmode: "auto", nticks: 5, fixedrange: true, tickformat: ",d", showgrid: false } };
    box.replaceChildren();
    window.Plotly.newPlot(box, [series("calls", "bar", "y"), series("connected", "bar", "y"),
      series("grade_9", "line", "y2"), series("grade_1", "line", "y2")], layout, { displayModeBar: false, responsive: true });
  }
  const AGENT_COLUMNS = [
    { label: t("callcenter.col.rank"), key: "rank", num: true, value: (a) => fmt.int(a.rank) },
    { label: t("callcenter.col.agent"), key: "agent", value: (a) => a.agent_id },
    { label: t("callcenter.col.grade_9"), key: "grade_9", num: true, value: (a) => fmt.int(a.grade_9) },
    { label: t("callcenter.col.grade_1"), key: "grade_1", num: true, value: (a) => fmt.int(a.grade_1) },
    { label: t("callcenter.col.calls"), key: "calls", num: true, value: (a) => fmt.int(a.calls) },
    { label: t("callcenter.col.connected"), key: "connected", num: true, value: (a) => fmt.int(a.connected) },
    { label: t("callcenter.col.connected_rate"), key: "connected_rate", num: true, value: (a) => fmt.ratio(a.connected, a.calls) },
  ];
  async function loadAgents() {
    const box = $("agents"), mine = ++ranking.asked;
    try {
      const rows = await stats(`/api/stats/agents?from=${range.start}&to=${range.end}&sort=${ranking.sort}&limit=${AGENTS}`);
      if (mine !== ranking.asked) return;
      if (!rows.length) TH.state.empty(box, t("callcenter.no_agents"));
      else box.replaceChildren(TH.table(AGENT_COLUMNS, rows.map((a, i) => ({ ...a, rank: i + 1 })), { rowId: (a) => `callcenter-agent-${a.agent_id}` }));
      box.dataset.sort = ranking.sort;
    } catch (error) { TH.state.error(box, error); }
  }
  function wireAgentSort() {
    const chips = [...$("agent-sort").querySelectorAll("button")];
    for (const chip of chips) {
      chip.addEventListener("click", () => {
        chips.forEach((other) => other.setAttribute("aria-pressed", String(other === chip)));
        ranking.sort = chip.dataset.sort;
        loadAgents();
      });
    }
  }
  async function drawn(boxId, path, draw, mine) {
    const box = $(boxId);
    try {
      const rows = await stats(path);
      if (mine === range.asked) draw(box, rows);
    } catch (error) { TH.state.error(box, error); }
  }
  function loadRange() {
    const mine = ++range.asked, q = `from=${range.start}&to=${range.end}`;
    $("export-csv").href = `/api/stats/export?${q}&format=csv`;
    $("export-xlsx").href = `/api/stats/export?${q}&format=xlsx`;
    return Promise.all([
      drawn("trend-chart", `/api/stats/daily?${q}`, trendChart, mine),
      drawn("hour-chart", `/api/stats/hours?${q}`, hourChart, mine),
      loadAgents(),
    ]);
  }

  // ---------------------------------------------------------------- start
  const asked0 = new URLSearchParams(location.search).get("date");
  const first = /^\d{4}-\d{2}-\d{2}$/.test(asked0 || "") && asked0 <= TODAY ? asked0 : TODAY;
  picker.addEventListener("change", () => { if (picker.value && picker.value <= TODAY) pick(picker.value); });
  writerControls();
  wireAgentSort();
  ["trend-chart", "hour-chart", "agents"].forEach((id) => TH.state.loading($(id)));
  pick(first);
  TH.rangePicker($("range-picker"), TODAY, (chosen) => { Object.assign(range, chosen); loadRange(); }, 14);
  setInterval(() => { if (!document.hidden) loadDay(day); }, REFRESH_MS);
})();
