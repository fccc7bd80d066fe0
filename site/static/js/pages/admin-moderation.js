/* Daydream — Admin → Moderation (/admin/moderation): the prompt rules (add, edit,
 * enable, delete, try a prompt), the prompts they refused per user, and the reports of
 * showcase pictures (hide the picture, or dismiss). The held-images section has its own
 * script.
 *
 * GET    /api/v1/admin/moderation/rules          -> {items: [rule], total}
 * POST   /api/v1/admin/moderation/rules          {kind, pattern, note, preset, enabled} -> rule (201)
 * PATCH  /api/v1/admin/moderation/rules/{id}     {kind?, pattern?, note?, preset?, enabled?} -> rule
 * DELETE /api/v1/admin/moderation/rules/{id}     -> 204
 * POST   /api/v1/admin/moderation/rules/test     {prompt, preset?} -> {blocked, field, message, matched, rule, preset}
 * GET    /api/v1/admin/moderation/blocked        -> {users: [{user, count, last_at}], items: [attempt]}
 * GET    /api/v1/admin/moderation/reports        -> {items: [report]} (open ones)
 * POST   /api/v1/admin/moderation/reports/{id}   {action: "hide" | "dismiss"} -> {resolved}
 * rule: {id, kind: "word" | "pair" | "regex", pattern, note, preset: "standard" | "strict", enabled}
 * attempt: {id, user, rule, prompt, matched (the normalized form that matched, and what it read), created_at}
 * report: {id, item_id, item: {title, thumbnail_url, url} | null, reporter: {username} | null,
 *          reason, created_at, open_reports}
 */
import { api, errorText } from "../lib/api.js";
import { confirmAction } from "../lib/confirm.js";
import { byId, el } from "../lib/dom.js";
import { ago, formatDate, plural, shorten } from "../lib/format.js";
import { busy, clearErrors, say, showAlert, showErrors } from "../lib/forms.js";

const BASE = "/api/v1/admin/moderation";
const KIND_LABELS = { word: "Word", pair: "Pair", regex: "Pattern" };
const PRESET_LABELS = { standard: "Standard", strict: "Strict" };

/* ---------- prompt rules ---------- */

const rulesTable = byId("rules-table");
const rulesBody = byId("rules-body");
const form = byId("rule-form");
let rules = [];
let editing = null; // the id of the rule in the form, or null when adding

function when(iso) {
  return el("time", { datetime: iso || "", title: formatDate(iso), text: ago(iso, undefined, "") });
}

function ruleRow(rule) {
  const enabled = el("input", {
    type: "checkbox", class: "rule-enabled", checked: !!rule.enabled,
    "aria-label": "Enabled: " + rule.pattern,
  });
  enabled.addEventListener("change", () => saveRule(rule.id, { enabled: enabled.checked }, enabled));
  const edit = el("button", { type: "button", class: "btn btn--tiny", text: "Edit", "aria-label": "Edit " + rule.pattern });
  edit.addEventListener("click", () => startEdit(rule));
  const remove = el("button", { type: "button", class: "btn btn--tiny btn--danger", text: "Delete",
    "aria-label": "Delete " + rule.pattern });
  remove.addEventListener("click", () => deleteRule(rule, remove));
  return el("tr", { class: "rule-row", dataset: { ruleId: String(rule.id), enabled: String(!!rule.enabled),
    preset: rule.preset } }, [
    el("td", { "data-label": "Rule", class: "rule-pattern" }, [el("code", { text: rule.pattern })]),
    el("td", { "data-label": "Kind", text: KIND_LABELS[rule.kind] || rule.kind }),
    el("td", { "data-label": "Preset", class: "rule-preset", text: PRESET_LABELS[rule.preset] || rule.preset }),
    el("td", { "data-label": "Note", class: "rule-note", text: rule.note || "" }),
    el("td", { "data-label": "Enabled", class: "col-center" }, [enabled]),
    el("td", { "data-label": "Change", class: "rule-actions" }, [edit, " ", remove]),
  ]);
}

function renderRules() {
  const only = byId("rules-filter").value;
  const shown = only ? rules.filter((rule) => rule.preset === only) : rules;
  rulesBody.replaceChildren(...shown.map(ruleRow));
  byId("rules-empty").hidden = shown.length > 0;
  byId("rules-loading").hidden = true;
  rulesTable.setAttribute("aria-busy", "false");
}

