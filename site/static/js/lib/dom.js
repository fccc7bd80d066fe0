/* Daydream — small DOM helpers shared by every page script. */

export function byId(id) { return document.getElementById(id); }
export function $(selector, root) { return (root || document).querySelector(selector); }
export function $all(selector, root) { return Array.from((root || document).querySelectorAll(selector)); }

/** Create an element: el("p", {class: "x", text: "hi", dataset: {...}}, [children]).
 * Attributes that are null, undefined or false are left out; true sets an empty one;
 * checked, disabled and hidden are set as properties. Falsy children are skipped. */
export function el(tag, attrs, children) {
  const node = document.createElement(tag);
  Object.keys(attrs || {}).forEach((key) => {
    const value = attrs[key];
    if (value === null || value === undefined || value === false) return;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key === "dataset") Object.keys(value).forEach((k) => { node.dataset[k] = value[k]; });
    else if (key === "checked" || key === "disabled" || key === "hidden") node[key] = !!value;
    else node.setAttribute(key, value === true ? "" : String(value));
  });
  (children || []).forEach((child) => {
    if (child) node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
  });
  return node;
}

/** An inline icon: a 24×24 SVG with one path. */
export function svg(path) {
  const ns = "http://www.w3.org/2000/svg";
  const node = document.createElementNS(ns, "svg");
  node.setAttribute("viewBox", "0 0 24 24");
  node.setAttribute("aria-hidden", "true");
  const p = document.createElementNS(ns, "path");
  p.setAttribute("d", path);
  node.appendChild(p);
  return node;
}

/** Say something to screen readers through a live region (by id). */
export function announce(text, regionId = "sr-status") {
  const region = byId(regionId);
  if (!region) return;
  region.textContent = "";
  window.setTimeout(() => { region.textContent = text; }, 50);
}

/** The CSRF token of <meta name="csrf-token">, "" when the page has none. */
export function csrfToken() {
  const meta = document.querySelector('meta[name="csrf-token"]');
  return meta ? meta.getAttribute("content") || "" : "";
}

/** Copy text to the clipboard; falls back to selecting `input` (and execCommand) where the
 * Clipboard API is missing or refused. Resolves to true when it was copied. */
export function copyText(text, input) {
  const select = () => {
    if (!input) return false;
    input.focus();
    input.select();
    try { return document.execCommand("copy"); } catch (err) { return false; }
  };
  if (navigator.clipboard && window.isSecureContext) {
    return navigator.clipboard.writeText(text).then(() => true, () => select());
  }
  return Promise.resolve(select());
}

/** Replace the children of `target` with server-rendered HTML (a Jinja partial). */
export function setHtml(target, html) {
  const template = document.createElement("template");
  template.innerHTML = html;
  target.replaceChildren(template.content);
}
