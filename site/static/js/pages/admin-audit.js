/* Daydream — the staff audit page (/admin/audit): filter and page the audit trail. The
 * table is a server-rendered partial (admin/_audit_rows.html), fetched again after a filter
 * or a page; the "Download CSV" link always carries the filter the table shows. Without
 * this script the filter form is a plain GET form and still works. */
import { errorText } from "../lib/api.js";
import { byId } from "../lib/dom.js";
import { plural } from "../lib/format.js";
import { showAlert } from "../lib/forms.js";
import { loadFragment, onPager, withQuery } from "../lib/fragment.js";
import { localizeTimes } from "../lib/times.js";

const list = byId("audit-list");
const form = byId("audit-filters");
const FIELDS = ["action", "actor", "target", "since", "until", "q"];

function filters() {
  const values = {};
  FIELDS.forEach((name) => { values[name] = form.elements[name].value.trim(); });
  return values;
}

/** The CSV link and the address bar follow what the table shows. */
function follow(values, at) {
  const table = byId("audit-table");
  if (table && table.dataset.csv) byId("audit-csv").href = table.dataset.csv;
  const total = table ? Number(table.dataset.total) : 0;
  byId("audit-status").textContent = plural(total, "row", "rows");
  const query = Object.assign({}, values, { offset: at || "" });
  window.history.replaceState(null, "", withQuery(window.location.pathname, query));
}

function loadAudit(at) {
  const values = filters();
  return loadFragment(list, withQuery("/admin/audit/rows", Object.assign({}, values, { offset: at }))).then((res) => {
    if (res.stale) return;
    if (!res.ok) { showAlert("audit-error", errorText(res, "Could not load the audit rows.")); return; }
    showAlert("audit-error", "");
    follow(values, at);
  });
}

onPager(list, loadAudit);
form.addEventListener("submit", (event) => {
  event.preventDefault();
  loadAudit(0);
});
form.addEventListener("change", (event) => {
  if (event.target.matches("select, input[type=date]")) loadAudit(0);
});
byId("audit-clear").addEventListener("click", (event) => {
  event.preventDefault();
  form.reset();
  FIELDS.forEach((name) => { form.elements[name].value = ""; });
  loadAudit(0);
});

localizeTimes(list);
