/* Daydream studio — the cost line (the formula at once, then the server's answer) and the
 * server's estimate of the wait (POST /api/v1/estimate), kept current as the form changes. */
import { api } from "../../lib/api.js";
import { currentTokens } from "../../lib/balance.js";
import { byId } from "../../lib/dom.js";
import { isNumber } from "../../lib/format.js";
import { config } from "./config.js";
import { balanceLine, computeCost, costWords, isFreeOfCharge, referenceCost, runSteps, shownCost } from "./cost.js";
import { resultSize } from "./editing.js";
import { describeEstimate } from "./eta.js";
import { editing, guideCounts } from "./guidepanel.js";
import { guidedCost } from "./guides.js";
import { hiresCost } from "./hires.js";
import { state } from "./state.js";
import { store } from "./store.js";
import { clearFieldError, numberValue, readForm, showFieldErrors } from "./fields.js";

/* The estimate does not depend on the prompt; with none typed yet this stands in for it. */
const ESTIMATE_PROMPT = "estimate";

/* The server's cost for the current parameters (null while stale), and whether it charges
   this user at all (staff generate free of charge unless configured). */
let serverCost = null;
let freeOfCharge = false;
/* What can pay a task besides the user's own tokens: {pool, class} of the class pool that
   pays for them (pool null: none), from the page, then from each estimate's answer. */
let funds = config.funds || null;
let timer = null;
let seq = 0;
let errorFields = [];

/** The formula's cost of what the form holds (null while a number is missing): an
 * outpaint costs its result's size; a hires fix adds its second pass (hires.js); the
 * guides add theirs (guides.js: each control unit half, each reference a token a
 * picture; an edit its reference once, or each picture where the card says edit_each,
 * at the pixels its pipeline encodes them: cost.js's referenceCost). */
export function formCost() {
  const counts = guideCounts();
  const edit = editing();
  const start = state.initImage && !edit ? state.initImage : null; // (an edit has no start picture)
  let width = numberValue("width");
  let height = numberValue("height");
  if (start && state.edit.mode === "outpaint" && width !== null && height !== null) {
    [width, height] = resultSize(width, height, state.edit.outpaint);
  }
  const params = { samples: numberValue("samples"), steps: numberValue("steps"), width, height };
  // Image to image (inpaint, outpaint) is charged for the steps it runs: int(steps × strength).
  const first = computeCost(start ? { ...params, steps: runSteps(params.steps, numberValue("strength")) } : params,
    config.cost);
  const second = edit ? 0 : hiresCost(params, config.cost);
  if (first === null || second === null) return null;
  const editCost = edit ? referenceCost(params, config.cost, counts.editReferencePixels) : null;
  return guidedCost(first + second, { ...counts, samples: params.samples, editCost });
}

export function updateCost() {
  const costEl = byId("cost");
  if (!costEl) return;
  const cost = shownCost(serverCost, freeOfCharge, formCost());
  const tokens = currentTokens();
  costEl.textContent = cost === null ? "" : String(cost);
  costEl.dataset.cost = cost === null ? "" : String(cost);
  costEl.dataset.source = serverCost !== null ? "server" : "formula";
  const unit = byId("cost-unit");
  if (unit) unit.textContent = costWords(cost);
  // Short only when what pays (their class's pool, or their own tokens) cannot, as at submit.
  const balance = balanceLine(cost, tokens, funds);
  const balanceHint = byId("cost-balance");
  if (balanceHint) balanceHint.textContent = balance.text;
  const line = byId("cost-line");
  if (line) line.classList.toggle("is-short", balance.short);
}

function setEstimate(state, text, title) {
  if (state === "error") {
    shown = null;
    window.clearInterval(ticker);
  }
  const node = byId("estimate");
  if (!node) return;
  node.dataset.state = state;
  node.textContent = text;
  node.title = title || "";
}

