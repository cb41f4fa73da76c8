// Task rollups: the latest scanned day at a glance (tiles), a day's row per task with its
// figures per platform and its callback (the day from the picker, the latest by default,
// kept in the address as ?date=), the agents' day for settlement, and for writers a scan of
// a day by hand whose counts are shown when it ends. Read again every 30 s.
"use strict";
(() => {
  const { t, fmt, el, api } = TH;
  const S = window.Taskstats;
  const $ = (id) => document.getElementById(id);
  const REFRESH_MS = 30000;
  const SCAN_COUNTS = ["tasks", "ok", "failed", "unchanged", "callbacks", "fetched"];
  const picker = $("day-picker");
  let tasks = new Map(), day = null;
  const failed = (error) => TH.toast(t("state.error", { message: error.message }), "error");

  // ---------------------------------------------------------------- tiles
  function tile(id, value, sub, kind) {
    const box = $(id), valueBox = box.querySelector("[data-value]");
    if (valueBox.textContent !== value && valueBox.textContent !== "…") TH.flash(valueBox);
    valueBox.textContent = value;
    if (sub === undefined) return;
    const subBox = box.querySelector("[data-sub]");
    subBox.replaceChildren(...[].concat(sub));
    subBox.className = "sub " + (kind || "");
  }
  async function summary() {
    const s = await api("/api/taskstats/summary");
    tile("tile-tasks", fmt.int(s.tasks), "");
    tile("tile-latest", s.latest_date ? fmt.day(s.latest_date) : "–", s.latest_date ? "" : t("taskstats.no_day"));
    tile("tile-completions", fmt.int(s.completions));
    tile("tile-accounts", fmt.int(s.accounts));
    const waiting = s.callbacks_pending + s.callbacks_failed;
    const badges = [];
    if (s.callbacks_pending) badges.push(TH.badge(t("taskstats.tile.pending", { n: fmt.int(s.callbacks_pending) }), "warn"));
    if (s.callbacks_failed) badges.push(" ", TH.badge(t("taskstats.tile.failed", { n: fmt.int(s.callbacks_failed) }), "bad"));
    tile("tile-callbacks", fmt.int(waiting), waiting ? badges : t("taskstats.tile.all_delivered"));
    return s;
  }

  // ---------------------------------------------------------------- a day's rows
  function taskCell(row) {
    const task = tasks.get(row.task_id);
    const title = task ? task.title : `#${row.task_id}`;
    const parts = [el("a", { href: `/taskstats/tasks/${row.task_id}`, text: title })];
    if (task && task.status !== "active") parts.push(" ", S.statusBadge(task.status));
    if (task) parts.push(el("br"), el("small", { class: "muted", text: task.project_id }));
    return el("span", { class: "task-name" }, parts);
  }
  const ROW_COLUMNS = S.dayColumns({ taskCell });
  async function loadTasks() {
    tasks = new Map((await TH.all("/api/taskstats/tasks")).map((task) => [task.id, task]));
  }
  async function loadRows(chosen) {
    const box = $("rows");
    try {
      const rows = await TH.all(`/api/taskstats/daily?date=${chosen}`);
      if (chosen !== day) return;  // another day was picked meanwhile
      $("rows-title").textContent = t("taskstats.rows_of", { date: fmt.day(chosen) });
      if (!rows.length) TH.state.empty(box, t("taskstats.no_rows"));
      else box.replaceChildren(TH.table(ROW_COLUMNS, rows, { rowId: (r) => `taskstats-row-${r.task_id}` }));
    } catch (error) { TH.state.error(box, error); }
  }

  // ---------------------------------------------------------------- the agents' day
  const platformColumns = S.PLATFORMS.flatMap((p) => [
    { label: t("taskstats.agent.completions", { platform: p.label }), key: `${p.prefix}_completion_count`, num: true, value: (a) => fmt.int(a[`${p.prefix}_completion_count`]) },
    { label: t("taskstats.agent.views", { platform: p.label }), key: `${p.prefix}_view_count`, num: true, value: (a) => fmt.int(a[`${p.prefix}_view_count`]) },
  ]);
  const AGENT_COLUMNS = [
    { label: t("taskstats.agent.col"), key: "agent_node", value: (a) => a.agent_node || el("span", { class: "muted", text: t("taskstats.agent.none") }) },
    { label: t("taskstats.agent.users"), key: "user_count", num: true, value: (a) => fmt.int(a.user_count) },
    { label: t("taskstats.col.completions"), key: "completion_count", num: true, value: (a) => fmt.int(a.completion_count) },
    ...platformColumns,
    { label: t("taskstats.agent.likes"), key: "like_count", num: true, value: (a) => fmt.int(a.like_count) },
  ];
  async function loadAgents(chosen) {
    const box = $("agents");
    try {
      const agents = await api(`/api/taskstats/agents/daily?date=${chosen}`);
      if (chosen !== day) return;
      $("agents-title").textContent = t("taskstats.agents_of", { date: fmt.day(chosen) });
      if (!agents.length) TH.state.empty(box, t("taskstats.no_agents"));
      else box.replaceChildren(TH.table(AGENT_COLUMNS, agents));
    } catch (error) { TH.state.error(box, error); }
  }

  // ---------------------------------------------------------------- the day shown
  async function show(chosen) {
    day = chosen;
    picker.value = chosen;
    const url = new URL(location.href);
    url.searchParams.set("date", chosen);
    history.replaceState(null, "", url);
    await Promise.all([loadRows(chosen), loadAgents(chosen)]);
  }
  picker.addEventListener("change", () => { if (picker.value) { TH.state.loading($("rows")); TH.state.loading($("agents")); show(picker.value); } });
  $("day-form").addEventListener("submit", (event) => event.preventDefault());

  // ---------------------------------------------------------------- a scan by hand
  // The viewer's yesterday (the nightly scan's day) while no day is shown yet.
  function yesterday() {
    const d = new Date(Date.now() - 86400000), pad = (n) => String(n).padStart(2, "0");
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
  }
  function scanResult(result) {
    const counts = el("dl", { class: "facts" }, SCAN_COUNTS.flatMap((name) => [
      el("dt", { text: t(`taskstats.scan.${name}`) }), el("dd", { dataset: { f: name }, text: fmt.int(result[name]) })]));
    const errors = Object.entries(result.errors).map(([taskId, why]) =>
      el("li", { text: t("taskstats.scan.error", { task: tasks.has(Number(taskId)) ? tasks.get(Number(taskId)).title : `#${taskId}`, error: why }) }));
    return [el("p", { text: t("taskstats.scan.done", { date: fmt.day(result.date) }) }), counts, errors.length ? el("ul", { class: "error-list" }, errors) : null];
  }
  function scanControls() {
    const dialog = $("scan-dialog");
    if (!dialog) return;
    const result = $("scan-result");
    $("scan-open").addEventListener("click", () => {
      $("scan-form").elements.date.value = day || yesterday();
      result.hidden = true;
      result.replaceChildren();
      dialog.showModal();
    });
    dialog.querySelector("[data-close]").addEventListener("click", () => dialog.close());
    TH.form($("scan-form"), async (data) => {
      result.hidden = true;
      const done = await api("/api/taskstats/scan", { method: "POST", json: { date: data.date } });
      result.replaceChildren(...scanResult(done).filter(Boolean));
      result.hidden = false;
      TH.toast(t("taskstats.scan.done", { date: fmt.day(done.date) }), done.failed ? "error" : "");
      await Promise.all([loadTasks(), summary().catch(failed)]);
      await show(done.date);
    });
  }

  // ---------------------------------------------------------------- start and refresh
  async function refresh() {
    await Promise.all([summary().catch(failed), loadTasks().catch(failed)]);
    if (day) await Promise.all([loadRows(day), loadAgents(day)]);
    $("updated").textContent = t("taskstats.updated", { time: fmt.whenShort(new Date().toISOString()) });
  }
  async function start() {
    ["rows", "agents"].forEach((id) => TH.state.loading($(id)));
    scanControls();
    const [s] = await Promise.all([summary().catch((error) => { failed(error); return null; }), loadTasks().catch(failed)]);
    const asked = new URL(location.href).searchParams.get("date");
    const chosen = /^\d{4}-\d{2}-\d{2}$/.test(asked || "") ? asked : s && s.latest_date;
    if (chosen) await show(chosen);
    else { TH.state.empty($("rows"), t("taskstats.no_day")); TH.state.empty($("agents"), t("taskstats.no_day")); }
    $("updated").textContent = t("taskstats.updated", { time: fmt.whenShort(new Date().toISOString()) });
    setInterval(() => { if (!document.hidden) refresh(); }, REFRESH_MS);
  }
  start();
})();
