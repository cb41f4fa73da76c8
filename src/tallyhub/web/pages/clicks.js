// Clicks: every campaign with today's clicks, total clicks and unique users, read again
// every 10 s (clicks commit every few milliseconds: they are not pushed); writers create
// campaigns here.
(() => {
  const { t, fmt, el } = TH;
  const box = document.getElementById("campaigns");
  const COLUMNS = [
    { label: t("clicks.col.campaign"), value: (c) => el("a", { href: `/clicks/campaigns/${c.id}`, text: c.name }) },
    { label: t("clicks.col.today"), key: "today_clicks", num: true, value: (c) => fmt.int(c.today_clicks) },
    { label: t("clicks.col.total"), key: "clicked_count", num: true, value: (c) => fmt.int(c.clicked_count) },
    { label: t("clicks.col.unique_users"), key: "unique_users", num: true, value: (c) => fmt.int(c.unique_users) },
    { label: t("clicks.col.hosts"), value: (c) => c.allowed_hosts.length ? c.allowed_hosts.join(", ") : t("clicks.signed_only") },
    { label: t("clicks.col.timezone"), value: (c) => c.timezone },
  ];
  let first = true;

  async function refresh() {
    if (first) TH.state.loading(box);
    try {
      const items = await TH.all("/api/clicks/campaigns");
      document.getElementById("campaigns-count").textContent = t("clicks.count", { n: fmt.int(items.length) });
      if (!items.length) { TH.state.empty(box, t("clicks.empty")); return; }
      const old = new Map([...box.querySelectorAll("tr[id]")].map((tr) => [tr.id, tr]));
      box.replaceChildren(TH.table(COLUMNS, items, { rowId: (c) => `campaign-${c.id}` }));
      if (!first) box.querySelectorAll("tr[id]").forEach((tr) => {
        const before = old.get(tr.id);
        tr.querySelectorAll("td[data-f]").forEach((td) => {
          const was = before && before.querySelector(`td[data-f="${td.dataset.f}"]`);
          if (!before || (was && was.textContent !== td.textContent)) TH.flash(td);
        });
      });
      first = false;
    } catch (error) { TH.state.error(box, error); }
  }
  refresh();
  setInterval(refresh, 10000);
  const button = document.getElementById("new-campaign");
  if (button) button.addEventListener("click", () => ClicksForm.open(null, refresh));
})();
