/* Daydream studio — the little state the panel, the timeline and the live updates share. */
export const state = {
  /** The init image of the next task: {id, width, height, kind, thumbnail_url}, or null. */
  initImage: null,
  /** Whether an init image is on its way up. */
  uploading: false,
  /** The user's studio settings (PATCH /api/v1/me {settings: {...}}). */
  settings: { cancel_on_leave: false, previews: true },
};
