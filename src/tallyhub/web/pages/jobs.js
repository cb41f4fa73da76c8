// Jobs: every registered job with its schedule in words and the zone it is read in, next
// and last run in the viewer's own time (zone shown), how the last run went in words; the
// run history with filters (preset from ?job=, ?status= and ?since=<hours>); admins run a
// job now. Every 30 s.
(() => {
  const { t, has, fmt, el } = TH;
  const STATUS = { succeeded: t("status.succeeded"), failed: t("status.failed"), running: t("status.running"),
    queued: t("status.queued"), interrupted: t("status.interrupted"), abandoned: t("status.abandoned") };
  const TRIGGER = { schedule: t("trigger.schedule"), catchup: t("trigger.catchup"), retry: t("trigger.retry"), manual: t("trigger.manual") };
  const WEEKDAY = [t("jobs.weekday.0"), t("jobs.weekday.1"), t("jobs.weekday.2"), t("jobs.weekday.3"),
    t("jobs.weekday.4"), t("jobs.weekday.5"), t("jobs.weekday.6")];
  const ERRORS = { slot_taken: "jobs.error.slot_taken", job_not_found: "jobs.error.job_not_found", admin_only: "jobs.error.admin_only" };
  const POLL_MS = 1000, POLL_LIMIT = 600;
  const filters = document.getElementById("run-filters");
  let runsPage = 1;
  document.getElementById("viewer-zone").textContent = t("jobs.viewer_zone", { zone: fmt.zone() });

  // ---------------------------------------------------------------- words
  const clock = (hour, minute) => `${String(hour).padStart(2, "0")}:${String(minute).padStart(2, "0")}`;
  function every(seconds) {
    if (seconds % 3600 === 0) return seconds === 3600 ? t("jobs.schedule.every_hour") : t("jobs.schedule.every_hours", { n: fmt.int(seconds / 3600) });
    if (seconds % 60 === 0) return seconds === 60 ? t("jobs.schedule.every_minute") : t("jobs.schedule.every_minutes", { n: fmt.int(seconds / 60) });
    return t("jobs.schedule.every_seconds", { n: fmt.int(seconds) });
  }
  function scheduleWords(parts) {
    switch (parts.kind) {
      case "interval": return every(parts.seconds);
      case "hourly": return t("jobs.schedule.hourly_at", { minute: String(parts.minute).padStart(2, "0") });
      case "daily": return t("jobs.schedule.daily_at", { time: clock(parts.hour, parts.minute) });
      case "weekly": return t("jobs.schedule.weekly_at", { days: parts.weekdays.map((d) => WEEKDAY[d]).join(t("jobs.list_separator")), time: clock(parts.hour, parts.minute) });
      default: return parts.fields ? t("jobs.schedule.cron", parts.fields) : t("jobs.schedule.unknown");
    }
  }
  const schedule = (job) => el("span", { class: "schedule" }, scheduleWords(job.schedule_parts), el("br"),
    el("small", { class: "muted", title: job.schedule, text: t("jobs.schedule.zone", { zone: job.timezone }) }));

  // A job's counts in words: `jobs.count.<key>` says a number ({n}), `jobs.key.<key>` names
  // anything else and `jobs.value.<value>` a word it reports (a status); a key or value
  // without its message reads as itself, underscores as spaces.
  const words = (key) => (has(`jobs.key.${key}`) ? t(`jobs.key.${key}`) : key.replace(/_/g, " "));
  const value = (v) => (has(`jobs.value.${v}`) ? t(`jobs.value.${v}`) : String(v));
  const number = (v) => (Number.isInteger(v) ? fmt.int(v) : v.toLocaleString(TH.lang, { maximumFractionDigits: 2 }));
  // Nested detail (per account, per day) in brackets: "by day: 2026-11-27 (status: ok, …)".
  function phrase(key, v, nested = false) {
    if (typeof v === "number") return has(`jobs.count.${key}`) ? t(`jobs.count.${key}`, { n: number(v) }) : t("jobs.count.other", { n: number(v), what: words(key) });
    if (typeof v === "boolean") return t("jobs.key_value", { key: words(key), value: v ? t("jobs.yes") : t("jobs.no") });
    if (v && typeof v === "object") {
      const inner = Object.entries(v).map(([k, x]) => phrase(k, x, true)).join(t("jobs.list_separator"));
      return nested ? t("jobs.nested", { key: words(key), inner }) : t("jobs.key_value", { key: words(key), value: inner });
    }
    return t("jobs.key_value", { key: words(key), value: value(v) });
  }
  // What a job does: its message when the catalog has one, else the code's own words.
  const description = (job) => (has(`jobs.desc.${job.name}`) ? t(`jobs.desc.${job.name}`) : job.description);
  // The line of a traceback that says what went wrong ("ValueError: bad input").
  function errorLine(error) {
    const lines = error.split("\n").filter((line) => line.trim() && !/^\s/.test(line));
    const named = lines.filter((line) => /^[A-Za-z_][\w.]*(:|$)/.test(line) && !line.startsWith("Traceback"));
    return (named.pop() || lines.pop() || error).trim();
  }
  // A run's counts in words; in the list of jobs, `brief` keeps them to a few lines (the
  // whole text on hover, and in the run history below).
  function result(run, brief = false) {
    if (!run) return "–";
    if (run.error) return el("span", { class: "error-line", title: run.error, text: errorLine(run.error) });
    if (!run.counts) return "–";
    const all = Object.entries(run.counts);
    const text = (entries) => (entries.length ? entries.map(([key, v]) => phrase(key, v)).join(t("jobs.list_separator")) : t("jobs.nothing_reported"));
    if (!brief) return el("span", { class: "counts", text: text(all) });
    // In the list of jobs, the run's own figures; what it did per account or day (its
    // nested detail) on hover and in the run history.
    const flat = all.filter(([, v]) => v === null || typeof v !== "object");
    return el("span", { class: "counts brief", title: text(all), text: text(flat.length ? flat : all) });
  }
  const status = (run) => (run ? TH.badge(STATUS[run.status] || run.status, run.status) : el("span", { class: "muted", text: t("jobs.never_run") }));
  const errorText = (error) => (ERRORS[error.code] ? t(ERRORS[error.code]) : error.message);

  // ---------------------------------------------------------------- the jobs
  // The last run in one cell: when, then its status, attempt and duration.
  function lastRun(run) {
    if (!run) return status(run);
    return el("span", { class: "last-run" },
      el("span", { dataset: { f: "last" }, text: fmt.when(run.started_at) }), el("br"),
      el("span", { dataset: { f: "status" } }, status(run)), " ",
      el("small", { class: "muted", dataset: { f: "attempt" }, text: t("jobs.attempt_n", { n: fmt.int(run.attempt) }) }), " · ",
      el("small", { class: "muted", dataset: { f: "duration" }, text: fmt.duration(run.duration_ms) }));
  }
  const JOB_COLUMNS = [
    { label: t("jobs.col.job"), value: (j) => el("span", { class: "job-name" }, el("strong", { text: j.name }), el("small", { class: "muted", text: description(j) })) },
    { label: t("jobs.col.schedule"), key: "schedule", value: schedule },
    { label: t("jobs.col.next_run"), key: "next", value: (j) => fmt.when(j.next_run_at) },
    { label: t("jobs.col.last_run"), value: (j) => lastRun(j.last_run) },
    { label: t("jobs.col.result"), key: "result", value: (j) => result(j.last_run, true) },
  ];
  if (TH.isAdmin) JOB_COLUMNS.push({ label: t("jobs.col.actions"), value: (j) => el("button", { type: "button", class: "run-now", text: t("jobs.run_now"), "aria-label": t("jobs.run_named", { name: j.name }), onclick: (e) => runNow(j, e.currentTarget) }) });

  async function jobs() {
    const box = document.getElementById("jobs");
    try {
      const items = await TH.all("/api/jobs");
      if (!items.length) { TH.state.empty(box, t("jobs.no_jobs")); return; }
      box.replaceChildren(TH.table(JOB_COLUMNS, items, { rowId: (j) => `job-${j.name.replace(/\./g, "-")}` }));
      const select = filters.elements.job;
      if (select.options.length === 1) {
        items.forEach((j) => select.append(el("option", { value: j.name, text: j.name })));
        select.value = new URLSearchParams(location.search).get("job") || "";
      }
    } catch (error) { TH.state.error(box, error); }
  }

  // A run by hand: answered when it has ended (200), or queued for a worker (202): then
  // followed until it ends, for at most POLL_LIMIT polls.
  async function runNow(job, button) {
    button.disabled = true;
    TH.toast(t("jobs.running_now", { name: job.name }));
    try {
      let run = await TH.api(`/api/jobs/${encodeURIComponent(job.name)}/run`, { method: "POST" });
      for (let polls = 0; (run.status === "queued" || run.status === "running") && polls < POLL_LIMIT; polls++) {
        if (polls === 0) TH.toast(t("jobs.waiting", { name: job.name, status: STATUS[run.status] }));
        await new Promise((resolve) => setTimeout(resolve, POLL_MS));
        run = await TH.api(`/api/jobs/runs/${run.id}`);
      }
      const outcome = { name: job.name, status: STATUS[run.status] || run.status, duration: fmt.duration(run.duration_ms) };
      if (run.status === "queued" || run.status === "running") TH.toast(t("jobs.still_waiting", outcome), "error");
      else TH.toast(t("jobs.ran_in", outcome), run.status === "succeeded" ? "" : "error");
    } catch (error) { TH.toast(errorText(error), "error"); }
    finally { button.disabled = false; await jobs(); await runs(1); }
  }

  // ---------------------------------------------------------------- the history
  const RUN_COLUMNS = [
    { label: t("jobs.col.job"), value: (r) => r.job_name },
    { label: t("jobs.col.started"), value: (r) => fmt.when(r.started_at) },
    { label: t("jobs.col.trigger"), value: (r) => TRIGGER[r.trigger] || r.trigger },
    { label: t("jobs.col.status"), key: "status", value: (r) => status(r) },
    { label: t("jobs.col.attempt"), num: true, value: (r) => fmt.int(r.attempt) },
    { label: t("jobs.col.duration"), num: true, value: (r) => fmt.duration(r.duration_ms) },
    { label: t("jobs.col.result"), key: "result", value: (r) => result(r) },
  ];
  function runsQuery(page) {
    const data = new FormData(filters), query = new URLSearchParams({ page, page_size: 20 });
    if (data.get("job")) query.set("job", data.get("job"));
    if (data.get("status")) query.set("status", data.get("status"));
    if (data.get("since")) query.set("since", new Date(Date.now() - Number(data.get("since")) * 3600e3).toISOString());
    return query;
  }
  async function runs(page = runsPage) {
    runsPage = page;
    const box = document.getElementById("runs"), pager = document.getElementById("runs-pager");
    try {
      const body = await TH.api(`/api/jobs/runs?${runsQuery(page)}`);
      if (!body.items.length) TH.state.empty(box, t("jobs.no_runs"));
      else box.replaceChildren(TH.table(RUN_COLUMNS, body.items, { rowId: (r) => `run-${r.id}` }));
      const pages = Math.max(1, Math.ceil(body.total / body.page_size));
      pager.replaceChildren(
        el("span", { class: "muted", text: t("pager.page", { page: fmt.int(body.page), pages: fmt.int(pages), total: fmt.int(body.total) }) }),
        el("button", { type: "button", text: t("action.previous"), disabled: body.page <= 1, onclick: () => runs(body.page - 1) }),
        el("button", { type: "button", text: t("action.next"), disabled: body.page >= pages, onclick: () => runs(body.page + 1) }),
      );
    } catch (error) { TH.state.error(box, error); pager.replaceChildren(); }
  }

  const preset = new URLSearchParams(location.search);
  for (const name of ["status", "since"]) {
    const select = filters.elements[name], wanted = preset.get(name) || "";
    if ([...select.options].some((option) => option.value === wanted)) select.value = wanted;
  }
  filters.addEventListener("change", () => runs(1));
  TH.state.loading(document.getElementById("jobs"));
  TH.state.loading(document.getElementById("runs"));
  jobs().then(() => runs(1));
  setInterval(() => { if (!document.hidden) { jobs(); runs(); } }, 30000);
})();
