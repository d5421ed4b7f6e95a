// The lanes: one per stem plus the mix. Each lane has its take picker, keep/solo/mute and download
// buttons, a waveform canvas, the selection overlay and the playhead. Dragging across a lane selects
// a region snapped to the beat grid (one denominator note); shift-drag adds the lane's stem to the
// selection, dragging on the mix selects every stem. The lanes only report what the user did
// (callbacks); app.js talks to the daemon.

import { barBeat, beatQuarterNotes, quarterNotesToSamples, samplesToQuarterNotes } from "./wire.js";
import { drawLane, laneColor } from "./waveform.js";

export const MIX = "mix";

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else if (k.startsWith("data-")) e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const c of children) e.append(c);
  return e;
}

export class Lanes {
  constructor(root, callbacks) {
    this.root = root;
    this.cb = callbacks; // onSelectTake(stem, takeId), onKeep(stem, bool), onSolo, onMute, onDownload, onManifest, onSelection
    this.session = null;
    this.total = 1;
    this.rows = new Map(); // stem -> {row, canvas, sel, playhead, takeSelect, keepBtn, ...}
    this.selection = null; // {startBeat, endBeat, stems: Set}
    this.drag = null;
    window.addEventListener("resize", () => this.redrawAll());
  }

  setSession(session, totalSamples) {
    const stems = session.stems.map((s) => s.name);
    const same = this.session && this.rows.size === stems.length + 1 && stems.every((s) => this.rows.has(s));
    this.session = session;
    this.total = Math.max(1, totalSamples);
    if (!same) {
      this.root.replaceChildren();
      this.rows.clear();
      for (const stem of [...stems, MIX]) this._build(stem);
    }
    for (const st of session.stems) this._updateHead(st);
    if (this.selection && this._beatToSample(this.selection.endBeat) > this.total) this.setSelection(null);
    this._renderSelection();
  }

  _build(stem) {
    const isMix = stem === MIX;
    const takeSelect = el("select", { class: "take-select", title: "takes of this stem" });
    const keepBtn = el("button", { class: "btn-keep", type: "button", title: "keep this stem: given as context when the others are regenerated" }, "Keep");
    const soloBtn = el("button", { class: "btn-solo", type: "button", title: "solo" }, "S");
    const muteBtn = el("button", { class: "btn-mute", type: "button", title: "mute" }, "M");
    const wavBtn = el("button", { class: "btn-download", type: "button", title: "download this take (WAV)" }, "WAV");
    const manBtn = el("button", { class: "btn-manifest", type: "button", title: "download the take's recall manifest (JSON)" }, "Manifest");
    const canvas = el("canvas", { class: "wave" });
    const sel = el("div", { class: "sel", hidden: true });
    const playhead = el("div", { class: "playhead" });
    const name = el("span", { class: "lane-name" }, stem);
    name.style.borderLeftColor = laneColor(stem);
    const head = el("div", { class: "lane-head" }, name);
    if (!isMix) head.append(takeSelect, keepBtn);
    head.append(soloBtn, muteBtn, wavBtn);
    if (!isMix) head.append(manBtn);
    const body = el("div", { class: "lane-body" }, canvas, sel, playhead);
    const row = el("div", { class: "lane", "data-stem": stem, "data-take-id": "", "data-drawn": "0" }, head, body);
    this.root.append(row);
    const r = { row, canvas, sel, playhead, takeSelect, keepBtn, soloBtn, muteBtn, wavBtn, manBtn, data: null };
    this.rows.set(stem, r);

    takeSelect.addEventListener("change", () => this.cb.onSelectTake(stem, takeSelect.value));
    keepBtn.addEventListener("click", () => this.cb.onKeep(stem, keepBtn.getAttribute("aria-pressed") !== "true"));
    soloBtn.addEventListener("click", () => this._toggle(soloBtn, (on) => this.cb.onSolo(stem, on)));
    muteBtn.addEventListener("click", () => this._toggle(muteBtn, (on) => this.cb.onMute(stem, on)));
    wavBtn.addEventListener("click", () => this.cb.onDownload(stem));
    manBtn.addEventListener("click", () => this.cb.onManifest(stem));
    body.addEventListener("pointerdown", (ev) => this._dragStart(stem, body, ev));
    body.addEventListener("pointermove", (ev) => this._dragMove(body, ev));
    body.addEventListener("pointerup", (ev) => this._dragEnd(body, ev));
    body.addEventListener("pointercancel", (ev) => this._dragEnd(body, ev));
  }

  _toggle(btn, fn) {
    const on = btn.getAttribute("aria-pressed") !== "true";
    btn.setAttribute("aria-pressed", String(on));
    fn(on);
  }

