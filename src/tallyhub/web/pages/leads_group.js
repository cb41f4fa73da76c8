// One group: its settings and figures, a daily trend over a chosen range, its accounts and
// its incoming log, all live over /ws/leads; writers edit the group, issue a new activation
// code, delete it or one of its accounts.
(() => {
  const { t, fmt, el } = TH;
  const id = TH.page.group_id;
  let group = null, range = null, incomingPage = 1, refreshing = null;
  const accounts = new Map();

  const STATUS = { online: t("account.online"), offline: t("account.offline") };
  const PLATFORM = { line: t("account.platform.line"), line_business: t("account.platform.line_business") };
  const DEDUP = { current: t("group.dedup.current"), global: t("group.dedup.global") };
  const accountName = (a) => a.display_name || a.line_id;

  // ------------------------------------------------------------ header and figures
  function showGroup(g) {
    group = g;
    const name = g.remark || `#${g.id}`;
    document.getElementById("group-name").textContent = name;
    document.title = `${name} · TallyHub`;
    document.getElementById("group-settings").textContent = t("group.settings", {
      zone: g.timezone, reset: g.reset_time, scope: DEDUP[g.dedup_scope] || g.dedup_scope,
      limit: g.account_limit == null ? t("group.no_limit") : fmt.int(g.account_limit),
    });
    figures(g);
    const actions = document.getElementById("group-actions");
    if (actions) actions.hidden = false;
  }
  function setFigure(elId, text) {
    const node = document.getElementById(elId);
    if (node.textContent !== text && node.textContent !== "…") TH.flash(node);
    node.textContent = text;
  }
  function figures(g) {
    setFigure("kpi-today", fmt.int(g.today_incoming));
    document.getElementById("kpi-day").textContent = t("group.business_date", { day: fmt.day(g.business_date) });
    setFigure("kpi-total", fmt.int(g.total_incoming));
    setFigure("kpi-duplicates", fmt.int(g.duplicate_incoming));
    setFigure("kpi-rate", fmt.ratio(g.duplicate_incoming, g.total_incoming));
    document.getElementById("kpi-rate-sub").textContent = t("group.rate_sub", { total: fmt.int(g.total_incoming) });
    setFigure("kpi-online", `${fmt.int(g.online_accounts)} / ${fmt.int(g.total_accounts)}`);
  }

  // ------------------------------------------------------------ daily trend
  async function trend(chosen) {
    range = chosen || range;
    const box = document.getElementById("trend-chart");
    try {
      const rows = await TH.api(`/api/leads/groups/${id}/daily?from=${range.start}&to=${range.end}`);
      const x = rows.map((r) => r.business_date);
      TH.chart(box, [
        { name: t("group.series.incoming"), x, y: rows.map((r) => r.incoming), kind: "bar", color: "#2459d6" },
        { name: t("group.series.duplicates"), x, y: rows.map((r) => r.duplicate_incoming), kind: "line", color: "#d97706" },
      ], { empty: t("group.no_leads") });
    } catch (error) { TH.state.error(box, error); }
  }

  // ------------------------------------------------------------ accounts
  const ACCOUNT_COLUMNS = [
    { label: t("account.col.name"), value: (a) => (a.display_name ? el("span", {}, a.display_name, el("br"), el("small", { class: "muted", text: a.line_id })) : a.line_id) },
    { label: t("account.col.status"), value: (a) => TH.badge(STATUS[a.online_status] || a.online_status, a.online_status) },
    { label: t("account.col.platform"), value: (a) => TH.badge(PLATFORM[a.platform_type] || a.platform_type) },
    { label: t("account.col.today"), key: "today_incoming", num: true, value: (a) => fmt.int(a.today_incoming) },
    { label: t("account.col.total"), key: "total_incoming", num: true, value: (a) => fmt.int(a.total_incoming) },
    { label: t("account.col.duplicates"), key: "duplicate_incoming", num: true, value: (a) => fmt.int(a.duplicate_incoming) },
  ];
  if (TH.canWrite) {
    ACCOUNT_COLUMNS.push({ label: t("account.col.actions"), value: (a) => el("button", {
      type: "button", class: "danger", text: t("action.delete"),
      "aria-label": t("account.delete_named", { name: accountName(a) }), onclick: () => deleteAccount(a),
    }) });
  }
  const online = (a) => (a.online_status === "online" ? 0 : 1);
  function drawAccounts(changed) {
    const box = document.getElementById("accounts");
    const list = [...accounts.values()].sort((a, b) => online(a) - online(b) || b.total_incoming - a.total_incoming || a.id - b.id);
    if (!list.length) { TH.state.empty(box, t("group.no_accounts")); return; }
    const before = new Map([...box.querySelectorAll("tr[id]")].map((tr) => [tr.id, tr]));
    box.replaceChildren(TH.table(ACCOUNT_COLUMNS, list, { rowId: (a) => `account-${a.id}` }));
    if (changed === undefined) return;
    const row = document.getElementById(`account-${changed}`), old = before.get(`account-${changed}`);
    if (!row) return;
    if (!old) { TH.flash(row); return; }
    row.querySelectorAll("td").forEach((td, i) => { if (old.cells[i] && old.cells[i].textContent !== td.textContent) TH.flash(td); });
  }
  async function loadAccounts() {
    const box = document.getElementById("accounts");
    TH.state.loading(box);
    try {
      (await TH.all(`/api/leads/groups/${id}/accounts`)).forEach((a) => accounts.set(a.id, a));
      drawAccounts();
    } catch (error) { TH.state.error(box, error); }
  }
  async function deleteAccount(a) {
    if (!confirm(t("account.confirm_delete", { name: accountName(a) }))) return;
    try {
      await TH.api(`/api/leads/accounts/${a.id}`, { method: "DELETE" });
      accounts.delete(a.id); drawAccounts(); TH.toast(t("account.deleted"));
    } catch (error) { TH.toast(error.message, "error"); }
  }

  // ------------------------------------------------------------ incoming log
  const INCOMING_COLUMNS = [
    { label: t("group.log.time"), value: (r) => fmt.when(r.incoming_time) },
    { label: t("group.log.contact"), value: (r) => r.incoming_line_id },
    { label: t("group.log.account"), value: (r) => { const a = accounts.get(r.line_account_id); return a ? accountName(a) : `#${r.line_account_id}`; } },
    { label: t("group.log.kind"), value: (r) => (r.is_duplicate ? TH.badge(t("group.log.duplicate"), "warn") : TH.badge(t("group.log.new"), "good")) },
    { label: t("group.log.business_date"), value: (r) => fmt.day(r.business_date) },
  ];
  async function incoming(page = incomingPage) {
    incomingPage = page;
    const box = document.getElementById("incoming");
    try {
      const body = await TH.api(`/api/leads/groups/${id}/incoming?page=${page}&page_size=20`);
      if (!body.items.length) TH.state.empty(box, t("group.no_leads"));
      else box.replaceChildren(TH.table(INCOMING_COLUMNS, body.items, { rowId: (r) => `lead-${r.id}` }));
      pager(document.getElementById("incoming-pager"), body, incoming);
    } catch (error) { TH.state.error(box, error); }
  }
  function pager(node, body, go) {
    const pages = Math.max(1, Math.ceil(body.total / body.page_size));
    node.replaceChildren(
      el("span", { class: "muted", text: t("pager.page", { page: fmt.int(body.page), pages: fmt.int(pages), total: fmt.int(body.total) }) }),
      el("button", { type: "button", text: t("action.previous"), disabled: body.page <= 1, onclick: () => go(body.page - 1) }),
      el("button", { type: "button", text: t("action.next"), disabled: body.page >= pages, onclick: () => go(body.page + 1) }),
    );
  }

  // ------------------------------------------------------------ live
  // New leads re-read the log's first page and the trend once per burst, not per lead.
  function refreshAfterLeads() {
    if (refreshing) return;
    refreshing = setTimeout(async () => {
      refreshing = null;
      const jobs = [];
      if (incomingPage === 1) jobs.push(incoming(1));
      if (range && range.end >= group.business_date) jobs.push(trend());
      await Promise.all(jobs);
    }, 500);
  }
  function onMessage(message) {
    if (message.group_id !== id || !group) return;
    if (message.type === "group_deleted") { TH.toast(t("group.deleted_elsewhere")); location.assign("/leads"); return; }
    if (message.type === "group_stats") {
      const before = group.total_incoming;
      showGroup(Object.assign(group, message));
      if (message.total_incoming !== before) refreshAfterLeads();
    } else if (message.type === "account_stats") {
      const key = message.line_account_id;
      if (message.deleted) accounts.delete(key);
      else accounts.set(key, { ...(accounts.get(key) || { display_name: null }), ...message, id: key });
      drawAccounts(key);
    }
  }
  function liveBadge(on) {
    const badge = document.getElementById("live");
    badge.hidden = false;
    badge.textContent = on ? t("live.on") : t("live.off");
    badge.className = "live badge " + (on ? "good" : "warn");
  }

  // ------------------------------------------------------------ writers' actions
  function wireActions() {
    const edit = document.getElementById("edit-group");
    if (!edit) return;
    edit.addEventListener("click", () => LeadsForm.open(group, (g) => {
      const day = group.business_date;
      showGroup(Object.assign(group, g));
      if (g.business_date !== day) TH.rangePicker(document.getElementById("range"), g.business_date, trend);  // a new zone or reset time
    }));
    document.getElementById("new-code").addEventListener("click", async () => {
      if (!confirm(t("group.confirm_new_code"))) return;
      try {
        const g = await TH.api(`/api/leads/groups/${id}/activation-code`, { method: "POST" });
        TH.toast(t("group.new_code_done"));
        LeadsForm.showCode(g.activation_code);
      } catch (error) { TH.toast(error.message, "error"); }
    });
    document.getElementById("delete-group").addEventListener("click", async () => {
      if (!confirm(t("group.confirm_delete", { name: group.remark || "#" + id }))) return;
      try { await TH.api(`/api/leads/groups/${id}`, { method: "DELETE" }); location.assign("/leads"); }
      catch (error) { TH.toast(error.message, "error"); }
    });
  }

  async function start() {
    try { showGroup(await TH.api(`/api/leads/groups/${id}`)); }
    catch (error) {
      const body = document.getElementById("group-body");
      TH.state.error(body, error);
      if (error.status === 404) body.append(el("p", { class: "muted", text: t("group.not_found_hint") }), el("a", { href: "/leads", text: t("leads.back") }));
      document.getElementById("group-name").textContent = t("group.title");
      return;
    }
    wireActions();
    await loadAccounts();
    TH.rangePicker(document.getElementById("range"), group.business_date, trend);
    incoming(1);
    TH.live("/ws/leads", onMessage, liveBadge);
  }
  start();
})();
