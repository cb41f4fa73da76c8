// Sign in for the session cookie, then go where the visitor was sent from.
(() => {
  const form = document.getElementById("login");
  TH.form(form, async (data) => {
    await TH.api("/api/auth/session", { method: "POST", form: data, signedOut: true });
    location.assign(form.dataset.next || "/");
  });
})();
