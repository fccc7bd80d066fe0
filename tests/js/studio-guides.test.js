// Unit tests of the studio's guides (site/static/js/pages/studio/guides.js): the rules of a
// Control unit and a Reference, what a task sends for them (and for an edit), what the
// panel says before sending, the cost they add (the server's params.guide_cost), Reuse
// bringing them back for the chosen family; the words a card shows (lib/guidewords.js);
// the Edit form's request (lib/edit.js); the scribble's drawing size (scribble.js).
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  changeReference, changeUnit, checkGuides, clampTo, defaultPreprocessor, guidedCost, guidesFor, guidesPayload,
  newReference, newUnit, offeredPreprocessors, offers, payloadCounts, restoreEditImages, restoreGuides, thresholdValue,
  unionProblem, unitControlnets, WEIGHT,
} from "../../site/static/js/pages/studio/guides.js";
import { guideLines, unitText } from "../../site/static/js/lib/guidewords.js";
import { editBody, editingModels } from "../../site/static/js/lib/edit.js";
import { fittedSize } from "../../site/static/js/lib/pictures.js";
import { drawingSize } from "../../site/static/js/pages/studio/scribble.js";

const GUIDES = [
  { id: "demo-controlnet-sd1", name: "Demo ControlNet (SD 1.x)", family: "sd1", adapter: "controlnet" },
  { id: "canny-sd15", name: "Canny SD 1.5", family: "sd1", adapter: "controlnet" },
  { id: "demo-controlnet-sdxl", name: "Demo ControlNet (SDXL)", family: "sdxl", adapter: "controlnet" },
  { id: "demo-ipadapter-sd1", name: "Demo IP-Adapter", family: "sd1", adapter: "ipadapter" },
];
const CANNY = { id: "canny", label: "Canny edges", thresholds: {
  a: { label: "Low", min: 1, max: 255, default: 100, step: 1 }, b: { label: "High", min: 1, max: 255, default: 200, step: 1 } } };
const PREPROCESSORS = [{ id: "none", label: "None", thresholds: { a: null, b: null } }, CANNY,
  { id: "scribble", label: "Scribble", thresholds: { a: null, b: null } },
  { id: "inpaint", label: "Inpaint", needs_mask: true, thresholds: { a: null, b: null } }];
const SD1 = { control: true, references: true, edit: false, maxEdit: 0 };

test("weights, the step range and the resolution stay inside their rules", () => {
  assert.equal(clampTo(WEIGHT, "2.7"), 2);
  assert.equal(clampTo(WEIGHT, -1), 0);
  assert.equal(clampTo(WEIGHT, 0.333), 0.35);
  assert.equal(clampTo(WEIGHT, "x"), 1);
  let unit = changeUnit(newUnit({ model: "m" }), { start: 0.3 });
  assert.deepEqual([unit.start, unit.end], [0.3, 1]);
  unit = changeUnit(unit, { end: 0.2 }); // end before start: start follows the end typed
  assert.deepEqual([unit.start, unit.end], [0.2, 0.2]);
  unit = changeUnit(unit, { start: 0.9 }); // start after end: end follows the start typed
  assert.deepEqual([unit.start, unit.end], [0.9, 0.9]);
  unit = changeUnit(unit, { processor_res: 5000, control_mode: "loud", resize_mode: "fill" });
  assert.equal(unit.processor_res, 2048);
  assert.equal(unit.control_mode, "balanced");
  assert.equal(unit.resize_mode, "fill");
  assert.equal(changeReference(newReference(), { weight: 9 }).weight, 2);
  assert.equal(newReference().weight, 0.6);
  assert.equal(thresholdValue(CANNY.thresholds.a, 300), 255);
  assert.equal(thresholdValue(CANNY.thresholds.a, ""), 100);
});

