// Unit tests of site/static/js/lib/archive.js and lib/bytes.js (node --test tests/js):
// the texts, and trackArchive's choice between the `archive` event and polling.
import { test } from "node:test";
import assert from "node:assert/strict";
import { formatBytes } from "../../site/static/js/lib/bytes.js";
import {
  archiveProgress, archiveText, isFinished, startArchive, trackArchive,
} from "../../site/static/js/lib/archive.js";

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/* A fetch that answers GET /api/v1/archives/{id} from `state.answer` and counts calls. */
function fakeFetch(state) {
  globalThis.fetch = (path) => {
    state.gets.push(path);
    const body = typeof state.answer === "function" ? state.answer() : state.answer;
    const status = body && body.status ? body.status : 200;
    return Promise.resolve({
      ok: status < 300,
      status,
      headers: { get: () => null },
      text: () => Promise.resolve(JSON.stringify(body && body.status ? { error: { code: "x", message: "gone" } } : body)),
    });
  };
}

/* Just enough of a socket.io client Socket. */
function fakeSocket() {
  const handlers = {};
  return {
    connected: false,
    active: true,
    on(event, fn) { (handlers[event] = handlers[event] || []).push(fn); },
    off(event, fn) { handlers[event] = (handlers[event] || []).filter((f) => f !== fn); },
    hasListeners(event) { return !!(handlers[event] && handlers[event].length); },
    emit(event, payload) { (handlers[event] || []).slice().forEach((fn) => fn(payload)); },
    connect() { this.active = true; },
    disconnect() { this.active = false; this.connected = false; this.disconnects = (this.disconnects || 0) + 1; },
  };
}

const queued = { id: "a1", state: "queued", image_count: 3, progress: { done: 0, total: 3 } };
const building = (done) => ({ id: "a1", state: "building", image_count: 3, progress: { done, total: 3 } });
const ready = { id: "a1", state: "ready", image_count: 3, progress: { done: 3, total: 3 }, size_bytes: 2_500_000,
  url: "/api/v1/archives/a1/download" };

test("formatBytes", () => {
  assert.equal(formatBytes(512), "512 B");
  assert.equal(formatBytes(2048), "2 KB");
  assert.equal(formatBytes(2_500_000), "2.4 MB");
  assert.equal(formatBytes(3.2e9), "3.0 GB");
  assert.equal(formatBytes(null), "");
});

test("archiveProgress and archiveText follow the states", () => {
  assert.deepEqual(archiveProgress(building(1)), { done: 1, total: 3, fraction: 1 / 3 });
  assert.deepEqual(archiveProgress(ready), { done: 3, total: 3, fraction: 1 });
  assert.deepEqual(archiveProgress({ state: "queued" }), { done: 0, total: 0, fraction: null });
  assert.equal(archiveText(queued, "“Lanterns”"), "Waiting to start the ZIP of “Lanterns” (3 images)…");
  assert.equal(archiveText(building(2)), "Packing the ZIP of your images: 2 of 3 images…");
  assert.equal(archiveText(ready, "3 images"), "The ZIP of 3 images is ready: 2.4 MB.");
  assert.equal(archiveText({ state: "failed", error: "Disk full." }), "Disk full.");
  assert.match(archiveText({ state: "expired" }), /expired/);
  assert.equal(isFinished(ready), true);
  assert.equal(isFinished(building(1)), false);
});

// The first tests run before the page "loads" the Socket.IO client (window.io), the
// later ones after: lib/socket.js keeps the first socket it makes.
test("without a socket it polls until the archive is ready", async () => {
  globalThis.window = {};
  const state = { gets: [], answer: building(1) };
  fakeFetch(state);
  const seen = [];
  const finished = new Promise((resolve) => {
    trackArchive(queued, { pollMs: 10, onProgress: (a) => seen.push(a.state), onReady: resolve });
  });
  await sleep(35);
  state.answer = ready;
  const archive = await finished;
  assert.equal(archive.url, "/api/v1/archives/a1/download");
  assert.equal(seen[0], "queued");
  assert.ok(seen.includes("building"));
  assert.ok(state.gets.length >= 2);
  assert.ok(state.gets.every((p) => p === "/api/v1/archives/a1"));
});

