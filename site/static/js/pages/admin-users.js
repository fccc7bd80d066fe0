/* Daydream — the staff users page (/admin): search, page, approve accounts waiting for
 * approval, and the Manage dialog (grant or revoke tokens, plan, role, active, a reset
 * link, delete). The table is a server-rendered
 * partial (admin/_users_rows.html), fetched again after every change; the dialog's
 * actions go through the staff API, which may ask for the password (lib/api.js). */
import { api, errorText } from "../lib/api.js";
import { confirmAction } from "../lib/confirm.js";
import { byId, copyText } from "../lib/dom.js";
import { formatDate, plural } from "../lib/format.js";
import { showAlert } from "../lib/forms.js";
import { loadFragment, onPager, withQuery } from "../lib/fragment.js";
import { localizeTimes } from "../lib/times.js";

const list = byId("users-list");
const dialog = byId("user-dialog");
let offset = 0;
let query = byId("user-q").value.trim();
// Only the accounts waiting for approval (DAYDREAM_REGISTRATION=approval): ?pending=1.
let pendingOnly = new URLSearchParams(window.location.search).get("pending") === "1";
let current = null; // the user in the dialog: {id, username, email, tokens, tier, tier_name, role, active}

/* ---------- the table ---------- */
function loadUsers(at) {
  return loadFragment(list, withQuery("/admin/users/rows", { q: query, offset: at, pending: pendingOnly ? 1 : "" })).then((res) => {
    if (res.stale) return;
    if (!res.ok) { showAlert("users-error", errorText(res, "Could not load the users.")); return; }
    showAlert("users-error", "");
    offset = at;
  });
}
onPager(list, loadUsers);

/** The user a row shows (its data attributes), as the API's user rows spell it. */
function userOf(row) {
  const d = row.dataset;
  return {
    id: d.userId, username: d.username, email: d.email, tokens: Number(d.tokens),
    tier: d.tier, tier_name: d.tierName, role: d.role, active: d.active === "true",
    pending: d.pending === "true",
  };
}

list.addEventListener("click", (event) => {
  const manage = event.target.closest("button.user-manage");
  if (manage) openUser(userOf(manage.closest("tr.user-row")));
  const approve = event.target.closest("button.user-approve");
  if (approve) approveUser(userOf(approve.closest("tr.user-row")), approve);
  const filter = event.target.closest("a.users-filter");
  if (filter) {
    event.preventDefault();
    pendingOnly = filter.dataset.pending === "1";
    window.history.replaceState(null, "", filter.getAttribute("href"));
    loadUsers(0);
  }
});

/** Let in an account waiting for approval: it can sign in from now on (audited). */
function approveUser(user, button) {
  button.disabled = true;
  api("POST", userPath(user) + "/approve").then((res) => {
    button.disabled = false;
    if (!res.ok) { showAlert("users-error", errorText(res, "The account was not approved.")); return; }
    showAlert("users-error", "");
    byId("users-status").textContent = user.username + " is approved and can sign in now.";
    loadUsers(offset);
  });
}

byId("user-search").addEventListener("submit", (event) => {
  event.preventDefault();
  query = byId("user-q").value.trim();
  loadUsers(0);
});
let searchTimer = null;
byId("user-q").addEventListener("input", () => {
  window.clearTimeout(searchTimer);
  searchTimer = window.setTimeout(() => { query = byId("user-q").value.trim(); loadUsers(0); }, 300);
});

/* ---------- the dialog ---------- */
function fillDialog(user) {
  current = user;
  byId("user-dialog-title").textContent = user.username;
  byId("user-dialog-summary").textContent = [user.email, plural(user.tokens, "token", "tokens"),
    user.tier_name || user.tier, user.role].concat(user.pending ? ["waiting for approval"] : user.active ? [] : ["deactivated"]).join(" · ");
  byId("user-tier").value = user.tier;
  tierNote();
  byId("user-role").value = user.role;
  byId("user-active").checked = !!user.active;
  byId("delete-confirm").value = "";
  byId("user-delete").disabled = true;
}

function hideResetLink() {
  byId("reset-link").hidden = true;
  byId("reset-link-value").value = "";
  byId("reset-link-copy").textContent = "Copy";
}

function openUser(user) {
  fillDialog(user);
  showAlert("user-dialog-error", "");
  byId("user-dialog-status").textContent = "";
  byId("grant-form").reset();
  hideResetLink();
  if (dialog.showModal) dialog.showModal(); else dialog.setAttribute("open", "");
}

const userPath = (user) => "/api/v1/admin/users/" + encodeURIComponent(user.id);

/** After a PATCH: show the error, or the new state, the message, and the table again. */
function afterChange(res, message) {
  if (!res.ok) { showAlert("user-dialog-error", errorText(res, "That did not work.")); return false; }
  showAlert("user-dialog-error", "");
  fillDialog(res.data);
  byId("user-dialog-status").textContent = message;
  loadUsers(offset);
  return true;
}