/** Ask for a new estimate after `delay` ms (300 unless told); the cost falls back to the formula meanwhile. */
export function scheduleEstimate(delay) {
  serverCost = null;
  updateCost();
  window.clearTimeout(timer);
  timer = window.setTimeout(runEstimate, delay === undefined ? 300 : delay);
}

export { describeEstimate };

/* While there is a wait, the line counts it down between answers (following our running
   cards' live time left, which is what the server adds up) and asks again every
   REFRESH_MS while one of our tasks is unfinished, every OTHERS_REFRESH_MS while only
   other people's work is ahead (their queue events also make it ask). */
const REFRESH_MS = 3000;
const OTHERS_REFRESH_MS = 10000;
let shown = null; // {data, at}: the answer the line shows and when it came
let ticker = null;

/* The time left that the card of one of our running tasks shows now (null once it is not running). */
function cardTimeLeft(id) {
  const task = store.get(id);
  return task && task.state === "running" && isNumber(task.eta_s) ? task.eta_s : null;
}

function showAnswer() {
  if (!shown) return;
  const d = describeEstimate(shown.data, (Date.now() - shown.at) / 1000, cardTimeLeft);
  setEstimate(shown.data.eta_s === null || shown.data.eta_s === undefined ? "none" : "ok", d.text, d.title);
  const node = byId("estimate");
  if (node) node.dataset.waitS = isNumber(d.wait) ? String(Math.round(d.wait * 10) / 10) : "";
}

/** Show the line again: one of our running tasks' time left changed (no request). */
export function redrawEstimate() {
  showAnswer();
}

/** Ask again now, the cost kept: the wait changed (one of ours started running). */
export function refreshEstimate() {
  if (shown) runEstimate(true);
}

function keepCurrent() {
  window.clearInterval(ticker);
  ticker = null;
  // Something runs or waits ahead (or one of ours is unfinished, which will change it).
  const ours = store.hasUnfinished();
  if (!shown || !(shown.data.wait_s > 0 || ours)) return;
  const every = ours ? REFRESH_MS : OTHERS_REFRESH_MS;
  let ticks = 0;
  ticker = window.setInterval(() => {
    ticks += 1;
    showAnswer();
    if (ticks * 1000 >= every && !document.hidden) {
      window.clearInterval(ticker);
      ticker = null;
      runEstimate(true);
    }
  }, 1000);
}

/* quiet: a refresh of the same form, not shown as loading. */
function runEstimate(quiet) {
  const payload = readForm();
  if (!String(payload.prompt || "").trim()) payload.prompt = ESTIMATE_PROMPT;
  const mine = ++seq;
  const node = byId("estimate");
  if (node && quiet !== true) node.classList.add("is-loading");
  api("POST", "/api/v1/estimate", payload).then((res) => {
    if (mine !== seq) return; // a newer request is on its way
    if (node) node.classList.remove("is-loading");
    // The errors the previous estimate showed are the estimate's to take back.
    errorFields.forEach(clearFieldError);
    errorFields = [];
    if (res.ok && res.data) {
      if (isNumber(res.data.cost)) {
        serverCost = res.data.cost;
        freeOfCharge = isFreeOfCharge(res.data.cost, formCost());
      }
      if (res.data.funds) funds = res.data.funds;
      updateCost();
      shown = { data: res.data, at: Date.now() };
      showAnswer();
      keepCurrent();
      return;
    }
    if (res.status === 422 || res.status === 400) {
      // The placeholder prompt stands in; never blame the prompt the person has not typed.
      errorFields = showFieldErrors(res.error, (field) => field === "prompt" && payload.prompt === ESTIMATE_PROMPT);
      if (!errorFields.length && res.error && res.error.message) {
        setEstimate("error", res.error.message);
      } else {
        setEstimate("error", "Fix the marked setting to see an estimate.");
      }
      return;
    }
    if (res.status === 401) {
      setEstimate("error", "You were signed out.");
      return;
    }
    setEstimate("error", "No estimate right now.");
  });
}
