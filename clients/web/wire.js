// Protocol v1 pieces the page needs, in plain JS: binary audio frames (SFAU header + CRC32),
// PCM payload decoding, WAV files built from downloaded PCM, and beat <-> sample arithmetic
// (the same formulas as protocol/region.py). No DOM, no network: app.js and connection.js use it.

export const PROTOCOL_VERSION = 1;
export const SAMPLE_RATE = 48000;
export const HEADER_SIZE = 32;
export const FRAME_KIND = { upload: 1, download: 2, stream: 3, preview: 4 };
export const SAMPLE_FORMATS = { 1: ["pcm16", 2], 2: ["pcm24", 3], 3: ["float32", 4] };
const FORMAT_BYTES = { pcm16: 2, pcm24: 3, float32: 4 };

let crcTable = null;
export function crc32(bytes, crc = 0) {
  if (crcTable === null) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  crc = (crc ^ 0xffffffff) >>> 0;
  for (let i = 0; i < bytes.length; i++) crc = crcTable[(crc ^ bytes[i]) & 0xff] ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

/** Decode one binary frame (ArrayBuffer) -> {kind, format, channels, transferId, chunkIndex, ..., payload}. */
export function decodeFrame(buffer) {
  const bytes = new Uint8Array(buffer);
  if (bytes.length < HEADER_SIZE) throw new Error(`malformed_message: binary frame of ${bytes.length} bytes`);
  const magic = String.fromCharCode(bytes[0], bytes[1], bytes[2], bytes[3]);
  if (magic !== "SFAU") throw new Error(`malformed_message: bad magic ${JSON.stringify(magic)}`);
  const view = new DataView(buffer);
  const version = view.getUint8(4);
  if (version !== 1) throw new Error(`unsupported_version: binary frame version ${version}`);
  const fmt = SAMPLE_FORMATS[view.getUint8(6)];
  if (!fmt) throw new Error(`invalid_argument: unknown sample format ${view.getUint8(6)}`);
  const frame = {
    kind: view.getUint8(5),
    format: fmt[0],
    channels: view.getUint8(7),
    transferId: view.getUint32(8, true),
    chunkIndex: view.getUint32(12, true),
    totalChunks: view.getUint32(16, true),
    sampleRate: view.getUint32(20, true),
    frames: view.getUint32(24, true),
  };
  const expected = frame.frames * frame.channels * fmt[1];
  if (bytes.length - HEADER_SIZE !== expected) {
    throw new Error(`malformed_message: payload of ${bytes.length - HEADER_SIZE} bytes, header says ${expected}`);
  }
  let crc = crc32(bytes.subarray(0, 28));
  crc = crc32(bytes.subarray(HEADER_SIZE), crc);
  if (crc !== view.getUint32(28, true)) throw new Error("malformed_message: binary frame CRC mismatch");
  frame.payload = bytes.subarray(HEADER_SIZE);
  return frame;
}

/** Interleaved PCM bytes -> one Float32Array per channel, written at `offset` into `out` (arrays). */
export function deinterleave(payload, format, channels, out, offset) {
  const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  const bps = FORMAT_BYTES[format];
  const frames = payload.byteLength / (bps * channels);
  for (let i = 0; i < frames; i++) {
    for (let c = 0; c < channels; c++) {
      const p = (i * channels + c) * bps;
      let v;
      if (format === "float32") v = view.getFloat32(p, true);
      else if (format === "pcm16") v = view.getInt16(p, true) / 32768;
      else {
        let x = view.getUint8(p) | (view.getUint8(p + 1) << 8) | (view.getUint8(p + 2) << 16);
        if (x & 0x800000) x -= 0x1000000;
        v = x / 8388608;
      }
      out[c][offset + i] = v;
    }
  }
  return frames;
}

/** A RIFF/WAVE file (Blob) around interleaved little-endian PCM (pcm16, pcm24 or float32). */
export function wavBlob(pcmChunks, format, channels, sampleRate) {
  const bps = FORMAT_BYTES[format];
  const dataBytes = pcmChunks.reduce((n, c) => n + c.byteLength, 0);
  const header = new ArrayBuffer(44);
  const v = new DataView(header);
  const text = (o, s) => { for (let i = 0; i < s.length; i++) v.setUint8(o + i, s.charCodeAt(i)); };
  text(0, "RIFF"); v.setUint32(4, 36 + dataBytes, true); text(8, "WAVE");
  text(12, "fmt "); v.setUint32(16, 16, true);
  v.setUint16(20, format === "float32" ? 3 : 1, true);
  v.setUint16(22, channels, true); v.setUint32(24, sampleRate, true);
  v.setUint32(28, sampleRate * channels * bps, true); v.setUint16(32, channels * bps, true);
  v.setUint16(34, bps * 8, true);
  text(36, "data"); v.setUint32(40, dataBytes, true);
  return new Blob([header, ...pcmChunks], { type: "audio/wav" });
}

/** Quarter notes per beat: a beat is one denominator note (an eighth in 7/8). */
export function beatQuarterNotes(timeSignature) {
  return 4 / timeSignature[1];
}

/** Samples (48 kHz) at `quarterNotes` from the session start, rounded as the daemon does (ties up). */
export function quarterNotesToSamples(quarterNotes, bpm) {
  return Math.floor((quarterNotes * 60 * SAMPLE_RATE) / bpm + 0.5);
}

export function samplesToQuarterNotes(samples, bpm) {
  return (samples * bpm) / (60 * SAMPLE_RATE);
}

/** "bar.beat" (1-based, as a DAW shows it) of a 0-based beat index. */
export function barBeat(beatIndex, timeSignature) {
  const num = timeSignature[0];
  return `${Math.floor(beatIndex / num) + 1}.${(beatIndex % num) + 1}`;
}

/** Short decimal text of a quarter-note position: exact for the beat grid (0.5, 0.25, 0.125 ...). */
export function qnNumber(x) {
  return Math.round(x * 1e6) / 1e6;
}
