// The group form shared by the leads list (create) and the group page (edit), and the
// dialog that shows an activation code once, with a copy button.
"use strict";
window.LeadsForm = (() => {
  const { t } = TH;
  const ZONES = ["Asia/Shanghai", "Asia/Hong_Kong", "Asia/Taipei", "Asia/Tokyo", "Asia/Seoul",
    "Asia/Bangkok", "Asia/Ho_Chi_Minh", "Asia/Singapore", "Asia/Kuala_Lumpur", "Asia/Manila",
    "Asia/Jakarta", "Europe/London", "America/Los_Angeles", "America/New_York", "UTC"];
  const dialog = document.getElementById("group-dialog");
  const form = document.getElementById("group-form");
  const codeDialog = document.getElementById("code-dialog");
  let editing = null, saved = null;

  for (const box of [dialog, codeDialog]) {
    box.querySelectorAll("[data-close]").forEach((b) => b.addEventListener("click", () => box.close()));
  }
  // The code is shown once: gone from the page as soon as its dialog closes.
  codeDialog.addEventListener("close", () => { document.getElementById("code-value").textContent = ""; });
  function zones(current) {
    const select = form.elements.timezone;
    const browser = Intl.DateTimeFormat().resolvedOptions().timeZone;
    const list = [...new Set([current, ...ZONES].filter(Boolean))];
    select.replaceChildren(...list.map((z) => TH.el("option", { value: z, text: z })));
    select.value = current || (ZONES.includes(browser) ? browser : "Asia/Shanghai");
  }
  function open(group, onSaved) {
    editing = group; saved = onSaved;
    const title = document.getElementById("group-dialog-title");
    title.textContent = group ? title.dataset.edit : title.dataset.new;
    form.reset();
    form.querySelector(".form-error").textContent = "";
    zones(group && group.timezone);
    if (group) {
      form.elements.remark.value = group.remark;
      form.elements.reset_time.value = group.reset_time;
      form.elements.dedup_scope.value = group.dedup_scope;
      form.elements.account_limit.value = group.account_limit ?? "";
    }
    dialog.showModal();
  }
  TH.form(form, async (data) => {
    const body = { ...data, account_limit: data.account_limit === "" ? null : Number(data.account_limit) };
    const group = editing
      ? await TH.api(`/api/leads/groups/${editing.id}`, { method: "PATCH", json: body })
      : await TH.api("/api/leads/groups", { method: "POST", json: body });
    dialog.close();
    TH.toast(editing ? t("group.saved") : t("group.created", { name: group.remark || "#" + group.id }));
    if (!editing) showCode(group.activation_code);
    if (saved) saved(group);
  });
  function showCode(code) {
    document.getElementById("code-value").textContent = code;
    const copy = document.getElementById("code-copy");
    copy.onclick = () => TH.copy(code, copy);
    codeDialog.showModal();
  }
  return { open, showCode };
})();
