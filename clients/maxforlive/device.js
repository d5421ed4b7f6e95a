// What the Max for Live device does, apart from Max and Live: read the Live set through a LiveApi,
// keep a daemon session in step with it (tempo, time signature, length up to the loop end), send
// generate / regenerate / inpaint / keep with Live's loop as the region in beats, report progress,
// and place the returned WAVs on tracks named after the stems at the region start.
//
// LiveApi (all methods may return promises; in the device they are answered by live_api.js through
// Max messages, in the tests by a recording fake):
//   getTempo() -> bpm (quarter notes per minute)            song.tempo
//   getTimeSignature() -> [numerator, denominator]           song.signature_numerator / _denominator
//   getLoop() -> {start, length} in beats (quarter notes)    song.loop_start / song.loop_length
//   getSelectedTrack() -> {index, name}                      song.view.selected_track
//   findOrCreateAudioTrack(name) -> {index, name}            song.tracks / song.create_audio_track
//   createAudioClip(trackIndex, path, positionBeats)         track.create_audio_clip(path, position)
//
// UI (all optional): status(text), progress(step, total, stage), error(code, message), takes(list).
"use strict";

const SAMPLE_RATE = 48000;

/** Round like the daemon (protocol/region.py): nearest sample, ties upward. */
function beatsToSamples(beats, bpm) {
  return Math.floor((beats * 60 * SAMPLE_RATE) / bpm + 0.5);
}

class StemforgeDevice {
  constructor(live, link, ui = {}) {
    this.live = live;
    this.link = link;
    this.ui = ui;
    this.session = null;
    this.sessionName = ui.sessionName || "Live set";
    this.job = null;
    this.placed = []; // [{stem, trackIndex, path, position, takeId}]
  }

  _status(text) { if (this.ui.status) this.ui.status(text); }
  _error(err) {
    if (this.ui.error) this.ui.error(err.code || "error", err.message || String(err));
  }

  /** Live's loop as a protocol Region in beats, and the tempo / time signature it is measured in. */
  async readLive() {
    const [bpm, ts, loop, track] = await Promise.all([this.live.getTempo(), this.live.getTimeSignature(),
      this.live.getLoop(), this.live.getSelectedTrack()]);
    return { bpm: Number(bpm), timeSignature: [Number(ts[0]), Number(ts[1])],
      region: { unit: "beats", start: Number(loop.start), end: Number(loop.start) + Number(loop.length) }, track };
  }

  /** The daemon session for this set: created once, then updated to Live's tempo/signature/length. */
  async syncSession(state) {
    const needed = beatsToSamples(state.region.end, state.bpm);
    const s = this.session;
    if (s === null) {
      const reply = await this.link.request({ type: "session.create", name: this.sessionName, bpm: state.bpm,
        time_signature: state.timeSignature, length: state.region.end, length_unit: "beats" });
      this.session = reply.session;
    } else if (s.bpm !== state.bpm || s.time_signature[0] !== state.timeSignature[0] ||
               s.time_signature[1] !== state.timeSignature[1] || s.length_samples < needed) {
      const reply = await this.link.request({ type: "session.update", session_id: s.session_id, bpm: state.bpm,
        time_signature: state.timeSignature, length: Math.max(state.region.end, s.length_samples * state.bpm / 60 / SAMPLE_RATE),
        length_unit: "beats" });
      this.session = reply.session;
    }
    return this.session;
  }

  /** The stem the selected track stands for (a track named "bass", "Bass 2" ... ), or null. */
  stemOfTrack(track) {
    if (!track || !this.session) return null;
    const name = String(track.name || "").trim().toLowerCase();
    return this.session.stems.map((s) => s.name).find((stem) => name === stem || name.startsWith(`${stem} `)) || null;
  }

  async _run(kind, fields) {
    const state = await this.readLive();
    await this.syncSession(state);
    const msg = { type: kind, session_id: this.session.session_id, ...fields(state) };
    this._status(`${kind}: sending`);
    const { accepted, done } = await this.link.submit(msg, (ev) => {
      if (ev.type === "job.progress" && this.ui.progress) this.ui.progress(ev.step, ev.total, ev.stage);
    });
    this.job = accepted.job_id;
    this._status(`${kind} ${accepted.job_id}: queued`);
    try {
      const result = await done;
      this._status(`${kind} ${accepted.job_id}: done`);
      this.session = (await this.link.request({ type: "session.get", session_id: this.session.session_id })).session;
      const placed = await this.placeTakes(result.takes, state);
      if (this.ui.takes) this.ui.takes(placed);
      return { job_id: accepted.job_id, takes: result.takes, placed, region: state.region };
    } finally {
      this.job = null;
    }
  }

  /** Generate over the loop: `stems` null = every stem (nothing given), [] = the stems not kept. */
  generate({ prompt = "", stems = null, steps, seed } = {}) {
    return this._run("generate", (state) => {
      const f = { prompt, region: state.region };
      if (stems === null) {
        f.stems = this.session.stems.map((s) => s.name);
        f.keep = {};
      } else f.stems = stems;
      if (steps !== undefined) f.steps = steps;
      if (seed !== undefined) f.seed = seed;
      return f;
    }).then((r) => r, (err) => this._fail(err));
  }

  /** Regenerate the stems not kept, given the kept ones (the co-composition loop). */
  regenerate(opts = {}) {
    return this.generate({ ...opts, stems: [] });
  }

  /** Regenerate `stems` (default: the selected track's stem) inside Live's loop only. */
  inpaint({ prompt = "", stems = null, steps, seed } = {}) {
    return this._run("inpaint", (state) => {
      const chosen = stems || [this.stemOfTrack(state.track)].filter(Boolean);
      const f = { prompt, stems: chosen, region: state.region };
      if (steps !== undefined) f.steps = steps;
      if (seed !== undefined) f.seed = seed;
      return f;
    }).then((r) => r, (err) => this._fail(err));
  }

  /** Keep (or release) the selected track's stem, or `stem`. */
  async keep({ stem = null, keep = true } = {}) {
    try {
      const state = await this.readLive();
      await this.syncSession(state);
      const target = stem || this.stemOfTrack(state.track);
      const reply = await this.link.request({ type: "keep", session_id: this.session.session_id, stem: target, keep });
      this.session = reply.session;
      this._status(`${target}: ${keep ? "kept" : "released"}`);
      return this.session;
    } catch (err) {
      return this._fail(err);
    }
  }

  async cancel() {
    if (this.job) await this.link.cancel(this.job).catch((err) => this._fail(err));
  }

  _fail(err) {
    this._error(err);
    this._status(`${err.code || "error"}: ${err.message}`);
    throw err;
  }

  /** Put every take on the track named after its stem, at the take's start (the region start) in beats. */
  async placeTakes(takes, state) {
    const placed = [];
    const startSample = beatsToSamples(state.region.start, state.bpm);
    for (const take of takes) {
      const track = await this.live.findOrCreateAudioTrack(take.stem);
      const position = take.start_sample === startSample ? state.region.start
        : (take.start_sample * state.bpm) / 60 / SAMPLE_RATE;
      await this.live.createAudioClip(track.index, take.path, position);
      placed.push({ stem: take.stem, trackIndex: track.index, path: take.path, position, takeId: take.take_id });
    }
    this.placed.push(...placed);
    return placed;
  }
}

module.exports = { StemforgeDevice, beatsToSamples, SAMPLE_RATE };
