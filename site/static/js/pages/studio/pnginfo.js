/* Daydream studio — PNG info: the settings a picture carries (Daydream's, A1111's, ComfyUI's,
 * InvokeAI's; POST /api/v1/png-info reads them), shown in a dialog with "Use these settings",
 * which fills the panel as the cards' Reuse does (reuse.js). A picture dropped onto the
 * panel anywhere but its init-image section is read so, as is one chosen with the
 * "PNG info" button this module adds to the panel's tools. The dialog is built here, in
 * the style of lib/confirm.js (no markup in the template, nothing inline: the CSP holds). */
import { api, errorText } from "../../lib/api.js";
import { announce, byId, el } from "../../lib/dom.js";
import { notice } from "../../lib/confirm.js";
import { reuseSettings } from "./reuse.js";

const SOURCES = { daydream: "Daydream", a1111: "AUTOMATIC1111 (or Forge)", comfyui: "ComfyUI", invokeai: "InvokeAI" };
const ICON = "M4 5h16v14H4zM8 10h8M8 14h5";
let open = null; // the open dialog, while one is

function modelName(params) {
  if (params.model) {
    const option = document.querySelector('#model option[value="' + CSS.escape(String(params.model)) + '"]');
    return option ? option.textContent.trim() : String(params.model);
  }
  return params.model_name || "";
}

function schedulerName(key) {
  const option = key ? document.querySelector('#scheduler option[value="' + CSS.escape(String(key)) + '"]') : null;
  return option ? option.textContent.trim() : key || "";
}

/** The settings worth a line of their own, as [label, value] pairs (empty ones left out). */
export function settingLines(params) {
  const p = params || {};
  const lines = [
    ["Model", modelName(p) + (p.model || !p.model_name ? "" : " (not on this server)")],
    ["Size", p.width && p.height ? p.width + " × " + p.height : ""],
    ["Steps", p.steps], ["Guidance", p.guidance], ["Seed", p.seed], ["Sampler", schedulerName(p.scheduler)],
    ["Strength", p.strength],
  ];
  if (p.hires && typeof p.hires === "object") {
    const h = p.hires;
    lines.push(["Hires fix", [h.scale ? "×" + h.scale : (h.width && h.height ? h.width + " × " + h.height : ""),
      h.upscaler, h.steps ? h.steps + " steps" : "", h.denoising !== undefined ? "denoising " + h.denoising : ""]
      .filter(Boolean).join(", ")]);
  }
  return lines.filter(([, value]) => value !== undefined && value !== null && value !== "");
}

function close(dialog) {
  if (dialog.open) dialog.close();
  else dialog.remove();
}

function show(info) {
  const params = info.parameters || {};
  const returnTo = document.activeElement;
  const use = el("button", { type: "submit", class: "btn btn--small btn--primary", id: "pnginfo-use",
                             text: "Use these settings" });
  const cancel = el("button", { type: "button", class: "btn btn--small btn--ghost", id: "pnginfo-cancel", text: "Close" });
  const settings = settingLines(params);
  const form = el("form", { class: "dialog__form", method: "dialog", novalidate: true }, [
    el("h2", { class: "dialog__title", id: "pnginfo-title", text: "PNG info" }),
    el("p", { class: "dialog__text", id: "pnginfo-source",
              text: "Made with " + (SOURCES[info.source] || "another tool") + "." }),
    el("p", { class: "dialog__text", id: "pnginfo-prompt", text: params.prompt ? params.prompt : "(no prompt)" }),
    params.negative_prompt
      ? el("p", { class: "dialog__text", id: "pnginfo-negative", text: "Negative prompt: " + params.negative_prompt })
      : null,
    el("ul", { class: "task__meta", id: "pnginfo-settings" },
       settings.map(([label, value]) => el("li", { text: label + ": " + value }))),
    el("div", { class: "dialog__actions" }, [cancel, use]),
  ]);
  const dialog = el("dialog", { class: "dialog", id: "pnginfo-dialog", "aria-modal": "true",
                                "aria-labelledby": "pnginfo-title", "aria-describedby": "pnginfo-source" }, [form]);
  document.body.appendChild(dialog);
  open = dialog;
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const task = Object.assign({}, params);
    if (!task.model) delete task.model; // a model not on this server: the panel keeps its own
    close(dialog);
    reuseSettings(task, { init: null });
    announce("The picture's settings are in the panel.");
  });
  cancel.addEventListener("click", () => close(dialog));
  dialog.addEventListener("cancel", (event) => { event.preventDefault(); close(dialog); });
  dialog.addEventListener("close", () => {
    dialog.remove();
    if (open === dialog) open = null;
    const lost = !document.activeElement || document.activeElement === document.body;
    if (lost && returnTo && returnTo.isConnected && typeof returnTo.focus === "function") returnTo.focus();
  });
  if (typeof dialog.showModal === "function") dialog.showModal();
  else dialog.setAttribute("open", "");
  use.focus();
}

