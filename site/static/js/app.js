/* Daydream — small behaviours shared by every page (no dependencies). */
(function () {
  "use strict";

  // Dismissable flash messages.
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-dismiss='flash']");
    if (!button) return;
    var flash = button.closest(".flash");
    if (!flash) return;
    var container = flash.parentElement;
    flash.remove();
    if (container && container.classList.contains("flashes") && !container.children.length) {
      container.remove();
    }
  });

  // Show / hide password toggles: <button data-toggle-password="input-id">.
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-toggle-password]");
    if (!button) return;
    var input = document.getElementById(button.getAttribute("data-toggle-password"));
    if (!input) return;
    var show = input.type === "password";
    input.type = show ? "text" : "password";
    button.textContent = show ? "Hide" : "Show";
    button.setAttribute("aria-pressed", show ? "true" : "false");
    button.setAttribute("aria-label", show ? "Hide password" : "Show password");
    input.focus();
  });
})();
