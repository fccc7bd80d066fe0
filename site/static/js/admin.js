/* Daydream staff pages: users (/admin), vouchers (/admin/vouchers), queue (/admin/queue).
 * The page says which it is with data-staff-page; everything goes through the staff API.
 * A 403 with code reauth_required opens the password dialog, then retries. */
(function () {
  "use strict";

  var root = document.querySelector("[data-staff-page]");
  if (!root) return;
  var page = root.dataset.staffPage;

  var byId = Daydream.byId;
  var el = Daydream.el;

  /** The shared API call (app.js), with the staff pages' 403 message; no re-auth. */
  function rawApi(method, path, body) {
    return Daydream.api(method, path, body, { messages: { 403: "This page is for staff only." } });
  }

  /* ---------- re-authentication ---------- */
  var reauthDialog = byId("reauth-dialog");
  function askPassword() {
    return new Promise(function (resolve) {
      if (!reauthDialog || !reauthDialog.showModal) { resolve(false); return; }
      var form = byId("reauth-form"), input = byId("reauth-password"), error = byId("reauth-error");
      input.value = ""; error.hidden = true;
      var finish = function (ok) {
        form.removeEventListener("submit", onSubmit);
        byId("reauth-cancel").removeEventListener("click", onCancel);
        reauthDialog.removeEventListener("cancel", onCancel);
        if (reauthDialog.open) reauthDialog.close();
        resolve(ok);
      };
      var onSubmit = function (event) {
        event.preventDefault();
        rawApi("POST", "/api/v1/auth/reauth", { password: input.value }).then(function (res) {
          if (res.ok) finish(true);
          else { error.textContent = res.error.message.replace(/^password: /, "Password "); error.hidden = false; input.focus(); }
        });
      };
      var onCancel = function () { finish(false); };
      form.addEventListener("submit", onSubmit);
      byId("reauth-cancel").addEventListener("click", onCancel);
      reauthDialog.addEventListener("cancel", onCancel);
      reauthDialog.showModal();
      input.focus();
    });
  }

  function api(method, path, body) {
    return rawApi(method, path, body).then(function (res) {
      if (res.status === 403 && res.error && res.error.code === "reauth_required") {
        return askPassword().then(function (ok) {
          return ok ? rawApi(method, path, body)
            : { ok: false, status: 403, data: null, error: { message: "Canceled: your password is needed for this." } };
        });
      }
      return res;
    });
  }

  function fmtTime(iso) {
    if (!iso) return "—";
    var d = new Date(iso);
    return isNaN(d.getTime()) ? iso : d.toLocaleString([], { dateStyle: "medium", timeStyle: "short" });
  }

  function ago(iso) {
    if (!iso) return "never";
    var s = Math.max(0, (Date.now() - new Date(iso).getTime()) / 1000);
    if (s < 90) return "just now";
    if (s < 3600) return Math.round(s / 60) + " min ago";
    if (s < 86400 * 2) return Math.round(s / 3600) + " h ago";
    return Math.round(s / 86400) + " days ago";
  }

  function showError(id, message) {
    var box = byId(id);
    if (!box) return;
    box.textContent = message || "";
    box.hidden = !message;
  }

  function pager(prefix, offset, limit, total, go) {
    byId(prefix + "-prev").disabled = offset === 0;
    byId(prefix + "-next").disabled = offset + limit >= total;
    byId(prefix + "-page").textContent = total ? (offset + 1) + "–" + Math.min(offset + limit, total) + " of " + total : "";
    byId(prefix + "-prev").onclick = function () { go(Math.max(0, offset - limit)); };
    byId(prefix + "-next").onclick = function () { go(offset + limit); };
  }

  /* =================== users =================== */
  if (page === "users") {
    var LIMIT = 25, offset = 0, query = "", users = [], current = null;
    var dialog = byId("user-dialog");

    var loadUsers = function (at) {
      offset = at || 0;
      var path = "/api/v1/admin/users?offset=" + offset + "&limit=" + LIMIT + (query ? "&q=" + encodeURIComponent(query) : "");
      return rawApi("GET", path).then(function (res) {
        if (!res.ok) { showError("users-error", res.error.message); return; }
        showError("users-error", "");
        users = res.data.items;
        var body = byId("users-body");
        body.replaceChildren.apply(body, users.map(userRow));
        byId("users-empty").hidden = users.length > 0;
        pager("users", offset, LIMIT, res.data.total, loadUsers);
      });
    };

    var userRow = function (u) {
      var manage = el("button", { type: "button", class: "btn btn--small user-manage", text: "Manage", "aria-label": "Manage " + u.username });
      manage.addEventListener("click", function () { openUser(u); });
      return el("tr", { class: "user-row", dataset: { userId: u.id, username: u.username } }, [
        el("td", { "data-label": "User", class: "user-cell" }, [el("div", {}, [el("strong", { text: u.username }), el("small", { text: u.email })])]),
        el("td", { "data-label": "Public id" }, [el("code", { class: "task-ref", text: u.id })]),
        el("td", { "data-label": "Role" }, [el("span", { class: "pill" + (u.role === "staff" ? " pill--staff" : ""), text: u.role })]),
        el("td", { "data-label": "Plan", class: "user-tier", text: u.tier_name || u.tier }),
        el("td", { "data-label": "Balance", class: "num-col user-tokens", text: String(u.tokens) }),
        el("td", { "data-label": "Active" }, [el("span", { class: "pill " + (u.active ? "pill--ok" : "pill--inactive"), text: u.active ? "active" : "deactivated" })]),
        el("td", { "data-label": "Tasks", class: "num-col", text: String(u.tasks) }),
        el("td", { "data-label": "Images", class: "num-col", text: String(u.images) }),
        el("td", { "data-label": "Last seen", title: fmtTime(u.last_seen_at), text: ago(u.last_seen_at) }),
        el("td", { "data-label": "" }, [manage]),
      ]);
    };

    var fillDialog = function (u) {
      current = u;
      byId("user-dialog-title").textContent = u.username;
      byId("user-dialog-summary").textContent = u.email + " · " + u.tokens + " tokens · " + (u.tier_name || u.tier) + " · " + u.role + (u.active ? "" : " · deactivated");
      byId("user-tier").value = u.tier;
      byId("user-role").value = u.role;
      byId("user-active").checked = !!u.active;
      byId("delete-confirm").value = "";
      byId("user-delete").disabled = true;
    };

    var hideResetLink = function () {
      byId("reset-link").hidden = true;
      byId("reset-link-value").value = "";
      byId("reset-link-copy").textContent = "Copy";
    };

    var openUser = function (u) {
      fillDialog(u);
      showError("user-dialog-error", "");
      byId("user-dialog-status").textContent = "";
      byId("grant-form").reset();
      hideResetLink();
      if (dialog.showModal) dialog.showModal(); else dialog.setAttribute("open", "");
    };

    var afterChange = function (res, message) {
      if (!res.ok) { showError("user-dialog-error", res.error.message); return false; }
      showError("user-dialog-error", "");
      fillDialog(res.data);
      byId("user-dialog-status").textContent = message;
      loadUsers(offset);
      return true;
    };

    byId("user-dialog-close").addEventListener("click", function () { dialog.close(); });

    byId("grant-form").addEventListener("submit", function (event) {
      event.preventDefault();
      var amount = Number(byId("grant-amount").value);
      var reason = byId("grant-reason").value.trim();
      if (!Number.isInteger(amount) || amount === 0) { showError("user-dialog-error", "Enter a whole number of tokens other than 0."); return; }
      if (!reason) { showError("user-dialog-error", "Say why: the reason goes in the user's ledger."); return; }
      var button = byId("grant-submit");
      button.disabled = true;
      api("PATCH", "/api/v1/admin/users/" + encodeURIComponent(current.id), { tokens_delta: amount, reason: reason }).then(function (res) {
        button.disabled = false;
        if (afterChange(res, (amount > 0 ? "Granted " + amount : "Revoked " + (-amount)) + " tokens. Balance: " + (res.data ? res.data.tokens : "?") + ".")) byId("grant-form").reset();
      });
    });

    byId("user-save").addEventListener("click", function () {
      var change = {};
      if (byId("user-tier").value !== current.tier) change.tier = byId("user-tier").value;
      if (byId("user-role").value !== current.role) change.role = byId("user-role").value;
      if (byId("user-active").checked !== !!current.active) change.active = byId("user-active").checked;
      if (!Object.keys(change).length) { byId("user-dialog-status").textContent = "Nothing changed."; return; }
      if (change.active === false && !window.confirm("Deactivate " + current.username + "? They are signed out, cannot sign in, and their waiting tasks are canceled and refunded.")) return;
      api("PATCH", "/api/v1/admin/users/" + encodeURIComponent(current.id), change).then(function (res) { afterChange(res, "Saved."); });
    });

    byId("reset-link-make").addEventListener("click", function () {
      var button = byId("reset-link-make"), who = current;
      button.disabled = true;
      hideResetLink();
      api("POST", "/api/v1/admin/users/" + encodeURIComponent(who.id) + "/reset-link").then(function (res) {
        button.disabled = false;
        if (!res.ok) { showError("user-dialog-error", res.error.message); return; }
        showError("user-dialog-error", "");
        byId("reset-link").hidden = false;
        byId("reset-link-value").value = res.data.url;
        byId("reset-link-expiry").textContent = "Works once, until " + fmtTime(res.data.expires_at) + ". Copy it now: it is not shown again.";
        byId("reset-link-value").select();
        byId("user-dialog-status").textContent = "Reset link made for " + who.username + ".";
      });
    });
    byId("reset-link-copy").addEventListener("click", function () {
      var input = byId("reset-link-value");
      var done = function () { byId("reset-link-copy").textContent = "Copied"; };
      if (navigator.clipboard) navigator.clipboard.writeText(input.value).then(done, function () { input.select(); });
      else { input.select(); document.execCommand("copy"); done(); }
    });
    dialog.addEventListener("close", hideResetLink);

    byId("delete-confirm").addEventListener("input", function () {
      byId("user-delete").disabled = byId("delete-confirm").value !== current.username;
    });
    byId("user-delete").addEventListener("click", function () {
      if (byId("delete-confirm").value !== current.username) return;
      var name = current.username;
      api("DELETE", "/api/v1/admin/users/" + encodeURIComponent(current.id)).then(function (res) {
        if (!res.ok) { showError("user-dialog-error", res.error.message); return; }
        dialog.close();
        byId("users-status").textContent = name + " was deleted, with their images.";
        loadUsers(offset);
      });
    });

    byId("user-search").addEventListener("submit", function (event) {
      event.preventDefault();
      query = byId("user-q").value.trim();
      loadUsers(0);
    });
    var searchTimer = null;
    byId("user-q").addEventListener("input", function () {
      window.clearTimeout(searchTimer);
      searchTimer = window.setTimeout(function () { query = byId("user-q").value.trim(); loadUsers(0); }, 300);
    });
    loadUsers(0);
  }

  /* =================== vouchers =================== */
  if (page === "vouchers") {
    var VLIMIT = 50, voffset = 0;
    var loadVouchers = function (at) {
      voffset = at || 0;
      var state = byId("voucher-filter").value;
      return rawApi("GET", "/api/v1/admin/vouchers?state=" + state + "&offset=" + voffset + "&limit=" + VLIMIT).then(function (res) {
        if (!res.ok) return;
        var body = byId("vouchers-body");
        body.replaceChildren.apply(body, res.data.items.map(function (v) {
          return el("tr", { class: "voucher-row", dataset: { code: v.code, redeemed: v.redeemed ? "true" : "false" } }, [
            el("td", { "data-label": "Code" }, [el("code", { class: "task-ref", text: v.code })]),
            el("td", { "data-label": "Tokens", class: "num-col", text: String(v.tokens) }),
            el("td", { "data-label": "Note", class: "note-cell", text: v.note || "" }),
            el("td", { "data-label": "Made", text: fmtTime(v.created_at) }),
            el("td", { "data-label": "Redeemed by", class: "voucher-redeemed-by", text: v.redeemed_by || (v.redeemed ? "(deleted user)" : "—") }),
            el("td", { "data-label": "Redeemed", text: v.redeemed ? fmtTime(v.redeemed_at) : "not yet" }),
          ]);
        }));
        byId("vouchers-empty").hidden = res.data.items.length > 0;
        pager("vouchers", voffset, VLIMIT, res.data.total, loadVouchers);
      });
    };
    byId("voucher-filter").addEventListener("change", function () { loadVouchers(0); });
    byId("voucher-form").addEventListener("submit", function (event) {
      event.preventDefault();
      ["tokens-error", "count-error"].forEach(function (id) { showError(id, ""); });
      var button = byId("voucher-create");
      button.disabled = true;
      api("POST", "/api/v1/admin/vouchers", {
        tokens: Number(byId("voucher-tokens").value), count: Number(byId("voucher-count").value),
        note: byId("voucher-note").value,
      }).then(function (res) {
        button.disabled = false;
        if (!res.ok) {
          var field = res.error.field;
          if (field === "tokens" || field === "count") showError(field + "-error", res.error.message.replace(field + ": ", ""));
          else byId("voucher-status").textContent = res.error.message;
          return;
        }
        byId("voucher-status").textContent = res.data.codes.length + " codes worth " + res.data.tokens + " tokens each.";
        byId("new-codes").hidden = false;
        byId("new-codes-text").value = res.data.codes.join("\n");
        loadVouchers(0);
      });
    });
    loadVouchers(0);
  }

  /* =================== queue =================== */
  if (page === "queue") {
    var timer = null;
    var cancelTask = function (task, button) {
      if (!window.confirm("Cancel this task of " + task.owner.username + "? They get their tokens back.")) return;
      button.disabled = true;
      rawApi("POST", "/api/v1/admin/tasks/" + encodeURIComponent(task.id) + "/cancel").then(function (res) {
        if (!res.ok && res.status !== 409) showError("queue-error", res.error.message);
        refresh();
      });
    };
    var taskRow = function (t) {
      var cancel = el("button", { type: "button", class: "btn btn--danger btn--tiny task-cancel", text: "Cancel", "aria-label": "Cancel task of " + t.owner.username });
      cancel.addEventListener("click", function () { cancelTask(t, cancel); });
      var total = (t.progress && t.progress.total) || 1, step = (t.progress && t.progress.step) || 0;
      return el("tr", { class: "queue-row", dataset: { taskId: t.id, state: t.state } }, [
        el("td", { "data-label": "#", text: t.state === "running" ? "▶" : String(t.position || "") }),
        el("td", { "data-label": "Owner", class: "queue-owner", text: t.owner.username }),
        el("td", { "data-label": "State" }, [el("span", { class: "pill pill--" + t.state, text: t.state })]),
        el("td", { "data-label": "Prompt", class: "prompt-cell", text: t.prompt }),
        el("td", { "data-label": "Parameters", class: "params",
                   text: t.width + "×" + t.height + ", " + t.steps + " steps, " + t.samples + " × · " + t.model + " · " + t.cost + " tokens" }),
        el("td", { "data-label": "Progress", class: "task-progress-cell" }, [
          el("progress", { max: String(total), value: String(step) }),
          " " + (t.state === "running" ? step + "/" + total + (t.eta_s ? " · " + Math.ceil(t.eta_s) + " s left" : "") : "waiting"),
        ]),
        el("td", { "data-label": "" }, [cancel]),
      ]);
    };
    var workerRow = function (w) {
      return el("tr", { class: "worker-row", dataset: { worker: w.name } }, [
        el("td", { "data-label": "Worker" }, [el("code", { class: "task-ref", text: w.name })]),
        el("td", { "data-label": "Alive" }, [el("span", { class: "pill " + (w.alive ? "pill--ok" : "pill--dead"), text: w.alive ? "alive" : "silent" })]),
        el("td", { "data-label": "Current task", text: w.current_task ? w.current_task + " (" + w.current_user + ")" : "idle" }),
        el("td", { "data-label": "Model", text: w.model || "—" }),
        el("td", { "data-label": "Jobs done", class: "num-col", text: String(w.jobs_done) }),
        el("td", { "data-label": "Last heartbeat", text: w.last_heartbeat_age_s === null ? "—" : Math.round(w.last_heartbeat_age_s) + " s ago" }),
      ]);
    };
    var refresh = function () {
      window.clearTimeout(timer);
      return rawApi("GET", "/api/v1/admin/queue").then(function (res) {
        if (!res.ok) { showError("queue-error", res.error.message); }
        else {
          showError("queue-error", "");
          var d = res.data;
          byId("queue-summary").textContent = d.queued + " waiting, " + d.running + " running, " + d.workers.length + (d.workers.length === 1 ? " worker" : " workers") + ". Updated " + new Date().toLocaleTimeString() + ".";
          var body = byId("queue-body");
          body.replaceChildren.apply(body, d.items.map(taskRow));
          byId("queue-empty").hidden = d.items.length > 0;
          var wbody = byId("workers-body");
          wbody.replaceChildren.apply(wbody, d.workers.map(workerRow));
          byId("workers-empty").hidden = d.workers.length > 0;
        }
        if (!document.hidden) timer = window.setTimeout(refresh, 1500);
      });
    };
    document.addEventListener("visibilitychange", function () { if (!document.hidden) refresh(); });
    refresh();
  }
})();
