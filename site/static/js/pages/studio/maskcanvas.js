/* Daydream studio — the inpaint canvas: the start picture, and the mask painted over it.
 *
 * The mask is kept at the picture's resolution in an offscreen canvas whose alpha is the
 * mask (its colour is only the overlay's tint); the visible canvas shows the picture with
 * the mask as a translucent overlay, zoomed and moved by a view transform (picture pixel
 * → CSS pixel: x * scale + ox). Pointer events, so a mouse, a pen (its pressure narrows
 * the brush) and a finger all paint; two fingers pinch to zoom and move the view. Undo
 * keeps the mask's alpha before each change. toDataURL() gives the mask as the API takes
 * it: a PNG at the picture's size, white = repaint on black. In outpaint mode the canvas
 * shows the result's layout instead (the picture fitted, the new area hatched). */

const TINT = [236, 72, 153];
const UNDO_LIMIT = 30;

function newCanvas(w, h) {
  const c = document.createElement("canvas");
  c.width = Math.max(1, w);
  c.height = Math.max(1, h);
  return c;
}

function loadImage(url) {
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.decoding = "async";
    img.onload = () => resolve(img);
    img.onerror = () => reject(new Error("the picture could not be loaded"));
    img.src = url;
  });
}

/** The drawImage arguments that fit a picture of pw × ph into the box (x, y, w, h) as the
 * worker does (init_fit): "cover" fills it, cropping the overflow, "contain" fits inside. */
function fitRect(pw, ph, x, y, w, h, fit) {
  const s = fit === "contain" ? Math.min(w / pw, h / ph) : Math.max(w / pw, h / ph);
  const dw = pw * s;
  const dh = ph * s;
  return [x + (w - dw) / 2, y + (h - dh) / 2, dw, dh];
}

/**
 * The canvas of `canvas` (inside its stage, the element that sets its size).
 * onChange(): called after each change of the mask (a stroke, undo, invert, clear, a
 * mask loaded) and of the history.
 */
