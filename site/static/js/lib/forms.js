/* Daydream — what the page scripts' forms share: the API's field errors shown under
 * their inputs (<p class="field-error" id="NAME-error">), busy buttons, status lines and
 * alert boxes. */
import { $all, byId } from "./dom.js";

/** Hide every field error of a form and drop its aria-invalid marks. */
export function clearErrors(form) {
  $all(".field-error", form).forEach((p) => { p.hidden = true; p.textContent = ""; });
  $all("[aria-invalid]", form).forEach((input) => input.removeAttribute("aria-invalid"));
}

/** Show an API error ({message, field?, fields?}) under the inputs it names; when it names
 * none the form has, under `fallbackField`'s input. */
export function showErrors(form, error, fallbackField) {
  const fields = Object.assign({}, (error && error.fields) || {});
  if (error && error.field && !fields[error.field]) fields[error.field] = error.message;
  let shown = false;
  Object.keys(fields).forEach((name) => {
    const box = form.querySelector("#" + CSS.escape(name) + "-error");
    if (!box) return;
    box.textContent = String(fields[name]).replace(new RegExp("^" + name + ": "), "");
    box.hidden = false;
    const input = form.querySelector('[name="' + CSS.escape(name) + '"]');
    if (input) input.setAttribute("aria-invalid", "true");
    shown = true;
  });
  if (!shown) {
    const box = form.querySelector("#" + CSS.escape(fallbackField) + "-error");
    if (box) {
      box.textContent = (error && error.message) || "Something went wrong.";
      box.hidden = false;
    }
  }
}

/** Disable a button while its request runs, with a label such as "Saving…". */
export function busy(button, on, label) {
  if (!button) return;
  if (on) {
    button.dataset.label = button.textContent;
    button.textContent = label || "Saving…";
  } else if (button.dataset.label) {
    button.textContent = button.dataset.label;
  }
  button.disabled = on;
}

/** A status line (by id): the text, green when ok. */
export function say(id, text, ok) {
  const node = byId(id);
  if (!node) return;
  node.textContent = text || "";
  node.classList.toggle("is-ok", !!ok);
}

/** An alert box (by id): shown with the message, hidden when there is none. */
export function showAlert(id, message) {
  const box = byId(id);
  if (!box) return;
  box.textContent = message || "";
  box.hidden = !message;
}
