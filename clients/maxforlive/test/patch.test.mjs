// The device's Max side without Max: the patcher is well-formed and wired to the Node handlers, and
// live_api.js (run in a vm with a small LiveAPI model of a Live set, test-only) answers every LiveApi
// method device.js uses, with the LOM paths, properties and calls Live documents.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import vm from "node:vm";
import { test } from "node:test";
import { createRequire } from "node:module";

const { makeLiveSet } = createRequire(import.meta.url)("./fake_live_set.js");

const DIR = join(dirname(fileURLToPath(import.meta.url)), "..");
const patch = JSON.parse(readFileSync(join(DIR, "stemforge.maxpat"), "utf8")).patcher;
const boxes = new Map(patch.boxes.map(({ box }) => [box.id, box]));
const nodeSource = readFileSync(join(DIR, "stemforge_node.js"), "utf8");

test("the patcher is well-formed and every line joins existing boxes", () => {
  assert.ok(patch.boxes.length > 10);
  for (const { patchline: l } of patch.lines) {
    const [src, out] = l.source;
    const [dst, inl] = l.destination;
    assert.ok(boxes.has(src) && boxes.has(dst), `${src} -> ${dst}`);
    assert.ok(out < boxes.get(src).numoutlets && inl < boxes.get(dst).numinlets, `${src}:${out} -> ${dst}:${inl}`);
  }
  const texts = patch.boxes.map(({ box }) => box.text || "");
  assert.ok(texts.some((t) => t.startsWith("node.script stemforge_node.js")));
  assert.ok(texts.some((t) => t === "js live_api.js"));
  assert.ok(texts.includes("deferlow"), "LOM calls go through the low-priority queue");
});

test("every button message has a handler in stemforge_node.js", () => {
  const messages = patch.boxes.filter(({ box }) => box.maxclass === "message" && box.id.startsWith("obj-btn-"))
    .map(({ box }) => box.text.split(" ")[0]);
  assert.deepEqual(messages.sort(), ["cancel", "generate", "inpaint", "keep", "regenerate", "release"]);
  for (const m of [...messages, "prompt", "steps", "lom_reply", "lom_error"]) {
    assert.match(nodeSource, new RegExp(`(^|[\\s{"])${m}["]?\\s*:|addHandler\\("${m}"`, "m"), `handler for ${m}`);
  }
});

test("live_api.js answers the LiveApi calls from the Live Object Model", () => {
  const { set, LiveAPI } = makeLiveSet();
  const out = [];
  const context = { LiveAPI, outlet: (_outlet, ...a) => out.push(a), JSON, Number, String, parseInt, Array };
  vm.createContext(context);
  vm.runInContext(readFileSync(join(DIR, "live_api.js"), "utf8"), context);
  const ask = (id, method, ...args) => {
    context.call(id, method, ...args);
    const [kind, rid, payload] = out.pop();
    assert.equal(rid, id);
    if (kind === "lom_error") throw new Error(payload);
    assert.equal(kind, "lom_reply");
    return JSON.parse(payload);
  };
  assert.equal(ask(1, "getTempo"), 96);
  assert.deepEqual(ask(2, "getTimeSignature"), [7, 8]);
  assert.deepEqual(ask(3, "getLoop"), { start: 4, length: 3.5 });
  assert.deepEqual(ask(4, "getSelectedTrack"), { index: 1, name: "Keys" });
  assert.deepEqual(ask(5, "findOrCreateAudioTrack", "bass"), { index: 0, name: "Bass" });
  assert.deepEqual(ask(6, "findOrCreateAudioTrack", "melody"), { index: 2, name: "melody" });
  assert.equal(set.tracks[2].name, "melody");
  ask(7, "createAudioClip", 2, "/data/s-1/takes/x_melody_96bpm_take1.wav", 4);
  assert.deepEqual(set.tracks[2].clips, [["/data/s-1/takes/x_melody_96bpm_take1.wav", 4]]);
  context.call(8, "nope");
  assert.deepEqual(out.pop(), ["lom_error", 8, "unknown LiveApi method nope"]);
});
