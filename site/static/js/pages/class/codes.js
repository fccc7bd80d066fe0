/* Daydream — the Class page's join codes (pages/class/main.js): make one (how long it
 * works, how many joins), copy its link, withdraw it. */
import { api, errorText } from "../../lib/api.js";
import { byId, copyText } from "../../lib/dom.js";
import { confirmAction, notice } from "../../lib/confirm.js";
import { busy, clearErrors, showErrors } from "../../lib/forms.js";

export function initCodes(page) {
  const form = byId("code-form");
  const list = byId("codes-list");

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    clearErrors(form);
    const days = byId("code-expires").value;
    const uses = byId("code-uses").value.trim();
    const button = byId("code-make");
    busy(button, true, "Making…");
    api("POST", page.apiBase + "/codes", {
      expires_in_days: days ? Number(days) : null,
      max_uses: uses ? Number(uses) : null,
    }).then((res) => {
      busy(button, false);
      if (!res.ok) { showErrors(form, res.error, "max_uses"); return; }
      page.say("New code " + res.data.code + ": share its link or the code.");
      page.refresh("codes");
      page.refresh("audit");
    });
  });

  list.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-action]");
    const row = button && button.closest("tr.code-row");
    if (!row) return;
    if (button.dataset.action === "copy") {
      copyText(row.dataset.link).then((copied) => {
        page.say(copied ? "Link copied: " + row.dataset.link : "Copy this link: " + row.dataset.link);
      });
      return;
    }
    confirmAction({ title: "Withdraw the code " + row.dataset.code + "?",
                    text: "Nobody can join with it or its link any more; members who joined stay.",
                    ok: "Withdraw", danger: true }).then((ok) => {
      if (!ok) return;
      api("DELETE", page.apiBase + "/codes/" + encodeURIComponent(row.dataset.codeId)).then((res) => {
        if (!res.ok) { notice({ title: "Not withdrawn", text: errorText(res, "Try again.") }); return; }
        page.say("The code " + row.dataset.code + " is withdrawn.");
        page.refresh("codes");
      });
    });
  });
}
