/* Daydream — dialogs: the password dialog asked when an action needs a recent sign-in
 * (base.html renders it, site/templates/_reauth.html, for every signed-in page, so any
 * page's API call can be retried after it: lib/api.js does that), and askText, the
 * page's own question with an optional text answer (instead of the browser's prompt()). */
import { byId, el } from "./dom.js";

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

/** Ask a question in a modal <dialog class="dialog"> with a text box:
 * {title, message, label, placeholder, maxLength, confirm ("OK"), cancel ("Cancel")}.
 * Resolves to the text (trimmed, "" when left empty) when confirmed, null when canceled. */
export function askText(options) {
  const o = options || {};
  const ids = "ask-" + Math.random().toString(36).slice(2, 8);
  const input = el("textarea", { id: ids + "-text", rows: "3", maxlength: o.maxLength ? String(o.maxLength) : null,
                                 placeholder: o.placeholder || null });
  const confirm = el("button", { type: "submit", class: "btn btn--primary btn--small", text: o.confirm || "OK" });
  const cancel = el("button", { type: "button", class: "btn btn--ghost btn--small", text: o.cancel || "Cancel" });
  const form = el("form", { class: "dialog__body", method: "dialog", novalidate: true }, [
    el("div", { class: "dialog__head" }, [el("h2", { id: ids + "-title", text: o.title || "" })]),
    o.message ? el("p", { class: "muted", id: ids + "-message", text: o.message }) : null,
    el("div", { class: "field" }, [el("label", { for: input.id, text: o.label || "" }), input]),
    el("div", { class: "form-actions" }, [confirm, cancel]),
  ]);
  const dialog = el("dialog", { class: "dialog", "aria-labelledby": ids + "-title",
                                "aria-describedby": o.message ? ids + "-message" : null }, [form]);
  document.body.appendChild(dialog);
  return new Promise((resolve) => {
    let answer = null;
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      answer = input.value.trim();
      dialog.close();
    });
    cancel.addEventListener("click", () => dialog.close());
    dialog.addEventListener("close", () => {
      dialog.remove();
      resolve(answer);
    });
    dialog.showModal();
    input.focus();
  });
}
