// Clicks: every campaign with its clicks today (its own time zone), total clicks and
// unique users, refreshed every 10 s (clicks are not pushed live). Also the campaign form
// (create here, edit on the campaign page, which loads this file for it).
"use strict";

// The campaign dialog: name, allowed hosts (one per line or comma-separated), time zone and
// whether bots' clicks are kept out of the counts.
window.CampaignForm = (() => {
  const { t, el } = TH;
  const COMMON_ZONES = ["Asia/Shanghai", "Asia/Hong_Kong", "Asia/Taipei", "Asia/Tokyo", "Asia/Seoul",
    "Asia/Bangkok", "Asia/Ho_Chi_Minh", "Asia/Singapore", "Asia/Jakarta", "Asia/Manila",
    "Europe/London", "America/Los_Angeles", "America/New_York", "UTC"];
  const LABELS = { name: t("campaign.name"), allowed_hosts: t("campaign.hosts"), timezone: t("campaign.timezone") };
  let dialog = null, form = null, editing = null, onSaved = null;

  // A validation answer says "allowed_hosts.0: Value error, …": name the form's field instead.
  function inWords(error) {
    if (error.code !== "validation_error") return error.message;
    return error.message.split("; ").map((part) => {
      const at = part.indexOf(": ");
      const field = part.slice(0, at).split(".")[0];
      return `${LABELS[field] || field}: ${part.slice(at + 2).replace(/^Value error, /, "")}`;
    }).join("; ");
  }
  function hosts(text) { return text.split(/[\s,]+/).map((h) => h.trim()).filter(Boolean); }
  function zoneOptions(current) {
    const all = Intl.supportedValuesOf ? Intl.supportedValuesOf("timeZone") : [];
    const common = [...new Set([current, ...COMMON_ZONES].filter(Boolean))];
    const option = (z) => el("option", { value: z, text: z });
    return [
      el("optgroup", { label: t("campaign.zones.common") }, common.map(option)),
      el("optgroup", { label: t("campaign.zones.all") }, all.filter((z) => !common.includes(z)).map(option)),
    ];
  }
  function field(id, label, input, hint) {
    return [el("label", { for: id, text: label }), input, hint ? el("p", { class: "hint", id: `${id}-hint`, text: hint }) : null];
  }
  function build() {
    form = el("form", { id: "campaign-form", method: "dialog" },
      el("h2", { id: "campaign-dialog-title" }),
      field("campaign-form-name", t("campaign.name"), el("input", { id: "campaign-form-name", name: "name", maxlength: 200, required: true })),
      field("campaign-form-hosts", t("campaign.hosts"), el("textarea", { id: "campaign-form-hosts", name: "allowed_hosts", rows: 3, "aria-describedby": "campaign-form-hosts-hint" }), t("campaign.hosts_hint")),
      field("campaign-form-timezone", t("campaign.timezone"), el("select", { id: "campaign-form-timezone", name: "timezone", "aria-describedby": "campaign-form-timezone-hint" }), t("campaign.timezone_hint")),
      el("p", {}, el("label", { class: "inline", for: "campaign-form-filter-bots" },
        el("input", { type: "checkbox", id: "campaign-form-filter-bots", name: "filter_bots", "aria-describedby": "campaign-form-filter-bots-hint" }),
        t("campaign.form.filter_bots"))),
      el("p", { class: "hint", id: "campaign-form-filter-bots-hint", text: t("campaign.form.filter_bots_hint") }),
      el("p", { class: "form-error", role: "alert" }),
      el("div", { class: "form-actions" },
        el("button", { type: "button", text: t("action.cancel"), onclick: () => dialog.close() }),
        el("button", { type: "submit", class: "primary", text: t("action.save") })));
    dialog = el("dialog", { id: "campaign-dialog", "aria-labelledby": "campaign-dialog-title" }, form);
    document.body.append(dialog);
    TH.form(form, submit);
  }
  async function submit(data) {
    const body = { name: data.name, allowed_hosts: hosts(data.allowed_hosts), timezone: data.timezone, filter_bots: form.elements.filter_bots.checked };
    let campaign;
    try {
      campaign = editing
        ? await TH.api(`/api/clicks/campaigns/${editing.id}`, { method: "PATCH", json: body })
        : await TH.api("/api/clicks/campaigns", { method: "POST", json: body });
    } catch (error) { throw new Error(inWords(error)); }
    dialog.close();
    TH.toast(editing ? t("campaign.saved") : t("campaign.created", { name: campaign.name }));
    if (onSaved) onSaved(campaign);
  }
  function open(campaign, saved) {
    if (!dialog) build();
    editing = campaign; onSaved = saved;
    form.reset();
    form.querySelector(".form-error").textContent = "";
    document.getElementById("campaign-dialog-title").textContent = campaign ? t("campaign.edit") : t("campaign.new");
    const browser = TH.fmt.zone();
    const zone = campaign ? campaign.timezone : (COMMON_ZONES.includes(browser) ? browser : "Asia/Shanghai");
    form.elements.timezone.replaceChildren(...zoneOptions(zone));
    form.elements.timezone.value = zone;
    form.elements.filter_bots.checked = campaign ? campaign.filter_bots : true;
    if (campaign) {
      form.elements.name.value = campaign.name;
      form.elements.allowed_hosts.value = campaign.allowed_hosts.join("\n");
    }
    dialog.showModal();
  }
  return { open };
})();

