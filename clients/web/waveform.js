// Waveforms on a canvas, drawn from the real samples: per pixel column the min/max of the mono sum,
// over a grid of bars and beats of the session's tempo and time signature.

import { SAMPLE_RATE, beatQuarterNotes, quarterNotesToSamples } from "./wire.js";

const COLORS = { bass: "#e0823d", drums: "#d8c242", instrument: "#58b368", melody: "#4f8fdb", mix: "#b07cd8" };

export function laneColor(stem) {
  return COLORS[stem] || "#9aa4b1";
}

/** Resize the canvas backing store to its CSS box (device pixels); returns true when it changed. */
export function fitCanvas(canvas) {
  const ratio = window.devicePixelRatio || 1;
  const w = Math.max(1, Math.round(canvas.clientWidth * ratio));
  const h = Math.max(1, Math.round(canvas.clientHeight * ratio));
  if (canvas.width !== w || canvas.height !== h) {
    canvas.width = w;
    canvas.height = h;
    return true;
  }
  return false;
}

/**
 * Draw `channels` ([L, R] Float32Array, starting at timeline sample `startSample`) on a timeline of
 * `totalSamples`, with the beat grid of `session` (bpm, time_signature). `channels` null: grid only.
 */
export function drawLane(canvas, { channels, startSample, totalSamples, session, stem }) {
  fitCanvas(canvas);
  const ctx = canvas.getContext("2d");
  const { width: w, height: h } = canvas;
  ctx.fillStyle = "#15181d";
  ctx.fillRect(0, 0, w, h);
  drawGrid(ctx, w, h, totalSamples, session);
  if (!channels) return 0;
  const [left, right] = channels;
  const perPx = totalSamples / w;
  const mid = h / 2;
  // quiet takes (an untrained model's, a soft pad) are drawn magnified to fill the lane; the label
  // says by how much, and the true peak level
  const peak = peakOf(left, right);
  const zoom = peak > 0 ? Math.min(0.95 / peak, 10000) : 1;
  ctx.fillStyle = laneColor(stem);
  let drawnColumns = 0;
  for (let x = 0; x < w; x++) {
    const a = Math.floor(x * perPx) - startSample;
    const b = Math.floor((x + 1) * perPx) - startSample;
    if (b <= 0 || a >= left.length) continue;
    let lo = Infinity;
    let hi = -Infinity;
    const step = Math.max(1, Math.floor((b - a) / 256)); // bounded work per column
    for (let i = Math.max(0, a); i < Math.min(b, left.length); i += step) {
      const v = 0.5 * (left[i] + right[i]);
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    if (lo === Infinity) continue;
    const y0 = mid - Math.max(-1, Math.min(1, hi * zoom)) * (mid - 1);
    const y1 = mid - Math.max(-1, Math.min(1, lo * zoom)) * (mid - 1);
    ctx.fillRect(x, y0, 1, Math.max(1, y1 - y0));
    drawnColumns++;
  }
  const ratio = window.devicePixelRatio || 1;
  ctx.font = `${11 * ratio}px system-ui, sans-serif`;
  const db = peak > 0 ? `${(20 * Math.log10(peak)).toFixed(1)} dBFS` : "silent";
  const label = `peak ${db}${zoom > 1.05 ? ` · view ×${zoom < 10 ? zoom.toFixed(1) : Math.round(zoom)}` : ""}`;
  ctx.fillStyle = "rgba(15, 17, 21, 0.8)";
  ctx.fillRect(2 * ratio, 2 * ratio, ctx.measureText(label).width + 8 * ratio, 16 * ratio);
  ctx.fillStyle = "#aab3c0";
  ctx.fillText(label, 6 * ratio, 14 * ratio);
  return drawnColumns;
}

/** Largest |sample| of the mono sum (what the lane draws). */
export function peakOf(left, right) {
  let peak = 0;
  for (let i = 0; i < left.length; i++) {
    const v = Math.abs(0.5 * (left[i] + right[i]));
    if (v > peak) peak = v;
  }
  return peak;
}

function drawGrid(ctx, w, h, totalSamples, session) {
  if (!session || totalSamples <= 0) return;
  const ts = session.time_signature;
  const beatQN = beatQuarterNotes(ts);
  const beats = Math.ceil((totalSamples / SAMPLE_RATE) * (session.bpm / 60) / beatQN);
  if (beats > w / 3) return; // too dense to draw
  for (let k = 0; k <= beats; k++) {
    const x = Math.round((quarterNotesToSamples(k * beatQN, session.bpm) / totalSamples) * w);
    ctx.fillStyle = k % ts[0] === 0 ? "#3a414c" : "#242931";
    ctx.fillRect(x, 0, 1, h);
  }
  ctx.fillStyle = "#242931";
  ctx.fillRect(0, Math.floor(h / 2), w, 1);
}

/** Mono mix of several [L, R] takes placed on a timeline: returns [L, R] of `totalSamples`. */
export function mixTakes(takes, totalSamples) {
  const l = new Float32Array(totalSamples);
  const r = new Float32Array(totalSamples);
  for (const { channels, startSample } of takes) {
    const [tl, tr] = channels;
    const n = Math.min(tl.length, totalSamples - startSample);
    for (let i = 0; i < n; i++) {
      l[startSample + i] += tl[i];
      r[startSample + i] += tr[i];
    }
  }
  return [l, r];
}
