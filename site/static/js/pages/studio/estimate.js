/* Daydream studio — the cost line (the formula at once, then the server's answer) and the
 * server's estimate of the wait (POST /api/v1/estimate), kept current as the form changes. */
import { api } from "../../lib/api.js";
import { currentTokens } from "../../lib/balance.js";
import { byId } from "../../lib/dom.js";
import { formatSeconds, isNumber, plural } from "../../lib/format.js";
import { config } from "./config.js";
import { computeCost, isFreeOfCharge, shownCost } from "./cost.js";
import { clearFieldError, numberValue, readForm, showFieldErrors } from "./fields.js";

/* The estimate does not depend on the prompt; with none typed yet this stands in for it. */
const ESTIMATE_PROMPT = "estimate";

/* The server's cost for the current parameters (null while stale), and whether it charges
   this user at all (staff generate free of charge unless configured). */
let serverCost = null;
let freeOfCharge = false;
let timer = null;
let seq = 0;
let errorFields = [];

/** The formula's cost of what the form holds (null while a number is missing). */
export function formCost() {
  return computeCost({
    samples: numberValue("samples"), steps: numberValue("steps"),
    width: numberValue("width"), height: numberValue("height"),
  }, config.cost);
}

export function updateCost() {
  const costEl = byId("cost");
  if (!costEl) return;
  const cost = shownCost(serverCost, freeOfCharge, formCost());
  const tokens = currentTokens();
  costEl.textContent = cost === null ? "–" : String(cost);
  costEl.dataset.cost = cost === null ? "" : String(cost);
  costEl.dataset.source = serverCost !== null ? "server" : "formula";
  const unit = byId("cost-unit");
  if (unit) unit.textContent = cost === 1 ? "token" : "tokens";
  const balanceHint = byId("cost-balance");
  const short = cost !== null && tokens !== null && cost > tokens;
  if (balanceHint) {
    balanceHint.textContent = tokens === null ? "" : (short ? "You have only " : "You have ") + plural(tokens, "token", "tokens");
  }
  const line = byId("cost-line");
  if (line) line.classList.toggle("is-short", short);
}

function setEstimate(state, text, title) {
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

/** The estimate line of an answer of POST /api/v1/estimate: {text, title}. */
export function describeEstimate(data) {
  const position = isNumber(data.position) ? data.position : null;
  const title = position !== null
    ? (position <= 1 ? "It would be next in line." : "It would be number " + position + " in the queue.")
    : "";
  if (data.eta_s === null || data.eta_s === undefined) {
    return { text: "No estimate yet: nothing like this has run here so far.", title };
  }
  const wait = isNumber(data.wait_s) ? data.wait_s : null;
  const run = isNumber(data.run_s) ? data.run_s : null;
  let text;
  if (wait !== null && run !== null) text = "≈ " + formatSeconds(wait) + " to wait, " + formatSeconds(run) + " to run";
  else if (isNumber(data.eta_s)) text = "≈ " + formatSeconds(data.eta_s) + " until it is done";
  else text = "No estimate yet";
  return { text, title };
}

function runEstimate() {
  const payload = readForm();
  if (!String(payload.prompt || "").trim()) payload.prompt = ESTIMATE_PROMPT;
  const mine = ++seq;
  const node = byId("estimate");
  if (node) node.classList.add("is-loading");
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
      updateCost();
      const d = describeEstimate(res.data);
      setEstimate(res.data.eta_s === null || res.data.eta_s === undefined ? "none" : "ok", d.text, d.title);
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