test("a 404 while polling is a failure, reported once", async () => {
  const state = { gets: [], answer: { status: 404 } };
  fakeFetch(state);
  const failed = [];
  trackArchive("gone", { pollMs: 10, onFailed: (a) => failed.push(a) });
  await sleep(60);
  assert.equal(failed.length, 1);
  assert.equal(failed[0].state, "failed");
  assert.equal(state.gets.length, 1);
});

test("with a connected socket the events drive it and nothing is polled", async () => {
  const socket = fakeSocket();
  socket.connected = true;
  globalThis.window = { io: () => socket };
  const state = { gets: [], answer: building(0) };
  fakeFetch(state);
  const progress = [];
  let done = null;
  trackArchive(queued, { pollMs: 5, quietMs: 200, onProgress: (a) => progress.push(doneOf(a)), onReady: (a) => { done = a; } });
  socket.emit("archive", building(1));
  socket.emit("archive", { id: "other", state: "ready" }); // someone else's archive
  await sleep(20);
  socket.emit("archive", building(2));
  socket.emit("archive", building(1)); // out of order: ignored
  await sleep(20);
  socket.emit("archive", ready);
  assert.equal(done && done.state, "ready");
  assert.deepEqual(progress, [0, 1, 2]);
  assert.equal(state.gets.length, 0);
  socket.emit("archive", ready);
  assert.equal(socket.hasListeners("archive"), false, "stopped: its listeners are gone");
});

function doneOf(archive) { return archive.progress.done; }

test("a quiet socket falls back to a look now and then; a reconnect looks at once", async () => {
  const socket = window.io();
  socket.connected = true;
  const state = { gets: [], answer: building(1) };
  fakeFetch(state);
  const stop = trackArchive(queued, { quietMs: 30 });
  await sleep(10);
  assert.equal(state.gets.length, 0);
  await sleep(45);
  assert.equal(state.gets.length, 1, "one look after a quiet spell");
  socket.emit("connect");
  await sleep(5);
  assert.equal(state.gets.length, 2, "one look when the socket connects again");
  stop();
  await sleep(80);
  assert.equal(state.gets.length, 2, "stopped: no more looks");
  assert.equal(socket.hasListeners("connect"), false);
});

test("given an id alone it looks it up at once; a stop() before the answer means no callback", async () => {
  const state = { gets: [], answer: ready };
  fakeFetch(state);
  let called = false;
  const stop = trackArchive("a1", { onReady: () => { called = true; } });
  assert.equal(state.gets.length, 1);
  stop();
  await sleep(10);
  assert.equal(called, false);
});

test("the socket is let go a while after the last archive finished", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  const socket = window.io();
  socket.connected = true;
  socket.active = true;
  socket.disconnects = 0;
  const stop = trackArchive(queued, { quietMs: 1e9 });
  stop();
  t.mock.timers.tick(1000);
  assert.equal(socket.disconnects, 0, "not at once: another ZIP may follow");
  t.mock.timers.tick(5000);
  assert.equal(socket.disconnects, 1);
  // Tracking again connects it again; a page that listens for tasks keeps it.
  trackArchive(queued, { quietMs: 1e9 })();
  const keep = () => {};
  socket.on("task", keep);
  t.mock.timers.tick(10000);
  assert.equal(socket.active, true);
  assert.equal(socket.disconnects, 1);
  socket.off("task", keep);
});

test("startArchive lets the socket connect before it asks for the archive", async () => {
  globalThis.document = { querySelector: () => null }; // no CSRF meta here
  const socket = window.io();
  socket.connected = false;
  const calls = [];
  globalThis.fetch = (path, init) => {
    calls.push([init.method, path, init.body]);
    return Promise.resolve({ ok: true, status: 202, headers: { get: () => null },
      text: () => Promise.resolve(JSON.stringify(queued)) });
  };
  const answer = startArchive({ all: true });
  await sleep(20);
  assert.equal(calls.length, 0, "waits for the socket");
  socket.connected = true;
  socket.emit("connect");
  const res = await answer;
  assert.equal(res.status, 202);
  assert.equal(res.data.id, "a1");
  assert.deepEqual(calls, [["POST", "/api/v1/archives", '{"all":true}']]);
});
