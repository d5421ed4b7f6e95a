// The Max for Live device's connection to the Stemforge daemon: protocol v1 over WebSocket (npm `ws`),
// with the token (and the port) read from the daemon's data directory, as every local client does.
// Requests are matched to replies by `id`; job events are routed by `job_id`; when the daemon restarts
// the link reconnects with backoff and a job being waited on is followed up through `job.list` (the
// daemon journals jobs, so a job finishes even across a restart). Runs in Node (node.script), never
// in Live's audio thread.
"use strict";

const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");
const { EventEmitter } = require("node:events");
const WebSocket = require("ws");

const DEFAULT_PORT = 8765;
const JOB_END = new Set(["job.done", "job.failed", "job.cancelled"]);
const JOB_EVENTS = new Set(["job.progress", "job.preview", ...JOB_END]);

class DaemonError extends Error {
  constructor(code, message, details) {
    super(message);
    this.code = code;
    this.details = details || null;
  }
  toString() {
    return `${this.code}: ${this.message}`;
  }
}

function defaultDataDir() {
  if (process.env.STEMFORGE_DATA_DIR) return process.env.STEMFORGE_DATA_DIR.replace(/^~(?=$|\/)/, os.homedir());
  return path.join(os.homedir(), ".local", "share", "stemforge");
}

/** {url, token} of the daemon that owns `dataDir`: token file + endpoints.json (port). */
function locateDaemon(dataDir = defaultDataDir()) {
  let token = null;
  try {
    token = fs.readFileSync(path.join(dataDir, "token"), "utf8").trim() || null;
  } catch (err) {
    if (err.code !== "ENOENT") throw err;
  }
  let port = DEFAULT_PORT;
  try {
    const ep = JSON.parse(fs.readFileSync(path.join(dataDir, "endpoints.json"), "utf8"));
    if (Number.isInteger(ep.ws_port)) port = ep.ws_port;
  } catch { /* not running yet, or an old daemon: the default port */ }
  return { url: `ws://127.0.0.1:${port}/`, token };
}

class DaemonLink extends EventEmitter {
  /** options: {dataDir, url, token, requestTimeoutMs, maxBackoffMs} (url/token override the data dir) */
  constructor(options = {}) {
    super();
    this.options = options;
    this.ws = null;
    this.nextId = 1;
    this.pending = new Map();
    this.jobs = new Map(); // job id -> {resolve, reject, onEvent}
    this.backoff = 200;
    this.closed = false;
    this.connected = false;
    this.everConnected = false;
    this._openWaiters = [];
  }

  _target() {
    const found = locateDaemon(this.options.dataDir || defaultDataDir());
    return { url: this.options.url || found.url, token: this.options.token || found.token };
  }

  /** Open the connection (and keep it open: reconnects until close()). Resolves once connected. */
  connect() {
    this.closed = false;
    if (!this.ws) this._open();
    return this.whenConnected();
  }

  whenConnected() {
    if (this.connected) return Promise.resolve();
    return new Promise((resolve) => this._openWaiters.push(resolve));
  }

  _open() {
    let target;
    try {
      target = this._target();
    } catch (err) {
      this._retry(`cannot read the daemon's data directory: ${err.message}`);
      return;
    }
    if (!target.token) {
      this._retry(`no token: is the daemon running? (looked in ${this.options.dataDir || defaultDataDir()})`);
      return;
    }
    const ws = new WebSocket(target.url, { headers: { Authorization: `Bearer ${target.token}` }, handshakeTimeout: 5000 });
    this.ws = ws;
    ws.on("open", () => {
      this.connected = true;
      this.backoff = 200;
      const again = this.everConnected;
      this.everConnected = true;
      this.emit("status", again ? "reconnected" : "connected");
      for (const w of this._openWaiters.splice(0)) w();
      if (again) this._recoverJobs();
    });
    ws.on("unexpected-response", (_req, res) => {
      // 401 unauthorized / 403 forbidden_origin: the daemon's refusal, as it wrote it
      let body = "";
      res.on("data", (c) => { body += c; });
      res.on("end", () => this.emit("daemon-error", new DaemonError(`http_${res.statusCode}`, body.trim() || res.statusMessage)));
      ws.terminate();
    });
    ws.on("message", (data, isBinary) => { if (!isBinary) this._onText(data.toString("utf8")); });
    ws.on("error", () => { /* followed by close */ });
    ws.on("close", () => {
      if (this.ws !== ws) return;
      this.ws = null;
      const was = this.connected;
      this.connected = false;
      const lost = new DaemonError("connection_lost", "the connection to the daemon closed");
      for (const p of this.pending.values()) p.reject(lost);
      this.pending.clear();
      if (was) this.emit("status", "disconnected");
      if (!this.closed) this._retry("daemon unreachable");
    });
  }