test("the guide models of a family, the preprocessors offered and a new unit's", () => {
  assert.deepEqual(guidesFor(GUIDES, "controlnet", "sd1").map((g) => g.id), ["demo-controlnet-sd1", "canny-sd15"]);
  assert.deepEqual(guidesFor(GUIDES, "ipadapter", "sdxl"), []);
  assert.deepEqual(guidesFor(GUIDES, "controlnet", ""), []);
  assert.deepEqual(offeredPreprocessors(PREPROCESSORS, false).map((p) => p.id), ["none", "canny", "scribble"]);
  assert.ok(offeredPreprocessors(PREPROCESSORS, true).some((p) => p.id === "inpaint"));
  assert.equal(defaultPreprocessor(PREPROCESSORS, "draw"), "scribble");
  assert.equal(defaultPreprocessor(PREPROCESSORS, "upload"), "canny");
  assert.equal(defaultPreprocessor([{ id: "tile" }], "draw"), "tile");
  assert.deepEqual(offers({ controlnet: true, ipAdapter: false, edits: false }),
                   { control: true, references: false, edit: false, editOptional: false, editEach: false,
                     editReferencePixels: null, maxEdit: 0 });
  assert.deepEqual(offers({ edits: true, maxReferences: 3 }).maxEdit, 3);
  // FLUX.2 edits optionally: with no picture to edit, its task is text to image, not refused.
  const flux2 = offers({ edits: true, editOptional: true, maxReferences: 4 });
  assert.equal(flux2.editOptional, true);
  assert.equal(checkGuides({ editImages: [], offered: flux2 }), null);
  assert.equal(checkGuides({ editImages: [], offered: offers({ edits: true, maxReferences: 3 }) }).field, "edit");
});

test("a Union that takes every unit is never mixed with another ControlNet: the first unit's choice decides", () => {
  const sdxl = [
    { id: "canny-xl", name: "Canny XL", family: "sdxl", adapter: "controlnet", architecture: "controlnet" },
    { id: "union", name: "Union", family: "sdxl", adapter: "controlnet", architecture: "union", control_modes: 6 },
    { id: "promax", name: "ProMax", family: "sdxl", adapter: "controlnet", architecture: "union", control_modes: 8 },
  ];
  const ids = (choice) => choice.choices.map((g) => g.id);
  const first = newUnit({ model: "union" });
  const second = newUnit({ model: "canny-xl" });
  // The first unit chooses any; the others only its Union (not the other Union, not Canny).
  assert.deepEqual(ids(unitControlnets(sdxl, [first, second], first.key)), ["canny-xl", "union", "promax"]);
  const follows = unitControlnets(sdxl, [first, second], second.key);
  assert.deepEqual(ids(follows), ["union"]);
  assert.match(follows.note, /^Union \(Control 1\) is a ControlNet Union: it takes every unit/);
  assert.deepEqual(ids(unitControlnets(sdxl, [first], "a-unit-being-added")), ["union"]);
  // A first unit on another ControlNet: the others any but a Union, and said why.
  const plain = unitControlnets(sdxl, [second, first], first.key);
  assert.deepEqual(ids(plain), ["canny-xl"]);
  assert.match(plain.note, /choose it on Control 1/);
  // Alone, or before the first unit has a model: any, nothing said.
  assert.deepEqual(unitControlnets(sdxl, [], "new"), { choices: sdxl, note: "" });
  assert.deepEqual(ids(unitControlnets(sdxl, [newUnit({}), second], second.key)), ["canny-xl", "union", "promax"]);
  // A FLUX Union runs beside other FLUX ControlNets: nothing narrows.
  const flux = [{ id: "flux-union", family: "flux", architecture: "union" }, { id: "flux-canny", family: "flux", architecture: "controlnet" }];
  assert.deepEqual(unitControlnets(flux, [newUnit({ model: "flux-union" })], "next"), { choices: flux, note: "" });
});

