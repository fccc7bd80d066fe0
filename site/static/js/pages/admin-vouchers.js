/* Daydream — the staff vouchers page (/admin/vouchers): make a batch of codes, filter and
 * page the table. The table is a server-rendered partial (admin/_vouchers_rows.html),
 * fetched again after a batch, a filter or a page. */
import { api, errorText } from "../lib/api.js";
import { byId } from "../lib/dom.js";
import { plural } from "../lib/format.js";
import { showAlert } from "../lib/forms.js";
import { loadFragment, onPager, withQuery } from "../lib/fragment.js";
import { localizeTimes } from "../lib/times.js";

const list = byId("vouchers-list");
const filter = byId("voucher-filter");

function loadVouchers(offset) {
  return loadFragment(list, withQuery("/admin/vouchers/rows", { state: filter.value, offset }));
}
onPager(list, loadVouchers);
filter.addEventListener("change", () => loadVouchers(0));

const form = byId("voucher-form");
form.addEventListener("submit", (event) => {
  event.preventDefault();
  showAlert("tokens-error", "");
  showAlert("count-error", "");
  const button = byId("voucher-create");
  button.disabled = true;
  api("POST", "/api/v1/admin/vouchers", {
    tokens: Number(byId("voucher-tokens").value),
    count: Number(byId("voucher-count").value),
    note: byId("voucher-note").value,
  }).then((res) => {
    button.disabled = false;
    if (!res.ok) {
      const field = res.error && res.error.field;
      if (field === "tokens" || field === "count") showAlert(field + "-error", res.error.message.replace(field + ": ", ""));
      else byId("voucher-status").textContent = errorText(res, "No codes were made.");
      return;
    }
    byId("voucher-status").textContent = plural(res.data.codes.length, "code", "codes") + " worth " + res.data.tokens + " tokens each.";
    byId("new-codes").hidden = false;
    byId("new-codes-text").value = res.data.codes.join("\n");
    loadVouchers(0);
  });
});

localizeTimes(list);