  _retry(why) {
    const delay = this.backoff;
    this.backoff = Math.min(this.backoff * 2, this.options.maxBackoffMs || 3000);
    this.emit("status", `${why}; retrying in ${(delay / 1000).toFixed(1)} s`);
    this._timer = setTimeout(() => { if (!this.closed) this._open(); }, delay);
  }

  close() {
    this.closed = true;
    clearTimeout(this._timer);
    if (this.ws) this.ws.close();
    this.ws = null;
    this.connected = false;
  }

  _onText(text) {
    let msg;
    try {
      msg = JSON.parse(text);
    } catch {
      return;
    }
    if (JOB_EVENTS.has(msg.type)) {
      const job = this.jobs.get(msg.job_id);
      if (job) this._jobEvent(msg.job_id, job, msg);
      this.emit("job-event", msg);
      return;
    }
    const p = msg.id !== undefined ? this.pending.get(msg.id) : undefined;
    if (p) {
      this.pending.delete(msg.id);
      clearTimeout(p.timer);
      if (msg.type === "error") p.reject(new DaemonError(msg.code, msg.message, msg.details));
      else p.resolve(msg);
      return;
    }
    if (msg.type === "error") this.emit("daemon-error", new DaemonError(msg.code, msg.message, msg.details));
    else this.emit("event", msg);
  }

  _jobEvent(jobId, job, msg) {
    if (job.onEvent) job.onEvent(msg);
    if (!JOB_END.has(msg.type)) return;
    this.jobs.delete(jobId);
    if (msg.type === "job.done") job.resolve(msg);
    else if (msg.type === "job.failed") job.reject(new DaemonError(msg.code, msg.message, msg.details));
    else job.reject(new DaemonError("cancelled", `job ${jobId} was cancelled`));
  }

  /** Send one request; resolves with the reply, rejects with the daemon's error (code + message). */
  request(msg, timeoutMs = this.options.requestTimeoutMs || 60000) {
    if (!this.connected) return Promise.reject(new DaemonError("connection_lost", "not connected to the daemon"));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new DaemonError("timeout", `no reply to ${msg.type} within ${timeoutMs / 1000} s`));
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      this.ws.send(JSON.stringify({ v: 1, id, ...msg }));
    });
  }

  /** Submit a job request; resolves with {accepted, done: Promise<job.done>}; onEvent sees progress. */
  async submit(msg, onEvent) {
    const accepted = await this.request(msg);
    const done = new Promise((resolve, reject) => this.jobs.set(accepted.job_id, { resolve, reject, onEvent }));
    done.catch(() => {}); // the caller awaits it; no unhandled rejection meanwhile
    return { accepted, done };
  }

  cancel(jobId) {
    return this.request({ type: "job.cancel", job_id: jobId });
  }

  /** After a reconnect: jobs we wait on that ended while we were away are finished from the journal. */
  async _recoverJobs() {
    for (const [jobId, job] of [...this.jobs]) {
      try {
        const { jobs } = await this.request({ type: "job.list" });
        const info = jobs.find((j) => j.job_id === jobId);
        if (!info) {
          this._jobEvent(jobId, job, { type: "job.failed", job_id: jobId, code: "unknown_job", message: `job ${jobId} is not in the daemon's journal` });
        } else if (info.state === "done") {
          // job.list lists take ids; the session has the takes
          const { session } = await this.request({ type: "session.get", session_id: info.session_id });
          const takes = session.stems.flatMap((s) => s.takes).filter((t) => info.take_ids.includes(t.take_id));
          this._jobEvent(jobId, job, { type: "job.done", job_id: jobId, kind: info.kind, session_id: info.session_id, takes });
        } else if (info.state === "failed") {
          const e = info.error || {};
          this._jobEvent(jobId, job, { type: "job.failed", job_id: jobId, code: e.code || "internal", message: e.message || "failed" });
        } else if (info.state === "cancelled") {
          this._jobEvent(jobId, job, { type: "job.cancelled", job_id: jobId });
        }
      } catch (err) {
        this.emit("daemon-error", err);
      }
    }
  }
}

module.exports = { DaemonLink, DaemonError, locateDaemon, defaultDataDir };
