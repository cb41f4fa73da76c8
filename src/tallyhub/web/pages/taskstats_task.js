// One task: its days over a chosen range as a chart (completions and accounts, or views or
// likes per platform, stacked) and as rows with their callbacks, and its settings (title,
// duration, callback URL, status), which writers change here. Read again every 60 s.
"use strict";
(() => {
  const { t, fmt, el, api } = TH;
  const S = window.Taskstats;
  const $ = (id) => document.getElementById(id);
  const id = TH.page.task_id;
  const REFRESH_MS = 60000;
  const COLORS = { youtube: "#c4302b", tiktok: "#0f766e", douyin: "#2459d6" };
  let task = null, days = [], range = null, metric = "completions";

  // ---------------------------------------------------------------- header and settings
  function header() {
    document.title = `${task.title} · TallyHub`;
    $("task-title").textContent = task.title;
    $("task-status").replaceChildren(S.statusBadge(task.status));
    $("task-line").textContent = t("taskstats.task.line", { project: task.project_id, days: fmt.int(task.duration), created: fmt.day(task.created_at.slice(0, 10)) });
  }
  function facts() {
    const box = $("task-settings");
    if (!box) return;
    const rows = [
      [t("taskstats.field.title"), task.title], [t("taskstats.field.duration"), t("taskstats.task.days_n", { n: fmt.int(task.duration) })],
      [t("taskstats.field.callback_url"), task.callback_url || t("taskstats.task.no_callback")],
      [t("taskstats.field.status"), S.TASK_STATUS[task.status] || task.status], [t("taskstats.field.project"), task.project_id],
    ];
    box.replaceChildren(...rows.flatMap(([term, value]) => [el("dt", { text: term }), el("dd", { text: value })]));
  }
  function settingsForm() {
    const form = $("task-form");
    if (!form) return;
    const fill = () => {
      form.elements.title.value = task.title;
      form.elements.duration.value = task.duration;
      form.elements.callback_url.value = task.callback_url || "";
      form.elements.status.value = task.status;
    };
    fill();
    TH.form(form, async (data) => {
      const body = { title: data.title.trim(), duration: Number(data.duration), callback_url: data.callback_url.trim() || null, status: data.status };
      task = await api(`/api/taskstats/tasks/${id}`, { method: "PATCH", json: body });
      fill();
      header();
      TH.toast(t("taskstats.task.saved"));
    });
  }

  // ---------------------------------------------------------------- the chart and the rows
  // Every day of the range on the axis; a day without a row (no completion, or not rolled
  // up) has no point (null), which is not the same as a zero.
  function rangeDays() {
    const all = [];
    for (let d = range.start; d <= range.end; d = TH.daysAgo(d, -1)) all.push(d);
    return all;
  }
  function series() {
    if (!days.length) return [];
    const x = rangeDays(), byDay = new Map(days.map((d) => [d.stats_date, d]));
    const y = (field) => x.map((date) => (byDay.has(date) ? byDay.get(date)[field] : null));
    if (metric === "completions") {
      return [
        { name: t("taskstats.col.completions"), x, y: y("completion_count"), kind: "bar", color: "#2459d6" },
        { name: t("taskstats.col.accounts"), x, y: y("total_account_count"), kind: "line", color: "#d97706" },
      ];
    }
    const count = metric === "views" ? "view" : "like";
    return S.PLATFORMS.map((p) => ({ name: p.label, x, y: y(`${p.prefix}_${count}_count`), kind: "bar", color: COLORS[p.key] }));
  }
  function draw() {
    TH.chart($("trend-chart"), series(), { stacked: metric !== "completions", empty: t("taskstats.chart.empty") });
    const box = $("days");
    if (!days.length) TH.state.empty(box, t("taskstats.chart.empty"));
    else box.replaceChildren(TH.table(S.dayColumns({ date: true }), [...days].reverse(), { rowId: (d) => `taskstats-day-${d.stats_date}` }));
  }
  async function loadDays(chosen) {
    range = chosen;
    const answer = await api(`/api/taskstats/tasks/${id}/daily?from=${chosen.start}&to=${chosen.end}`);
    if (range !== chosen) return;  // another range was picked meanwhile
    days = answer;
    draw();
  }
  function wireMetric() {
    const chips = [...$("metric").querySelectorAll("button")];
    for (const chip of chips) {
      chip.addEventListener("click", () => {
        chips.forEach((other) => other.setAttribute("aria-pressed", String(other === chip)));
        metric = chip.dataset.metric;
        TH.chart($("trend-chart"), series(), { stacked: metric !== "completions", empty: t("taskstats.chart.empty") });
      });
    }
  }

  // ---------------------------------------------------------------- start
  const failed = (error) => TH.toast(t("state.error", { message: error.message }), "error");
  async function start() {
    const stateBox = $("task-state");
    TH.state.loading(stateBox);
    let latest;
    try {
      [task, latest] = await Promise.all([api(`/api/taskstats/tasks/${id}`), api("/api/taskstats/summary").then((s) => s.latest_date)]);
    } catch (error) { TH.state.error(stateBox, error); return; }
    stateBox.replaceChildren();
    $("task-body").hidden = false;
    header();
    facts();
    settingsForm();
    wireMetric();
    TH.state.loading($("trend-chart"));
    TH.rangePicker($("range"), latest || TH.isoDay(new Date()), (chosen) => loadDays(chosen).catch((error) => TH.state.error($("trend-chart"), error)));
    $("updated").textContent = t("taskstats.updated", { time: fmt.whenShort(new Date().toISOString()) });
    setInterval(() => {
      if (document.hidden || !range) return;
      loadDays(range).then(() => { $("updated").textContent = t("taskstats.updated", { time: fmt.whenShort(new Date().toISOString()) }); }).catch(failed);
    }, REFRESH_MS);
  }
  start();
})();