test("units on a ControlNet Union: said before sending what the server refuses, the modes they may pick", () => {
  const sdxl = [
    { id: "canny-xl", name: "Canny XL", family: "sdxl", adapter: "controlnet", architecture: "controlnet" },
    { id: "union", name: "Union", family: "sdxl", adapter: "controlnet", architecture: "union", control_modes: 6 },
    { id: "promax", name: "ProMax", family: "sdxl", adapter: "controlnet", architecture: "union", control_modes: 8 },
  ];
  const pre = [{ id: "none", label: "None" }, { id: "canny", label: "Canny edges", sdxl_union_type: 3, union_type: 0 },
    { id: "depth", label: "Depth", sdxl_union_type: 1, union_type: 2 }, { id: "tile", label: "Tile / blur", sdxl_union_type: 6, union_type: 1 }];
  const unit = (model, preprocessor, control_mode) => changeUnit(newUnit({ model, preprocessor, image: { id: "i" } }), { control_mode });
  // Units on one SDXL Union each pick their preprocessor's mode (depth 1, canny 3, none 3) in one control mode.
  assert.equal(unionProblem([unit("union", "canny", "prompt"), unit("union", "depth", "prompt"), unit("union", "none", "prompt")],
                            sdxl, pre), null);
  // Two control modes on that one model: refused by the server (a 422 naming control), said here.
  const mixed = [unit("union", "canny", "balanced"), unit("union", "depth", "balanced"), unit("union", "depth", "control")];
  assert.equal(unionProblem(mixed, sdxl, pre), "The units on Union (a ControlNet Union, one model for all of them) share " +
    "one control mode: Control 3 is \u201cControlNet is more important\u201d, Control 1 \u201cBalanced\u201d.");
  // checkGuides blocks Generate with it, on the control field.
  const checked = checkGuides({ units: mixed, offered: { control: true }, guides: sdxl, preprocessors: pre });
  assert.deepEqual(checked, { field: "control", message: unionProblem(mixed, sdxl, pre) });
  // A mode the Union lacks (tile: 6 on xinsir's first, six-mode Union); ProMax has it.
  assert.equal(unionProblem([unit("union", "canny"), unit("union", "tile")], sdxl, pre),
    "Control 2: Tile / blur needs mode 6 of a ControlNet Union; Union has 6 modes. Choose another preprocessor or ControlNet.");
  assert.equal(unionProblem([unit("promax", "canny"), unit("promax", "tile")], sdxl, pre), null);
  // No Union: any control modes; a FLUX Union runs its units apart (its modes its union_type).
  assert.equal(unionProblem([unit("canny-xl", "canny", "prompt"), unit("canny-xl", "depth", "control")], sdxl, pre), null);
  const flux = [{ id: "flux-union", name: "FLUX Union", family: "flux", architecture: "union", control_modes: 2 }];
  assert.equal(unionProblem([unit("flux-union", "tile", "balanced")], flux, pre), null);
  assert.match(unionProblem([unit("flux-union", "depth")], flux, pre), /^Control 1: Depth needs mode 2 of a ControlNet Union; FLUX Union has 2 modes/);
  assert.equal(unionProblem([], sdxl, pre), null);
  assert.equal(checkGuides({ units: [unit("union", "canny")], offered: { control: true }, guides: sdxl, preprocessors: pre }), null);
});

test("what a task sends: each unit with its picture, thresholds only where the preprocessor has them", () => {
  const canny = changeUnit(newUnit({ preprocessor: "canny", model: "canny-sd15", image: { id: "img1" } }),
                           { weight: 0.8, end: 0.5, threshold_a: 50 });
  const scribble = newUnit({ source: "draw", preprocessor: "scribble", model: "demo-controlnet-sd1" });
  const blank = newUnit({ preprocessor: "none", model: "canny-sd15" }); // no picture yet: not sent
  const ref = newReference({ image: { data: "data:image/png;base64,AAAA" }, model: "demo-ipadapter-sd1" });
  const drawn = (item) => (item.source === "draw" ? "data:image/png;base64,SCRIBBLE" : item.image ? item.image.id || item.image.data : null);
  const body = guidesPayload({ units: [canny, scribble, blank], references: [ref], offered: SD1, imageOf: drawn, preprocessors: PREPROCESSORS });
  assert.deepEqual(body.control, [
    { image: "img1", preprocessor: "canny", model: "canny-sd15", weight: 0.8, start: 0, end: 0.5, control_mode: "balanced",
      resize_mode: "crop", processor_res: 512, threshold_a: 50, threshold_b: 200, pixel_perfect: false },
    { image: "data:image/png;base64,SCRIBBLE", preprocessor: "scribble", model: "demo-controlnet-sd1", weight: 1, start: 0,
      end: 1, control_mode: "balanced", resize_mode: "crop", processor_res: 512, threshold_a: null, threshold_b: null,
      pixel_perfect: false },
  ]);
  assert.deepEqual(body.references, [{ image: "data:image/png;base64,AAAA", weight: 0.6, model: "demo-ipadapter-sd1" }]);
  assert.equal(body.edit, undefined);
  // A model without ControlNet or IP-Adapter gets neither; nothing at all is no field at all.
  assert.deepEqual(guidesPayload({ units: [canny], references: [ref], offered: { control: false, references: false } }), {});
  // A model that edits: the pictures to edit only.
  const edit = guidesPayload({ units: [canny], references: [ref], editImages: [{ id: "src" }, { data: "data:image/webp;base64,BB" }],
                               offered: { edit: true, maxEdit: 3 } });
  assert.deepEqual(edit, { edit: { images: ["src", "data:image/webp;base64,BB"] } });
  assert.deepEqual(payloadCounts(body), { control: 2, references: 1, edit: 0 });
  assert.deepEqual(payloadCounts(edit), { control: 0, references: 0, edit: 2 });
});

