/* Daydream studio — the queue positions of our own queued tasks. The server announces
 * every change of the queue with one `queue` event (the counts) to everyone, whatever
 * the queue's depth; a page with queued tasks then reads its own positions from
 * GET /api/v1/queue (`positions`: task id → position), at most once per REFRESH_MS
 * however many events arrive. Pure: no DOM, no network of its own
 * (tests/js/studio-positions.test.js). */

export const REFRESH_MS = 750;

/** The patches {id, position} that bring our queued tasks to the server's positions. */
export function positionPatches(tasks, positions) {
  const patches = [];
  if (!positions || typeof positions !== "object") return patches;
  for (const task of tasks) {
    if (!task || task.state !== "queued") continue;
    const position = positions[task.id];
    if (typeof position === "number" && position !== task.position) patches.push({ id: task.id, position });
  }
  return patches;
}

/**
 * Runs `run` (which may return a promise) once `delay` ms after the first schedule();
 * the schedules meanwhile join that run, and one made while it runs makes one more after
 * it. A steady stream of events thus costs one run per delay, never one per event, and
 * never starves the page of runs either.
 */
export function createCoalescer(run, { delay = REFRESH_MS, setTimer = setTimeout } = {}) {
  let timer = null;
  let running = false;
  let again = false;

  function fire() {
    timer = null;
    if (running) {
      again = true;
      return;
    }
    running = true;
    Promise.resolve()
      .then(run)
      .catch(() => undefined)
      .then(() => {
        running = false;
        if (again) {
          again = false;
          schedule();
        }
      });
  }

  function schedule() {
    if (running) {
      again = true;
      return;
    }
    if (timer === null) timer = setTimer(fire, delay);
  }

  return { schedule, busy: () => timer !== null || running };
}
