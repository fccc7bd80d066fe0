/* Daydream — the showcase (/gallery): a lightbox with keyboard navigation, "Show more",
   and for staff the curation buttons (hide, show, unfeature, feature). */
(function () {
  "use strict";
  var root = document.querySelector(".showcase");
  if (!root) return;
  var grid = document.getElementById("showcase-grid");
  var more = document.getElementById("showcase-more");
  var statusEl = document.getElementById("showcase-status");
  var staff = root.dataset.staff === "true";
  var pageSize = parseInt(root.dataset.pageSize, 10) || 48;

  function say(text) { if (statusEl) statusEl.textContent = text || ""; }

  /* The shared API call (app.js); resolves to the answer's data (null for a 204), or
     rejects with an Error whose message says why. */
  function api(method, url, body) {
    return Daydream.api(method, url, body).then(function (res) {
      if (res.status === 204) return null;
      var data = res.data || {};
      if (!res.ok) {
        throw new Error((data.error && data.error.message)
          || (res.status ? "Failed (" + res.status + ")." : res.error.message));
      }
      return data;
    });
  }

  /* ---- Show more ---- */
  function itemElement(item) {
    var li = document.createElement("li");
    li.className = "showcase-item" + (item.hidden ? " is-hidden" : "");
    li.id = "item-" + item.id;
    li.dataset.id = item.id;
    li.dataset.kind = item.kind;
    li.dataset.hidden = item.hidden ? "true" : "false";
    var a = document.createElement("a");
    a.className = "showcase-item__link";
    a.href = item.url;
    a.title = item.title;
    a.setAttribute("data-lightbox", "");
    var img = document.createElement("img");
    img.className = "showcase-item__img";
    img.src = item.thumbnail_url;
    img.alt = item.title;
    img.width = item.width;
    img.height = item.height;
    img.loading = "lazy";
    a.appendChild(img);
    var p = document.createElement("p");
    p.className = "showcase-item__title";
    p.textContent = item.title;
    li.appendChild(a);
    li.appendChild(p);
    if (staff) {
      var tools = document.createElement("div");
      tools.className = "showcase-item__staff";
      var tag = document.createElement("span");
      tag.className = "tag";
      tag.textContent = (item.kind === "folder" ? "Folder" : "Featured") + (item.hidden ? " · hidden" : "");
      tools.appendChild(tag);
      tools.appendChild(button(item.hidden ? "show" : "hide", item.hidden ? "Show" : "Hide"));
      if (item.kind === "featured") tools.appendChild(button("unfeature", "Unfeature", "btn--danger"));
      li.appendChild(tools);
    }
    return li;
  }

  function button(action, label, extra) {
    var b = document.createElement("button");
    b.type = "button";
    b.className = "btn btn--tiny" + (extra ? " " + extra : "");
    b.dataset.action = action;
    b.textContent = label;
    return b;
  }

  if (more) {
    more.addEventListener("click", function () {
      var offset = grid.querySelectorAll(".showcase-item").length;
      more.disabled = true;
      say("Loading…");
      api("GET", "/api/v1/showcase?offset=" + offset + "&limit=" + pageSize + (staff ? "&include_hidden=true" : ""))
        .then(function (data) {
          data.items.forEach(function (item) {
            if (!document.getElementById("item-" + item.id)) grid.appendChild(itemElement(item));
          });
          more.hidden = offset + data.items.length >= data.total;
          say("");
        })
        .catch(function (error) { say(error.message); })
        .then(function () { more.disabled = false; });
    });
  }

  /* ---- Staff curation ---- */
  root.addEventListener("click", function (event) {
    var b = event.target.closest("button[data-action]");
    if (!b || !staff) return;
    var li = b.closest("[data-id]");
    var id = li && li.dataset.id;
    if (!id) return;
    var action = b.dataset.action;
    var request = action === "feature" ? api("POST", "/api/v1/showcase", { image_id: id })
      : action === "unfeature" ? api("DELETE", "/api/v1/showcase/" + encodeURIComponent(id))
      : api("PATCH", "/api/v1/showcase/" + encodeURIComponent(id), { hidden: action === "hide" });
    b.disabled = true;
    say("Saving…");
    request.then(function () { window.location.reload(); })
      .catch(function (error) { b.disabled = false; say(error.message); });
  });

  /* ---- Lightbox ---- */
  var box = document.getElementById("lightbox");
  var boxImg = document.getElementById("lightbox-img");
  var caption = document.getElementById("lightbox-caption");
  var current = null;
  if (!box || typeof box.showModal !== "function") return;

  function links() {
    var list = current ? current.closest("ul") : grid;
    return Array.prototype.slice.call((list || grid).querySelectorAll("a[data-lightbox]"));
  }

  function show(link) {
    current = link;
    boxImg.src = link.getAttribute("href");
    boxImg.alt = link.title || "";
    caption.textContent = link.title || "";
    if (!box.open) box.showModal();
  }

  function step(delta) {
    var all = links();
    if (!current || !all.length) return;
    var index = (all.indexOf(current) + delta + all.length) % all.length;
    show(all[index]);
  }

  root.addEventListener("click", function (event) {
    var link = event.target.closest("a[data-lightbox]");
    if (!link || event.metaKey || event.ctrlKey || event.shiftKey) return;
    event.preventDefault();
    show(link);
  });
  box.addEventListener("click", function (event) {
    var stepper = event.target.closest("[data-lightbox-step]");
    if (stepper) { step(parseInt(stepper.dataset.lightboxStep, 10)); return; }
    if (event.target.closest("[data-lightbox-close]") || event.target === box) box.close();
  });
  box.addEventListener("keydown", function (event) {
    if (event.key === "ArrowRight") { event.preventDefault(); step(1); }
    if (event.key === "ArrowLeft") { event.preventDefault(); step(-1); }
  });
  box.addEventListener("close", function () {
    boxImg.removeAttribute("src");
    if (current) current.focus();
  });
})();
