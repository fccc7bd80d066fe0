// Unit tests of the studio's inpaint and outpaint logic (site/static/js/pages/studio/editing.js):
// the result size, extending to a shape, the panel's size back from a task, the fields each
// mode sends and the lines under the canvas and the sides.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  cleanOutpaint, extendToRatio, extendsAny, maskFitLine, modeFields, outpaintLine, panelSize, resultSize, snapOutpaint,
  taskMode,
} from "../../site/static/js/pages/studio/editing.js";

const VALUES = { mask_blur: 4, inpaint_area: "whole", inpaint_padding: 32, masked_content: "fill", mask_invert: false };

test("resultSize adds the sides; missing or bad sides count 0", () => {
  assert.deepEqual(resultSize(256, 256, { right: 128 }), [384, 256]);
  assert.deepEqual(resultSize(256, 192, { left: 64, right: 64, top: 8, bottom: 16 }), [384, 216]);
  assert.deepEqual(resultSize(256, 256, { left: -8, top: "x" }), [256, 256]);
  assert.deepEqual(cleanOutpaint(null), { left: 0, right: 0, top: 0, bottom: 0 });
  assert.ok(extendsAny({ bottom: 8 }));
  assert.ok(!extendsAny({ left: 0 }));
});

test("snapOutpaint puts each side on the model's step", () => {
  assert.deepEqual(snapOutpaint({ left: 70, right: 130, top: 7, bottom: 0 }, 16), { left: 64, right: 128, top: 0, bottom: 0 });
});

test("extendToRatio grows the two sides that make the shape, on the step", () => {
  assert.deepEqual(extendToRatio(256, 256, 16, 9, 8), { left: 96, right: 104, top: 0, bottom: 0 });
  const [w, h] = resultSize(256, 256, extendToRatio(256, 256, 16, 9, 8));
  assert.ok(Math.abs(w / h - 16 / 9) < 0.02, `${w}x${h}`);
  const tall = extendToRatio(384, 256, 2, 3, 16);
  assert.equal(tall.left + tall.right, 0);
  assert.equal((tall.top + tall.bottom) % 16, 0);
  assert.equal(tall.top % 16, 0);
  const [tw, th] = resultSize(384, 256, tall);
  assert.ok(Math.abs(tw / th - 2 / 3) < 0.03, `${tw}x${th}`);
  assert.deepEqual(extendToRatio(256, 256, 1, 1, 8), { left: 0, right: 0, top: 0, bottom: 0 });
  assert.deepEqual(extendToRatio(0, 256, 1, 1, 8), { left: 0, right: 0, top: 0, bottom: 0 });
});

test("a task's mode, and the panel's size before its outpaint", () => {
  const outpainted = { width: 384, height: 256, mask: null, inpaint: { outpaint: { left: 0, right: 128, top: 0, bottom: 0 } } };
  assert.equal(taskMode(outpainted), "outpaint");
  assert.deepEqual(panelSize(outpainted), [256, 256]);
  const inpainted = { width: 256, height: 256, mask: "m1", inpaint: { outpaint: { left: 0, right: 0, top: 0, bottom: 0 } } };
  assert.equal(taskMode(inpainted), "inpaint");
  assert.deepEqual(panelSize(inpainted), [256, 256]);
  assert.equal(taskMode({ width: 64, height: 64, init_image: "x", mask: null, inpaint: null }), "img2img");
  assert.deepEqual(panelSize({ width: 64, height: 64, inpaint: null }), [64, 64]);
});

test("each mode sends only its own fields", () => {
  assert.deepEqual(modeFields("img2img", VALUES, "data:x", { right: 64 }), {});
  const inpaint = modeFields("inpaint", VALUES, "data:image/png;base64,AA", { right: 64 });
  assert.equal(inpaint.mask, "data:image/png;base64,AA");
  assert.equal(inpaint.outpaint, undefined);
  assert.equal(inpaint.inpaint_padding, undefined); // only with "Only masked"
  assert.deepEqual(Object.keys(inpaint).sort(), ["inpaint_area", "mask", "mask_blur", "mask_invert", "masked_content"]);
  const masked = modeFields("inpaint", Object.assign({}, VALUES, { inpaint_area: "masked" }), null, null);
  assert.equal(masked.inpaint_padding, 32);
  assert.equal(masked.mask, undefined); // an estimate: no mask
  const outpaint = modeFields("outpaint", VALUES, "data:x", { right: 128 });
  assert.deepEqual(outpaint, { outpaint: { left: 0, right: 128, top: 0, bottom: 0 }, mask_blur: 4, masked_content: "fill" });
});

test("the lines say how the picture, its mask and the result are sized", () => {
  assert.match(maskFitLine(600, 400, 256, 256, "cover", "whole", 32), /^The picture and its mask \(600 × 400\) are fitted together\. Cropped to fill 256 × 256/);
  assert.match(maskFitLine(600, 400, 256, 256, "cover", "masked", 48), /Only masked: the painted area and 48 px around it/);
  assert.equal(maskFitLine(0, 0, 256, 256, "cover", "whole", 0), "");
  assert.equal(outpaintLine(256, 256, { right: 128 }),
    "The picture is fitted to 256 × 256 and extended (right 128 px): the result is 384 × 256.");
  assert.match(outpaintLine(256, 256, {}), /^Choose how far to extend each side/);
});
