// What the task-rollup pages share (window.Taskstats): a day row's figures per platform,
// its callback in words (delivered, pending, not delivered, none) with a link to the
// message in the webhook log, the columns of a list of day rows, and a task's status.
"use strict";
window.Taskstats = (() => {
  const { t, fmt, el } = TH;

  // The platforms as a day row names its fields: `${prefix}_${count}_count`.
  const PLATFORMS = [
    { key: "youtube", prefix: "yt", label: t("taskstats.platform.youtube"), counts: ["account", "view", "like", "comment"] },
    { key: "tiktok", prefix: "tt", label: t("taskstats.platform.tiktok"), counts: ["account", "view", "like", "comment"] },
    { key: "douyin", prefix: "dy", label: t("taskstats.platform.douyin"), counts: ["account", "view", "like", "comment", "share", "collect"] },
  ];
  const COUNT_LABEL = {
    account: t("taskstats.fig.accounts"), view: t("taskstats.fig.views"), like: t("taskstats.fig.likes"),
    comment: t("taskstats.fig.comments"), share: t("taskstats.fig.shares"), collect: t("taskstats.fig.collects"),
  };
  const TASK_STATUS = { active: t("taskstats.status.active"), paused: t("taskstats.status.paused"), finished: t("taskstats.status.finished") };
  const TASK_STATUS_KIND = { active: "good", paused: "warn", finished: "off" };
  const statusBadge = (status) => TH.badge(TASK_STATUS[status] || status, TASK_STATUS_KIND[status]);

  // A platform's figures as label / number pairs; "–" when it had no completion that day.
  function platformCell(row, platform) {
    if (!row[`${platform.prefix}_account_count`]) return el("span", { class: "muted", title: t("taskstats.fig.none"), text: "–" });
    return el("span", { class: "figs" }, platform.counts.flatMap((count) => {
      const field = `${platform.prefix}_${count}_count`;
      return [el("span", { class: "muted", text: COUNT_LABEL[count] }), el("b", { dataset: { f: field }, text: fmt.int(row[field]) })];
    }));
  }

  // ---------------------------------------------------------------- the callback
  const messageHref = (id) => `/webhooks/messages/${encodeURIComponent(id)}`;
  // What the row says of its callback: delivered; not delivered (an attempt was answered
  // with an error, and it is tried again on the schedule until it fails for good); pending
  // (not tried yet); none (no callback URL, or a scan that changed nothing).
  function callbackState(row) {
    if (row.webhook_sent) return "delivered";
    if (!row.webhook_message_id) return "none";
    return row.webhook_response || row.retry_count ? "not_delivered" : "pending";
  }
  const CALLBACK_KIND = { delivered: "good", not_delivered: "bad", pending: "warn", none: "off" };
  function callbackCell(row) {
    const state = callbackState(row);
    const parts = [el("span", { dataset: { f: "callback_state" } }, TH.badge(t(`taskstats.callback.${state}`), CALLBACK_KIND[state]))];
    const line = (field, text, attrs = {}) => parts.push(el("br"), el("small", { class: "muted", dataset: { f: field }, text, ...attrs }));
    if (row.webhook_sent_at) line("webhook_sent_at", t("taskstats.callback.sent_at", { time: fmt.whenShort(row.webhook_sent_at) }), { title: fmt.when(row.webhook_sent_at) });
    if (row.webhook_response) line("webhook_response", t("taskstats.callback.response", { answer: row.webhook_response }), { title: row.webhook_response });
    if (row.webhook_message_id) {
      line("retry_count", t("taskstats.callback.retries", { n: fmt.int(row.retry_count) }));
      parts.push(el("br"), el("a", { href: messageHref(row.webhook_message_id), dataset: { f: "message" }, text: t("taskstats.callback.open") }));
    }
    return el("span", { class: "callback" }, parts);
  }

  // ---------------------------------------------------------------- a list of day rows
  // The columns of day rows: `taskCell(row)` adds the task column, `date` the day column.
  function dayColumns({ taskCell, date = false } = {}) {
    return [
      taskCell ? { label: t("taskstats.col.task"), key: "task", value: taskCell } : null,
      date ? { label: t("taskstats.col.date"), key: "stats_date", value: (r) => fmt.day(r.stats_date) } : null,
      { label: t("taskstats.col.completions"), key: "completion_count", num: true, value: (r) => fmt.int(r.completion_count) },
      { label: t("taskstats.col.accounts"), key: "total_account_count", num: true, value: (r) => fmt.int(r.total_account_count) },
      ...PLATFORMS.map((p) => ({ label: p.label, key: p.key, value: (r) => platformCell(r, p) })),
      { label: t("taskstats.col.callback"), key: "callback", value: callbackCell },
    ].filter(Boolean);
  }

  return { PLATFORMS, TASK_STATUS, statusBadge, platformCell, callbackState, callbackCell, messageHref, dayColumns };
})();
