/* Daydream studio — the store of the timeline's tasks: id → task (the API's Task shape,
 * plus _preview and _sample from live events), and the events of tasks not known yet.
 * Pure: no DOM; the timeline subscribes to render. Unit-tested (tests/js/studio-merge.test.js). */
import { eventToPatch, isFinal, mergeTask } from "./merge.js";

export function createStore() {
  /** id -> task */
  const tasks = new Map();
  /** id -> partial task from events that arrived before we knew the task. */
  const early = new Map();
  const listeners = [];

  /** Store a task (full or partial, but known) and tell the listeners: fn(task, before, options). */
  function upsert(incoming, options) {
    if (!incoming || !incoming.id) return null;
    const before = tasks.get(incoming.id);
    const task = mergeTask(before, incoming);
    tasks.set(task.id, task);
    listeners.forEach((fn) => fn(task, before, options || {}));
    return task;
  }

  /**
   * The one place where live events change tasks. Answers what the caller should do:
   *   "fetch"   the task is not known yet: the event is kept until GET /tasks/ID answers;
   *   "final"   it just finished: fetch the whole task (images, duration, refund);
   *   "update"  applied; "ignore" an event of a task this view does not show.
   * acceptUnknown: false where unknown tasks are not shown (an earlier session).
   */
  function applyEvent(ev, acceptUnknown = true) {
    if (!ev || !ev.id) return "ignore";
    const patch = eventToPatch(ev);
    if (!tasks.has(ev.id)) {
      if (!acceptUnknown) return "ignore";
      const kept = early.get(ev.id);
      early.set(ev.id, kept ? mergeTask(kept, patch) : patch);
      return "fetch";
    }
    const before = tasks.get(ev.id);
    upsert(patch);
    return isFinal(ev.state) && !isFinal(before.state) ? "final" : "update";
  }

  /** The whole task arrived: store it, then what its early events said on top. */
  function settle(task) {
    const kept = early.get(task.id);
    early.delete(task.id);
    const stored = upsert(task);
    return kept ? upsert(kept) : stored;
  }

  return {
    tasks,
    get: (id) => tasks.get(id),
    has: (id) => tasks.has(id),
    forEach: (fn) => tasks.forEach(fn),
    upsert,
    applyEvent,
    settle,
    /** Forget the early events of a task that could not be fetched. */
    dropEarly: (id) => early.delete(id),
    hasEarly: (id) => early.has(id),
    hasUnfinished: () => Array.from(tasks.values()).some((task) => !isFinal(task.state)),
    subscribe(fn) {
      listeners.push(fn);
      return () => { const i = listeners.indexOf(fn); if (i !== -1) listeners.splice(i, 1); };
    },
  };
}

/** The page's store. */
export const store = createStore();