test("the panel says what is missing before sending", () => {
  const has = (item) => !!item.image;
  const blankDrawing = newUnit({ source: "draw", model: "m" });
  assert.deepEqual(checkGuides({ units: [blankDrawing], offered: SD1, hasImage: has }),
    { field: "control", message: "Control 1 is blank: draw on it, or remove it." });
  const noPicture = newUnit({ model: "m" });
  assert.match(checkGuides({ units: [newUnit({ model: "m", image: { id: "a" } }), noPicture], offered: SD1, hasImage: has }).message,
    /^Control 2 has no picture/);
  assert.match(checkGuides({ units: [newUnit({ image: { id: "a" } })], offered: SD1, hasImage: has }).message, /no ControlNet fits/);
  assert.equal(checkGuides({ references: [newReference({ model: "r" })], offered: SD1, hasImage: has }).field, "references");
  assert.equal(checkGuides({ units: [noPicture], offered: { control: false }, hasImage: has }), null);
  assert.equal(checkGuides({ editImages: [], offered: { edit: true } }).field, "edit");
  assert.equal(checkGuides({ editImages: [{ id: "x" }], offered: { edit: true } }), null);
});

test("the cost the guides add is the server's: half a task a unit, a token a picture a reference, twice for an edit, or once more a picture", () => {
  assert.equal(guidedCost(10, {}), 10);
  assert.equal(guidedCost(10, { control: 1 }), 15);
  assert.equal(guidedCost(3, { control: 2 }), 3 + 2 * 2); // ceil(3 / 2) each
  assert.equal(guidedCost(4, { references: 2, samples: 3 }), 4 + 6);
  assert.equal(guidedCost(1, { control: 1, references: 1, samples: 1 }), 3);
  assert.equal(guidedCost(7, { edit: true }), 14);
  assert.equal(guidedCost(7, { edit: true, references: 1, samples: 2 }), 16);
  // An edit's pictures stitched into one reference (Kontext, Qwen-Image-Edit): the base once;
  // each its own reference (card edit_each: FLUX.2, Qwen-Image-Edit Plus): once a picture.
  assert.equal(guidedCost(7, { edit: 3 }), 14);
  assert.equal(guidedCost(7, { edit: 3, editEach: true }), 7 + 3 * 7);
  assert.equal(guidedCost(7, { edit: 0, editEach: true }), 7); // (FLUX.2 text to image)
  assert.equal(offers({ edits: true, editEach: true, maxReferences: 4 }).editEach, true);
  assert.equal(offers({ edits: true, maxReferences: 3 }).editEach, false);
  // A reference its pipeline encodes at another size than the result's costs editCost.
  assert.equal(guidedCost(1, { edit: 1, editCost: 4 }), 1 + 4);
  assert.equal(guidedCost(1, { edit: 2, editEach: true, editCost: 4 }), 1 + 2 * 4);
  assert.equal(guidedCost(7, { edit: 1, editCost: null }), 14);
  assert.deepEqual(offers({ edits: true, editReferencePixels: [1048576, 1048576] }).editReferencePixels, [1048576, 1048576]);
  assert.equal(offers({ edits: false, editReferencePixels: [0, 1048576] }).editReferencePixels, null);
  assert.equal(guidedCost(null, { control: 1 }), null);
});

