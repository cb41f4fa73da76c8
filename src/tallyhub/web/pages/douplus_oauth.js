// Where Ocean Engine sends an account's owner back after consent
// (DouplusSettings.redirect_uri): the auth_code and the signed state from the address are
// posted to /api/douplus/oauth/callback, and the connected account (or the API's refusal,
// in words) is shown. The one-time code is then taken out of the address, so a reload or
// a bookmark does not post it again.
"use strict";
(() => {
  const { t, fmt, el, api } = TH;
  const $ = (id) => document.getElementById(id);
  const STATUS = { active: t("douplus.account.active"), needs_reauth: t("douplus.account.needs_reauth"), disabled: t("douplus.account.disabled") };

  function show(account, known) {
    const name = account.nickname || account.aweme_sec_uid;
    $("oauth-done").textContent = t(known ? "douplus.oauth.updated" : "douplus.oauth.connected", { name });
    const facts = [
      [t("douplus.connect.nickname"), account.nickname || "–", "nickname"],
      [t("douplus.connect.sec_uid"), account.aweme_sec_uid, "aweme_sec_uid"],
      [t("douplus.col.status"), STATUS[account.status] || account.status, "status"],
      [t("douplus.oauth.expires"), fmt.when(account.expires_at), "expires_at"],
    ];
    $("oauth-facts").replaceChildren(...facts.flatMap(([term, value, key]) => [el("dt", { text: term }), el("dd", { dataset: { f: key }, text: value })]));
    $("oauth-account").hidden = false;
  }
  async function start() {
    const box = $("oauth-state");
    const query = new URLSearchParams(location.search);
    const code = query.get("auth_code"), state = query.get("state");
    if (!code || !state) { TH.state.empty(box, t("douplus.oauth.nothing")); return; }
    box.replaceChildren(el("p", { class: "state loading", text: t("douplus.oauth.connecting") }));
    const before = await TH.all("/api/douplus/accounts").catch(() => []);
    try {
      const account = await api("/api/douplus/oauth/callback", { method: "POST", json: { auth_code: code, state } });
      box.replaceChildren();
      show(account, before.some((a) => a.aweme_sec_uid === account.aweme_sec_uid));
    } catch (error) {
      box.replaceChildren(el("p", { class: "state error", role: "alert", text: t("douplus.oauth.failed", { message: error.message }) }));
    } finally {
      history.replaceState(null, "", location.pathname);
    }
  }
  start();
})();
