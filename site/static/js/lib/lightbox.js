/* Daydream — the one lightbox: a picture at a time over the page, ←/→ to step, Esc (or a
 * click beside the picture) to close. Used by the gallery (/images, with its details
 * panel) and the showcase (/gallery). Markup: the macro of site/templates/_lightbox.html,
 * a modal <dialog> holding
 *   [data-lightbox-image]     the <img>          [data-lightbox-loading]  shown while the full picture loads
 *   [data-lightbox-prev]      ← button           [data-lightbox-next]     → button
 *   [data-lightbox-close]     close button       [data-lightbox-position] "Image 2 of 9" (optional)
 *   [data-lightbox-caption]   a caption (optional)
 *   [data-lightbox-overlay]   an <img> laid over the picture (optional: the gallery's mask)
 *   [data-lightbox-overlay-toggle]  the button that shows and hides it ("Show mask")
 * Styles: site/static/css/lightbox.css.
 *
 * createLightbox(root, options) → {open(index), close(), step(delta), refresh(), isOpen(), index(),
 *                                   overlay(src)}
 *   options.count()           how many items there are now (read at every step: lists grow)
 *   options.item(index)       {src, preview?, alt?, caption?}: the full picture, and a smaller one
 *                             (the thumbnail) shown at once while the full one loads
 *   options.total()           the N of "Image i of N" (default: count())
 *   options.wrap              → after the last goes to the first, ← before the first to the last
 *   options.hasMore()         whether more items may come after the last (default none)
 *   options.more()            fetch more (a Promise); asked near the end and when stepping past it
 *   options.position(i, n)    the position text (default "Image i of n")
 *   options.onShow(index)     after an item is shown: the page fills its panel, its address bar
 *   options.onClose(index)    after closing; may return the element to focus (default: the
 *                             one focused before it opened)
 * refresh() shows the current item again (after the page changed it or the list).
 * overlay(src) offers an overlay for the item shown (a picture of the same aspect, e.g. a
 * PNG with transparency), or none (null): its toggle appears, and while it is pressed the
 * overlay covers the picture exactly. Showing another item drops it; whether the toggle is
 * pressed is kept until the lightbox closes, so stepping through keeps showing overlays.
 *
 * On a touch screen a swipe across the picture steps too: to the left → the next one, to
 * the right → the previous one (pointer events of pointerType touch or pen; a mouse drags
 * nothing). The stage has touch-action: pan-y, so scrolling down to the details still works.
 *
 * stepTarget(index, delta, count, {wrap, hasMore}) → the index to show, "more" (fetch more
 * first) or null (nothing that way): pure, for the tests.
 * swipeStep(start, end, {minDistance, maxSlope}) → 1 (a swipe to the left: the next one),
 * -1 (to the right: the previous one) or 0 (a tap, a scroll, too short or too slanted);
 * start and end are {x, y} in pixels: pure, for the tests. */

const TYPING = /^(INPUT|TEXTAREA|SELECT)$/;

export function stepTarget(index, delta, count, { wrap = false, hasMore = false } = {}) {
  if (count <= 0 || index < 0) return null;
  let next = index + delta;
  if (wrap) {
    if (count === 1) return null;
    return ((next % count) + count) % count;
  }
  if (next < 0) return null;
  if (next >= count) return hasMore ? "more" : null;
  return next;
}

export function swipeStep(start, end, { minDistance = 40, maxSlope = 0.6 } = {}) {
  if (!start || !end) return 0;
  const dx = end.x - start.x;
  const dy = end.y - start.y;
  if (!Number.isFinite(dx) || !Number.isFinite(dy)) return 0;
  if (Math.abs(dx) < minDistance || Math.abs(dy) > Math.abs(dx) * maxSlope) return 0;
  return dx < 0 ? 1 : -1;
}

