// Stemforge Max for Live device: the `node.script` part (Node for Max). It owns the connection to the
// daemon (daemon_link.js: WebSocket, token and port from the daemon's data directory, reconnects
// when the daemon restarts) and the device logic (device.js), and reaches Live through live_api.js
// (the patch's `js` object) with request/reply messages. Node runs in its own process, so nothing
// here can block Live's audio thread.
//
// Messages in (from the patch):  prompt <words...> | steps <n> | seed <n> | generate | regenerate |
//   inpaint [stems...] | keep | release | cancel | datadir <path> | lom_reply <id> <json> | lom_error <id> <msg>
// Messages out: lom <id> <method> [args...] | status <text> | progress <0..1> | error <code> <message> |
//   connected <0|1> | placed <stem> <track> <beats> <path>
"use strict";

const maxApi = require("max-api");
const { DaemonLink } = require("./daemon_link.js");
const { StemforgeDevice } = require("./device.js");

const LOM_TIMEOUT_MS = 15000;

/** LiveApi over Max messages: every call goes out as `lom <id> <method> ...` to live_api.js. */
class MaxLiveApi {
  constructor() {
    this.nextId = 1;
    this.pending = new Map();
    maxApi.addHandler("lom_reply", (id, json) => this._settle(id, null, json));
    maxApi.addHandler("lom_error", (id, ...message) => this._settle(id, message.join(" "), null));
  }

  _settle(id, error, json) {
    const p = this.pending.get(Number(id));
    if (!p) return;
    this.pending.delete(Number(id));
    clearTimeout(p.timer);
    if (error !== null) p.reject(Object.assign(new Error(error), { code: "live_api" }));
    else p.resolve(JSON.parse(json));
  }

  call(method, ...args) {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(Object.assign(new Error(`Live did not answer ${method} (is live_api.js loaded?)`), { code: "live_api" }));
      }, LOM_TIMEOUT_MS);
      this.pending.set(id, { resolve, reject, timer });
      maxApi.outlet("lom", id, method, ...args);
    });
  }

  getTempo() { return this.call("getTempo"); }
  getTimeSignature() { return this.call("getTimeSignature"); }
  getLoop() { return this.call("getLoop"); }
  getSelectedTrack() { return this.call("getSelectedTrack"); }
  findOrCreateAudioTrack(name) { return this.call("findOrCreateAudioTrack", name); }
  createAudioClip(trackIndex, path, position) { return this.call("createAudioClip", trackIndex, path, position); }
}

const options = { prompt: "", steps: undefined, seed: undefined };
let link = new DaemonLink();
const live = new MaxLiveApi();
const ui = {
  status: (text) => maxApi.outlet("status", text),
  progress: (step, total) => maxApi.outlet("progress", total ? step / total : 0),
  error: (code, message) => maxApi.outlet("error", code, message),
  takes: (placed) => { for (const p of placed) maxApi.outlet("placed", p.stem, p.trackIndex, p.position, p.path); },
};
let device = new StemforgeDevice(live, link, ui);

function wire(l) {
  l.on("status", (s) => {
    maxApi.outlet("status", s);
    maxApi.outlet("connected", l.connected ? 1 : 0);
  });
  l.on("daemon-error", (err) => ui.error(err.code, err.message));
  l.connect();
}
wire(link);

const run = (fn) => () => { fn().catch(() => { /* shown through ui.error already */ }); };
const jobOpts = () => ({ prompt: options.prompt, steps: options.steps, seed: options.seed });

maxApi.addHandlers({
  prompt: (...words) => { options.prompt = words.join(" "); },
  steps: (n) => { options.steps = Number(n) > 0 ? Math.round(Number(n)) : undefined; },
  seed: (n) => { options.seed = Number(n) >= 0 ? Math.round(Number(n)) : undefined; },
  generate: run(() => device.generate(jobOpts())),
  regenerate: run(() => device.regenerate(jobOpts())),
  inpaint: (...stems) => run(() => device.inpaint({ ...jobOpts(), stems: stems.length ? stems.map(String) : null }))(),
  keep: run(() => device.keep({ keep: true })),
  release: run(() => device.keep({ keep: false })),
  cancel: run(() => device.cancel()),
  datadir: (...parts) => {
    link.close();
    link = new DaemonLink({ dataDir: parts.join(" ") });
    device = new StemforgeDevice(live, link, ui);
    wire(link);
  },
});

maxApi.post("stemforge: node part started");
