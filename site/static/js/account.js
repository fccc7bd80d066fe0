/* Daydream account page (/account): tabs, profile, password, delete, vouchers, the
 * ledger, personal API tokens and "download everything". Talks to /api/v1. */
(function () {
  "use strict";

  var byId = Daydream.byId;
  var el = Daydream.el;
  /** Resolves (never rejects) to {ok, status, data, error}: see app.js. */
  var api = Daydream.api;

  function fmtTime(iso, dateOnly) {
    if (!iso) return "—";
    var d = new Date(iso);
    if (isNaN(d.getTime())) return iso;
    return dateOnly ? d.toLocaleDateString() : d.toLocaleString([], { dateStyle: "medium", timeStyle: "short" });
  }

  function localizeTimes(root) {
    Array.prototype.forEach.call((root || document).querySelectorAll("time.js-local-time"), function (t) {
      t.textContent = fmtTime(t.getAttribute("datetime"), t.dataset.format === "date");
    });
  }

  function setBalance(tokens) {
    [byId("fact-balance"), byId("tokens-balance")].forEach(function (node) { if (node) node.textContent = tokens; });
    var header = byId("balance");
    if (header) {
      header.dataset.tokens = tokens;
      header.textContent = tokens + (tokens === 1 ? " token" : " tokens");
      var pill = header.closest(".balance");
      if (pill) { pill.classList.remove("is-bumped"); void pill.offsetWidth; pill.classList.add("is-bumped"); }
    }
  }

  /* ---------- tabs ---------- */
  var tabs = Array.prototype.slice.call(document.querySelectorAll('.tabs [role="tab"]'));
  function showTab(name, focus) {
    var found = tabs.some(function (t) { return t.id === "tab-" + name; });
    if (!found) name = "overview";
    tabs.forEach(function (tab) {
      var on = tab.id === "tab-" + name;
      tab.setAttribute("aria-selected", on ? "true" : "false");
      tab.tabIndex = on ? 0 : -1;
      var panel = byId(tab.getAttribute("aria-controls"));
      if (panel) panel.hidden = !on;
      if (on && focus) tab.focus();
    });
    if (name === "api") loadTokens();
  }
  tabs.forEach(function (tab, i) {
    tab.addEventListener("click", function (event) {
      event.preventDefault();
      var name = tab.id.replace("tab-", "");
      history.replaceState(null, "", "#" + name);
      showTab(name);
    });
    tab.addEventListener("keydown", function (event) {
      var step = event.key === "ArrowRight" ? 1 : event.key === "ArrowLeft" ? -1 : 0;
      if (!step) return;
      event.preventDefault();
      var next = tabs[(i + step + tabs.length) % tabs.length];
      history.replaceState(null, "", "#" + next.id.replace("tab-", ""));
      showTab(next.id.replace("tab-", ""), true);
    });
  });
  window.addEventListener("hashchange", function () { showTab(location.hash.slice(1)); });

  /* ---------- form helpers ---------- */
  function clearErrors(form) {
    Array.prototype.forEach.call(form.querySelectorAll(".field-error"), function (p) { p.hidden = true; p.textContent = ""; });
    Array.prototype.forEach.call(form.querySelectorAll("[aria-invalid]"), function (i) { i.removeAttribute("aria-invalid"); });
  }

  function showErrors(form, error, fallbackField) {
    var fields = (error && error.fields) || {};
    if (error && error.field && !fields[error.field]) fields[error.field] = error.message;
    var shown = false;
    Object.keys(fields).forEach(function (name) {
      var box = form.querySelector("#" + CSS.escape(name) + "-error");
      if (!box) return;
      box.textContent = fields[name].replace(new RegExp("^" + name + ": "), "");
      box.hidden = false;
      var input = form.querySelector('[name="' + name + '"]');
      if (input) input.setAttribute("aria-invalid", "true");
      shown = true;
    });
    if (!shown) {
      var box = form.querySelector("#" + fallbackField + "-error");
      if (box) { box.textContent = (error && error.message) || "Something went wrong."; box.hidden = false; }
    }
  }

  function busy(button, on, label) {
    if (!button) return;
    if (on) { button.dataset.label = button.textContent; button.textContent = label || "Saving…"; }
    else if (button.dataset.label) button.textContent = button.dataset.label;
    button.disabled = on;
  }

  function status(id, text, ok) {
    var node = byId(id);
    if (!node) return;
    node.textContent = text || "";
    node.classList.toggle("is-ok", !!ok);
  }

  /* ---------- profile ---------- */
  var profileForm = byId("profile-form");
  if (profileForm) profileForm.addEventListener("submit", function (event) {
    event.preventDefault();
    clearErrors(profileForm);
    status("profile-status", "");
    var data = {};
    ["first_name", "last_name", "email", "mobile"].forEach(function (name) { data[name] = profileForm.elements[name].value; });
    var button = byId("profile-save");
    busy(button, true);
    api("PATCH", "/api/v1/me", data).then(function (res) {
      busy(button, false);
      if (!res.ok) { showErrors(profileForm, res.error, "email"); status("profile-status", "Not saved."); return; }
      var u = res.data;
      byId("fact-email").textContent = u.email;
      byId("fact-name").textContent = ((u.first_name || "") + " " + (u.last_name || "")).trim() || "—";
      profileForm.elements.email.value = u.email;
      var pending = byId("email-pending");
      if (pending) {
        pending.hidden = !u.pending_email;
        byId("email-pending-address").textContent = u.pending_email || "";
      }
      status("profile-status", u.pending_email && u.pending_email.toLowerCase() === data.email.trim().toLowerCase()
        ? "Saved. We sent a link to " + u.pending_email + ": your email changes when you follow it." : "Saved.", true);
    });
  });

  /* ---------- password ---------- */
  var passwordForm = byId("password-form");
  if (passwordForm) passwordForm.addEventListener("submit", function (event) {
    event.preventDefault();
    clearErrors(passwordForm);
    status("password-status", "");
    var button = byId("password-save");
    busy(button, true);
    api("POST", "/api/v1/me/password", {
      current_password: passwordForm.elements.current_password.value,
      new_password: passwordForm.elements.new_password.value,
      keep_sessions: passwordForm.elements.keep_sessions.checked,
    }).then(function (res) {
      busy(button, false);
      if (!res.ok) { showErrors(passwordForm, res.error, "current_password"); return; }
      var kept = passwordForm.elements.keep_sessions.checked;
      passwordForm.reset();
      status("password-status", kept ? "Password changed." :
        "Password changed. Your other sessions are signed out and your API tokens revoked.", true);
      loadedTokens = false;
    });
  });

  /* ---------- delete account ---------- */
  var deleteForm = byId("delete-form");
  var deleteConfirm = byId("delete_confirm");
  var deleteButton = byId("delete-account");
  if (deleteConfirm) deleteConfirm.addEventListener("change", function () { deleteButton.disabled = !deleteConfirm.checked; });
  if (deleteForm) deleteForm.addEventListener("submit", function (event) {
    event.preventDefault();
    clearErrors(deleteForm);
    if (!deleteConfirm.checked) return;
    busy(deleteButton, true, "Deleting…");
    api("DELETE", "/api/v1/me", { password: deleteForm.elements.password.value }).then(function (res) {
      if (!res.ok) { busy(deleteButton, false); showErrors(deleteForm, res.error, "password"); return; }
      window.location.assign("/");
    });
  });

  /* ---------- vouchers ---------- */
  var redeemForm = byId("redeem-form");
  if (redeemForm) redeemForm.addEventListener("submit", function (event) {
    event.preventDefault();
    clearErrors(redeemForm);
    status("redeem-status", "");
    var input = byId("voucher-code");
    var code = input.value.trim();
    if (!code) { showErrors(redeemForm, { field: "code", message: "Enter the code from your voucher." }, "code"); return; }
    var button = byId("redeem-submit");
    busy(button, true, "Redeeming…");
    api("POST", "/api/v1/me/redeem", { code: code }).then(function (res) {
      busy(button, false);
      if (!res.ok) {
        var err = res.error || {};
        showErrors(redeemForm, { field: "code", message: err.message }, "code");
        return;
      }
      input.value = "";
      setBalance(res.data.tokens);
      status("redeem-status", "Redeemed: " + res.data.redeemed + " tokens added. Your balance is " + res.data.tokens + ".", true);
      loadLedger(0);
    });
  });

  /* ---------- ledger ---------- */
  var ledgerOffset = 0;
  var ledgerPager = byId("ledger-pager");
  var ledgerLimit = ledgerPager ? Number(ledgerPager.dataset.limit) || 20 : 20;

  function ledgerRow(row) {
    var delta = (row.delta > 0 ? "+" : "") + row.delta;
    var note = el("td", { "data-label": "Note", class: "note-cell" }, [row.note || ""]);
    if (row.task_id) { note.appendChild(document.createTextNode(" ")); note.appendChild(el("code", { class: "task-ref", text: row.task_id })); }
    return el("tr", { class: "ledger-row", dataset: { kind: row.kind } }, [
      el("td", { "data-label": "When" }, [el("time", { datetime: row.created_at, text: fmtTime(row.created_at) })]),
      el("td", { "data-label": "What" }, [el("span", { class: "kind kind--" + row.kind, text: row.kind.replace(/_/g, " ") })]),
      el("td", { "data-label": "Change", class: "num-col delta " + (row.delta > 0 ? "delta--plus" : "delta--minus"), text: delta }),
      el("td", { "data-label": "Balance", class: "num-col", text: String(row.balance_after) }),
      note,
    ]);
  }

  function loadLedger(offset) {
    return api("GET", "/api/v1/me/ledger?offset=" + offset + "&limit=" + ledgerLimit).then(function (res) {
      if (!res.ok) return;
      ledgerOffset = offset;
      byId("ledger-body").replaceChildren.apply(byId("ledger-body"), res.data.items.map(ledgerRow));
      byId("ledger-total").textContent = res.data.total + (res.data.total === 1 ? " entry" : " entries");
      byId("ledger-page").textContent = String(Math.floor(offset / ledgerLimit) + 1) + " / " + Math.max(1, Math.ceil(res.data.total / ledgerLimit));
      byId("ledger-prev").disabled = offset === 0;
      byId("ledger-next").disabled = offset + ledgerLimit >= res.data.total;
    });
  }
  if (byId("ledger-prev")) byId("ledger-prev").addEventListener("click", function () { loadLedger(Math.max(0, ledgerOffset - ledgerLimit)); });
  if (byId("ledger-next")) byId("ledger-next").addEventListener("click", function () { loadLedger(ledgerOffset + ledgerLimit); });

  /* ---------- API tokens ---------- */
  var loadedTokens = false;
  function tokenRow(token) {
    var revoke = el("button", { type: "button", class: "btn btn--danger btn--tiny", text: "Revoke", "aria-label": "Revoke " + token.name });
    revoke.addEventListener("click", function () {
      if (!window.confirm("Revoke the token \u201c" + token.name + "\u201d? Scripts using it stop working.")) return;
      revoke.disabled = true;
      api("DELETE", "/api/v1/auth/tokens/" + encodeURIComponent(token.id)).then(function (res) {
        if (res.ok || res.status === 404) loadTokens(true); else { revoke.disabled = false; window.alert(res.error.message); }
      });
    });
    return el("tr", { class: "api-token-row", dataset: { tokenId: token.id } }, [
      el("td", { "data-label": "Name", class: "token-name", text: token.name }),
      el("td", { "data-label": "Created", text: fmtTime(token.created_at) }),
      el("td", { "data-label": "Last used", text: token.last_used_at ? fmtTime(token.last_used_at) : "never" }),
      el("td", { "data-label": "" }, [revoke]),
    ]);
  }
  function loadTokens(force) {
    if (loadedTokens && !force) return;
    loadedTokens = true;
    api("GET", "/api/v1/auth/tokens").then(function (res) {
      if (!res.ok) return;
      var body = byId("api-tokens-body");
      body.replaceChildren.apply(body, res.data.items.map(tokenRow));
      byId("api-tokens-empty").hidden = res.data.items.length > 0;
    });
  }
  var tokenForm = byId("token-form");
  if (tokenForm) tokenForm.addEventListener("submit", function (event) {
    event.preventDefault();
    clearErrors(tokenForm);
    var button = byId("token-create");
    busy(button, true, "Creating…");
    api("POST", "/api/v1/auth/tokens", { name: byId("token-name").value }).then(function (res) {
      busy(button, false);
      if (!res.ok) { showErrors(tokenForm, res.error, "name"); return; }
      byId("token-name").value = "";
      byId("new-token").hidden = false;
      byId("new-token-value").value = res.data.token;
      byId("new-token-value").select();
      loadTokens(true);
    });
  });
  if (byId("new-token-copy")) byId("new-token-copy").addEventListener("click", function () {
    var value = byId("new-token-value").value;
    var done = function () { byId("new-token-copy").textContent = "Copied"; };
    if (navigator.clipboard) navigator.clipboard.writeText(value).then(done, function () { byId("new-token-value").select(); });
    else { byId("new-token-value").select(); document.execCommand("copy"); done(); }
  });

  /* ---------- download everything ---------- */
  var accountRoot = document.querySelector(".account");
  var archiveKey = "daydream.account.archive." + (accountRoot ? accountRoot.dataset.userId : "");
  function showArchive(archive) {
    var box = byId("archive-progress"), bar = byId("archive-bar"), text = byId("archive-status"), link = byId("archive-download");
    box.hidden = false;
    var total = (archive.progress && archive.progress.total) || archive.image_count || 0;
    var done = (archive.progress && archive.progress.done) || 0;
    bar.max = Math.max(total, 1);
    bar.value = archive.state === "ready" ? bar.max : done;
    if (archive.state === "ready") {
      text.textContent = "Ready: " + total + " images.";
      link.href = archive.url; link.hidden = false;
    } else if (archive.state === "failed" || archive.state === "expired") {
      text.textContent = archive.state === "failed" ? "The archive failed: " + (archive.error || "try again.") : "That archive expired; build a new one.";
      link.hidden = true;
      byId("download-all").disabled = false;
      try { localStorage.removeItem(archiveKey); } catch (e) { /* private mode */ }
    } else {
      text.textContent = (archive.state === "queued" ? "Waiting to start… " : "Building… ") + done + " / " + total + " images";
      link.hidden = true;
    }
  }
  function pollArchive(id) {
    api("GET", "/api/v1/archives/" + encodeURIComponent(id)).then(function (res) {
      if (!res.ok) {
        try { localStorage.removeItem(archiveKey); } catch (e) { /* private mode */ }
        if (res.status !== 404) { byId("archive-error").textContent = res.error.message; byId("archive-error").hidden = false; }
        byId("download-all").disabled = false;
        return;
      }
      showArchive(res.data);
      if (res.data.state === "queued" || res.data.state === "building") window.setTimeout(function () { pollArchive(id); }, 1000);
      else byId("download-all").disabled = false;
    });
  }
  var downloadAll = byId("download-all");
  if (downloadAll) downloadAll.addEventListener("click", function () {
    byId("archive-error").hidden = true;
    downloadAll.disabled = true;
    api("POST", "/api/v1/archives", { all: true }).then(function (res) {
      if (!res.ok) {
        byId("archive-error").textContent = res.status === 404 ? "Archives are not available on this server yet." : res.error.message;
        byId("archive-error").hidden = false;
        downloadAll.disabled = false;
        return;
      }
      try { localStorage.setItem(archiveKey, res.data.id); } catch (e) { /* private mode */ }
      showArchive(res.data);
      pollArchive(res.data.id);
    });
  });
  try {
    var pending = localStorage.getItem(archiveKey);
    if (pending && byId("archive-progress")) pollArchive(pending);
  } catch (e) { /* private mode */ }

  localizeTimes();
  showTab((location.hash || "#overview").slice(1));
})();
