/* Daydream — the account page (/account): tabs, profile, password, delete, vouchers, the
 * ledger and the personal API tokens (server-rendered partials, fetched again after a
 * change), and "download everything" (lib/archive.js's widget, with the list of the
 * account's archives as a partial from the server). Talks to /api/v1. */
import { api, errorText } from "../lib/api.js";
import { $all, byId, copyText } from "../lib/dom.js";
import { onBalance, setBalance } from "../lib/balance.js";
import { confirmAction, notice } from "../lib/confirm.js";
import { busy, clearErrors, say, showErrors } from "../lib/forms.js";
import { loadFragment, onPager, withQuery } from "../lib/fragment.js";
import { localizeTimes } from "../lib/times.js";
import { archiveWidget, trackArchive } from "../lib/archive.js";

/* ---------- the balance in the page follows the one in the header ---------- */
onBalance((tokens) => {
  [byId("fact-balance"), byId("tokens-balance")].forEach((node) => { if (node) node.textContent = String(tokens); });
});

/* ---------- tabs ---------- */
const tabs = $all('.tabs [role="tab"]');
const tabName = (tab) => tab.id.replace("tab-", "");

function showTab(name, focus) {
  if (!tabs.some((tab) => tabName(tab) === name)) name = "overview";
  tabs.forEach((tab) => {
    const on = tabName(tab) === name;
    tab.setAttribute("aria-selected", on ? "true" : "false");
    tab.tabIndex = on ? 0 : -1;
    const panel = byId(tab.getAttribute("aria-controls"));
    if (panel) panel.hidden = !on;
    if (on && focus) tab.focus();
  });
}

function goToTab(name, focus) {
  history.replaceState(null, "", "#" + name);
  showTab(name, focus);
}

tabs.forEach((tab, i) => {
  tab.addEventListener("click", (event) => {
    event.preventDefault();
    goToTab(tabName(tab));
  });
  tab.addEventListener("keydown", (event) => {
    const step = event.key === "ArrowRight" ? 1 : event.key === "ArrowLeft" ? -1 : 0;
    if (!step) return;
    event.preventDefault();
    goToTab(tabName(tabs[(i + step + tabs.length) % tabs.length]), true);
  });
});
window.addEventListener("hashchange", () => showTab(location.hash.slice(1)));

/* ---------- the ledger and the API tokens: partials from the server ---------- */
const ledger = byId("ledger");
function loadLedger(offset) {
  return loadFragment(ledger, withQuery("/account/ledger", { offset }));
}
onPager(ledger, loadLedger);

const apiTokens = byId("api-tokens");
function loadTokens() { return loadFragment(apiTokens, "/account/api-tokens"); }

if (apiTokens) {
  apiTokens.addEventListener("click", (event) => {
    const revoke = event.target.closest("button.token-revoke");
    if (!revoke) return;
    const name = revoke.dataset.tokenName;
    confirmAction({
      title: "Revoke the API key \u201c" + name + "\u201d?", text: "Scripts and tools using it stop working.",
      ok: "Revoke", danger: true,
    }).then((yes) => {
      if (!yes) return;
      revoke.disabled = true;
      api("DELETE", "/api/v1/auth/tokens/" + encodeURIComponent(revoke.dataset.tokenId)).then((res) => {
        if (res.ok || res.status === 404) { loadTokens(); return; }
        revoke.disabled = false;
        notice({ title: "The API key was not revoked", text: errorText(res, "The API key was not revoked.") });
      });
    });
  });
}

/* ---------- profile ---------- */
const profileForm = byId("profile-form");
if (profileForm) profileForm.addEventListener("submit", (event) => {
  event.preventDefault();
  clearErrors(profileForm);
  say("profile-status", "");
  const data = {};
  ["first_name", "last_name", "email", "mobile"].forEach((name) => { data[name] = profileForm.elements[name].value; });
  const button = byId("profile-save");
  busy(button, true);
  api("PATCH", "/api/v1/me", data).then((res) => {
    busy(button, false);
    if (!res.ok) {
      showErrors(profileForm, res.error, "email");
      say("profile-status", "Not saved.");
      return;
    }
    const user = res.data;
    byId("fact-email").textContent = user.email;
    byId("fact-name").textContent = ((user.first_name || "") + " " + (user.last_name || "")).trim() || "—";
    profileForm.elements.email.value = user.email;
    const pending = byId("email-pending");
    if (pending) {
      pending.hidden = !user.pending_email;
      byId("email-pending-address").textContent = user.pending_email || "";
    }
    const mailed = user.pending_email && user.pending_email.toLowerCase() === data.email.trim().toLowerCase();
    say("profile-status", mailed
      ? "Saved. We sent a link to " + user.pending_email + ": your email changes when you follow it." : "Saved.", true);
  });
});

