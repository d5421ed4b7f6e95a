// Audition in the browser (Web Audio): every lane placed on the session timeline, started together
// on the audio clock so the lanes stay in sample sync, per-lane solo/mute gains, and an optional loop
// over the selection. Playback runs on the browser's audio thread; nothing here blocks it.

import { SAMPLE_RATE } from "./wire.js";

export class Player {
  constructor() {
    this.ctx = null;
    this.lanes = new Map(); // stem -> {buffer: AudioBuffer, gain: GainNode, mute, solo}
    this.sources = [];
    this.playing = false;
    this.startedAt = 0; // ctx time of timeline position `offset`
    this.offset = 0; // seconds
    this.loop = null; // [startSec, endSec] or null
    this.length = 0; // timeline seconds
  }

  _context() {
    if (this.ctx === null) {
      this.ctx = new AudioContext({ sampleRate: SAMPLE_RATE, latencyHint: "interactive" });
      this.master = this.ctx.createGain();
      this.master.connect(this.ctx.destination);
    }
    return this.ctx;
  }

  /** Place a take (L, R Float32Arrays starting at `startSample`) on a timeline of `totalSamples`. */
  setLane(stem, left, right, startSample, totalSamples) {
    const ctx = this._context();
    const buffer = ctx.createBuffer(2, Math.max(1, totalSamples), SAMPLE_RATE);
    const n = Math.min(left.length, Math.max(0, totalSamples - startSample));
    buffer.copyToChannel(left.subarray(0, n), 0, startSample);
    buffer.copyToChannel(right.subarray(0, n), 1, startSample);
    const old = this.lanes.get(stem);
    const gain = old ? old.gain : ctx.createGain();
    if (!old) gain.connect(this.master);
    this.lanes.set(stem, { buffer, gain, mute: old ? old.mute : false, solo: old ? old.solo : false });
    this.length = Math.max(this.length, totalSamples / SAMPLE_RATE);
    this._applyGains();
    if (this.playing) this.play(this.position());
  }

  removeLane(stem) {
    const lane = this.lanes.get(stem);
    if (lane) lane.gain.disconnect();
    this.lanes.delete(stem);
  }

  setMute(stem, on) { const l = this.lanes.get(stem); if (l) { l.mute = on; this._applyGains(); } }
  setSolo(stem, on) { const l = this.lanes.get(stem); if (l) { l.solo = on; this._applyGains(); } }

  /** Effective gain of every lane: 0 when muted, or when another lane is soloed and this one is not. */
  gains() {
    const anySolo = [...this.lanes.values()].some((l) => l.solo);
    const out = {};
    for (const [stem, l] of this.lanes) out[stem] = l.mute || (anySolo && !l.solo) ? 0 : 1;
    return out;
  }

  _applyGains() {
    const g = this.gains();
    for (const [stem, l] of this.lanes) {
      if (this.ctx) l.gain.gain.setTargetAtTime(g[stem], this.ctx.currentTime, 0.005);
    }
  }

  setLoop(range) {
    this.loop = range;
    if (this.playing) this.play(this.position());
  }

  /** Start every lane at timeline second `at` (or the loop start), all on the same audio-clock time. */
  play(at = null) {
    const ctx = this._context();
    this._stopSources();
    if (ctx.state === "suspended") ctx.resume();
    let offset = at ?? (this.loop ? this.loop[0] : 0);
    if (this.loop && (offset < this.loop[0] || offset >= this.loop[1])) offset = this.loop[0];
    if (!this.loop && offset >= this.length) offset = 0;
    const when = ctx.currentTime + 0.05;
    for (const lane of this.lanes.values()) {
      const src = ctx.createBufferSource();
      src.buffer = lane.buffer;
      if (this.loop) {
        src.loop = true;
        src.loopStart = this.loop[0];
        src.loopEnd = this.loop[1];
      }
      src.connect(lane.gain);
      src.start(when, offset);
      this.sources.push(src);
    }
    if (this.sources.length) {
      this.sources[0].onended = () => { if (this.sources.length === 0 || !this.loop) this._ended(); };
    }
    this.startedAt = when;
    this.offset = offset;
    this.playing = true;
  }

  _ended() {
    if (!this.playing) return;
    if (this.ctx && this.position() < this.length - 0.01) return;
    this._stopSources();
    this.playing = false;
    this.offset = 0;
  }

  stop() {
    this._stopSources();
    this.playing = false;
  }

  _stopSources() {
    for (const s of this.sources) {
      s.onended = null;
      try { s.stop(); } catch { /* not started */ }
      s.disconnect();
    }
    this.sources = [];
  }

  /** Current timeline position in seconds (wrapped into the loop while looping). */
  position() {
    if (!this.playing || !this.ctx) return this.offset;
    let t = this.offset + Math.max(0, this.ctx.currentTime - this.startedAt);
    if (this.loop && t >= this.loop[1]) {
      const span = this.loop[1] - this.loop[0];
      t = this.loop[0] + ((t - this.loop[0]) % span);
    }
    return Math.min(t, this.length);
  }
}