function loadRules() {
  return api("GET", BASE + "/rules").then((res) => {
    if (!res.ok) {
      byId("rules-loading").hidden = true;
      showAlert("rules-error", errorText(res, "Could not load the rules."));
      return;
    }
    rules = res.data.items || [];
    renderRules();
  });
}

function resetForm() {
  editing = null;
  form.reset();
  clearErrors(form);
  byId("rule-form-title").textContent = "Add a rule";
  byId("rule-save").textContent = "Add rule";
  byId("rule-cancel").hidden = true;
}

function startEdit(rule) {
  resetForm();
  editing = rule.id;
  byId("rule-kind").value = rule.kind;
  byId("rule-pattern").value = rule.pattern;
  byId("rule-note").value = rule.note || "";
  byId("rule-preset").value = rule.preset || "standard";
  byId("rule-form-title").textContent = "Edit the rule";
  byId("rule-save").textContent = "Save rule";
  byId("rule-cancel").hidden = false;
  byId("rule-pattern").focus();
}

byId("rule-cancel").addEventListener("click", () => { resetForm(); say("rule-status", ""); });
byId("rules-filter").addEventListener("change", renderRules);

form.addEventListener("submit", (event) => {
  event.preventDefault();
  clearErrors(form);
  const fields = {
    kind: byId("rule-kind").value,
    pattern: byId("rule-pattern").value.trim(),
    note: byId("rule-note").value.trim(),
    preset: byId("rule-preset").value,
  };
  if (!fields.pattern) {
    showErrors(form, { field: "pattern", message: "Enter a word, phrase or pattern." }, "pattern");
    return;
  }
  const button = byId("rule-save");
  busy(button, true);
  const request = editing === null ? api("POST", BASE + "/rules", fields)
    : api("PATCH", BASE + "/rules/" + editing, fields);
  request.then((res) => {
    busy(button, false);
    if (!res.ok) {
      showErrors(form, res.error, "pattern");
      say("rule-status", "");
      return;
    }
    const added = editing === null;
    resetForm();
    say("rule-status", added ? "Rule added." : "Rule saved.", true);
    loadRules();
  });
});

function saveRule(id, change, input) {
  showAlert("rules-error", "");
  input.disabled = true;
  api("PATCH", BASE + "/rules/" + id, change).then((res) => {
    input.disabled = false;
    if (!res.ok) {
      input.checked = !input.checked;
      showAlert("rules-error", errorText(res, "Could not save the rule."));
      return;
    }
    rules = rules.map((r) => (r.id === id ? res.data : r));
    renderRules();
    say("rule-status", res.data.enabled ? "Rule enabled." : "Rule disabled.", true);
  });
}

function deleteRule(rule, button) {
  confirmAction({
    title: "Delete the rule \u201c" + rule.pattern + "\u201d?", text: "Prompts it refuses are allowed from the next submit.",
    ok: "Delete the rule", danger: true,
  }).then((yes) => {
    if (!yes) return;
    showAlert("rules-error", "");
    button.disabled = true;
    api("DELETE", BASE + "/rules/" + rule.id).then((res) => {
      if (!res.ok) {
        button.disabled = false;
        showAlert("rules-error", errorText(res, "Could not delete the rule."));
        return;
      }
      if (editing === rule.id) resetForm();
      rules = rules.filter((r) => r.id !== rule.id);
      renderRules();
      say("rule-status", "Rule deleted.", true);
    });
  });
}

byId("rule-test-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const prompt = byId("rule-test-prompt").value;
  if (!prompt.trim()) { say("rule-test-status", "Enter a prompt to check."); return; }
  const preset = byId("rule-test-preset").value;
  api("POST", BASE + "/rules/test", preset ? { prompt, preset } : { prompt }).then((res) => {
    if (!res.ok) { say("rule-test-status", errorText(res, "Could not check it.")); return; }
    const under = " (" + (PRESET_LABELS[res.data.preset] || res.data.preset) + ")";
    say("rule-test-status", res.data.blocked
      ? "Refused" + under + ": " + res.data.message + (res.data.matched ? " Matched in " + res.data.matched : "")
      : "Allowed" + under + ": no rule matches.", !res.data.blocked);
  });
});

/* ---------- refused prompts ---------- */

