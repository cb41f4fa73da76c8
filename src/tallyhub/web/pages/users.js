// Users (admins): every user with role and state; create one, change a role, disable or
// enable (after a confirmation). Refusals of the API (a taken name, your own account, the
// last admin) are said in words; your own row cannot be demoted or disabled here.
(() => {
  const { t, fmt, el } = TH;
  const box = document.getElementById("users");
  const filters = document.getElementById("user-filters");
  const dialog = document.getElementById("user-dialog");
  const confirmBox = document.getElementById("confirm-dialog");
  const ROLES = { admin: t("role.admin"), operator: t("role.operator"), viewer: t("role.viewer") };
  const ERRORS = { own_account: "users.error.own_account", last_admin: "users.error.last_admin",
    user_exists: "users.error.user_exists", user_not_found: "users.error.not_found", admin_only: "users.error.admin_only" };
  // A refusal in words; a 422 names its field ("body.username: …").
  function errorText(error, name) {
    if (ERRORS[error.code]) return t(ERRORS[error.code], { name });
    if (error.status === 422 && /username/.test(error.message)) return t("users.error.username");
    if (error.status === 422 && /password/.test(error.message)) return t("users.error.password");
    return error.message;
  }
  function ask(title, text, yes) {
    document.getElementById("confirm-title").textContent = title;
    document.getElementById("confirm-text").textContent = text;
    document.getElementById("confirm-yes").textContent = yes;
    confirmBox.returnValue = "";
    confirmBox.showModal();
    return new Promise((resolve) => confirmBox.addEventListener("close", () => resolve(confirmBox.returnValue === "confirm"), { once: true }));
  }

  async function change(user, body, done) {
    try { await TH.api(`/api/users/${user.id}`, { method: "PATCH", json: body }); TH.toast(done); }
    catch (error) { TH.toast(errorText(error, user.username), "error"); }
    await load();
  }
  const isMe = (user) => user.id === TH.user.id;
  function roleSelect(user) {
    const select = el("select", { class: "role-select", "aria-label": t("users.role_of", { name: user.username }), disabled: isMe(user), title: isMe(user) ? t("users.own_hint") : null },
      Object.entries(ROLES).map(([value, text]) => el("option", { value, text, selected: value === user.role })));
    select.addEventListener("change", () => change(user, { role: select.value }, t("users.role_changed", { name: user.username, role: ROLES[select.value] })));
    return select;
  }
  async function toggle(user) {
    const name = user.username;
    const sure = user.is_active
      ? await ask(t("users.disable_title", { name }), t("users.confirm_disable", { name }), t("users.disable"))
      : await ask(t("users.enable_title", { name }), t("users.confirm_enable", { name }), t("users.enable"));
    if (sure) await change(user, { is_active: !user.is_active }, (user.is_active ? t("users.disabled_done", { name }) : t("users.enabled_done", { name })));
  }
  function actions(user) {
    const label = user.is_active ? t("users.disable") : t("users.enable");
    const button = el("button", { type: "button", class: user.is_active ? "danger toggle" : "toggle", text: label,
      "aria-label": `${label} ${user.username}`, disabled: isMe(user), onclick: () => toggle(user) });
    return el("span", { class: "row-actions" }, roleSelect(user), " ", button);
  }
  const COLUMNS = [
    { label: t("users.username"), key: "username", value: (u) => (isMe(u) ? el("span", {}, u.username, " ", TH.badge(t("users.you"))) : u.username) },
    { label: t("users.role"), key: "role", value: (u) => TH.badge(ROLES[u.role] || u.role, `role-${u.role}`) },
    { label: t("users.state"), key: "state", value: (u) => (u.is_active ? TH.badge(t("users.active"), "good") : TH.badge(t("users.disabled"), "disabled")) },
    { label: t("users.created"), value: (u) => fmt.when(u.created_at) },
    { label: t("users.actions"), value: actions },
  ];
  async function load() {
    const query = new URLSearchParams([...new FormData(filters)].filter(([, value]) => value));
    try {
      const items = await TH.all(`/api/users${query.size ? "?" + query : ""}`);
      if (!items.length) TH.state.empty(box, t("users.none"));
      else box.replaceChildren(TH.table(COLUMNS, items, { rowId: (u) => `user-${u.username}` }));
    } catch (error) { TH.state.error(box, error); }
  }

  dialog.querySelectorAll("[data-close]").forEach((b) => b.addEventListener("click", () => dialog.close()));
  document.getElementById("new-user").addEventListener("click", () => {
    dialog.querySelector("form").reset(); dialog.querySelector(".form-error").textContent = ""; dialog.showModal();
  });
  TH.form(document.getElementById("user-form"), async (data) => {
    let user;
    try { user = await TH.api("/api/users", { method: "POST", json: data }); }
    catch (error) { throw new Error(errorText(error, data.username)); }
    dialog.close(); TH.toast(t("users.created_done", { name: user.username })); await load();
  });
  filters.addEventListener("change", load);
  TH.state.loading(box);
  load();
})();
