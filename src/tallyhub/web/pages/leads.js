// Leads: every group with its figures, live over /ws/leads: figures change in place, a
// group created elsewhere appears and a deleted one goes, without a reload. Writers create
// groups here (the form and the one-time activation code are in leads_form.js).
(() => {
  const { t, fmt, el } = TH;
  const box = document.getElementById("groups");
  const groups = new Map();
  let tbody = null;

  const COLUMNS = [
    { label: t("leads.col.group"), key: "remark", value: (g) => el("a", { href: `/leads/groups/${g.id}`, text: g.remark || `#${g.id}` }) },
    { label: t("leads.col.today"), key: "today_incoming", num: true, value: (g) => fmt.int(g.today_incoming) },
    { label: t("leads.col.total"), key: "total_incoming", num: true, value: (g) => fmt.int(g.total_incoming) },
    { label: t("leads.col.duplicates"), key: "duplicate_incoming", num: true, value: (g) => fmt.int(g.duplicate_incoming) },
    { label: t("leads.col.duplicate_rate"), key: "duplicate_rate", num: true, value: (g) => fmt.ratio(g.duplicate_incoming, g.total_incoming) },
    { label: t("leads.col.online"), key: "online_accounts", num: true, value: (g) => `${fmt.int(g.online_accounts)} / ${fmt.int(g.total_accounts)}` },
    { label: t("leads.col.line"), key: "line_accounts", num: true, value: (g) => fmt.int(g.line_accounts) },
    { label: t("leads.col.line_business"), key: "line_business_accounts", num: true, value: (g) => fmt.int(g.line_business_accounts) },
    { label: t("leads.col.business_date"), key: "business_date", value: (g) => fmt.day(g.business_date) },
  ];
  const rowId = (id) => `group-${id}`;

  function count() {
    document.getElementById("groups-count").textContent = groups.size ? t("leads.count", { n: fmt.int(groups.size) }) : "";
    if (!groups.size) { tbody = null; TH.state.empty(box, t("leads.empty")); }
  }
  function ensureTable() {
    if (!tbody) { box.replaceChildren(TH.table(COLUMNS, [])); tbody = box.querySelector("tbody"); }
  }
  // Put the group's row in place: a known row changes in place (changed cells flash), a
  // new one goes on top (`fresh`) or at the end (first load, newest first already).
  function upsert(group, { fresh = false } = {}) {
    const merged = { ...(groups.get(group.id) || {}), ...group };
    groups.set(group.id, merged);
    ensureTable();
    const row = TH.tableRow(COLUMNS, merged, { rowId: (g) => rowId(g.id) });
    const old = document.getElementById(rowId(merged.id));
    if (old) {
      row.querySelectorAll("td[data-f]").forEach((td) => {
        const before = old.querySelector(`td[data-f="${td.dataset.f}"]`);
        if (before && before.textContent !== td.textContent) TH.flash(td);
      });
      old.replaceWith(row);
    } else if (fresh) {
      tbody.prepend(row); TH.flash(row);
    } else {
      tbody.append(row);
    }
    count();
  }
  function remove(groupId) {
    groups.delete(groupId);
    const row = document.getElementById(rowId(groupId));
    if (row) row.remove();
    count();
  }
  // A group this page has not seen (created elsewhere): read it whole, once.
  const fetching = new Set();
  async function arrive(groupId) {
    if (fetching.has(groupId)) return;
    fetching.add(groupId);
    try { upsert(await TH.api(`/api/leads/groups/${groupId}`), { fresh: true }); }
    catch (error) { if (error.status !== 404) TH.toast(error.message, "error"); }
    finally { fetching.delete(groupId); }
  }

  function onMessage(message) {
    if (message.type === "group_deleted") remove(message.group_id);
    else if (message.type !== "group_stats") return;
    else if (groups.has(message.group_id)) upsert({ ...message, id: message.group_id });
    else arrive(message.group_id);
  }
  function liveBadge(on) {
    const badge = document.getElementById("live");
    badge.hidden = false;
    badge.textContent = on ? t("live.on") : t("live.off");
    badge.className = "live badge " + (on ? "good" : "warn");
  }

  async function load() {
    TH.state.loading(box);
    try {
      (await TH.all("/api/leads/groups")).forEach((g) => upsert(g));
      count();
      TH.live("/ws/leads", onMessage, liveBadge);
    } catch (error) { TH.state.error(box, error); }
  }
  load();
  const button = document.getElementById("new-group");
  if (button) button.addEventListener("click", () => LeadsForm.open(null, (g) => upsert(g, { fresh: true })));
})();
