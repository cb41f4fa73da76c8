// Users (admins): every user with role and state; create, change role, disable or enable.
(() => {
  const { t, fmt, el } = TH;
  const box = document.getElementById("users");
  const dialog = document.getElementById("user-dialog");
  const ROLES = { admin: t("role.admin"), operator: t("role.operator"), viewer: t("role.viewer") };

  async function change(user, body, done) {
    try { await TH.api(`/api/users/${user.id}`, { method: "PATCH", json: body }); TH.toast(done); }
    catch (error) { TH.toast(error.message, "error"); }
    await load();
  }
  function roleSelect(user) {
    const select = el("select", { "aria-label": t("users.role_of", { name: user.username }) },
      Object.entries(ROLES).map(([value, text]) => el("option", { value, text, selected: value === user.role })));
    select.addEventListener("change", () => change(user, { role: select.value }, t("users.role_changed", { name: user.username })));
    return select;
  }
  function toggle(user) {
    const label = user.is_active ? t("users.disable") : t("users.enable");
    return el("button", { type: "button", class: user.is_active ? "danger" : "", text: label, "aria-label": `${label} ${user.username}`,
      onclick: () => {
        if (user.is_active && !confirm(t("users.confirm_disable", { name: user.username }))) return;
        change(user, { is_active: !user.is_active }, user.is_active ? t("users.disabled_done", { name: user.username }) : t("users.enabled_done", { name: user.username }));
      } });
  }
  const COLUMNS = [
    { label: t("users.username"), value: (u) => (u.id === TH.user.id ? el("span", {}, u.username, " ", TH.badge(t("users.you"))) : u.username) },
    { label: t("users.role"), value: (u) => roleSelect(u) },
    { label: t("users.state"), value: (u) => (u.is_active ? TH.badge(t("users.active"), "good") : TH.badge(t("users.disabled"), "disabled")) },
    { label: t("users.created"), value: (u) => fmt.when(u.created_at) },
    { label: t("jobs.col.actions"), value: (u) => toggle(u) },
  ];
  async function load() {
    try {
      const items = await TH.all("/api/users");
      box.replaceChildren(TH.table(COLUMNS, items, { rowId: (u) => `user-${u.username}` }));
    } catch (error) { TH.state.error(box, error); }
  }

  dialog.querySelectorAll("[data-close]").forEach((b) => b.addEventListener("click", () => dialog.close()));
  document.getElementById("new-user").addEventListener("click", () => {
    dialog.querySelector("form").reset(); dialog.querySelector(".form-error").textContent = ""; dialog.showModal();
  });
  TH.form(document.getElementById("user-form"), async (data) => {
    const user = await TH.api("/api/users", { method: "POST", json: data });
    dialog.close(); TH.toast(t("users.created_done", { name: user.username })); await load();
  });
  TH.state.loading(box);
  load();
})();
