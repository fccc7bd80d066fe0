/* Daydream — the phone menu: the "Menu" button opens and closes the main links;
   Escape, a click elsewhere or following a link closes it. */
(function () {
  "use strict";
  var toggle = document.getElementById("nav-toggle");
  var menu = document.getElementById("nav-menu");
  if (!toggle || !menu) return;

  function setOpen(open) {
    menu.classList.toggle("is-open", open);
    toggle.setAttribute("aria-expanded", open ? "true" : "false");
    toggle.setAttribute("aria-label", open ? "Close the menu" : "Open the menu");
  }

  toggle.addEventListener("click", function () {
    var open = !menu.classList.contains("is-open");
    setOpen(open);
    if (open) {
      var first = menu.querySelector("a");
      if (first) first.focus();
    }
  });
  menu.addEventListener("click", function (event) {
    if (event.target.closest("a")) setOpen(false);
  });
  document.addEventListener("click", function (event) {
    if (menu.classList.contains("is-open") && !event.target.closest("[data-nav]")) setOpen(false);
  });
  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape" && menu.classList.contains("is-open")) {
      setOpen(false);
      toggle.focus();
    }
  });
})();
