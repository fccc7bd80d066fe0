/* Daydream studio — the scribble canvas of a Control unit: white strokes drawn on black at
 * a fixed drawing size (the shape of the panel's width × height when the unit was made,
 * 512 to 768 px on its long side), what the scribble and lineart preprocessors read. Pointer events, so a mouse, a
 * pen and a finger all draw (the canvas has touch-action: none, so a finger draws instead
 * of scrolling); a second finger is ignored. Undo keeps the drawing before each stroke.
 * toDataURL() gives it as the API takes an image: a PNG data URL. */

const UNDO_LIMIT = 20;
const LEAST = 512;
const MOST = 768;

/** The drawing size for a panel of width × height: the same shape, its long side 512 to
 * 768 px (a small task's drawing is not drawn small; the worker fits the map to the task). */
export function drawingSize(width, height) {
  const w = width > 0 ? width : 512;
  const h = height > 0 ? height : 512;
  const long = Math.max(w, h);
  const scale = Math.min(MOST, Math.max(LEAST, long)) / long;
  return [Math.max(8, Math.round(w * scale)), Math.max(8, Math.round(h * scale))];
}

/**
 * Draw on `canvas` (its backing store is the drawing: width × height). onChange(): after
 * each stroke, undo and clear. Returns {setTool("draw" | "erase"), setBrush(px), undo(),
 * clear(), canUndo(), inked() (how many pixels are drawn), toDataURL(), size()}.
 */
export function createScribble(canvas, { width, height, onChange } = {}) {
  const [w, h] = drawingSize(width, height);
  canvas.width = w;
  canvas.height = h;
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  let tool = "draw";
  let brush = Math.max(2, Math.round(Math.max(w, h) / 64));
  let undoStack = [];
  let stroke = null; // {id, last: {x, y}}
  let inkedCache = 0;

  ctx.fillStyle = "#000";
  ctx.fillRect(0, 0, w, h);

  const changed = () => {
    inkedCache = countInk();
    canvas.dataset.inked = String(inkedCache);
    if (onChange) onChange();
  };

  function countInk() {
    const data = ctx.getImageData(0, 0, w, h).data;
    let n = 0;
    for (let i = 0; i < data.length; i += 4) if (data[i] > 127) n++;
    return n;
  }

  function point(event) {
    const rect = canvas.getBoundingClientRect();
    return {
      x: ((event.clientX - rect.left) / (rect.width || 1)) * w,
      y: ((event.clientY - rect.top) / (rect.height || 1)) * h,
    };
  }

  function line(from, to) {
    ctx.strokeStyle = tool === "erase" ? "#000" : "#fff";
    ctx.fillStyle = ctx.strokeStyle;
    ctx.lineWidth = brush;
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
    if (from.x === to.x && from.y === to.y) {
      ctx.beginPath();
      ctx.arc(to.x, to.y, brush / 2, 0, Math.PI * 2);
      ctx.fill();
      return;
    }
    ctx.beginPath();
    ctx.moveTo(from.x, from.y);
    ctx.lineTo(to.x, to.y);
    ctx.stroke();
  }

  function onDown(event) {
    if (stroke || (event.pointerType === "mouse" && event.button !== 0)) return;
    event.preventDefault();
    try { canvas.setPointerCapture(event.pointerId); } catch (err) { /* a pointer already gone */ }
    undoStack.push(ctx.getImageData(0, 0, w, h));
    if (undoStack.length > UNDO_LIMIT) undoStack.shift();
    const p = point(event);
    stroke = { id: event.pointerId, last: p };
    line(p, p);
  }

  function onMove(event) {
    if (!stroke || stroke.id !== event.pointerId) return;
    const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [];
    (events.length ? events : [event]).forEach((e) => {
      const p = point(e);
      line(stroke.last, p);
      stroke.last = p;
    });
  }

  function onUp(event) {
    if (!stroke || stroke.id !== event.pointerId) return;
    stroke = null;
    changed();
  }

  canvas.addEventListener("pointerdown", onDown);
  canvas.addEventListener("pointermove", onMove);
  canvas.addEventListener("pointerup", onUp);
  canvas.addEventListener("pointercancel", onUp);
  canvas.addEventListener("contextmenu", (event) => event.preventDefault());
  canvas.dataset.inked = "0";

  return {
    setTool(name) { tool = name === "erase" ? "erase" : "draw"; },
    /** The brush's width in drawing pixels. */
    setBrush(px) { brush = Math.max(1, Number(px) || 1); },
    brush() { return brush; },
    canUndo() { return undoStack.length > 0; },
    undo() {
      if (!undoStack.length) return;
      ctx.putImageData(undoStack.pop(), 0, 0);
      changed();
    },
    clear() {
      if (!inkedCache) return;
      undoStack.push(ctx.getImageData(0, 0, w, h));
      ctx.fillStyle = "#000";
      ctx.fillRect(0, 0, w, h);
      changed();
    },
    inked() { return inkedCache; },
    size() { return { width: w, height: h }; },
    toDataURL() { return canvas.toDataURL("image/png"); },
  };
}
