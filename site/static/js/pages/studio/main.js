/* Daydream studio (/studio): the generate panel, the session timeline and live updates.
 * The entry module: it wires the parts and starts the page. Its configuration comes from
 * the JSON block #studio-config (config.js); the contract is /api/v1 (docs/API.md).
 *
 *   form.js, fields.js, panel.js, upload.js, reuse.js, boards.js  the panel
 *   inpaint.js (maskcanvas.js, editing.js)                      inpaint and outpaint of the start picture
 *   guidepanel.js (guides.js, scribble.js)                      control units, references, the pictures of an edit
 *   models.js (cards.js), lorapicker.js (loras.js)              the chosen model's card, its LoRAs
 *   memory.js (defaults.js)                                     the kept panel, per-model defaults
 *   estimate.js (cost.js)                                       the cost line and the estimate
 *   store.js (merge.js), timeline.js                            the tasks and their cards
 *   live.js, settings.js, sessions.js                           the server, live updates, popovers
 *   sizes.js, cost.js, merge.js, rules.js, store.js,            pure logic (node --test tests/js)
 *   defaults.js, messages.js, cards.js, loras.js, editing.js, guides.js
 */
import { onBalance } from "../../lib/balance.js";
import { recall } from "../../lib/storage.js";
import { initBoards, loadBoards } from "./boards.js";
import { scheduleEstimate, formCost, updateCost } from "./estimate.js";
import { NUMBER_FIELDS, syncRangeFromNumber } from "./fields.js";
import { initForm, onFormChanged, renderSeedLock, setHelp, updatePromptCount } from "./form.js";
import { initGuides } from "./guidepanel.js";
import { initInpaint, maskCoverage } from "./inpaint.js";
import { applyEvent, cancelTask, loadTimeline, refreshQueue, startLive } from "./live.js";
import { initLoraPicker } from "./lorapicker.js";
import { initMemory, restorePanel, savePanel } from "./memory.js";
import { applyCard } from "./models.js";
import { initPanel } from "./panel.js";
import { initPngInfo } from "./pnginfo.js";
import { applyImageFromUrl, reuseSettings } from "./reuse.js";
import { initSessions, showViewedSession } from "./sessions.js";
import { initSettings, refreshBalance } from "./settings.js";
import { state } from "./state.js";
import { store } from "./store.js";
import { initTimeline, updateEmptyState } from "./timeline.js";
import { initUpload, renderInitImage } from "./upload.js";

initTimeline({ onCancel: cancelTask, onReuse: reuseSettings });
initForm();
initLoraPicker(() => { onFormChanged(); savePanel(); });
initUpload();
initPngInfo();
initInpaint();
initGuides(() => onFormChanged());
initPanel();
initSettings();
initBoards();
initSessions();
initMemory();
onBalance(updateCost);
// The kept panel brings its model's card; else the card of the model the page chose.
if (!restorePanel()) applyCard();

updatePromptCount();
NUMBER_FIELDS.forEach(syncRangeFromNumber);
renderSeedLock();
renderInitImage();
setHelp(recall("help") === "1");
onFormChanged();
scheduleEstimate(0);
updateEmptyState();
loadTimeline();
refreshQueue();
refreshBalance();
startLive();
loadBoards();
showViewedSession();
applyImageFromUrl();

// For the console and tests: a read-only peek at the client state.
window.daydreamStudio = {
  tasks: store.tasks,
  applyEvent,
  reload: loadTimeline,
  computeCost: formCost,
  settings: state.settings,
  maskCoverage,
  guides: state.guides,
};

// The panel is wired: a click from now on is handled (tests wait for this after arriving).
document.body.dataset.ready = "studio";
