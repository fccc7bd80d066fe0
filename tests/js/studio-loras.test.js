// Unit tests of the studio's LoRA rules (site/static/js/pages/studio/loras.js): the family
// filter, the most a task may use, weights, what is kept and what a task brings back, and the
// <lora:name:0.8> tags typed into the prompt (read as services/generation/loratags.py reads them).
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  DEFAULT_MAX_LORAS, WEIGHT, addLora, addable, clampWeight, droppedNote, keepAvailable, keptLoras, lorasFor,
  lorasPayload, lorasText, maxLoras, promptLoras, removeLora, setWeight, shownLoras,
} from "../../site/static/js/pages/studio/loras.js";

const LORAS = [
  { id: "demo-sdxl-lora", name: "Demo SDXL LoRA", kind: "lora", family: "sdxl" },
  { id: "ink", name: "Ink", kind: "lora", family: "sdxl" },
  { id: "sd1-detail", name: "Detail", kind: "lora", family: "sd1" },
  { id: "flux-film", name: "Film", kind: "lora", family: "flux" },
];
const SDXL = lorasFor(LORAS, "sdxl");

test("only the LoRAs of the model's family are offered; none for a model of no known family", () => {
  assert.deepEqual(SDXL.map((l) => l.id), ["demo-sdxl-lora", "ink"]);
  assert.deepEqual(lorasFor(LORAS, "flux").map((l) => l.id), ["flux-film"]);
  assert.deepEqual(lorasFor(LORAS, "sd3"), []);
  assert.deepEqual(lorasFor(LORAS, ""), []);
  assert.deepEqual(lorasFor(undefined, "sdxl"), []);
});

test("max_loras: the page's, else 4", () => {
  assert.equal(maxLoras(undefined), DEFAULT_MAX_LORAS);
  assert.equal(maxLoras(4), 4);
  assert.equal(maxLoras(2), 2);
  assert.equal(maxLoras("x"), 4);
});

test("weights stay within -2..2 on the 0.05 grid; the default for nonsense", () => {
  assert.deepEqual(WEIGHT, { min: -2, max: 2, step: 0.05, default: 0.8 });
  assert.equal(clampWeight(0.8), 0.8);
  assert.equal(clampWeight(3), 2);
  assert.equal(clampWeight(-7), -2);
  assert.equal(clampWeight("1.23"), 1.25);
  assert.equal(clampWeight(0.1 + 0.2), 0.3);
  assert.equal(clampWeight(-0.01), 0);
  assert.ok(!Object.is(clampWeight(-0.01), -0));
  assert.equal(clampWeight("abc"), 0.8);
  assert.equal(clampWeight(""), 0.8);
  assert.equal(clampWeight(NaN), 0.8);
  assert.equal(clampWeight(null), 0.8);
});

test("adding: the default weight, each once, at most max_loras, only one offered", () => {
  let r = addLora([], "ink", SDXL, 2);
  assert.equal(r.error, null);
  assert.deepEqual(r.list, [{ id: "ink", name: "Ink", weight: 0.8 }]);
  const again = addLora(r.list, "ink", SDXL, 2);
  assert.match(again.error, /already/);
  assert.equal(again.list.length, 1);
  r = addLora(r.list, "demo-sdxl-lora", SDXL, 2, 5);
  assert.equal(r.list[1].weight, 2);
  const full = addLora(r.list, "sd1-detail", lorasFor(LORAS, "sdxl").concat([{ id: "x", name: "X", family: "sdxl" }]), 2);
  assert.ok(full.error);
  const fuller = addLora(r.list, "x", [{ id: "x", name: "X", family: "sdxl" }], 2);
  assert.match(fuller.error, /At most 2 LoRAs/);
  assert.match(addLora([], "sd1-detail", SDXL, 4).error, /Choose/); // another family's is not offered
  assert.deepEqual(addable(r.list, SDXL), []);
  assert.deepEqual(addable([{ id: "ink" }], SDXL).map((l) => l.id), ["demo-sdxl-lora"]);
});

test("removing and weighting one LoRA leaves the others as they are", () => {
  const list = [{ id: "ink", name: "Ink", weight: 0.8 }, { id: "demo-sdxl-lora", name: "Demo", weight: 1 }];
  assert.deepEqual(removeLora(list, "ink"), [list[1]]);
  assert.deepEqual(setWeight(list, "ink", -2.5), [{ id: "ink", name: "Ink", weight: -2 }, list[1]]);
  assert.equal(list[0].weight, 0.8); // untouched
  assert.deepEqual(lorasPayload(list), [{ id: "ink", weight: 0.8 }, { id: "demo-sdxl-lora", weight: 1 }]);
  assert.deepEqual(lorasPayload([]), []);
});