/* ---------- password ---------- */
const passwordForm = byId("password-form");
if (passwordForm) passwordForm.addEventListener("submit", (event) => {
  event.preventDefault();
  clearErrors(passwordForm);
  say("password-status", "");
  const button = byId("password-save");
  const kept = passwordForm.elements.keep_sessions.checked;
  busy(button, true);
  api("POST", "/api/v1/me/password", {
    current_password: passwordForm.elements.current_password.value,
    new_password: passwordForm.elements.new_password.value,
    keep_sessions: kept,
  }).then((res) => {
    busy(button, false);
    if (!res.ok) { showErrors(passwordForm, res.error, "current_password"); return; }
    passwordForm.reset();
    say("password-status", kept ? "Password changed." :
      "Password changed. Your other sessions are signed out and your API keys revoked.", true);
    if (!kept) loadTokens();
  });
});

/* ---------- delete the account ---------- */
const deleteForm = byId("delete-form");
const deleteConfirm = byId("delete_confirm");
const deleteButton = byId("delete-account");
if (deleteConfirm) deleteConfirm.addEventListener("change", () => { deleteButton.disabled = !deleteConfirm.checked; });
if (deleteForm) deleteForm.addEventListener("submit", (event) => {
  event.preventDefault();
  clearErrors(deleteForm);
  if (!deleteConfirm.checked) return;
  busy(deleteButton, true, "Deleting…");
  api("DELETE", "/api/v1/me", { password: deleteForm.elements.password.value }).then((res) => {
    if (!res.ok) {
      busy(deleteButton, false);
      showErrors(deleteForm, res.error, "password");
      return;
    }
    window.location.assign("/");
  });
});

/* ---------- vouchers ---------- */
const redeemForm = byId("redeem-form");
if (redeemForm) redeemForm.addEventListener("submit", (event) => {
  event.preventDefault();
  clearErrors(redeemForm);
  say("redeem-status", "");
  const input = byId("voucher-code");
  const code = input.value.trim();
  if (!code) {
    showErrors(redeemForm, { field: "code", message: "Enter the code from your voucher." }, "code");
    return;
  }
  const button = byId("redeem-submit");
  busy(button, true, "Redeeming…");
  api("POST", "/api/v1/me/redeem", { code }).then((res) => {
    busy(button, false);
    if (!res.ok) {
      showErrors(redeemForm, { field: "code", message: errorText(res, "That code did not work.") }, "code");
      return;
    }
    input.value = "";
    setBalance(res.data.tokens);
    say("redeem-status", "Redeemed: " + res.data.redeemed + " tokens added. Your balance is " + res.data.tokens + ".", true);
    loadLedger(0);
  });
});

/* ---------- API tokens ---------- */
const tokenForm = byId("token-form");
if (tokenForm) tokenForm.addEventListener("submit", (event) => {
  event.preventDefault();
  clearErrors(tokenForm);
  const button = byId("token-create");
  busy(button, true, "Creating…");
  // A staff account past its recent sign-in is asked for the password (lib/api.js).
  api("POST", "/api/v1/auth/tokens", { name: byId("token-name").value }).then((res) => {
    busy(button, false);
    if (!res.ok) { showErrors(tokenForm, res.error, "name"); return; }
    byId("token-name").value = "";
    byId("new-token").hidden = false;
    byId("new-token-copy").textContent = "Copy";
    const value = byId("new-token-value");
    value.value = res.data.token;
    value.select();
    loadTokens();
  });
});

const copyButton = byId("new-token-copy");
if (copyButton) copyButton.addEventListener("click", () => {
  const input = byId("new-token-value");
  copyText(input.value, input).then((ok) => { copyButton.textContent = ok ? "Copied" : "Select and copy"; });
});

/* ---------- download everything ---------- */
// The archives list (account/_archives.html) comes from the server: fetched again when an
// archive changes. "Build my archive" follows the new one and downloads it by itself once
// it is ready, as the gallery's ZIP does; one still being made when the page opens (asked
// for earlier, here or in another browser) is followed so the list shows when it is ready.
const archivesBox = byId("archives");
function loadArchives() { return archivesBox ? loadFragment(archivesBox, "/account/archives") : Promise.resolve(); }

const downloadAll = byId("download-all");
const archiveBox = byId("archive-progress");
if (downloadAll && archiveBox) {
  const canBuild = !downloadAll.disabled; // disabled by the page when there are no images
  const idle = () => { downloadAll.disabled = !canBuild; loadArchives(); };
  let lastState = null;
  const widget = archiveWidget(archiveBox, {
    what: "all your images",
    download: "auto",
    onProgress: (archive) => {
      if (archive.state !== lastState) { lastState = archive.state; loadArchives(); }
    },
    onReady: idle,
    onFailed: idle,
  });
  downloadAll.addEventListener("click", () => {
    downloadAll.disabled = true;
    lastState = null;
    widget.start({ all: true }).then((archive) => {
      if (!archive) idle();
      else loadArchives();
    });
  });
}
if (archivesBox) {
  $all('.archive-row[data-state="queued"], .archive-row[data-state="building"]', archivesBox).forEach((row) => {
    trackArchive(row.dataset.archiveId, { onReady: loadArchives, onFailed: loadArchives });
  });
}

localizeTimes();
showTab((location.hash || "#overview").slice(1));
