/* Daydream — what every page does: dismissable flash messages, show/hide password
 * toggles, and the phone menu. Loaded by base.html. */
import { byId } from "../lib/dom.js";

// Dismissable flash messages.
document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-dismiss='flash']");
  if (!button) return;
  const flash = button.closest(".flash");
  if (!flash) return;
  const container = flash.parentElement;
  flash.remove();
  if (container && container.classList.contains("flashes") && !container.children.length) container.remove();
});

// Show / hide password toggles: <button data-toggle-password="input-id">.
document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-toggle-password]");
  if (!button) return;
  const input = byId(button.getAttribute("data-toggle-password"));
  if (!input) return;
  const show = input.type === "password";
  input.type = show ? "text" : "password";
  button.textContent = show ? "Hide" : "Show";
  button.setAttribute("aria-pressed", show ? "true" : "false");
  button.setAttribute("aria-label", show ? "Hide password" : "Show password");
  input.focus();
});

// The phone menu: the "Menu" button opens and closes the main links; Escape, a click
// elsewhere or following a link closes it.
const toggle = byId("nav-toggle");
const menu = byId("nav-menu");
if (toggle && menu) {
  const setOpen = (open) => {
    menu.classList.toggle("is-open", open);
    toggle.setAttribute("aria-expanded", open ? "true" : "false");
    toggle.setAttribute("aria-label", open ? "Close the menu" : "Open the menu");
  };
  toggle.addEventListener("click", () => {
    const open = !menu.classList.contains("is-open");
    setOpen(open);
    if (open) {
      const first = menu.querySelector("a");
      if (first) first.focus();
    }
  });
  menu.addEventListener("click", (event) => { if (event.target.closest("a")) setOpen(false); });
  document.addEventListener("click", (event) => {
    if (menu.classList.contains("is-open") && !event.target.closest("[data-nav]")) setOpen(false);
  });
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && menu.classList.contains("is-open")) {
      setOpen(false);
      toggle.focus();
    }
  });
}