  _updateHead(st) {
    const r = this.rows.get(st.name);
    if (!r) return;
    r.takeSelect.replaceChildren(...(st.takes.length ? st.takes : [null]).map((t) => t === null
      ? el("option", { value: "" }, "no takes")
      : el("option", { value: t.take_id, selected: t.take_id === st.active_take_id },
        `take ${t.number || "?"} (${t.source})`)));
    r.takeSelect.disabled = st.takes.length === 0;
    r.keepBtn.setAttribute("aria-pressed", String(!!st.kept));
    r.keepBtn.textContent = st.kept ? "Kept" : "Keep";
    r.row.classList.toggle("kept", !!st.kept);
    r.wavBtn.disabled = !st.active_take_id;
    r.manBtn.disabled = !st.active_take_id;
    if ((st.active_take_id || "") !== r.row.getAttribute("data-take-id")) {
      r.row.setAttribute("data-take-id", st.active_take_id || "");
      r.row.setAttribute("data-drawn", "0");
      r.data = null;
      this.draw(st.name);
    }
  }

  /** Show audio on a lane: channels [L, R] starting at timeline sample `startSample` (null: empty). */
  setAudio(stem, channels, startSample, takeId = null) {
    const r = this.rows.get(stem);
    if (!r) return;
    if (takeId !== null && r.row.getAttribute("data-take-id") !== takeId && stem !== MIX) return; // stale
    r.data = channels ? { channels, startSample } : null;
    if (stem === MIX) r.wavBtn.disabled = !channels;
    this.draw(stem);
  }

  draw(stem) {
    const r = this.rows.get(stem);
    if (!r) return;
    const columns = drawLane(r.canvas, { channels: r.data && r.data.channels, startSample: r.data ? r.data.startSample : 0,
      totalSamples: this.total, session: this.session, stem });
    r.row.setAttribute("data-drawn", String(columns));
  }

  redrawAll() {
    for (const stem of this.rows.keys()) this.draw(stem);
  }

  setPlayhead(seconds) {
    const pct = `${Math.min(100, (seconds * 48000 * 100) / this.total)}%`;
    for (const r of this.rows.values()) r.playhead.style.left = pct;
  }

  // ---- selection ---------------------------------------------------------------------------------
  _beatQN() { return beatQuarterNotes(this.session.time_signature); }
  _beatToSample(beat) { return quarterNotesToSamples(beat * this._beatQN(), this.session.bpm); }
  _maxBeat() { return Math.floor(samplesToQuarterNotes(this.session.length_samples, this.session.bpm) / this._beatQN() + 1e-9); }

  _xToBeat(body, clientX) {
    const rect = body.getBoundingClientRect();
    const frac = Math.min(1, Math.max(0, (clientX - rect.left) / rect.width));
    return (samplesToQuarterNotes(frac * this.total, this.session.bpm)) / this._beatQN();
  }

  _dragStart(stem, body, ev) {
    if (!this.session || ev.button !== 0) return;
    body.setPointerCapture(ev.pointerId);
    const stems = stem === MIX ? this.session.stems.map((s) => s.name) : [stem];
    const add = ev.shiftKey && this.selection ? [...this.selection.stems] : [];
    this.drag = { anchor: this._xToBeat(body, ev.clientX), stems: new Set([...add, ...stems]) };
    this._dragMove(body, ev);
  }

  _dragMove(body, ev) {
    if (!this.drag) return;
    const here = this._xToBeat(body, ev.clientX);
    const max = this._maxBeat();
    let a = Math.round(Math.min(this.drag.anchor, here));
    let b = Math.round(Math.max(this.drag.anchor, here));
    a = Math.max(0, Math.min(a, max - 1));
    b = Math.min(max, Math.max(b, a + 1));
    this.selection = { startBeat: a, endBeat: b, stems: this.drag.stems };
    this._renderSelection();
  }

  _dragEnd(body, ev) {
    if (!this.drag) return;
    this._dragMove(body, ev);
    this.drag = null;
    this.cb.onSelection(this.selection);
  }

  setSelection(sel) {
    this.selection = sel;
    this._renderSelection();
    this.cb.onSelection(sel);
  }

  /** The selection as a protocol Region in beats (0-based quarter notes), or null. */
  region() {
    if (!this.selection || !this.session) return null;
    const q = this._beatQN();
    return { unit: "beats", start: this.selection.startBeat * q, end: this.selection.endBeat * q };
  }

  selectionSeconds() {
    if (!this.selection) return null;
    return [this._beatToSample(this.selection.startBeat) / 48000, this._beatToSample(this.selection.endBeat) / 48000];
  }

  describeSelection() {
    const s = this.selection;
    if (!s) return "";
    const ts = this.session.time_signature;
    return `${barBeat(s.startBeat, ts)} – ${barBeat(s.endBeat, ts)} (${s.endBeat - s.startBeat} beats) · ${[...s.stems].join(", ")}`;
  }

  _renderSelection() {
    for (const [stem, r] of this.rows) {
      const s = this.selection;
      if (!s || !this.session) { r.sel.hidden = true; continue; }
      const a = this._beatToSample(s.startBeat) / this.total;
      const b = this._beatToSample(s.endBeat) / this.total;
      r.sel.hidden = false;
      r.sel.style.left = `${a * 100}%`;
      r.sel.style.width = `${(b - a) * 100}%`;
      r.sel.classList.toggle("target", s.stems.has(stem));
    }
  }
}