export function createMaskCanvas(canvas, { onChange } = {}) {
  const stage = canvas.parentElement;
  const ctx = canvas.getContext("2d");
  let picture = null; // the loaded <img>
  let pictureUrl = "";
  let loading = Promise.resolve(null);
  let loadSeq = 0;
  let mask = newCanvas(1, 1);
  let maskCtx = mask.getContext("2d", { willReadFrequently: true });
  let view = { scale: 1, ox: 0, oy: 0, fitted: true };
  let tool = "brush";
  let brush = { size: 32, softness: 0.3 };
  let undoStack = [];
  let redoStack = [];
  let outpaint = null; // {width, height, left, right, top, bottom, fit} while outpainting
  let cursor = null; // {x, y} in CSS px, where the brush would paint
  const pointers = new Map(); // pointerId -> {x, y}
  let stroke = null; // {id, last: {x, y} in picture px, before: alpha}
  let pinch = null; // {dist, cx, cy}
  let pan = null; // {id, x, y}
  let frame = 0;

  const changed = () => { if (onChange) onChange(); };

  /* ---------- the view ---------- */

  function cssSize() { return { w: stage.clientWidth || 1, h: stage.clientHeight || 1 }; }

  function layoutBox() {
    if (outpaint) {
      return { w: outpaint.width + outpaint.left + outpaint.right, h: outpaint.height + outpaint.top + outpaint.bottom };
    }
    return picture ? { w: mask.width, h: mask.height } : null;
  }

  /** The stage's height follows the picture's (or the result's) shape, within the screen. */
  function layoutStage() {
    const box = layoutBox();
    if (!box) return;
    const width = stage.clientWidth || 300;
    const most = Math.max(180, Math.min(520, Math.round(window.innerHeight * 0.55)));
    stage.style.height = Math.max(120, Math.min(most, Math.round(width * box.h / box.w))) + "px";
  }

  function sizeBacking() {
    const dpr = window.devicePixelRatio || 1;
    const { w, h } = cssSize();
    const bw = Math.round(w * dpr);
    const bh = Math.round(h * dpr);
    if (canvas.width !== bw || canvas.height !== bh) {
      canvas.width = bw;
      canvas.height = bh;
    }
  }

  /** Zoom to fit: the whole picture (or the result) in view, centred. */
  function fit() {
    layoutStage();
    sizeBacking();
    const box = layoutBox();
    if (!box) { draw(); return; }
    const { w, h } = cssSize();
    const scale = Math.min(w / box.w, h / box.h);
    view = { scale, ox: (w - box.w * scale) / 2, oy: (h - box.h * scale) / 2, fitted: true };
    draw();
  }

  function fitScale() {
    const box = layoutBox();
    const { w, h } = cssSize();
    return box ? Math.min(w / box.w, h / box.h) : 1;
  }

  /** Zoom by `factor` around (cx, cy) in CSS px (the centre unless told). */
  function zoom(factor, cx, cy) {
    if (!picture || outpaint) return;
    const { w, h } = cssSize();
    const x = cx === undefined ? w / 2 : cx;
    const y = cy === undefined ? h / 2 : cy;
    const base = fitScale();
    const scale = Math.min(base * 16, Math.max(base * 0.5, view.scale * factor));
    const k = scale / view.scale;
    view = { scale, ox: x - (x - view.ox) * k, oy: y - (y - view.oy) * k, fitted: false };
    draw();
  }

  function toPicture(p) { return { x: (p.x - view.ox) / view.scale, y: (p.y - view.oy) / view.scale }; }

  function localPoint(event) {
    const rect = canvas.getBoundingClientRect();
    return { x: event.clientX - rect.left, y: event.clientY - rect.top };
  }

  /* ---------- drawing ---------- */

  function hatch() {
    const tile = newCanvas(12, 12);
    const t = tile.getContext("2d");
    t.fillStyle = "rgba(236, 72, 153, .16)";
    t.fillRect(0, 0, 12, 12);
    t.strokeStyle = "rgba(236, 72, 153, .5)";
    t.lineWidth = 2;
    t.beginPath();
    t.moveTo(0, 12); t.lineTo(12, 0);
    t.stroke();
    return ctx.createPattern(tile, "repeat");
  }

  function drawOutpaint() {
    const o = outpaint;
    const W = o.width + o.left + o.right;
    const H = o.height + o.top + o.bottom;
    ctx.fillStyle = hatch();
    ctx.fillRect(0, 0, W, H);
    ctx.save();
    ctx.beginPath();
    ctx.rect(o.left, o.top, o.width, o.height);
    ctx.clip();
    ctx.fillStyle = "#000";
    ctx.fillRect(o.left, o.top, o.width, o.height);
    const [x, y, dw, dh] = fitRect(picture.naturalWidth, picture.naturalHeight, o.left, o.top, o.width, o.height, o.fit);
    ctx.drawImage(picture, x, y, dw, dh);
    ctx.restore();
    ctx.strokeStyle = "rgba(255, 255, 255, .85)";
    ctx.lineWidth = 1.5 / view.scale;
    ctx.strokeRect(o.left, o.top, o.width, o.height);
  }

  function draw() {
    frame = 0;
    const dpr = window.devicePixelRatio || 1;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    if (!picture) return;
    ctx.setTransform(dpr * view.scale, 0, 0, dpr * view.scale, dpr * view.ox, dpr * view.oy);
    ctx.imageSmoothingEnabled = view.scale < 4; // zoomed far in: the picture's own pixels
    if (outpaint) {
      drawOutpaint();
      return;
    }
    ctx.drawImage(picture, 0, 0, mask.width, mask.height);
    ctx.globalAlpha = 0.55;
    ctx.drawImage(mask, 0, 0);
    ctx.globalAlpha = 1;
    if (cursor && tool !== "move") {
      ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
      const r = Math.max(1, (brush.size / 2) * view.scale);
      ctx.beginPath();
      ctx.arc(cursor.x, cursor.y, r, 0, Math.PI * 2);
      ctx.lineWidth = 1.5;
      ctx.strokeStyle = "rgba(0, 0, 0, .7)";
      ctx.stroke();
      ctx.beginPath();
      ctx.arc(cursor.x, cursor.y, Math.max(0.5, r - 1.5), 0, Math.PI * 2);
      ctx.strokeStyle = tool === "eraser" ? "rgba(255, 255, 255, .9)" : "rgba(236, 72, 153, .95)";
      ctx.stroke();
    }
  }

  function redraw() {
    if (!frame) frame = window.requestAnimationFrame(draw);
  }

  /* ---------- the mask ---------- */

  function alphaOf() {
    const data = maskCtx.getImageData(0, 0, mask.width, mask.height).data;
    const alpha = new Uint8ClampedArray(mask.width * mask.height);
    for (let i = 0, j = 3; i < alpha.length; i++, j += 4) alpha[i] = data[j];
    return alpha;
  }

  function putAlpha(alpha) {
    const image = maskCtx.createImageData(mask.width, mask.height);
    const data = image.data;
    for (let i = 0, j = 0; i < alpha.length; i++, j += 4) {
      data[j] = TINT[0]; data[j + 1] = TINT[1]; data[j + 2] = TINT[2]; data[j + 3] = alpha[i];
    }
    maskCtx.putImageData(image, 0, 0);
  }

  function remember(alpha) {
    undoStack.push(alpha || alphaOf());
    if (undoStack.length > UNDO_LIMIT) undoStack.shift();
    redoStack = [];
  }

  function stamp(x, y, radius) {
    const r = Math.max(0.5, radius);
    const soft = Math.min(1, Math.max(0, brush.softness));
    const colour = "rgb(" + TINT.join(",") + ")";
    if (soft > 0) {
      const g = maskCtx.createRadialGradient(x, y, r * (1 - soft), x, y, r);
      g.addColorStop(0, colour);
      g.addColorStop(1, "rgba(" + TINT.join(",") + ",0)");
      maskCtx.fillStyle = g;
    } else {
      maskCtx.fillStyle = colour;
    }
    maskCtx.beginPath();
    maskCtx.arc(x, y, r, 0, Math.PI * 2);
    maskCtx.fill();
  }

  function strokeTo(point, pressure) {
    const radius = (brush.size / 2) * pressure;
    maskCtx.globalCompositeOperation = tool === "eraser" ? "destination-out" : "source-over";
    const last = stroke.last;
    if (!last) {
      stamp(point.x, point.y, radius);
    } else {
      const dx = point.x - last.x;
      const dy = point.y - last.y;
      const dist = Math.hypot(dx, dy);
      const spacing = Math.max(0.5, radius * 0.25);
      const n = Math.max(1, Math.ceil(dist / spacing));
      for (let i = 1; i <= n; i++) stamp(last.x + (dx * i) / n, last.y + (dy * i) / n, radius);
    }
    maskCtx.globalCompositeOperation = "source-over";
    stroke.last = point;
  }

  function pressureOf(event) {
    // A pen's pressure narrows the brush; a mouse or a finger paints at full size.
    return event.pointerType === "pen" && event.pressure > 0 ? Math.max(0.15, event.pressure) : 1;
  }

  /* ---------- pointers ---------- */

  function beginPinch() {
    const [a, b] = Array.from(pointers.values());
    pinch = { dist: Math.hypot(a.x - b.x, a.y - b.y) || 1, cx: (a.x + b.x) / 2, cy: (a.y + b.y) / 2 };
  }

  function cancelStroke() {
    if (!stroke) return;
    putAlpha(stroke.before);
    undoStack.pop();
    stroke = null;
    redraw();
  }

  function onDown(event) {
    if (!picture || outpaint) return;
    if (event.pointerType === "mouse" && event.button !== 0 && event.button !== 1) return;
    event.preventDefault();
    if (canvas.setPointerCapture) {
      try { canvas.setPointerCapture(event.pointerId); } catch (err) { /* a pointer already gone */ }
    }
    const p = localPoint(event);
    pointers.set(event.pointerId, p);
    if (pointers.size === 2) {
      cancelStroke(); // two fingers: zoom and move, not paint
      pan = null;
      beginPinch();
      return;
    }
    if (pointers.size > 2) return;
    if (tool === "move" || event.button === 1) {
      pan = { id: event.pointerId, x: p.x, y: p.y };
      return;
    }
    const before = alphaOf();
    remember(before);
    stroke = { id: event.pointerId, last: null, before };
    cursor = p;
    strokeTo(toPicture(p), pressureOf(event));
    redraw();
  }

  function onMove(event) {
    const p = localPoint(event);
    if (pointers.has(event.pointerId)) pointers.set(event.pointerId, p);
    if (pinch && pointers.size >= 2) {
      const [a, b] = Array.from(pointers.values());
      const dist = Math.hypot(a.x - b.x, a.y - b.y) || 1;
      const cx = (a.x + b.x) / 2;
      const cy = (a.y + b.y) / 2;
      view.ox += cx - pinch.cx;
      view.oy += cy - pinch.cy;
      pinch.cx = cx;
      pinch.cy = cy;
      zoom(dist / pinch.dist, cx, cy);
      pinch.dist = dist;
      return;
    }
    if (pan && pan.id === event.pointerId) {
      view.ox += p.x - pan.x;
      view.oy += p.y - pan.y;
      view.fitted = false;
      pan.x = p.x;
      pan.y = p.y;
      redraw();
      return;
    }
    cursor = event.pointerType === "touch" && !stroke ? null : p;
    if (stroke && stroke.id === event.pointerId) {
      const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [];
      (events.length ? events : [event]).forEach((e) => strokeTo(toPicture(localPoint(e)), pressureOf(e)));
    }
    redraw();
  }

  function onUp(event) {
    pointers.delete(event.pointerId);
    if (pinch && pointers.size < 2) pinch = null;
    if (pan && pan.id === event.pointerId) pan = null;
    if (stroke && stroke.id === event.pointerId) {
      stroke = null;
      if (event.pointerType === "touch") cursor = null;
      redraw();
      changed();
    }
  }

  canvas.addEventListener("pointerdown", onDown);
  canvas.addEventListener("pointermove", onMove);
  canvas.addEventListener("pointerup", onUp);
  canvas.addEventListener("pointercancel", (event) => {
    if (stroke && stroke.id === event.pointerId) cancelStroke();
    onUp(event);
  });
  canvas.addEventListener("pointerleave", (event) => {
    if (event.pointerType === "mouse" && !stroke) { cursor = null; redraw(); }
  });
  canvas.addEventListener("contextmenu", (event) => event.preventDefault());
  // A trackpad's pinch (and Ctrl + the wheel) zooms; the plain wheel keeps scrolling the panel.
  canvas.addEventListener("wheel", (event) => {
    if (!event.ctrlKey || !picture || outpaint) return;
    event.preventDefault();
    const p = localPoint(event);
    zoom(Math.exp(-event.deltaY / 200), p.x, p.y);
  }, { passive: false });

  if (typeof ResizeObserver === "function") {
    let lastWidth = 0;
    new ResizeObserver(() => {
      const width = stage.clientWidth;
      if (!width || width === lastWidth) { sizeBacking(); redraw(); return; }
      lastWidth = width;
      if (view.fitted) fit(); else { sizeBacking(); redraw(); }
    }).observe(stage);
  }

  /* ---------- what the panel uses ---------- */

  return {
    /** Show the picture at `url` and start an empty mask at its size (the same URL keeps
     * the mask). Resolves to {width, height}, or null when it could not be loaded. */
    setPicture(url) {
      if (url && url === pictureUrl) return loading;
      const mine = ++loadSeq;
      pictureUrl = url || "";
      if (!url) {
        picture = null;
        loading = Promise.resolve(null);
        draw();
        return loading;
      }
      loading = loadImage(url).then((img) => {
        if (mine !== loadSeq) return null;
        picture = img;
        mask = newCanvas(img.naturalWidth, img.naturalHeight);
        maskCtx = mask.getContext("2d", { willReadFrequently: true });
        undoStack = [];
        redoStack = [];
        fit();
        changed();
        return { width: img.naturalWidth, height: img.naturalHeight };
      }, () => {
        if (mine === loadSeq) { picture = null; pictureUrl = ""; draw(); }
        return null;
      });
      return loading;
    },
    /** Resolves when the picture being loaded is there (to {width, height} or null). */
    ready() { return loading; },
    hasPicture() { return !!picture; },
    size() { return picture ? { width: mask.width, height: mask.height } : null; },
    setTool(name) { tool = name; redraw(); },
    tool() { return tool; },
    /** size: the brush's diameter in picture pixels; softness 0 (hard) to 1. */
    setBrush(size, softness) { brush = { size: Math.max(1, size), softness }; redraw(); },
    canUndo() { return undoStack.length > 0; },
    canRedo() { return redoStack.length > 0; },
    undo() {
      if (!undoStack.length) return;
      redoStack.push(alphaOf());
      putAlpha(undoStack.pop());
      redraw();
      changed();
    },
    redo() {
      if (!redoStack.length) return;
      undoStack.push(alphaOf());
      putAlpha(redoStack.pop());
      redraw();
      changed();
    },
    /** Swap the painted and the unpainted areas. */
    invert() {
      if (!picture) return;
      const alpha = alphaOf();
      remember(alpha.slice());
      for (let i = 0; i < alpha.length; i++) alpha[i] = 255 - alpha[i];
      putAlpha(alpha);
      redraw();
      changed();
    },
    clear() {
      if (!picture) return;
      const alpha = alphaOf();
      if (!alpha.some((a) => a > 0)) return;
      remember(alpha);
      maskCtx.clearRect(0, 0, mask.width, mask.height);
      redraw();
      changed();
    },
    fit,
    zoom,
    /** {selected, total}: pixels the server will read as "repaint" (alpha ≥ 128), and all. */
    coverage() {
      if (!picture) return { selected: 0, total: 0 };
      const alpha = alphaOf();
      let selected = 0;
      for (let i = 0; i < alpha.length; i++) if (alpha[i] >= 128) selected++;
      return { selected, total: alpha.length };
    },
    /** The mask as a PNG data URL at the picture's size: white = repaint, on black. */
    toDataURL() {
      if (!picture) return null;
      const out = newCanvas(mask.width, mask.height);
      const o = out.getContext("2d");
      o.fillStyle = "#000";
      o.fillRect(0, 0, out.width, out.height);
      const white = newCanvas(mask.width, mask.height);
      const w = white.getContext("2d");
      w.drawImage(mask, 0, 0);
      w.globalCompositeOperation = "source-in";
      w.fillStyle = "#fff";
      w.fillRect(0, 0, white.width, white.height);
      o.drawImage(white, 0, 0);
      return out.toDataURL("image/png");
    },
    /** Paint a mask image (white = repaint) from `url` over the picture, scaled to it:
     * what Reuse brings back. The history starts again. Resolves to whether it loaded. */
    loadMask(url) {
      const mine = loadSeq;
      return loading.then(() => (picture ? loadImage(url) : null)).then((img) => {
        if (!img || mine !== loadSeq || !picture) return false;
        const tmp = newCanvas(mask.width, mask.height);
        const t = tmp.getContext("2d", { willReadFrequently: true });
        t.drawImage(img, 0, 0, tmp.width, tmp.height);
        const data = t.getImageData(0, 0, tmp.width, tmp.height).data;
        const alpha = new Uint8ClampedArray(tmp.width * tmp.height);
        for (let i = 0, j = 0; i < alpha.length; i++, j += 4) {
          alpha[i] = Math.round(0.299 * data[j] + 0.587 * data[j + 1] + 0.114 * data[j + 2]);
        }
        putAlpha(alpha);
        undoStack = [];
        redoStack = [];
        redraw();
        changed();
        return true;
      }, () => false);
    },
    /** Outpaint: show the result's layout ({width, height, left, right, top, bottom, fit}),
     * or null to paint the mask again. */
    setOutpaint(layout) {
      const before = outpaint ? JSON.stringify(outpaint) : "";
      outpaint = layout ? Object.assign({}, layout) : null;
      if ((outpaint ? JSON.stringify(outpaint) : "") !== before || view.fitted) fit();
      else redraw();
    },
  };
}
