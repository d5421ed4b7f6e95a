// The Max for Live device's Node part against a real daemon (node --test; driven by
// tests/clients/test_maxforlive_node.py, which starts `stemforge serve` and sets STEMFORGE_DATA_DIR:
// the device reads the token and port from there). Live is not available here: the LiveApi the
// device talks to is filled in by FakeLive below, which plays a Live set and records every clip the
// device places. The device itself uses live_api.js on the real Live Object Model.

import assert from "node:assert/strict";
import { existsSync, statSync } from "node:fs";
import net from "node:net";
import { createRequire } from "node:module";
import { after, before, test } from "node:test";

const require = createRequire(import.meta.url);
const { DaemonLink, locateDaemon } = require("../daemon_link.js");
const { StemforgeDevice, beatsToSamples } = require("../device.js");

const DATA_DIR = process.env.STEMFORGE_DATA_DIR;
if (!DATA_DIR) throw new Error("set STEMFORGE_DATA_DIR to a running daemon's data directory");

/** A Live set in memory: what the LiveApi reads, and every track and clip the device creates. */
class FakeLive {
  constructor() {
    this.tempo = 120;
    this.signature = [4, 4];
    this.loop = { start: 2, length: 2 };
    this.tracks = [{ name: "Bass" }, { name: "Drums" }];
    this.selected = 0;
    this.clips = [];
    this.created = [];
  }
  getTempo() { return this.tempo; }
  getTimeSignature() { return this.signature; }
  getLoop() { return Promise.resolve({ ...this.loop }); }
  getSelectedTrack() { return { index: this.selected, name: this.tracks[this.selected].name }; }
  findOrCreateAudioTrack(name) {
    let index = this.tracks.findIndex((t) => t.name.toLowerCase() === name.toLowerCase());
    if (index < 0) {
      this.tracks.push({ name });
      index = this.tracks.length - 1;
      this.created.push(name);
    }
    return { index, name: this.tracks[index].name };
  }
  createAudioClip(trackIndex, path, position) {
    this.clips.push({ track: this.tracks[trackIndex].name, path, position });
  }
}

class RecordingUi {
  constructor() { this.statuses = []; this.progress = []; this.errors = []; }
  status(t) { this.statuses.push(t); }
  progressFn() { return (step, total, stage) => this.progress.push([step, total, stage]); }
  error(code, message) { this.errors.push({ code, message }); }
}

let link;
let live;
let ui;
let device;

before(async () => {
  link = new DaemonLink({ dataDir: DATA_DIR, requestTimeoutMs: 120000 });
  await Promise.race([link.connect(), new Promise((_, reject) => setTimeout(
    () => reject(new Error(`no daemon reachable through ${DATA_DIR} within 60 s`)), 60000))]);
  live = new FakeLive();
  ui = new RecordingUi();
  device = new StemforgeDevice(live, link, { status: (t) => ui.status(t), progress: ui.progressFn(),
    error: (c, m) => ui.error(c, m), sessionName: "m4l-test" });
});

after(() => link.close());

test("the token and port come from the daemon's data directory", () => {
  const found = locateDaemon(DATA_DIR);
  assert.match(found.url, /^ws:\/\/127\.0\.0\.1:\d+\/$/);
  assert.ok(found.token && found.token.length >= 16);
});

test("generate over Live's loop places every stem at the loop start", async () => {
  const r = await device.generate({ prompt: "dusty breakbeat", steps: 2, seed: 3 });
  assert.deepEqual(r.region, { unit: "beats", start: 2, end: 4 });
  assert.equal(device.session.bpm, 120);
  assert.deepEqual(device.session.time_signature, [4, 4]);
  assert.equal(device.session.length_samples, beatsToSamples(4, 120));
  assert.deepEqual(r.takes.map((t) => t.stem).sort(), ["bass", "drums", "instrument", "melody"]);
  for (const t of r.takes) {
    assert.equal(t.start_sample, 48000); // beat 2 at 120 bpm
    assert.equal(t.frames, 48000); // 2 beats
    assert.ok(existsSync(t.path) && statSync(t.path).size > 44, t.path);
  }
  assert.deepEqual(live.clips.map((c) => [c.track, c.position]).sort(),
    [["Bass", 2], ["Drums", 2], ["instrument", 2], ["melody", 2]]);
  assert.deepEqual(live.created, ["instrument", "melody"]); // tracks named after the stems, existing ones reused
  assert.ok(ui.statuses.some((s) => s.endsWith(": done")));
  assert.ok(ui.progress.length > 0, "progress reported");
});

