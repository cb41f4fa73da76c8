// Leads: every group with its figures, updated live over /ws/leads (a group created or
// deleted elsewhere appears or goes without a reload); writers create groups here.
(() => {
  const { t, fmt, el } = TH;
  const box = document.getElementById("groups");
  const groups = new Map();
  let tbody = null;

  const COLUMNS = [
    { label: t("leads.col.group"), value: (g) => el("a", { href: `/leads/groups/${g.id}`, text: g.remark || `#${g.id}` }) },
    { label: t("leads.col.business_date"), key: "business_date", value: (g) => fmt.day(g.business_date) },
    { label: t("leads.col.today"), key: "today_incoming", num: true, value: (g) => fmt.int(g.today_incoming) },
    { label: t("leads.col.total"), key: "total_incoming", num: true, value: (g) => fmt.int(g.total_incoming) },
    { label: t("leads.col.duplicates"), key: "duplicate_incoming", num: true, value: (g) => fmt.int(g.duplicate_incoming) },
    { label: t("leads.col.duplicate_rate"), key: "duplicate_rate", num: true, value: (g) => fmt.ratio(g.duplicate_incoming, g.total_incoming) },
    { label: t("leads.col.online"), key: "online_accounts", num: true, value: (g) => `${fmt.int(g.online_accounts)} / ${fmt.int(g.total_accounts)}` },
    { label: t("leads.col.line"), key: "line_accounts", num: true, value: (g) => fmt.int(g.line_accounts) },
    { label: t("leads.col.line_business"), key: "line_business_accounts", num: true, value: (g) => fmt.int(g.line_business_accounts) },
  ];
  const rowId = (g) => `group-${g.id}`;

  function count() {
    document.getElementById("groups-count").textContent = t("leads.count", { n: fmt.int(groups.size) });
  }
  function upsert(group, { first = false } = {}) {
    const known = groups.get(group.id);
    const merged = { ...(known || {}), ...group };
    groups.set(group.id, merged);
    const fresh = TH.tableRow(COLUMNS, merged, { rowId });
    const old = document.getElementById(rowId(merged));
    if (old) {
      fresh.querySelectorAll("td[data-f]").forEach((td) => {
        const before = old.querySelector(`td[data-f="${td.dataset.f}"]`);
        if (before && before.textContent !== td.textContent) TH.flash(td);
      });
      old.replaceWith(fresh);
    } else if (first) {
      tbody.prepend(fresh); TH.flash(fresh);
    } else {
      tbody.append(fresh);
    }
    count();
  }
  async function load() {
    TH.state.loading(box);
    try {
      const items = await TH.all("/api/leads/groups");
      if (!items.length) { TH.state.empty(box, t("leads.empty")); }
      else {
        box.replaceChildren(TH.table(COLUMNS, [], {}));
        tbody = box.querySelector("tbody");
        items.forEach((g) => upsert(g));
      }
      count();
    } catch (error) { TH.state.error(box, error); }
  }
  function ensureTable() {
    if (!tbody) { box.replaceChildren(TH.table(COLUMNS, [], {})); tbody = box.querySelector("tbody"); }
  }
  async function onMessage(message) {
    if (message.type === "group_deleted") {
      groups.delete(message.group_id);
      const row = document.getElementById(`group-${message.group_id}`);
      if (row) row.remove();
      count();
    } else if (message.type === "group_stats") {
      if (groups.has(message.group_id)) { upsert({ id: message.group_id, ...message }); return; }
      try {  // a group this page has not seen: read it whole
        const group = await TH.api(`/api/leads/groups/${message.group_id}`);
        ensureTable(); upsert(group, { first: true });
      } catch (error) { if (error.status !== 404) TH.toast(error.message, "error"); }
    }
  }
  function liveBadge(on) {
    const badge = document.getElementById("live");
    badge.hidden = false;
    badge.textContent = on ? t("live.on") : t("live.off");
    badge.className = "live badge " + (on ? "good" : "warn");
  }

  load().then(() => TH.live("/ws/leads", onMessage, liveBadge));
  const button = document.getElementById("new-group");
  if (button) button.addEventListener("click", () => LeadsForm.open(null, (g) => { ensureTable(); TH.api(`/api/leads/groups/${g.id}`).then((full) => upsert(full, { first: true })); }));
})();
