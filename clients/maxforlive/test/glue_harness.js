// TEST-ONLY: runs the device's real node.script (stemforge_node.js) and its real js (live_api.js)
// wired as stemforge.maxpat wires them ([route lom] -> [prepend call] -> [deferlow] -> js -> node
// inlet), with the max-api stand-in (fake_modules, via NODE_PATH) and a model Live set in place of
// Live. Prints one JSON line with what the device did. Used by glue.test.mjs against a real daemon.
"use strict";

const fs = require("node:fs");
const path = require("node:path");
const vm = require("node:vm");
const maxApi = require("max-api");
const { makeLiveSet } = require("./fake_live_set.js");

const live = makeLiveSet({ tempo: 120, signature_numerator: 4, signature_denominator: 4, loop_start: 4, loop_length: 2,
  tracks: [{ name: "Bass", has_audio_input: 1, clips: [] }], selected: 0 });
const js = { LiveAPI: live.LiveAPI, JSON, Number, String, parseInt, Array, outlet: (_n, kind, ...rest) => {
  maxApi.__send(kind, ...rest); // js outlet -> node.script inlet
} };
vm.createContext(js);
vm.runInContext(fs.readFileSync(path.join(__dirname, "..", "live_api.js"), "utf8"), js);

const seen = { status: [], error: [], placed: [], progress: [], connected: [] };
let finish;
const finished = new Promise((r) => { finish = r; });
maxApi.__connect((name, ...args) => {
  if (name === "lom") { setImmediate(() => js.call(...args)); return; } // [deferlow]
  if (seen[name]) seen[name].push(args);
  // device.js reports the placed clips once all are in the set (one "placed" per stem, in one go)
  if (name === "placed") setImmediate(() => finish("done"));
  if (name === "error") finish("error");
});

require("../stemforge_node.js");

(async () => {
  const timeout = setTimeout(() => finish("timeout"), 150000);
  while (!seen.connected.some((c) => c[0] === 1)) await new Promise((r) => setTimeout(r, 50));
  maxApi.__send("steps", 2);
  maxApi.__send("prompt", "warm", "analog", "bass");
  maxApi.__send("generate");
  const outcome = await finished;
  clearTimeout(timeout);
  process.stdout.write(JSON.stringify({ outcome, seen, tracks: live.set.tracks }) + "\n");
  process.exit(0);
})();