test("keep the selected track's stem, then regenerate the others", async () => {
  live.selected = 1; // "Drums"
  const s = await device.keep();
  assert.equal(s.stems.find((x) => x.name === "drums").kept, true);
  const drumsBefore = s.stems.find((x) => x.name === "drums").active_take_id;
  live.clips = [];
  const r = await device.regenerate({ steps: 2 });
  assert.deepEqual(r.takes.map((t) => t.stem).sort(), ["bass", "instrument", "melody"]);
  assert.equal(device.session.stems.find((x) => x.name === "drums").active_take_id, drumsBefore);
  assert.deepEqual(live.clips.map((c) => c.track).sort(), ["Bass", "instrument", "melody"]);
});

test("inpaint the selected track's stem inside a smaller loop", async () => {
  live.selected = 0; // "Bass"
  live.loop = { start: 2.5, length: 1 };
  live.clips = [];
  const before = device.session.stems.find((x) => x.name === "bass").active_take_id;
  const r = await device.inpaint({ steps: 2 });
  assert.deepEqual(r.region, { unit: "beats", start: 2.5, end: 3.5 });
  assert.equal(r.takes.length, 1);
  assert.equal(r.takes[0].stem, "bass");
  assert.equal(r.takes[0].source, "inpainted");
  assert.notEqual(r.takes[0].take_id, before);
  assert.deepEqual(live.clips, [{ track: "Bass", path: r.takes[0].path, position: r.takes[0].start_sample / 24000 }]);
});

test("a tempo change in Live updates the session; the daemon's refusals are shown as they are", async () => {
  live.tempo = 1000;
  await assert.rejects(device.generate({ steps: 2 }), (err) => err.code === "invalid_argument");
  const shown = ui.errors.at(-1);
  assert.equal(shown.code, "invalid_argument");
  assert.match(shown.message, /bpm/); // the daemon's own words
  live.tempo = 100;
  live.loop = { start: 0, length: 4 };
  const r = await device.generate({ steps: 2 });
  assert.equal(device.session.bpm, 100);
  assert.equal(r.takes[0].start_sample, 0);
  assert.equal(r.takes[0].frames, beatsToSamples(4, 100));
});

test("the link reconnects when the connection drops and still gets the job's outcome", async () => {
  // a loopback relay in front of the real daemon, which the test cuts mid-job
  const target = new URL(locateDaemon(DATA_DIR).url);
  const sockets = new Set();
  const relay = net.createServer((client) => {
    const upstream = net.connect(Number(target.port), "127.0.0.1");
    for (const s of [client, upstream]) { sockets.add(s); s.on("close", () => sockets.delete(s)); s.on("error", () => {}); }
    client.pipe(upstream).pipe(client);
  });
  await new Promise((r) => relay.listen(0, "127.0.0.1", r));
  const relayed = new DaemonLink({ dataDir: DATA_DIR, url: `ws://127.0.0.1:${relay.address().port}/`, maxBackoffMs: 400 });
  const statuses = [];
  relayed.on("status", (s) => statuses.push(s));
  try {
    await relayed.connect();
    const session = (await relayed.request({ type: "session.get", session_id: device.session.session_id })).session;
    const { accepted, done } = await relayed.submit({ type: "generate", session_id: session.session_id,
      stems: ["instrument"], steps: 3, region: { unit: "beats", start: 0, end: 4 } });
    assert.ok(accepted.job_id);
    for (const s of sockets) s.destroy(); // the connection drops
    const result = await done;
    await relayed.whenConnected();
    assert.equal(result.type, "job.done");
    assert.equal(result.job_id, accepted.job_id);
    assert.equal(result.takes[0].stem, "instrument");
    assert.ok(statuses.includes("disconnected") && statuses.includes("reconnected"), statuses.join(" | "));
    const pong = await relayed.request({ type: "ping" });
    assert.equal(pong.type, "pong");
  } finally {
    relayed.close();
    for (const s of sockets) s.destroy();
    relay.close();
  }
});
