// The campaign form shared by the clicks list (create) and the campaign page (edit).
"use strict";
window.ClicksForm = (() => {
  const { t } = TH;
  const ZONES = ["Asia/Shanghai", "Asia/Hong_Kong", "Asia/Taipei", "Asia/Tokyo", "Asia/Seoul",
    "Asia/Bangkok", "Asia/Singapore", "Europe/London", "America/Los_Angeles", "America/New_York", "UTC"];
  const dialog = document.getElementById("campaign-dialog");
  const form = document.getElementById("campaign-form");
  let editing = null, saved = null;
  dialog.querySelectorAll("[data-close]").forEach((b) => b.addEventListener("click", () => dialog.close()));

  function open(campaign, onSaved) {
    editing = campaign; saved = onSaved;
    const title = document.getElementById("campaign-dialog-title");
    title.textContent = campaign ? title.dataset.edit : title.dataset.new;
    form.reset();
    form.querySelector(".form-error").textContent = "";
    const select = form.elements.timezone;
    const browser = Intl.DateTimeFormat().resolvedOptions().timeZone;
    const current = campaign ? campaign.timezone : (ZONES.includes(browser) ? browser : "Asia/Shanghai");
    select.replaceChildren(...[...new Set([current, ...ZONES])].map((z) => TH.el("option", { value: z, text: z })));
    select.value = current;
    if (campaign) {
      form.elements.name.value = campaign.name;
      form.elements.allowed_hosts.value = campaign.allowed_hosts.join("\n");
    }
    dialog.showModal();
  }
  TH.form(form, async (data) => {
    const body = { name: data.name, timezone: data.timezone,
      allowed_hosts: data.allowed_hosts.split(/[\s,]+/).map((h) => h.trim()).filter(Boolean) };
    const campaign = editing
      ? await TH.api(`/api/clicks/campaigns/${editing.id}`, { method: "PATCH", json: body })
      : await TH.api("/api/clicks/campaigns", { method: "POST", json: body });
    dialog.close();
    TH.toast(editing ? t("campaign.saved") : t("campaign.created", { name: campaign.name }));
    if (saved) saved(campaign);
  });
  return { open };
})();