test("changing the model drops the LoRAs of another family, with a note naming them", () => {
  const chosen = [{ id: "ink", name: "Ink", weight: 0.5 }, { id: "demo-sdxl-lora", name: "Demo SDXL LoRA", weight: 1 }];
  const toFlux = keepAvailable(chosen, lorasFor(LORAS, "flux"), 4);
  assert.deepEqual(toFlux.list, []);
  assert.deepEqual(toFlux.dropped, ["Ink", "Demo SDXL LoRA"]);
  assert.equal(droppedNote(toFlux.dropped, "FLUX.1 dev"), "Ink, Demo SDXL LoRA were removed: they do not fit FLUX.1 dev.");
  assert.equal(droppedNote(["Ink"]), "Ink was removed: it does not fit this model.");
  assert.equal(droppedNote([]), "");
  const same = keepAvailable(chosen, SDXL, 4);
  assert.deepEqual(same.list, chosen);
  assert.deepEqual(same.dropped, []);
  assert.deepEqual(keepAvailable(chosen, SDXL, 1).over, ["Demo SDXL LoRA"]);
});

test("a task's LoRAs come back: known ones of the family, weights clamped, each once", () => {
  const task = { loras: [
    { id: "demo-sdxl-lora", name: "Demo SDXL LoRA", weight: 0.65 },
    { id: "gone", name: "Deleted LoRA", weight: 1 },
    { id: "demo-sdxl-lora", name: "Demo SDXL LoRA", weight: 1 },
    { id: "ink", weight: 9 },
    null, "ink",
  ] };
  const back = keepAvailable(task.loras, SDXL, 4);
  assert.deepEqual(back.list, [
    { id: "demo-sdxl-lora", name: "Demo SDXL LoRA", weight: 0.65 },
    { id: "ink", name: "Ink", weight: 2 },
  ]);
  assert.deepEqual(back.dropped, ["Deleted LoRA"]);
  assert.deepEqual(keepAvailable(undefined, SDXL, 4), { list: [], dropped: [], over: [] });
});

test("what is kept of the LoRAs, and how a task card words them", () => {
  assert.deepEqual(keptLoras([{ id: "ink", weight: "0.4" }, { id: "" }, 3]), [{ id: "ink", name: "ink", weight: 0.4 }]);
  assert.deepEqual(keptLoras("ink"), []);
  assert.equal(lorasText([{ id: "ink", name: "Ink", weight: 0.8 }, { id: "d", name: "Detail", weight: -0.5 }]),
               "Ink (0.8), Detail (-0.5)");
});

test("a <lora:name:weight> tag in the prompt names a LoRA of the model's family, as the server reads it", () => {
  const read = promptLoras("a boat, <lora:Ink:0.5>, at dusk <LORA: demo-sdxl-lora.safetensors >", SDXL);
  assert.deepEqual(read.list, [
    { id: "ink", name: "Ink", weight: 0.5, tag: "<lora:Ink:0.5>" },
    { id: "demo-sdxl-lora", name: "Demo SDXL LoRA", weight: 1, tag: "<LORA: demo-sdxl-lora.safetensors >" },
  ]);
  assert.deepEqual(read.problems, []);
  // By its name too, any case; named twice: the first tag counts; A1111's lyco tags are LoRAs.
  assert.deepEqual(promptLoras("<lora:demo sdxl lora:0.3> <lyco:demo-sdxl-lora:2>", SDXL).list.map((l) => [l.id, l.weight]),
                   [["demo-sdxl-lora", 0.3]]);
  assert.deepEqual(promptLoras("a plain prompt, (with emphasis:1.2) and <angle brackets>", SDXL),
                   { list: [], problems: [] });
  assert.deepEqual(promptLoras(undefined, SDXL), { list: [], problems: [] });
});

test("a tag the server would refuse is named as it is typed", () => {
  const cases = [
    ["<lora:nothing-like-it:1>", "<lora:nothing-like-it> is not a LoRA for this model."],
    ["<lora:sd1-detail:1>", "<lora:sd1-detail> is not a LoRA for this model."], // another family's
    ["<lora:ink:heavy>", "<lora:ink:heavy>: the weight must be a number."],
    ["<lora:ink:3>", "<lora:ink:3>: the weight must be from -2 to 2."],
    ["<hypernet:h:1>", "<hypernet:h:1>: hypernetworks are not supported; use a LoRA."],
  ];
  cases.forEach(([prompt, words]) => {
    const read = promptLoras("a boat " + prompt, SDXL);
    assert.deepEqual(read.list, [], prompt);
    assert.deepEqual(read.problems, [words], prompt);
  });
});

test("the list shows a chip for each tag, in place of the same LoRA added with the picker; the tags count", () => {
  const chosen = [{ id: "ink", name: "Ink", weight: 0.8 }, { id: "x", name: "X", weight: 1 }];
  const tagged = promptLoras("<lora:ink:-0.5> <lora:demo-sdxl-lora>", SDXL).list;
  const shown = shownLoras(chosen, tagged, 4);
  assert.deepEqual(shown.picked, [{ id: "x", name: "X", weight: 1 }]); // the tag's weight wins over Ink's row
  assert.deepEqual(shown.tagged.map((l) => [l.id, l.weight, l.tag]),
                   [["ink", -0.5, "<lora:ink:-0.5>"], ["demo-sdxl-lora", 1, "<lora:demo-sdxl-lora>"]]);
  assert.equal(shown.count, 3);
  assert.equal(shown.over, false);
  assert.equal(shownLoras(chosen, tagged, 2).over, true);
  assert.deepEqual(shownLoras(chosen, [], 4), { picked: chosen, tagged: [], count: 2, over: false });
});
