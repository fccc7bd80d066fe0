/* Daydream studio — the little state the panel, the timeline and the live updates share. */
export const state = {
  /** The init image of the next task: {id, width, height, kind, thumbnail_url}, or null. */
  initImage: null,
  /** What the start picture is for (inpaint.js): mode "img2img", "inpaint" or "outpaint";
   * outpaint {left, right, top, bottom}; mask() the painted mask's data URL. */
  edit: { mode: "img2img", outpaint: { left: 0, right: 0, top: 0, bottom: 0 }, mask: null },
  /** Whether an init image is on its way up. */
  uploading: false,
  /** The LoRAs of the next task: [{id, name, weight}] (loras.js, lorapicker.js). */
  loras: [],
  /** The guides of the next task (guidepanel.js, guides.js): Control units, References and
   * the pictures of an edit. */
  guides: { units: [], references: [], editImages: [] },
  /** The user's studio settings (PATCH /api/v1/me {settings: {...}}). */
  settings: { cancel_on_leave: false, previews: true },
};