byId("user-dialog-close").addEventListener("click", () => dialog.close());
dialog.addEventListener("close", hideResetLink);
dialog.addEventListener("close", () => { byId("action-reason").value = ""; });

/** The dialog's "Why" field: sent as `reason` with the changes the audit trail records. */
function auditReason() {
  return byId("action-reason").value.trim();
}

byId("grant-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const amount = Number(byId("grant-amount").value);
  const reason = byId("grant-reason").value.trim();
  if (!Number.isInteger(amount) || amount === 0) { showAlert("user-dialog-error", "Enter a whole number of tokens other than 0."); return; }
  if (!reason) { showAlert("user-dialog-error", "Say why: the reason goes in the user's ledger."); return; }
  const button = byId("grant-submit");
  button.disabled = true;
  api("PATCH", userPath(current), { tokens_delta: amount, reason }).then((res) => {
    button.disabled = false;
    const done = (amount > 0 ? "Granted " + amount : "Revoked " + (-amount)) + " tokens. Balance: " + (res.data ? res.data.tokens : "?") + ".";
    if (afterChange(res, done)) byId("grant-form").reset();
  });
});

/** What moving to the plan chosen does to the balance: its allowance is granted at once. */
function tierNote() {
  const select = byId("user-tier");
  const note = byId("user-tier-note");
  const option = select.selectedOptions[0];
  const allowance = option ? parseInt(option.dataset.allowance, 10) || 0 : 0;
  const moving = current && select.value !== current.tier;
  note.textContent = moving && allowance > 0
    ? "Moving to " + option.textContent + " grants its allowance of " + plural(allowance, "token", "tokens") +
      " now (a ledger row and the audit trail say so), then every " + option.dataset.periodDays + " days."
    : moving ? option.textContent + " has no allowance: no tokens are granted or taken." : "";
  note.hidden = !note.textContent;
}
byId("user-tier").addEventListener("change", tierNote);

byId("user-save").addEventListener("click", () => {
  const change = {};
  if (byId("user-tier").value !== current.tier) change.tier = byId("user-tier").value;
  if (byId("user-role").value !== current.role) change.role = byId("user-role").value;
  if (byId("user-active").checked !== !!current.active) change.active = byId("user-active").checked;
  if (!Object.keys(change).length) { byId("user-dialog-status").textContent = "Nothing changed."; return; }
  const why = auditReason();
  if (why) change.reason = why;
  const who = current;
  const asked = change.active !== false ? Promise.resolve(true) : confirmAction({
    title: "Deactivate " + who.username + "?",
    text: "They are signed out, cannot sign in, and their waiting tasks are canceled and refunded.",
    ok: "Deactivate", danger: true,
  });
  asked.then((yes) => {
    if (!yes) return;
    const before = who.tokens;
    api("PATCH", userPath(who), change).then((res) => {
      const granted = res.ok && change.tier && res.data && typeof res.data.tokens === "number" ? res.data.tokens - before : 0;
      afterChange(res, granted > 0 ? "Saved. The new plan granted " + plural(granted, "token", "tokens") +
        "; balance " + res.data.tokens + "." : "Saved.");
    });
  });
});

byId("reset-link-make").addEventListener("click", () => {
  const button = byId("reset-link-make");
  const who = current;
  button.disabled = true;
  hideResetLink();
  const why = auditReason();
  api("POST", userPath(who) + "/reset-link", why ? { reason: why } : undefined).then((res) => {
    button.disabled = false;
    if (!res.ok) { showAlert("user-dialog-error", errorText(res, "No link was made.")); return; }
    showAlert("user-dialog-error", "");
    byId("reset-link").hidden = false;
    byId("reset-link-value").value = res.data.url;
    byId("reset-link-expiry").textContent = "Works once, until " + formatDate(res.data.expires_at, "—") + ". Copy it now: it is not shown again.";
    byId("reset-link-value").select();
    byId("user-dialog-status").textContent = "Reset link made for " + who.username + ".";
  });
});

byId("reset-link-copy").addEventListener("click", () => {
  const input = byId("reset-link-value");
  copyText(input.value, input).then((ok) => { byId("reset-link-copy").textContent = ok ? "Copied" : "Select and copy"; });
});

byId("delete-confirm").addEventListener("input", () => {
  byId("user-delete").disabled = byId("delete-confirm").value !== current.username;
});
byId("user-delete").addEventListener("click", () => {
  if (byId("delete-confirm").value !== current.username) return;
  const name = current.username;
  const why = auditReason();
  api("DELETE", userPath(current) + (why ? "?reason=" + encodeURIComponent(why) : "")).then((res) => {
    if (!res.ok) { showAlert("user-dialog-error", errorText(res, "The user was not deleted.")); return; }
    dialog.close();
    byId("users-status").textContent = name + " was deleted, with their images.";
    loadUsers(offset);
  });
});

localizeTimes(list);