/** Read a picture's settings and show them (or say why not). */
export function readPngInfo(file) {
  if (!file || open) return Promise.resolve();
  const data = new FormData();
  data.append("file", file, file.name || "picture.png");
  return api("POST", "/api/v1/png-info", data).then((res) => {
    if (!res.ok || !res.data) {
      return notice({ title: "PNG info", text: errorText(res, "That picture could not be read.") });
    }
    if (!res.data.source) {
      return notice({ title: "PNG info", text: "This picture carries no generation settings that Daydream can read." });
    }
    show(res.data);
    return undefined;
  });
}

function draggingFiles(event) {
  const types = event.dataTransfer && event.dataTransfer.types;
  return !!types && Array.prototype.indexOf.call(types, "Files") !== -1;
}

/** Wire the panel: dropping a picture outside the init-image zone, and the "PNG info" button. */
export function initPngInfo() {
  const panel = byId("studio-panel");
  if (!panel) return;
  const outsideInit = (event) => !(event.target && event.target.closest && event.target.closest("#init-section, #init-drop"));
  panel.addEventListener("dragover", (event) => {
    if (!draggingFiles(event) || !outsideInit(event)) return;
    event.preventDefault();
    event.dataTransfer.dropEffect = "copy";
  });
  panel.addEventListener("drop", (event) => {
    if (!outsideInit(event)) return; // the init image's own section (upload.js, inpaint.js)
    const files = event.dataTransfer && event.dataTransfer.files;
    if (!files || !files.length) return;
    event.preventDefault();
    readPngInfo(files[0]);
  });

  const tools = panel.querySelector(".panel__tools");
  if (!tools || byId("pnginfo-button")) return;
  const input = el("input", { type: "file", class: "visually-hidden", id: "pnginfo-file", tabindex: "-1",
                              accept: "image/png,image/jpeg,image/webp", "aria-hidden": "true" });
  const icon = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  icon.setAttribute("viewBox", "0 0 24 24");
  icon.setAttribute("aria-hidden", "true");
  ICON.split("M").filter(Boolean).forEach((part) => {
    const path = document.createElementNS("http://www.w3.org/2000/svg", "path");
    path.setAttribute("d", "M" + part);
    icon.appendChild(path);
  });
  const button = el("button", { type: "button", class: "tool-btn", id: "pnginfo-button",
                                title: "Read the settings of a picture made here or with A1111, ComfyUI or InvokeAI (or drop it on the panel)" },
                    [icon, el("span", { text: "PNG info" })]);
  button.addEventListener("click", () => input.click());
  input.addEventListener("change", () => {
    const file = input.files && input.files[0];
    input.value = "";
    readPngInfo(file);
  });
  tools.insertBefore(button, byId("help-toggle") || tools.firstChild);
  tools.appendChild(input);
}
