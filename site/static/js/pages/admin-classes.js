/* Daydream — Admin → Classes (/admin/classes): create a class, rename or delete one, name
 * and remove its teachers. The table is a server-rendered partial (admin/_classes_rows.html)
 * fetched again after a change or a page; the actions go to /api/v1 (views/api/classes.py). */
import { api, errorText } from "../lib/api.js";
import { byId } from "../lib/dom.js";
import { askText, confirmAction, notice } from "../lib/confirm.js";
import { busy, clearErrors, say, showErrors } from "../lib/forms.js";
import { loadFragment, onPager, withQuery } from "../lib/fragment.js";

const list = byId("classes-list");
let offset = 0;

function loadClasses(at) {
  offset = at || 0;
  return loadFragment(list, withQuery("/admin/classes/rows", { offset }));
}
onPager(list, loadClasses);

function status(text) { byId("classes-status").textContent = text || ""; }

const form = byId("class-form");
form.addEventListener("submit", (event) => {
  event.preventDefault();
  clearErrors(form);
  const button = byId("class-create");
  busy(button, true, "Creating…");
  api("POST", "/api/v1/admin/classes", {
    name: byId("class-name").value, sso_group: byId("class-group").value.trim() || null,
  }).then((res) => {
    busy(button, false);
    if (!res.ok) { showErrors(form, res.error, "name"); return; }
    say("class-form-status", "Created " + res.data.name + ". Add its teachers below.", true);
    form.reset();
    loadClasses(0);
  });
});

function failed(title, res) {
  return notice({ title, text: errorText(res, "Try again.") });
}

function act(row, action, chip) {
  const id = encodeURIComponent(row.dataset.classId);
  const name = row.dataset.name;
  if (action === "teach") {
    return askText({ title: "Add a teacher to " + name, label: "Username or email of their account", maxLength: 254,
                     ok: "Add teacher" }).then((who) => {
      if (!who) return null;
      return api("POST", "/api/v1/admin/classes/" + id + "/teachers", { user: who }).then((res) => {
        if (!res.ok) return failed("Not added", res);
        status(who + " teaches " + name + " now.");
        return loadClasses(offset);
      });
    });
  }
  if (action === "unteach") {
    return confirmAction({ title: "Remove " + chip.textContent.replace("×", "").trim() + " as a teacher of " + name + "?",
                           ok: "Remove", danger: true }).then((ok) => {
      if (!ok) return null;
      return api("DELETE", "/api/v1/admin/classes/" + id + "/teachers/" + encodeURIComponent(chip.dataset.userId))
        .then((res) => (res.ok ? loadClasses(offset) : failed("Not removed", res)));
    });
  }
  if (action === "rename") {
    return askText({ title: "Rename " + name, label: "Name", value: name, maxLength: 80, ok: "Rename" }).then((next) => {
      if (!next || next === name) return null;
      return api("PATCH", "/api/v1/classes/" + id, { name: next }).then((res) => {
        if (!res.ok) return failed("Not renamed", res);
        status(name + " is " + res.data.name + " now.");
        return loadClasses(offset);
      });
    });
  }
  return confirmAction({ title: "Delete " + name + "?",
                         text: "Its members, join codes and class gallery go; everyone keeps their account and images. A pool's tokens go with it.",
                         ok: "Delete the class", danger: true }).then((ok) => {
    if (!ok) return null;
    return api("DELETE", "/api/v1/admin/classes/" + id).then((res) => {
      if (!res.ok) return failed("Not deleted", res);
      status(name + " is deleted.");
      return loadClasses(offset);
    });
  });
}

list.addEventListener("click", (event) => {
  const button = event.target.closest("button[data-action]");
  const row = button && button.closest("tr.class-row");
  if (!row) return;
  act(row, button.dataset.action, button.closest(".teacher-chip"));
});
