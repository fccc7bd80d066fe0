/* Daydream — the page's own questions, in place of the browser's confirm, prompt and
 * alert boxes (which block the page, cannot be styled, and which a browser may stop
 * showing: then they answer "no" without asking). Every page uses these:
 *
 *   confirmAction({title, text, ok, danger})            → Promise<boolean>
 *   askText({title, text, label, value, placeholder,
 *            maxLength, multiline, ok, danger})         → Promise<string|null>: trimmed; null if canceled
 *   notice({title, text, ok})                           → Promise<void>, once it is closed
 *   ask(options)                                        → Promise<{ok, value, choice}>: the general form
 *
 * ask's options: {title, text, ok ("OK"), cancel ("Cancel"), danger, input: {label, value,
 * placeholder, maxLength, multiline}, choices: {legend, items: [{value, label, checked}]},
 * submit(value, choice) → Promise<an error message, or null to close>}.
 *
 * One modal <dialog class="dialog" id="confirm-dialog"> at a time, built here and removed
 * when it closes (no markup in the templates; no inline script or style, so the strict CSP
 * holds). A question without a text field is an alertdialog, one with a field a dialog;
 * showModal() keeps Tab inside it and the rest of the page inert; focus starts on the
 * field or the OK button, Escape and Cancel cancel, and focus goes back to what had it.
 * A question asked while another is open waits its turn. The password dialog is apart:
 * lib/dialog.js. */
import { el } from "./dom.js";

let turn = Promise.resolve();
let current = null; // the open <dialog>, while one is

/** Whether one of these dialogs is open (a page's own Escape handling leaves it alone). */
export function isAsking() { return current !== null; }

/** Ask, in the page's own dialog (see the top of this file). */
export function ask(options) {
  const answer = turn.then(() => open(options || {}));
  turn = answer.catch(() => null);
  return answer;
}

/** A yes-or-no question: true when confirmed. */
export function confirmAction(options) {
  return ask(options).then((answer) => answer.ok);
}

/** A question with a text answer: the trimmed text ("" when left empty), or null when canceled. */
export function askText(options) {
  const o = options || {};
  const input = { label: o.label, value: o.value, placeholder: o.placeholder, maxLength: o.maxLength,
                  multiline: o.multiline };
  return ask(Object.assign({}, o, { input })).then((answer) => (answer.ok ? answer.value.trim() : null));
}

/** Tell something that needs an acknowledgement (a failure the page cannot show in place). */
export function notice(options) {
  const o = options || {};
  return ask({ title: o.title, text: o.text, ok: o.ok || "OK", cancel: false }).then(() => undefined);
}

function field(input) {
  const attrs = {
    id: "confirm-input", autocomplete: "off", placeholder: input.placeholder || null,
    maxlength: input.maxLength ? String(input.maxLength) : null,
  };
  const control = input.multiline ? el("textarea", Object.assign({ rows: "3" }, attrs))
    : el("input", Object.assign({ type: "text" }, attrs));
  control.value = input.value || "";
  return control;
}

function choiceList(choices) {
  return el("fieldset", { class: "dialog__choices" }, [
    choices.legend ? el("legend", { class: "visually-hidden", text: choices.legend }) : null,
    ...(choices.items || []).map((item) => el("label", { class: "checkbox" }, [
      el("input", { type: "radio", name: "confirm-choice", value: item.value, checked: !!item.checked }),
      " ", el("span", { text: item.label }),
    ])),
  ]);
}

function open(o) {
  const returnTo = document.activeElement;
  const input = o.input ? field(o.input) : null;
  const error = el("p", { class: "field-error", id: "confirm-error", role: "alert", hidden: true });
  const ok = el("button", { type: "submit", id: "confirm-ok", text: o.ok || "OK",
                            class: "btn btn--small " + (o.danger ? "btn--danger" : "btn--primary") });
  const cancel = o.cancel === false ? null
    : el("button", { type: "button", class: "btn btn--small btn--ghost", id: "confirm-cancel", text: o.cancel || "Cancel" });
  const form = el("form", { class: "dialog__form", id: "confirm-form", method: "dialog", novalidate: true }, [
    el("h2", { class: "dialog__title", id: "confirm-title", text: o.title || "Are you sure?" }),
    o.text ? el("p", { class: "dialog__text", id: "confirm-text", text: o.text }) : null,
    o.choices ? choiceList(o.choices) : null,
    input ? el("div", { class: "dialog__field" }, [
      el("label", { for: "confirm-input", id: "confirm-label", text: o.input.label || "Name" }), input, error,
    ]) : error,
    el("div", { class: "dialog__actions" }, [cancel, ok]),
  ]);
  const dialog = el("dialog", {
    class: "dialog", id: "confirm-dialog", role: input ? "dialog" : "alertdialog", "aria-modal": "true",
    "aria-labelledby": "confirm-title", "aria-describedby": o.text ? "confirm-text" : null,
  }, [form]);
  document.body.appendChild(dialog);
  current = dialog;

  return new Promise((resolve) => {
    let result = { ok: false, value: "", choice: null };
    let waiting = false; // a submit check is under way

    const close = (answer) => {
      result = answer;
      if (dialog.open) dialog.close();
      else finish(); // a browser without <dialog>: it was only an [open] attribute
    };
    const finish = () => {
      if (current !== dialog) return;
      current = null;
      dialog.remove();
      // Back to what had the focus, unless the page moved it meanwhile.
      const lost = !document.activeElement || document.activeElement === document.body;
      if (lost && returnTo && returnTo.isConnected && typeof returnTo.focus === "function") returnTo.focus();
      resolve(result);
    };
    const showError = (message) => {
      error.textContent = message;
      error.hidden = false;
      if (input) {
        input.setAttribute("aria-invalid", "true");
        input.focus();
      }
    };

    form.addEventListener("submit", (event) => {
      event.preventDefault();
      if (waiting) return;
      const value = input ? input.value : "";
      const picked = form.querySelector('input[name="confirm-choice"]:checked');
      const answer = { ok: true, value, choice: picked ? picked.value : null };
      if (!o.submit) {
        close(answer);
        return;
      }
      waiting = true;
      ok.disabled = true;
      Promise.resolve(o.submit(answer.value, answer.choice)).then((message) => {
        waiting = false;
        ok.disabled = false;
        if (current !== dialog) return; // canceled meanwhile
        if (message) showError(message);
        else close(answer);
      });
    });
    if (cancel) cancel.addEventListener("click", () => close({ ok: false, value: "", choice: null }));
    // Escape: the dialog's own cancel, answered as Cancel (a notice has only OK: it closes).
    dialog.addEventListener("cancel", (event) => {
      event.preventDefault();
      close({ ok: false, value: "", choice: null });
    });
    dialog.addEventListener("close", finish);

    if (typeof dialog.showModal === "function") dialog.showModal();
    else dialog.setAttribute("open", "");
    if (input) {
      input.focus();
      input.select();
    } else {
      ok.focus();
    }
  });
}
