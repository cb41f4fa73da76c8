// One campaign: its figures, clicks per day over a chosen range, what the range's clicks
// were made of, its users and its interaction log (read again every 10 s); writers edit
// it and make signed links.
(() => {
  const { t, fmt, el } = TH;
  const id = TH.page.campaign_id;
  let campaign = null, range = null;
  const pages = { users: 1, interactions: 1 };
  const TYPES = { image_click: t("type.image_click"), button_url: t("type.button_url"),
    carousel_click: t("type.carousel_click"), text_link: t("type.text_link"), rich_menu: t("type.rich_menu") };

  function show(c) {
    campaign = c;
    document.getElementById("campaign-name").textContent = c.name;
    document.title = `${c.name} · TallyHub`;
    document.getElementById("campaign-settings").textContent = t("campaign.settings", {
      zone: c.timezone, hosts: c.allowed_hosts.length ? c.allowed_hosts.join(", ") : t("clicks.signed_only") });
    const set = (elId, text) => { const node = document.getElementById(elId); if (node.textContent !== text && node.textContent !== "…") TH.flash(node); node.textContent = text; };
    set("kpi-today", fmt.int(c.today_clicks));
    document.getElementById("kpi-day").textContent = t("group.business_date", { day: fmt.day(c.business_date) });
    set("kpi-total", fmt.int(c.clicked_count));
    set("kpi-users", fmt.int(c.unique_users));
    const actions = document.getElementById("campaign-actions");
    if (actions) actions.hidden = false;
  }

  async function daily(chosen) {
    range = chosen || range;
    const box = document.getElementById("daily-chart");
    try {
      const rows = await TH.api(`/api/clicks/campaigns/${id}/daily?from=${range.start}&to=${range.end}`);
      TH.chart(box, [{ name: t("campaign.series.clicks"), x: rows.map((r) => r.business_date), y: rows.map((r) => r.clicks), kind: "bar", color: "#2459d6" }],
        { empty: t("campaign.no_clicks") });
    } catch (error) { TH.state.error(box, error); }
    breakdown();
  }

  function topTable(boxId, list, total, label, name) {
    const box = document.getElementById(boxId);
    if (!list.items.length) { TH.state.empty(box, t("campaign.no_clicks")); return; }
    const rows = list.items.map((i) => ({ key: name(i.key), count: i.count }));
    if (list.others) rows.push({ key: t("campaign.others", { n: fmt.int(list.distinct - list.items.length) }), count: list.others });
    box.replaceChildren(TH.table([
      { label, value: (r) => r.key },
      { label: t("campaign.col.clicks"), num: true, value: (r) => fmt.int(r.count) },
      { label: t("campaign.col.share"), num: true, value: (r) => fmt.ratio(r.count, total) },
    ], rows));
  }
  async function breakdown() {
    try {
      const b = await TH.api(`/api/clicks/campaigns/${id}/breakdown?from=${range.start}&to=${range.end}`);
      topTable("top-tags", b.tags, b.clicks, t("campaign.col.tag"), (k) => k);
      topTable("top-sources", b.sources, b.clicks, t("campaign.col.source"), (k) => (k === "0" ? t("campaign.no_source") : `#${k}`));
      topTable("top-types", b.interaction_types, b.clicks, t("campaign.col.type"), (k) => TYPES[k] || k);
    } catch (error) { for (const boxId of ["top-tags", "top-sources", "top-types"]) TH.state.error(document.getElementById(boxId), error); }
  }

  function pager(node, body, go) {
    const count = Math.max(1, Math.ceil(body.total / body.page_size));
    node.replaceChildren(
      el("span", { class: "muted", text: t("pager.page", { page: fmt.int(body.page), pages: fmt.int(count), total: fmt.int(body.total) }) }),
      el("button", { type: "button", text: t("action.previous"), disabled: body.page <= 1, onclick: () => go(body.page - 1) }),
      el("button", { type: "button", text: t("action.next"), disabled: body.page >= count, onclick: () => go(body.page + 1) }),
    );
  }
  const LISTS = {
    users: { path: "users", empty: t("campaign.no_users"), columns: [
      { label: t("campaign.col.user"), value: (s) => s.display_name ? el("span", {}, s.display_name, el("br"), el("small", { class: "muted", text: s.line_id })) : s.line_id },
      { label: t("campaign.col.source"), value: (s) => (s.source_campaign_id ? `#${s.source_campaign_id}` : t("campaign.no_source")) },
      { label: t("campaign.col.clicks"), num: true, value: (s) => fmt.int(s.total_clicks) },
      { label: t("campaign.col.tags"), value: (s) => s.tags.join(", ") || "–" },
      { label: t("campaign.col.last_click"), value: (s) => fmt.when(s.last_clicked_at) },
    ] },
    interactions: { path: "interactions", empty: t("campaign.no_clicks"), columns: [
      { label: t("campaign.col.time"), value: (i) => fmt.when(i.triggered_at) },
      { label: t("campaign.col.user"), value: (i) => i.line_id || "–" },
      { label: t("campaign.col.type"), value: (i) => TH.badge(TYPES[i.interaction_type] || i.interaction_type) },
      { label: t("campaign.col.source"), value: (i) => (i.source_campaign_id ? `#${i.source_campaign_id}` : t("campaign.no_source")) },
      { label: t("campaign.col.tags"), value: (i) => i.tags.join(", ") || "–" },
      { label: t("campaign.col.target"), value: (i) => el("span", { class: "wrap", text: i.interaction_value }) },
    ] },
  };
  async function list(name, page = pages[name]) {
    pages[name] = page;
    const spec = LISTS[name], box = document.getElementById(name);
    try {
      const body = await TH.api(`/api/clicks/campaigns/${id}/${spec.path}?page=${page}&page_size=20`);
      if (!body.items.length) TH.state.empty(box, spec.empty);
      else box.replaceChildren(TH.table(spec.columns, body.items));
      pager(document.getElementById(`${name}-pager`), body, (p) => list(name, p));
    } catch (error) { TH.state.error(box, error); }
  }

  function wireWrites() {
    const edit = document.getElementById("edit-campaign");
    if (!edit) return;
    edit.addEventListener("click", () => ClicksForm.open(campaign, () => refresh()));
    const form = document.getElementById("link-form");
    TH.form(form, async (data) => {
      const body = { cid: id, to: data.to, src: Number(data.src || 0), type: data.type, tag: data.tag || null };
      const link = await TH.api("/api/clicks/links", { method: "POST", json: body });
      const url = link.url.startsWith("/") ? location.origin + link.url : link.url;
      document.getElementById("link-url").textContent = url;
      document.getElementById("link-result").hidden = false;
      const copy = document.getElementById("link-copy");
      copy.onclick = () => TH.copy(url, copy);
    });
  }

  async function refresh() {
    try { show(await TH.api(`/api/clicks/campaigns/${id}`)); }
    catch (error) { TH.state.error(document.getElementById("campaign-body"), error); document.getElementById("campaign-name").textContent = t("campaign.title"); return false; }
    return true;
  }
  async function start() {
    if (!(await refresh())) return;
    wireWrites();
    TH.rangePicker(document.getElementById("range"), campaign.business_date, daily);
    list("users", 1); list("interactions", 1);
    setInterval(async () => {
      const before = campaign.clicked_count;
      if (!(await refresh()) || campaign.clicked_count === before) return;
      if (range.end >= campaign.business_date) daily();
      if (pages.users === 1) list("users", 1);
      if (pages.interactions === 1) list("interactions", 1);
    }, 10000);
  }
  start();
})();
