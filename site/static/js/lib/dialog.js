/* Daydream — the password dialog asked when an action needs a recent sign-in (base.html
 * renders it, site/templates/_reauth.html, for every signed-in page, so any page's API
 * call can be retried after it: lib/api.js does that). The page's other questions
 * (confirmations, a text answer, a notice) are lib/confirm.js's. */
import { byId } from "./dom.js";

let pending = null;

/** Open the dialog and check the password with POST /api/v1/auth/reauth.
 * `send(method, path, body)` is the plain API call (lib/api.js passes its own).
 * Resolves to true once the password was accepted, false when the user cancels. */
export function askPassword(send) {
  if (pending) return pending; // several calls refused at once share one dialog
  const dialog = byId("reauth-dialog");
  if (!dialog || typeof dialog.showModal !== "function") return Promise.resolve(false);
  const form = byId("reauth-form");
  const input = byId("reauth-password");
  const error = byId("reauth-error");
  const cancel = byId("reauth-cancel");
  pending = new Promise((resolve) => {
    const finish = (ok) => {
      form.removeEventListener("submit", onSubmit);
      cancel.removeEventListener("click", onCancel);
      dialog.removeEventListener("cancel", onCancel);
      if (dialog.open) dialog.close();
      pending = null;
      resolve(ok);
    };
    const onSubmit = (event) => {
      event.preventDefault();
      if (!input.value) {
        error.textContent = "Enter your password.";
        error.hidden = false;
        input.focus();
        return;
      }
      const submit = byId("reauth-submit");
      if (submit) submit.disabled = true;
      send("POST", "/api/v1/auth/reauth", { password: input.value }).then((res) => {
        if (submit) submit.disabled = false;
        if (res.ok) { finish(true); return; }
        error.textContent = (res.error && res.error.message) || "That password is not right.";
        error.hidden = false;
        input.select();
      });
    };
    const onCancel = (event) => {
      if (event) event.preventDefault();
      finish(false);
    };
    input.value = "";
    error.hidden = true;
    form.addEventListener("submit", onSubmit);
    cancel.addEventListener("click", onCancel);
    dialog.addEventListener("cancel", onCancel);
    dialog.showModal();
    input.focus();
  });
  return pending;
}