export function createLightbox(root, options = {}) {
  const part = (name) => root.querySelector("[data-lightbox-" + name + "]");
  const image = part("image");
  const loading = part("loading");
  const prev = part("prev");
  const next = part("next");
  const closeButton = part("close");
  const position = part("position");
  const caption = part("caption");
  const overlayImage = part("overlay");
  const overlayToggle = part("overlay-toggle");
  const count = () => options.count();
  const total = () => (options.total ? options.total() : count());
  const hasMore = () => !!(options.hasMore && options.hasMore());
  const wrap = !!options.wrap;
  let current = -1;
  let opened = false;
  let returnFocus = null;
  let overlaySrc = null; // the overlay offered for the item shown
  let overlayOn = false; // its toggle is pressed

  function isOpen() { return opened && current >= 0 && current < count(); }

  /** Lay the overlay on the picture's box (the picture is contained in it as the overlay is). */
  function placeOverlay() {
    if (!overlayImage || overlayImage.hidden) return;
    const parent = image.offsetParent || image.parentElement; // the figure (positioned)
    const box = image.getBoundingClientRect(); // fractions of a pixel: offsetLeft would round them
    const origin = parent.getBoundingClientRect();
    overlayImage.style.left = box.left - origin.left - parent.clientLeft + "px";
    overlayImage.style.top = box.top - origin.top - parent.clientTop + "px";
    overlayImage.style.width = box.width + "px";
    overlayImage.style.height = box.height + "px";
  }

  function showOverlay() {
    if (overlayToggle) {
      overlayToggle.hidden = !overlaySrc;
      overlayToggle.setAttribute("aria-pressed", overlayOn ? "true" : "false");
      const noun = overlayToggle.dataset.noun || "overlay";
      overlayToggle.textContent = (overlayOn ? "Hide " : "Show ") + noun;
    }
    if (!overlayImage) return;
    const visible = !!(overlaySrc && overlayOn);
    if (visible && overlayImage.getAttribute("src") !== overlaySrc) overlayImage.src = overlaySrc;
    if (!overlaySrc) overlayImage.removeAttribute("src");
    overlayImage.hidden = !visible;
    placeOverlay();
  }

  function setOverlay(src) {
    overlaySrc = src || null;
    showOverlay();
  }

  function showPicture(item) {
    if (image.dataset.src === item.src) return;
    setOverlay(null); // another picture: its page offers its own
    image.dataset.src = item.src;
    image.alt = item.alt || "";
    if (!item.preview || item.preview === item.src) {
      image.src = item.src;
      image.classList.remove("is-preview");
      if (loading) loading.hidden = true;
      return;
    }
    // The thumbnail at once, the full picture when it has loaded.
    image.src = item.preview;
    image.classList.add("is-preview");
    if (loading) loading.hidden = false;
    const full = new Image();
    full.onload = () => {
      if (image.dataset.src !== item.src) return;
      image.src = item.src;
      image.classList.remove("is-preview");
      if (loading) loading.hidden = true;
    };
    full.onerror = () => { if (image.dataset.src === item.src && loading) loading.hidden = true; };
    full.src = item.src;
  }

  function render() {
    if (!isOpen()) return;
    const item = options.item(current);
    showPicture(item);
    if (caption) {
      caption.textContent = item.caption || "";
      caption.hidden = !item.caption;
    }
    if (position) {
      position.textContent = options.position ? options.position(current, total())
        : "Image " + (current + 1) + " of " + total();
    }
    const n = count();
    if (prev) prev.disabled = stepTarget(current, -1, n, { wrap, hasMore: hasMore() }) === null;
    if (next) next.disabled = stepTarget(current, 1, n, { wrap, hasMore: hasMore() }) === null;
  }

  function open(index) {
    if (index < 0 || index >= count()) return;
    const first = !opened;
    if (first) returnFocus = document.activeElement;
    current = index;
    opened = true;
    if (!root.open) {
      if (typeof root.showModal === "function") root.showModal();
      else root.setAttribute("open", "");
    }
    document.body.classList.add("lightbox-open");
    render();
    if (options.onShow) options.onShow(current);
    if (first && closeButton) closeButton.focus();
    // Near the end of what is loaded: fetch more, so → keeps going.
    if (!wrap && options.more && hasMore() && index >= count() - 3) options.more();
  }

  /** Undo what open() did; the dialog may have been closed by the browser already. */
  function cleanUp() {
    if (!opened) return;
    const was = current;
    opened = false;
    current = -1;
    document.body.classList.remove("lightbox-open");
    image.removeAttribute("src");
    delete image.dataset.src;
    overlayOn = false;
    setOverlay(null);
    if (loading) loading.hidden = true;
    const target = (options.onClose && options.onClose(was)) || returnFocus;
    returnFocus = null;
    if (target && typeof target.focus === "function") target.focus();
  }

  function close() {
    if (!opened) return;
    if (root.open) {
      if (typeof root.close === "function") root.close();
      else root.removeAttribute("open");
    }
    cleanUp();
  }

  function step(delta) {
    if (!isOpen()) return;
    const target = stepTarget(current, delta, count(), { wrap, hasMore: hasMore() });
    if (target === null) return;
    if (target !== "more") {
      open(target);
      return;
    }
    const wanted = current + delta;
    Promise.resolve(options.more && options.more()).then(() => {
      if (isOpen() && wanted < count()) open(wanted);
      else render();
    });
  }

  // Swipes on the stage (the picture and the space around it).
  const stage = root.querySelector(".lightbox__stage") || root;
  let swipeFrom = null;
  let swiped = false;
  stage.addEventListener("pointerdown", (event) => {
    swipeFrom = event.pointerType === "mouse" || !event.isPrimary ? null
      : { x: event.clientX, y: event.clientY, id: event.pointerId };
  });
  stage.addEventListener("pointerup", (event) => {
    const from = swipeFrom;
    swipeFrom = null;
    if (!from || from.id !== event.pointerId || !isOpen()) return;
    const delta = swipeStep(from, { x: event.clientX, y: event.clientY });
    if (!delta) return;
    swiped = true; // not a tap beside the picture: the click that may follow closes nothing
    setTimeout(() => { swiped = false; }, 400);
    step(delta);
  });
  stage.addEventListener("pointercancel", () => { swipeFrom = null; });

  if (overlayToggle) {
    overlayToggle.addEventListener("click", () => {
      overlayOn = !overlayOn;
      showOverlay();
    });
  }
  if (overlayImage) {
    // The picture's box moves when it or its figure changes size (a turned phone, a window).
    image.addEventListener("load", placeOverlay);
    window.addEventListener("resize", placeOverlay);
    if (typeof ResizeObserver === "function") {
      const watcher = new ResizeObserver(placeOverlay);
      watcher.observe(image);
      if (image.parentElement) watcher.observe(image.parentElement);
    }
  }

  if (prev) prev.addEventListener("click", () => step(-1));
  if (next) next.addEventListener("click", () => step(1));
  if (closeButton) closeButton.addEventListener("click", close);
  root.addEventListener("click", (event) => {
    const t = event.target;
    if (swiped) return;
    if (t === root || t.classList.contains("lightbox__stage") || t.classList.contains("lightbox__figure")) close();
  });
  // Esc: the dialog's own cancel; ours closes it the same way as the button.
  root.addEventListener("cancel", (event) => {
    event.preventDefault();
    close();
  });
  root.addEventListener("close", cleanUp);
  document.addEventListener("keydown", (event) => {
    if (!isOpen() || event.defaultPrevented) return;
    const t = event.target;
    const dialog = t && t.closest ? t.closest("dialog") : null;
    if (dialog && dialog !== root) return; // a dialog above it (a confirmation) has the keys
    if (TYPING.test((t && t.tagName) || "")) return;
    if (event.key === "ArrowLeft") { event.preventDefault(); step(-1); }
    else if (event.key === "ArrowRight") { event.preventDefault(); step(1); }
  });

  return { open, close, step, refresh: render, isOpen, index: () => (isOpen() ? current : -1), overlay: setOverlay };
}