// The list page (only where its box is).
(() => {
  const box = document.getElementById("campaigns");
  if (!box) return;
  const { t, fmt, el } = TH;
  const REFRESH_MS = 10000;
  const COLUMNS = [
    { label: t("clicks.col.name"), value: (c) => el("a", { href: `/clicks/campaigns/${c.id}`, text: c.name }) },
    { label: t("clicks.col.today"), key: "today", num: true, value: (c) => fmt.int(c.today_clicks) },
    { label: t("clicks.col.total"), key: "total", num: true, value: (c) => fmt.int(c.clicked_count) },
    { label: t("clicks.col.unique_users"), key: "unique", num: true, value: (c) => fmt.int(c.unique_users) },
    { label: t("clicks.col.hosts"), key: "hosts", value: hostList },
    { label: t("clicks.col.timezone"), key: "zone", value: (c) => c.timezone },
  ];
  const rowId = (c) => `campaign-${c.id}`;
  let shown = false;

  function hostList(c) {
    if (!c.allowed_hosts.length) return el("span", { class: "muted", text: t("clicks.no_hosts") });
    return el("span", { class: "hosts" }, c.allowed_hosts.join(", "));
  }
  function tile(id, value) {
    const node = document.querySelector(`#${id} [data-value]`);
    if (node.textContent !== value && node.textContent !== "…") TH.flash(node);
    node.textContent = value;
  }
  async function summary() {
    const s = await TH.api("/api/clicks/summary");
    tile("tile-campaigns", fmt.int(s.campaigns));
    tile("tile-today", fmt.int(s.today_clicks));
    tile("tile-unique", fmt.int(s.today_unique_users));
    tile("tile-total", fmt.int(s.total_clicks));
  }
  // Replace the rows, flashing the cells whose figure changed since the last refresh.
  function render(items) {
    const fresh = TH.table(COLUMNS, items, { rowId });
    if (shown) {
      fresh.querySelectorAll("td[data-f]").forEach((td) => {
        const before = document.querySelector(`#${td.parentNode.id} td[data-f="${td.dataset.f}"]`);
        if (before && before.textContent !== td.textContent) TH.flash(td);
        if (!before) TH.flash(td.parentNode);
      });
    }
    box.replaceChildren(fresh);
    shown = true;
  }
  async function campaigns() {
    const items = await TH.all("/api/clicks/campaigns");
    if (!items.length) { TH.state.empty(box, t("clicks.empty")); shown = false; }
    else render(items);
    document.getElementById("campaigns-count").textContent = t("clicks.count", { n: fmt.int(items.length) });
  }
  async function refresh() {
    await Promise.all([
      campaigns().catch((error) => TH.state.error(box, error)),
      summary().catch((error) => TH.toast(t("state.error", { message: error.message }), "error")),
    ]);
    document.getElementById("updated").textContent = t("clicks.updated", { time: fmt.whenShort(new Date().toISOString()) });
  }

  TH.state.loading(box);
  refresh();
  setInterval(refresh, REFRESH_MS);
  const button = document.getElementById("new-campaign");
  if (button) button.addEventListener("click", () => CampaignForm.open(null, () => refresh()));
})();