function loadBlocked() {
  return api("GET", BASE + "/blocked?limit=20").then((res) => {
    if (!res.ok) return;
    const users = res.data.users || [];
    byId("blocked-body").replaceChildren(...users.map((row) => el("tr", {}, [
      el("td", { "data-label": "User", text: row.user ? row.user.username : "(deleted)" }),
      el("td", { "data-label": "Refused", class: "col-center", text: String(row.count) }),
      el("td", { "data-label": "Last" }, [when(row.last_at)]),
    ])));
    byId("blocked-empty").hidden = users.length > 0;
    byId("blocked-table").setAttribute("aria-busy", "false");
    const items = res.data.items || [];
    byId("blocked-recent-body").replaceChildren(...items.map((row) => el("tr", {}, [
      el("td", { "data-label": "When" }, [when(row.created_at)]),
      el("td", { "data-label": "User", text: row.user ? row.user.username : "(deleted)" }),
      el("td", { "data-label": "Rule" }, [
        el("code", { text: row.rule }),
        row.matched ? el("div", { class: "blocked-matched muted", text: "matched in " + row.matched }) : "",
      ]),
      el("td", { "data-label": "Prompt", class: "blocked-prompt", text: shorten(row.prompt, 160) }),
    ])));
    byId("blocked-recent-empty").hidden = items.length > 0;
    byId("blocked-recent-table").setAttribute("aria-busy", "false");
  });
}

/* ---------- reports ---------- */

const reportsBody = byId("reports-body");
let reports = [];

function reportRow(report) {
  const item = report.item;
  const picture = item
    ? el("a", { href: item.url, target: "_blank", rel: "noopener", class: "report-thumb-link" }, [
      el("img", { class: "report-thumb", src: item.thumbnail_url, alt: item.title || "Reported picture",
        width: "64", height: "64", loading: "lazy" }),
    ])
    : el("span", { class: "muted", text: "No longer in the showcase" });
  const hide = el("button", { type: "button", class: "btn btn--tiny btn--danger", text: "Hide",
    "aria-label": "Hide this picture from the showcase", disabled: !item || item.hidden });
  hide.addEventListener("click", () => act(report, "hide", hide));
  const dismiss = el("button", { type: "button", class: "btn btn--tiny", text: "Dismiss",
    "aria-label": "Dismiss the report" });
  dismiss.addEventListener("click", () => act(report, "dismiss", dismiss));
  const title = item ? item.title : report.item_id;
  const more = report.open_reports > 1 ? " (" + plural(report.open_reports, "open report", "open reports") + ")" : "";
  return el("tr", { class: "report-row", dataset: { reportId: String(report.id), itemId: report.item_id } }, [
    el("td", { "data-label": "Picture", class: "report-picture" }, [
      picture, el("span", { class: "report-title", text: shorten(title || "", 80) + more }),
    ]),
    el("td", { "data-label": "By", text: report.reporter ? report.reporter.username : "(deleted)" }),
    el("td", { "data-label": "Reason", class: "report-reason", text: report.reason || "(none given)" }),
    el("td", { "data-label": "When" }, [when(report.created_at)]),
    el("td", { "data-label": "Decision", class: "report-actions" }, [hide, " ", dismiss]),
  ]);
}

function renderReports() {
  reportsBody.replaceChildren(...reports.map(reportRow));
  byId("reports-empty").hidden = reports.length > 0;
  byId("reports-loading").hidden = true;
  byId("reports-table").setAttribute("aria-busy", "false");
  const open = new Set(reports.map((r) => r.item_id)).size;
  byId("reports-count").textContent = reports.length ? "(" + plural(open, "picture", "pictures") + ")" : "";
}

function loadReports() {
  return api("GET", BASE + "/reports?state=open&limit=100").then((res) => {
    if (!res.ok) {
      byId("reports-loading").hidden = true;
      showAlert("reports-error", errorText(res, "Could not load the reports."));
      return;
    }
    showAlert("reports-error", "");
    reports = res.data.items || [];
    renderReports();
  });
}

function act(report, action, button) {
  const asked = action !== "hide" ? Promise.resolve(true) : confirmAction({
    title: "Hide this picture from the public showcase?", text: "Every open report of it is closed.",
    ok: "Hide it", danger: true,
  });
  asked.then((yes) => {
    if (!yes) return;
    showAlert("reports-error", "");
    button.disabled = true;
    api("POST", BASE + "/reports/" + report.id, { action }).then((res) => {
      if (!res.ok) {
        button.disabled = false;
        showAlert("reports-error", errorText(res, "Could not save that."));
        return;
      }
      reports = reports.filter((r) => r.item_id !== report.item_id);
      renderReports();
      say("reports-status", action === "hide" ? "Hidden from the showcase." : "Report dismissed.", true);
    });
  });
}

loadRules();
loadBlocked();
loadReports();
