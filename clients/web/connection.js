// The page's WebSocket connection to the daemon (protocol v1): requests matched to replies by `id`,
// job events routed by `job_id`, downloads assembled from binary frames, and reconnection with
// backoff when the daemon restarts. Errors are DaemonError objects carrying the daemon's code and
// message unchanged, so the page can show them as they are.

import { PROTOCOL_VERSION, decodeFrame, deinterleave } from "./wire.js";

export class DaemonError extends Error {
  constructor(code, message, details = null, inReplyTo = null) {
    super(message);
    this.code = code;
    this.details = details;
    this.inReplyTo = inReplyTo;
  }
  toString() {
    return `${this.code}: ${this.message}`;
  }
}

const JOB_EVENTS = new Set(["job.progress", "job.preview", "job.done", "job.failed", "job.cancelled"]);

export class Connection extends EventTarget {
  constructor(url) {
    super();
    this.url = url;
    this.ws = null;
    this.nextId = 1;
    this.pending = new Map(); // id -> {resolve, reject, type}
    this.transfers = new Map(); // transfer id -> download state
    this.downloads = new Map(); // request id -> download state (until download.begin names the transfer)
    this.backoff = 250;
    this.closedByUser = false;
    this.everOpened = false;
    this.state = "connecting";
  }

  connect() {
    this.closedByUser = false;
    this._open();
  }

  close() {
    this.closedByUser = true;
    if (this.ws) this.ws.close();
  }

  _setState(state, detail = {}) {
    this.state = state;
    this.dispatchEvent(new CustomEvent("state", { detail: { state, ...detail } }));
  }

  _open() {
    this._setState(this.everOpened ? "reconnecting" : "connecting");
    let ws;
    try {
      ws = new WebSocket(this.url);
    } catch (err) {
      this._scheduleReconnect(String(err));
      return;
    }
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    ws.onopen = () => {
      this.backoff = 250;
      const again = this.everOpened;
      this.everOpened = true;
      this._setState("connected", { reconnected: again });
    };
    ws.onmessage = (ev) => {
      if (typeof ev.data === "string") this._onText(ev.data);
      else this._onBinary(ev.data);
    };
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      const lost = new DaemonError("connection_lost",
        `connection to the daemon closed (code ${ev.code}${ev.reason ? ": " + ev.reason : ""})`);
      for (const p of this.pending.values()) p.reject(lost);
      this.pending.clear();
      for (const d of this.transfers.values()) d.reject(lost);
      for (const d of this.downloads.values()) d.reject(lost);
      this.transfers.clear();
      this.downloads.clear();
      if (this.closedByUser) this._setState("closed");
      else this._scheduleReconnect(`code ${ev.code}`);
    };
  }

  _scheduleReconnect(why) {
    const delay = this.backoff;
    this.backoff = Math.min(this.backoff * 2, 4000);
    this._setState("disconnected", { why, retryMs: delay });
    setTimeout(() => { if (!this.closedByUser) this._open(); }, delay);
  }

  _onText(text) {
    let msg;
    try {
      msg = JSON.parse(text);
    } catch (err) {
      this.dispatchEvent(new CustomEvent("protocol-error", { detail: `unreadable message from the daemon: ${err}` }));
      return;
    }
    const id = msg.id;
    if (msg.type === "download.begin" && this.downloads.has(id)) {
      const d = this.downloads.get(id);
      this.downloads.delete(id);
      d.begin = msg;
      d.channels = [new Float32Array(msg.frames), new Float32Array(msg.frames)];
      this.transfers.set(msg.transfer_id, d);
      return;
    }
    if (msg.type === "download.end" && this.transfers.has(msg.transfer_id)) {
      const d = this.transfers.get(msg.transfer_id);
      this.transfers.delete(msg.transfer_id);
      if (d.received !== d.begin.total_chunks) {
        d.reject(new DaemonError("malformed_message", `download ended after ${d.received} of ${d.begin.total_chunks} chunks`));
      } else d.resolve(d);
      return;
    }
    if (msg.type === "error" && this.downloads.has(id)) {
      const d = this.downloads.get(id);
      this.downloads.delete(id);
      d.reject(new DaemonError(msg.code, msg.message, msg.details, msg.in_reply_to));
      return;
    }
    if (JOB_EVENTS.has(msg.type)) {
      this.dispatchEvent(new CustomEvent("job", { detail: msg }));
      return;
    }
    if (id !== undefined && this.pending.has(id)) {
      const p = this.pending.get(id);
      this.pending.delete(id);
      if (msg.type === "error") p.reject(new DaemonError(msg.code, msg.message, msg.details, msg.in_reply_to));
      else {
        p.resolve(msg);
        if (msg.type === "job.accepted") this.dispatchEvent(new CustomEvent("job", { detail: msg }));
      }
      return;
    }
    if (msg.type === "error") {
      this.dispatchEvent(new CustomEvent("daemon-error",
        { detail: new DaemonError(msg.code, msg.message, msg.details, msg.in_reply_to) }));
      return;
    }
    this.dispatchEvent(new CustomEvent("event", { detail: msg }));
  }

  _onBinary(buffer) {
    let frame;
    try {
      frame = decodeFrame(buffer);
    } catch (err) {
      this.dispatchEvent(new CustomEvent("protocol-error", { detail: String(err.message || err) }));
      return;
    }
    const d = this.transfers.get(frame.transferId);
    if (!d) return; // a stream or preview this page did not ask for
    if (frame.chunkIndex !== d.received) {
      d.reject(new DaemonError("malformed_message", `chunk ${frame.chunkIndex} out of order (expected ${d.received})`));
      this.transfers.delete(frame.transferId);
      return;
    }
    if (d.keepRaw) d.raw.push(frame.payload.slice());
    deinterleave(frame.payload, frame.format, frame.channels, d.channels, d.offset);
    if (frame.channels === 1) d.channels[1].set(d.channels[0].subarray(d.offset, d.offset + frame.frames), d.offset);
    d.offset += frame.frames;
    d.received += 1;
  }

  /** Send a request; resolves with its reply, rejects with a DaemonError (the daemon's code + message). */
  request(msg) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) {
      return Promise.reject(new DaemonError("connection_lost", "not connected to the daemon (reconnecting)"));
    }
    const id = this.nextId++;
    const body = { v: PROTOCOL_VERSION, id, ...msg };
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, type: msg.type });
      this.ws.send(JSON.stringify(body));
    });
  }

  /** Download a take: {begin, channels: [L, R] Float32Array, raw: [payload bytes] when keepRaw}. */
  download(takeId, sampleFormat = "float32", keepRaw = false) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) {
      return Promise.reject(new DaemonError("connection_lost", "not connected to the daemon (reconnecting)"));
    }
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.downloads.set(id, { resolve, reject, received: 0, offset: 0, keepRaw, raw: [], begin: null });
      this.ws.send(JSON.stringify({ v: PROTOCOL_VERSION, id, type: "download", take_id: takeId,
        sample_format: sampleFormat, chunk_frames: 48000 }));
    });
  }
}