test("Reuse brings a task's units and references back for the chosen family", () => {
  const task = {
    control: [
      { image: "c1", preprocessor: "canny", model: "canny-sd15", model_name: "Canny SD 1.5", weight: 0.7, start: 0.1, end: 0.8,
        control_mode: "control", resize_mode: "resize", processor_res: 768, threshold_a: 50, threshold_b: 150, pixel_perfect: true },
      { image: "c2", preprocessor: "scribble", model: "gone-since", weight: 1, start: 0, end: 1 },
    ],
    references: [{ image: "r1", model: "demo-ipadapter-sd1", weight: 0.4 }],
  };
  const back = restoreGuides(task, { guides: GUIDES, family: "sd1", maxControl: 3, maxReferences: 2 });
  assert.deepEqual(back.dropped, []);
  assert.equal(back.units.length, 2);
  const [first, second] = back.units;
  assert.deepEqual(
    [first.image.id, first.source, first.preprocessor, first.model, first.weight, first.start, first.end, first.control_mode,
     first.resize_mode, first.processor_res, first.threshold_a, first.threshold_b, first.pixel_perfect],
    ["c1", "upload", "canny", "canny-sd15", 0.7, 0.1, 0.8, "control", "resize", 768, 50, 150, true]);
  assert.equal(first.image.thumbnail_url, "/api/v1/images/c1/thumbnail");
  assert.equal(second.model, "demo-controlnet-sd1"); // its ControlNet is no longer enabled: the family's first
  assert.deepEqual(back.references.map((r) => [r.image.id, r.model, r.weight]), [["r1", "demo-ipadapter-sd1", 0.4]]);
  // Another family without an IP-Adapter: the reference is left out and said so; at most maxControl units.
  const sdxl = restoreGuides(task, { guides: GUIDES, family: "sdxl", maxControl: 1, maxReferences: 2 });
  assert.deepEqual(sdxl.units.map((u) => u.model), ["demo-controlnet-sdxl"]);
  assert.deepEqual(sdxl.dropped, ["control 2", "reference 1"]);
  assert.deepEqual(restoreGuides(null, { guides: GUIDES, family: "sd1" }), { units: [], references: [], dropped: [] });
  assert.deepEqual(restoreEditImages({ edit: { images: ["a", 3, "b"] } }).map((i) => i.id), ["a", "b"]);
  assert.deepEqual(restoreEditImages({}), []);
});

test("a card lists each unit and reference in words", () => {
  const names = { "canny-sd15": "Canny SD 1.5", "demo-ipadapter-sd1": "Demo IP-Adapter" };
  assert.equal(unitText({ preprocessor: "canny", model: "canny-sd15", weight: 1, start: 0, end: 1, control_mode: "balanced" }, names,
                        { canny: "Canny edges" }), "Canny edges · Canny SD 1.5 · weight 1");
  assert.equal(unitText({ preprocessor: "scribble", model: "x", model_name: "Scribble net", weight: 0.75, start: 0, end: 0.5,
                          control_mode: "control" }), "scribble · Scribble net · weight 0.75 · steps 0–0.5 · ControlNet is more important");
  assert.deepEqual(guideLines({ control: [{ preprocessor: "none", model: "canny-sd15", weight: 2 }],
                                references: [{ model: "demo-ipadapter-sd1", weight: 0.6 }] }, names),
    [["ControlNet 1", "none · Canny SD 1.5 · weight 2"], ["Reference 1", "Demo IP-Adapter · weight 0.6"]]);
  assert.deepEqual(guideLines({}), []);
});

test("the Edit form asks a model that edits, with the instruction as the prompt", () => {
  assert.deepEqual(editBody("  make it winter ", "demo-kontext", ["img", null, "data:image/png;base64,A"]),
    { prompt: "make it winter", model: "demo-kontext", edit: { images: ["img", "data:image/png;base64,A"] } });
  assert.deepEqual(editingModels([
    { id: "demo", kind: "model", edits: false }, { id: "demo-kontext", name: "Kontext", kind: "model", edits: true, max_references: 3 },
    { id: "cn", kind: "controlnet", edits: true }, { id: "k2", edits: true },
  ]), [{ id: "demo-kontext", name: "Kontext", max_references: 3 }, { id: "k2", name: "k2", max_references: 1 }]);
});

test("a drawing keeps the panel's shape, 512 to 768 px on its long side; a picture is fitted to the pixel limit", () => {
  assert.deepEqual(drawingSize(512, 512), [512, 512]);
  assert.deepEqual(drawingSize(640, 320), [640, 320]);
  assert.deepEqual(drawingSize(1024, 512), [768, 384]);
  assert.deepEqual(drawingSize(64, 32), [512, 256]);
  assert.deepEqual(drawingSize(null, undefined), [512, 512]);
  assert.deepEqual(fittedSize(4000, 3000, 1e6), [1154, 866]);
  assert.deepEqual(fittedSize(640, 480, 1e6), [640, 480]);
});
