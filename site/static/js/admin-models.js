/* Daydream staff page: the models table (/admin/models).
 *
 * GET  /api/v1/admin/models        -> {folder, items: [model]}
 * POST /api/v1/admin/models/scan   -> the same, after scanning the models folder
 * PATCH /api/v1/admin/models/{id}  {enabled} | {default: true} -> model
 * model: {id, name, spec, kind, enabled, default, state, error}
 */
(function () {
  "use strict";

  var KIND_LABELS = {
    demo: "Built-in demo",
    folder: "Diffusers folder",
    single_file: "Single file",
    hub: "Hugging Face hub",
  };
  var STATE_LABELS = { available: "Available", missing: "Missing", error: "Error" };

  var byId = Daydream.byId;
  var el = Daydream.el;

  /** Resolves (never rejects) to {ok, status, data, error}: see app.js. */
  function api(method, path, body) {
    return Daydream.api(method, path, body, {
      messages: { 403: "This page is for staff only.", 401: "You are signed out." },
    });
  }

  var table = byId("models-table");
  var tbody = byId("models-body");
  var emptyNote = byId("models-empty");
  var loadingNote = byId("models-loading");
  var errorBox = byId("models-error");
  var statusLine = byId("models-status");
  var folderPath = byId("models-folder-path");
  var scanButton = byId("scan-models");
  var models = [];

  function showError(message) {
    if (!errorBox) return;
    errorBox.textContent = message;
    errorBox.hidden = !message;
  }

  var statusTimer = null;
  function setStatus(text) {
    if (!statusLine) return;
    window.clearTimeout(statusTimer);
    statusLine.textContent = text || "";
    if (text) statusTimer = window.setTimeout(function () { statusLine.textContent = ""; }, 6000);
  }

  function messageOf(res, fallback) {
    return (res.error && res.error.message) || fallback;
  }

  function rowFor(id) {
    var rows = tbody ? tbody.children : [];
    for (var i = 0; i < rows.length; i++) if (rows[i].dataset.modelId === id) return rows[i];
    return null;
  }

  function buildRow(model) {
    var name = model.name || model.id;
    var state = model.state || "available";
    var enabled = el("input", {
      type: "checkbox", class: "model-enabled", checked: !!model.enabled,
      "aria-label": "Enabled: " + name,
    });
    var isDefault = el("input", {
      type: "radio", name: "default-model", class: "model-default", value: model.id, checked: !!model.default,
      "aria-label": "Default model: " + name,
    });
    enabled.addEventListener("change", function () { setEnabled(model.id, enabled); });
    isDefault.addEventListener("change", function () { if (isDefault.checked) setDefault(model.id, isDefault); });

    var stateCell = el("td", { "data-label": "State", class: "model-state-cell" }, [
      el("span", { class: "model-state", dataset: { state: state }, text: STATE_LABELS[state] || state }),
    ]);
    if (model.error) stateCell.appendChild(el("p", { class: "model-error", text: model.error }));

    return el("tr", {
      class: "model-row",
      dataset: { modelId: model.id, state: state, enabled: model.enabled ? "true" : "false", default: model.default ? "true" : "false" },
    }, [
      el("td", { "data-label": "Model", class: "model-cell" }, [
        el("span", { class: "model-name", text: name }),
        model.default ? el("span", { class: "visually-hidden", text: " (default)" }) : null,
        el("span", { class: "model-spec", text: model.spec || "" }),
      ]),
      el("td", { "data-label": "Kind", class: "model-kind", text: KIND_LABELS[model.kind] || model.kind || "" }),
      stateCell,
      el("td", { "data-label": "Enabled", class: "col-center" }, [enabled]),
      el("td", { "data-label": "Default", class: "col-center" }, [isDefault]),
    ]);
  }

  function render() {
    if (!tbody) return;
    tbody.replaceChildren.apply(tbody, models.map(buildRow));
    if (emptyNote) emptyNote.hidden = models.length > 0;
    if (loadingNote) loadingNote.hidden = true;
    if (table) table.setAttribute("aria-busy", "false");
  }

  function takeList(data) {
    if (!data) return;
    if (Array.isArray(data.items)) models = data.items.slice();
    if (folderPath && typeof data.folder === "string") folderPath.textContent = data.folder || "(not set)";
    render();
  }

  function replaceModel(model) {
    models = models.map(function (m) { return m.id === model.id ? model : m; });
  }

  function load() {
    return api("GET", "/api/v1/admin/models").then(function (res) {
      if (res.ok) {
        showError("");
        takeList(res.data);
      } else {
        if (loadingNote) loadingNote.hidden = true;
        showError(messageOf(res, "Could not load the models."));
      }
      return res;
    });
  }

  function setRowBusy(id, busy) {
    var row = rowFor(id);
    if (!row) return;
    row.classList.toggle("is-saving", busy);
    Array.prototype.forEach.call(row.querySelectorAll("input"), function (input) { input.disabled = busy; });
  }

  function setEnabled(id, input) {
    var value = input.checked;
    showError("");
    setRowBusy(id, true);
    api("PATCH", "/api/v1/admin/models/" + encodeURIComponent(id), { enabled: value }).then(function (res) {
      setRowBusy(id, false);
      if (res.ok && res.data && res.data.id) {
        replaceModel(res.data);
        render();
        setStatus((res.data.name || id) + (res.data.enabled ? " is offered in the studio." : " is no longer offered."));
      } else {
        input.checked = !value;
        showError(messageOf(res, "Could not change this model."));
      }
    });
  }

  function setDefault(id, input) {
    showError("");
    setRowBusy(id, true);
    api("PATCH", "/api/v1/admin/models/" + encodeURIComponent(id), { default: true }).then(function (res) {
      setRowBusy(id, false);
      if (res.ok && res.data && res.data.id) {
        // Only one default: the others lost it on the server; reload to show the truth.
        models = models.map(function (m) { return m.id === id ? res.data : Object.assign({}, m, { default: false }); });
        render();
        setStatus((res.data.name || id) + " is now the default model.");
        load();
      } else {
        input.checked = false;
        render(); // the previous default's radio comes back
        showError(messageOf(res, "Could not make this the default model."));
      }
    });
  }

  if (scanButton) {
    scanButton.addEventListener("click", function () {
      var before = {};
      models.forEach(function (m) { before[m.id] = true; });
      var label = scanButton.querySelector(".btn__label");
      scanButton.disabled = true;
      scanButton.setAttribute("aria-busy", "true");
      if (label) label.textContent = "Scanning…";
      showError("");
      api("POST", "/api/v1/admin/models/scan").then(function (res) {
        scanButton.disabled = false;
        scanButton.setAttribute("aria-busy", "false");
        if (label) label.textContent = "Scan models folder";
        if (!res.ok) {
          showError(messageOf(res, "The scan failed."));
          return;
        }
        takeList(res.data);
        var added = models.filter(function (m) { return !before[m.id]; }).length;
        var missing = models.filter(function (m) { return m.state === "missing"; }).length;
        var parts = ["Scan done: " + models.length + (models.length === 1 ? " model" : " models")];
        parts.push(added ? added + " new (enable them to offer them)" : "nothing new");
        if (missing) parts.push(missing + " missing");
        setStatus(parts.join(", ") + ".");
      });
    });
  }

  load();
})();
