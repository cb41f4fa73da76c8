// One group: its figures, a daily trend over a chosen range, its accounts (live), its
// incoming log; writers edit it, issue a new activation code, delete it or an account.
(() => {
  const { t, fmt, el } = TH;
  const id = TH.page.group_id;
  let group = null, range = null, incomingPage = 1;
  const accounts = new Map();

  const STATUS = { online: t("account.online"), offline: t("account.offline") };
  const PLATFORM = { line: t("account.platform.line"), line_business: t("account.platform.line_business") };
  const DEDUP = { current: t("group.dedup.current"), global: t("group.dedup.global") };

  function showGroup(g) {
    group = g;
    document.getElementById("group-name").textContent = g.remark || `#${g.id}`;
    document.title = `${g.remark || "#" + g.id} · TallyHub`;
    document.getElementById("group-settings").textContent = t("group.settings", {
      zone: g.timezone, reset: g.reset_time, scope: DEDUP[g.dedup_scope],
      limit: g.account_limit == null ? t("group.no_limit") : fmt.int(g.account_limit),
    });
    figures(g);
    const actions = document.getElementById("group-actions");
    if (actions) actions.hidden = false;
  }
  function figures(g) {
    const set = (elId, text) => { const node = document.getElementById(elId); if (node.textContent !== text && node.textContent !== "…") TH.flash(node); node.textContent = text; };
    set("kpi-today", fmt.int(g.today_incoming));
    document.getElementById("kpi-day").textContent = t("group.business_date", { day: fmt.day(g.business_date) });
    set("kpi-total", fmt.int(g.total_incoming));
    set("kpi-duplicates", fmt.int(g.duplicate_incoming));
    document.getElementById("kpi-rate").textContent = t("group.rate", { rate: fmt.ratio(g.duplicate_incoming, g.total_incoming) });
    set("kpi-online", `${fmt.int(g.online_accounts)} / ${fmt.int(g.total_accounts)}`);
  }

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

  const ACCOUNT_COLUMNS = [
    { label: t("account.col.name"), value: (a) => a.display_name ? el("span", {}, a.display_name, el("br"), el("small", { class: "muted", text: a.line_id })) : a.line_id },
    { label: t("account.col.status"), value: (a) => TH.badge(STATUS[a.online_status] || a.online_status, a.online_status) },
    { label: t("account.col.platform"), value: (a) => TH.badge(PLATFORM[a.platform_type] || a.platform_type) },
    { label: t("account.col.today"), key: "today_incoming", num: true, value: (a) => fmt.int(a.today_incoming) },
    { label: t("account.col.total"), key: "total_incoming", num: true, value: (a) => fmt.int(a.total_incoming) },
    { label: t("account.col.duplicates"), key: "duplicate_incoming", num: true, value: (a) => fmt.int(a.duplicate_incoming) },
  ];
  if (TH.canWrite) ACCOUNT_COLUMNS.push({ label: t("account.col.actions"), value: (a) => el("button", { type: "button", class: "danger", text: t("action.delete"), "aria-label": t("account.delete_named", { name: a.display_name || a.line_id }), onclick: () => deleteAccount(a) }) });

  function drawAccounts() {
    const box = document.getElementById("accounts");
    const list = [...accounts.values()].sort((a, b) => (a.online_status === "online" ? 0 : 1) - (b.online_status === "online" ? 0 : 1) || b.total_incoming - a.total_incoming);
    if (!list.length) { TH.state.empty(box, t("group.no_accounts")); return; }
    box.replaceChildren(TH.table(ACCOUNT_COLUMNS, list, { rowId: (a) => `account-${a.id}` }));
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
    if (!confirm(t("account.confirm_delete", { name: a.display_name || a.line_id }))) return;
    try {
      await TH.api(`/api/leads/accounts/${a.id}`, { method: "DELETE" });
      accounts.delete(a.id); drawAccounts(); TH.toast(t("account.deleted"));
    } catch (error) { TH.toast(error.message, "error"); }
  }

  const INCOMING_COLUMNS = [
    { label: t("incoming.col.time"), value: (r) => fmt.when(r.incoming_time) },
    { label: t("incoming.col.contact"), value: (r) => r.incoming_line_id },
    { label: t("incoming.col.account"), value: (r) => { const a = accounts.get(r.line_account_id); return a ? (a.display_name || a.line_id) : `#${r.line_account_id}`; } },
    { label: t("incoming.col.kind"), value: (r) => r.is_duplicate ? TH.badge(t("incoming.duplicate"), "warn") : TH.badge(t("incoming.new"), "good") },
    { label: t("incoming.col.business_date"), value: (r) => fmt.day(r.business_date) },
  ];
  async function incoming(page = incomingPage) {
    incomingPage = page;
    const box = document.getElementById("incoming");
    try {
      const body = await TH.api(`/api/leads/groups/${id}/incoming?page=${page}&page_size=20`);
      if (!body.items.length) TH.state.empty(box, t("group.no_leads"));
      else box.replaceChildren(TH.table(INCOMING_COLUMNS, body.items));
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

  function onMessage(message) {
    if (message.group_id !== id) return;
    if (message.type === "group_deleted") { location.assign("/leads"); return; }
    if (message.type === "group_stats") {
      const before = group.today_incoming;
      figures(Object.assign(group, message));
      if (message.today_incoming !== before) { if (incomingPage === 1) incoming(1); if (range && range.end === group.business_date) trend(); }
    } else if (message.type === "account_stats") {
      if (message.deleted) accounts.delete(message.line_account_id);
      else accounts.set(message.line_account_id, { ...(accounts.get(message.line_account_id) || { id: message.line_account_id, display_name: null }), ...message, id: message.line_account_id });
      drawAccounts();
    }
  }

  function wireActions() {
    const edit = document.getElementById("edit-group");
    if (!edit) return;
    edit.addEventListener("click", () => LeadsForm.open(group, (g) => TH.api(`/api/leads/groups/${g.id}`).then(showGroup)));
    document.getElementById("new-code").addEventListener("click", async () => {
      if (!confirm(t("group.confirm_new_code"))) return;
      try { const g = await TH.api(`/api/leads/groups/${id}/activation-code`, { method: "POST" }); LeadsForm.showCode(g.activation_code); }
      catch (error) { TH.toast(error.message, "error"); }
    });
    document.getElementById("delete-group").addEventListener("click", async () => {
      if (!confirm(t("group.confirm_delete", { name: group.remark || "#" + id }))) return;
      try { await TH.api(`/api/leads/groups/${id}`, { method: "DELETE" }); location.assign("/leads"); }
      catch (error) { TH.toast(error.message, "error"); }
    });
  }

  async function start() {
    try { showGroup(await TH.api(`/api/leads/groups/${id}`)); }
    catch (error) { TH.state.error(document.getElementById("group-body"), error); document.getElementById("group-name").textContent = t("group.title"); return; }
    wireActions();
    await loadAccounts();
    TH.rangePicker(document.getElementById("range"), group.business_date, trend);
    incoming(1);
    TH.live("/ws/leads", onMessage);
  }
  start();
})();
