/* A task form (lib/upscale.js, lib/edit.js) in a modal dialog, for the studio's cards,
   and the stylesheet such a form needs on a page that has not linked it. */
import { el } from "./dom.js";

/** Link the stylesheet at `href` unless the page has it already. */
export function ensureStylesheet(href) {
  const name = href.split("/").pop().replace(/\./g, "\\.");
  const present = Array.from(document.querySelectorAll("link[rel=stylesheet]"))
    .some((link) => new RegExp(`/css/${name}(\\?|$)`).test(link.getAttribute("href") || ""));
  if (!present) document.head.appendChild(el("link", { rel: "stylesheet", href }));
}

/** The form made by createForm({idPrefix, onSubmitted}) in a modal dialog of class
   `${name}-dialog`, showing `image`; it closes once the task is submitted. */
export function formDialog(name, createForm, image, options) {
  const o = options || {};
  const close = el("button", { type: "button", class: "btn btn--small btn--ghost", text: "Close" });
  let dialog = null;
  const form = createForm({
    idPrefix: `${name}-dialog`,
    onSubmitted: (task) => {
      if (dialog && dialog.open) dialog.close();
      if (o.onSubmitted) o.onSubmitted(task);
    },
  });
  dialog = el("dialog", { class: `dialog ${name}-dialog`, id: `${name}-dialog`, "aria-labelledby": `${name}-dialog-title` }, [
    el("div", { class: "dialog__form" }, [form.root, el("div", { class: "dialog__actions" }, [close])]),
  ]);
  document.body.appendChild(dialog);
  close.addEventListener("click", () => dialog.close());
  dialog.addEventListener("close", () => dialog.remove());
  form.show(image);
  if (typeof dialog.showModal === "function") dialog.showModal();
  else dialog.setAttribute("open", "");
  return dialog;
}
