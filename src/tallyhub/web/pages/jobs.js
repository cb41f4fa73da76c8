// Jobs: every registered job with its schedule in words and zone, next and last run in
// the viewer's own time (zone shown), how the last run went in words; the run history
// with filters (preset from ?job= and ?status=); admins run a job now. Every 30 s.
(() => {
  const { t, fmt, el } = TH;
  const STATUS = { succeeded: t("status.succeeded"), failed: t("status.failed"), running: t("status.running"),
    queued: t("status.queued"), interrupted: t("status.interrupted"), abandoned: t("status.abandoned") };
  const filters = document.getElementById("run-filters");
  let runsPage = 1;
  document.getElementById("viewer-zone").textContent = t("jobs.viewer_zone", { zone: fmt.zone() });

  function schedule(job) {
    if (job.every_seconds) {
      const s = job.every_seconds;
      return s % 60 === 0 ? t("schedule.every_minutes", { n: fmt.int(s / 60) }) : t("schedule.every_seconds", { n: fmt.int(s) });
    }
    const [minute, hour, day, month, weekday] = (job.cron || "").split(/\s+/);
    const plain = (v) => /^\d+$/.test(v);
    const rest = [day, month, weekday].every((v) => v === "*");
    let words = null;
    if (rest && plain(minute) && plain(hour)) words = t("schedule.daily_at", { time: `${hour.padStart(2, "0")}:${minute.padStart(2, "0")}` });
    else if (rest && plain(minute) && hour === "*") words = t("schedule.hourly_at", { minute: minute.padStart(2, "0") });
    else if (rest && /^\*\/\d+$/.test(minute) && hour === "*") words = t("schedule.every_minutes", { n: minute.slice(2) });
    return words ? `${words} (${job.timezone})` : t("schedule.cron", { cron: job.cron, zone: job.timezone });
  }
  function counts(run) {
    if (!run || !run.counts) return run && run.error ? run.error.trim().split("\n").pop() : "–";
    const words = Object.entries(run.counts).map(([key, value]) => `${countLabel(key)}: ${countValue(value)}`);
    return words.join(" · ") || t("jobs.nothing_reported");
  }
  function countLabel(key) { return TH.ctx.messages["count." + key] || key.replace(/_/g, " "); }
  function countValue(value) {
    if (typeof value === "number") return fmt.int(value);
    if (value && typeof value === "object") {
      const parts = Object.entries(value).map(([k, v]) => `${countLabel(k)} ${typeof v === "number" ? fmt.int(v) : (typeof v === "object" ? "…" : v)}`);
      return parts.length ? parts.join(", ") : "0";
    }
    return String(value);
  }
  const status = (run) => (run ? TH.badge(STATUS[run.status] || run.status, run.status) : el("span", { class: "muted", text: t("jobs.never_run") }));

  const JOB_COLUMNS = [
    { label: t("jobs.col.job"), value: (j) => el("span", {}, el("strong", { text: j.name }), el("br"), el("small", { class: "muted", text: j.description })) },
    { label: t("jobs.col.schedule"), value: (j) => schedule(j) },
    { label: t("jobs.col.next_run"), value: (j) => fmt.when(j.next_run_at) },
    { label: t("jobs.col.last_run"), value: (j) => (j.last_run ? fmt.when(j.last_run.started_at) : "–") },
    { label: t("jobs.col.status"), value: (j) => status(j.last_run) },
    { label: t("jobs.col.duration"), num: true, value: (j) => (j.last_run ? fmt.duration(j.last_run.duration_ms) : "–") },
    { label: t("jobs.col.result"), value: (j) => el("span", { class: "wrap counts", text: counts(j.last_run) }) },
  ];
  if (TH.isAdmin) JOB_COLUMNS.push({ label: t("jobs.col.actions"), value: (j) => el("button", { type: "button", class: "run-now", text: t("jobs.run_now"), "aria-label": t("jobs.run_named", { name: j.name }), onclick: (e) => runNow(j, e.target) }) });

  async function jobs() {
    const box = document.getElementById("jobs");
    try {
      const items = await TH.all("/api/jobs");
      box.replaceChildren(TH.table(JOB_COLUMNS, items, { rowId: (j) => `job-${j.name.replace(/\./g, "-")}` }));
      const select = document.getElementById("filter-job");
      if (select.options.length === 1) {
        items.forEach((j) => select.append(el("option", { value: j.name, text: j.name })));
        select.value = new URLSearchParams(location.search).get("job") || "";
      }
    } catch (error) { TH.state.error(box, error); }
  }

  async function runNow(job, button) {
    button.disabled = true;
    try {
      let run = await TH.api(`/api/jobs/${encodeURIComponent(job.name)}/run`, { method: "POST" });
      while (run.status === "queued" || run.status === "running") {
        await new Promise((resolve) => setTimeout(resolve, 1000));
        run = await TH.api(`/api/jobs/runs/${run.id}`);
      }
      TH.toast(t("jobs.ran", { name: job.name, status: STATUS[run.status] || run.status }), run.status === "succeeded" ? "" : "error");
    } catch (error) { TH.toast(error.message, "error"); }
    finally { button.disabled = false; await jobs(); await runs(1); }
  }

  const RUN_COLUMNS = [
    { label: t("jobs.col.job"), value: (r) => r.job_name },
    { label: t("jobs.col.started"), value: (r) => fmt.when(r.started_at) },
    { label: t("jobs.col.trigger"), value: (r) => TH.ctx.messages["trigger." + r.trigger] || r.trigger },
    { label: t("jobs.col.status"), value: (r) => status(r) },
    { label: t("jobs.col.attempt"), num: true, value: (r) => fmt.int(r.attempt) },
    { label: t("jobs.col.duration"), num: true, value: (r) => fmt.duration(r.duration_ms) },
    { label: t("jobs.col.result"), value: (r) => el("span", { class: "wrap counts", text: counts(r) }) },
  ];
  async function runs(page = runsPage) {
    runsPage = page;
    const box = document.getElementById("runs");
    const data = new FormData(filters), query = new URLSearchParams({ page, page_size: 20 });
    if (data.get("job")) query.set("job", data.get("job"));
    if (data.get("status")) query.set("status", data.get("status"));
    if (data.get("since")) query.set("since", new Date(Date.now() - Number(data.get("since")) * 3600e3).toISOString());
    try {
      const body = await TH.api(`/api/jobs/runs?${query}`);
      if (!body.items.length) TH.state.empty(box, t("jobs.no_runs"));
      else box.replaceChildren(TH.table(RUN_COLUMNS, body.items));
      const pages = Math.max(1, Math.ceil(body.total / body.page_size));
      document.getElementById("runs-pager").replaceChildren(
        el("span", { class: "muted", text: t("pager.page", { page: fmt.int(body.page), pages: fmt.int(pages), total: fmt.int(body.total) }) }),
        el("button", { type: "button", text: t("action.previous"), disabled: body.page <= 1, onclick: () => runs(body.page - 1) }),
        el("button", { type: "button", text: t("action.next"), disabled: body.page >= pages, onclick: () => runs(body.page + 1) }),
      );
    } catch (error) { TH.state.error(box, error); }
  }

  const preset = new URLSearchParams(location.search);
  filters.elements.status.value = preset.get("status") || "";
  filters.addEventListener("change", () => runs(1));
  TH.state.loading(document.getElementById("jobs"));
  jobs().then(() => runs(1));
  setInterval(() => { jobs(); runs(); }, 30000);
})();
