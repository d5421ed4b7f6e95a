// The web studio page: session form, prompt and job buttons, lanes, audition and downloads, on top of
// one protocol v1 WebSocket to the daemon that served the page. Everything the daemon refuses is shown
// in "Daemon messages" as `code: message`, exactly as the daemon wrote it.

import { Connection, DaemonError } from "./connection.js";
import { Lanes, MIX } from "./lanes.js";
import { Player } from "./player.js";
import { laneSegments, timelineEnd } from "./timeline.js";
import { mixTakes } from "./waveform.js";
import { SAMPLE_RATE, barBeat, beatQuarterNotes, samplesToQuarterNotes, wavBlob } from "./wire.js";

const $ = (id) => document.getElementById(id);
const JOB_END = new Set(["job.done", "job.failed", "job.cancelled"]);
const JOB_BUTTONS = ["btn-generate", "btn-regenerate", "btn-continue", "btn-inpaint"];

const state = {
  conn: null,
  info: null,
  session: null,
  job: null, // {job_id, kind, state}
  takes: new Map(), // take id -> Promise<{channels, startSample, frames}>
  loaded: new Map(), // stem -> {channels, startSample, takeId}
};
const player = new Player();
const lanes = new Lanes($("lanes"), {
  onSelectTake: (stem, takeId) => act(async () => applySession((await request({ type: "take.select", session_id: sid(), stem, take_id: takeId })).session)),
  onKeep: (stem, keep) => act(async () => applySession((await request({ type: "keep", session_id: sid(), stem, keep })).session)),
  onSolo: (stem, on) => { if (stem === MIX) return; player.setSolo(stem, on); },
  onMute: (stem, on) => { if (stem === MIX) player.master && (player.master.gain.value = on ? 0 : 1); else player.setMute(stem, on); },
  onDownload: (stem) => act(() => downloadWav(stem)),
  onManifest: (stem) => act(() => downloadManifest(stem)),
  onSelection: () => renderSelection(),
});
window.stemforgeStudio = { state, player, lanes }; // for the browser console

// ---- messages ----------------------------------------------------------------------------------
function showMessage(kind, code, text) {
  const li = document.createElement("li");
  li.className = kind;
  li.setAttribute("data-code", code || "");
  const c = document.createElement("code");
  c.textContent = code || kind;
  li.append(c, document.createTextNode(` ${text}`));
  li.title = new Date().toLocaleTimeString();
  $("message-list").prepend(li);
  while ($("message-list").children.length > 50) $("message-list").lastElementChild.remove();
}

function showError(err) {
  if (err instanceof DaemonError) showMessage("error", err.code, err.message + (err.inReplyTo ? ` (in reply to ${err.inReplyTo})` : ""));
  else showMessage("error", "client", String((err && err.message) || err));
}

async function act(fn) {
  try {
    await fn();
  } catch (err) {
    showError(err);
  }
}

const request = (msg) => state.conn.request(msg);
const sid = () => (state.session ? state.session.session_id : undefined);

// ---- connection --------------------------------------------------------------------------------
function start(token) {
  const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/?token=${encodeURIComponent(token)}`;
  const conn = new Connection(url);
  state.conn = conn;
  conn.addEventListener("state", (ev) => {
    const { state: s, reconnected, retryMs } = ev.detail;
    const conEl = $("conn");
    conEl.setAttribute("data-state", s);
    // a browser cannot read a refused handshake's HTTP status (401 wrong token): say both causes
    const why = conn.everOpened ? "daemon unreachable" : "cannot connect (daemon not running, or a wrong token)";
    conEl.textContent = s === "connected" ? "connected" : s === "disconnected" ? `${why}, retrying in ${(retryMs / 1000).toFixed(1)} s` : `${s}…`;
    if (s === "connected") act(() => refresh(reconnected));
    if (s === "disconnected") setJobButtons();
  });
  conn.addEventListener("job", (ev) => onJobEvent(ev.detail));
  conn.addEventListener("daemon-error", (ev) => showError(ev.detail));
  conn.addEventListener("protocol-error", (ev) => showMessage("error", "client", ev.detail));
  conn.addEventListener("event", (ev) => {
    const msg = ev.detail;
    if (msg.type === "session" && state.session && msg.session.session_id === sid()) applySession(msg.session);
  });
  conn.connect();
}

async function refresh(reconnected) {
  const info = await request({ type: "server.info" });
  state.info = info;
  const m = info.model;
  $("model").textContent = `${m.name} · ${m.trained ? "trained" : "UNTRAINED (noise-like output)"} · ${m.hash.slice(0, 10)} · v${info.version}`;
  const samplers = $("opt-sampler");
  if (samplers.options.length === 1) for (const s of m.samplers) samplers.append(new Option(s, s));
  await refreshSessionList();
  const wanted = sid() || decodeURIComponent(location.hash.slice(1));
  if (wanted) {
    try {
      applySession((await request({ type: "session.get", session_id: wanted })).session);
    } catch (err) {
      if (!(err instanceof DaemonError && err.code === "unknown_session")) throw err;
      showError(err);
    }
  }
  if (reconnected) showMessage("info", "reconnected", "the daemon is back; session and jobs reloaded");
  await followJobs();
  setJobButtons();
}

async function refreshSessionList() {
  const { sessions } = await request({ type: "session.list" });
  const select = $("session-select");
  const current = sid() || "";
  select.replaceChildren(new Option("(new)", ""), ...sessions.map((s) => new Option(`${s.name || s.session_id} · ${s.bpm} bpm ${s.time_signature.join("/")}`, s.session_id)));
  select.value = current;
}

/** After a (re)connect: pick up a job still running for this session, or the outcome of the one we followed. */
async function followJobs() {
  if (!state.session) return;
  const { jobs } = await request({ type: "job.list", session_id: sid() });
  const active = jobs.filter((j) => j.state === "queued" || j.state === "running");
  const mine = state.job && jobs.find((j) => j.job_id === state.job.job_id);
  if (mine && !active.includes(mine) && state.job.state !== "done") {
    const type = { done: "job.done", failed: "job.failed", cancelled: "job.cancelled" }[mine.state];
    await onJobEvent({ type, job_id: mine.job_id, kind: mine.kind, session_id: mine.session_id, ...(mine.error || {}) });
  } else if (active.length && (!state.job || !active.some((j) => j.job_id === state.job.job_id))) {
    const j = active[active.length - 1];
    state.job = { job_id: j.job_id, kind: j.kind, state: j.state };
    renderJob({ step: j.step, total: j.total, stage: j.stage });
  }
}

// ---- session -----------------------------------------------------------------------------------
const totalSamples = timelineEnd;

function applySession(session) {
  const changedSession = !state.session || state.session.session_id !== session.session_id;
  state.session = session;
  if (changedSession) {
    history.replaceState(null, "", `${location.pathname}${location.search}#${encodeURIComponent(session.session_id)}`);
    for (const stem of [...player.lanes.keys()]) player.removeLane(stem);
    state.loaded.clear();
    lanes.selection = null;
  }
  if (document.activeElement === null || !$("session-bar").contains(document.activeElement)) {
    $("s-name").value = session.name;
    $("s-bpm").value = session.bpm;
    $("s-num").value = session.time_signature[0];
    $("s-den").value = String(session.time_signature[1]);
    $("s-length").value = +(samplesToQuarterNotes(session.length_samples, session.bpm) / beatQuarterNotes(session.time_signature) / session.time_signature[0]).toFixed(4);
    $("s-length-unit").value = "bars";
  }
  const sel = $("session-select");
  if (![...sel.options].some((o) => o.value === session.session_id)) sel.append(new Option(session.name || session.session_id, session.session_id));
  sel.value = session.session_id;
  lanes.setSession(session, totalSamples(session));
  renderSelection();
  setJobButtons();
  loadAudio();
}

function takeAudio(takeId) {
  if (!state.takes.has(takeId)) {
    const p = state.conn.download(takeId, "float32").then((d) => ({ channels: d.channels, frames: d.begin.frames }));
    p.catch(() => state.takes.delete(takeId));
    state.takes.set(takeId, p);
  }
  return state.takes.get(takeId);
}

/** Download (once) what every lane needs and place it on the timeline: lanes, mix and player. */
async function loadAudio() {
  const session = state.session;
  const total = totalSamples(session);
  const jobs = session.stems.map(async (st) => {
    const segments = laneSegments(st);
    if (segments.length === 0) {
      state.loaded.delete(st.name);
      player.removeLane(st.name);
      return;
    }
    const key = segments.map((g) => `${g.take.take_id}:${g.start}-${g.end}`).join(",");
    const have = state.loaded.get(st.name);
    if (have && have.key === key && have.total === total) return;
    const audio = await Promise.all(segments.map((g) => takeAudio(g.take.take_id)));
    if (state.session !== session) return;
    const channels = [new Float32Array(total), new Float32Array(total)];
    segments.forEach((g, i) => {
      const from = g.start - g.take.start_sample;
      for (let c = 0; c < 2; c++) channels[c].set(audio[i].channels[c].subarray(from, from + g.end - g.start), g.start);
    });
    state.loaded.set(st.name, { channels, startSample: 0, takeId: st.active_take_id, key, total });
    lanes.setAudio(st.name, channels, 0, st.active_take_id);
    player.setLane(st.name, channels[0], channels[1], 0, total);
  });
  const results = await Promise.allSettled(jobs);
  for (const r of results) if (r.status === "rejected") showError(r.reason);
  if (state.session !== session) return;
  const placed = [...state.loaded.values()];
  lanes.setAudio(MIX, placed.length ? mixTakes(placed, total) : null, 0);
  $("btn-play").disabled = placed.length === 0;
  $("btn-stop").disabled = placed.length === 0;
}

function sessionFields() {
  const num = parseInt($("s-num").value, 10);
  const den = parseInt($("s-den").value, 10);
  return { name: $("s-name").value, bpm: Number($("s-bpm").value), time_signature: [num, den],
    length: Number($("s-length").value), length_unit: $("s-length-unit").value };
}

$("btn-new-session").addEventListener("click", () => act(async () => {
  state.job = null;
  applySession((await request({ type: "session.create", ...sessionFields() })).session);
  await refreshSessionList();
}));
$("btn-update-session").addEventListener("click", () => act(async () => {
  applySession((await request({ type: "session.update", session_id: sid(), ...sessionFields() })).session);
  await refreshSessionList();
}));
$("session-select").addEventListener("change", (ev) => act(async () => {
  if (!ev.target.value) return;
  state.job = null;
  applySession((await request({ type: "session.get", session_id: ev.target.value })).session);
}));

// ---- jobs --------------------------------------------------------------------------------------
function generationFields() {
  const f = { session_id: sid(), prompt: $("prompt").value, format: $("opt-format").value };
  const int = (id) => ($(id).value.trim() === "" ? undefined : Number($(id).value));
  if (int("opt-steps") !== undefined) f.steps = int("opt-steps");
  if (int("opt-seed") !== undefined) f.seed = int("opt-seed");
  if (int("opt-cfg") !== undefined) f.cfg = int("opt-cfg");
  if ($("opt-sampler").value) f.sampler = $("opt-sampler").value;
  if ($("opt-key").value.trim()) f.key = $("opt-key").value.trim();
  if ($("opt-negative").value.trim()) f.negative_prompt = $("opt-negative").value.trim();
  if ($("opt-chords").value.trim()) f.chords = $("opt-chords").value.trim();
  if (int("opt-chord-cfg") !== undefined) f.chord_cfg = int("opt-chord-cfg");
  if (int("opt-chroma") !== undefined) f.chroma_guidance = int("opt-chroma");
  return f;
}

async function submit(msg) {
  const accepted = await request({ ...generationFields(), ...msg });
  state.job = { job_id: accepted.job_id, kind: accepted.kind, state: "queued" };
  renderJob({ step: 0, total: 0, stage: "queued" });
}

$("btn-generate").addEventListener("click", () => act(() => submit({ type: "generate", stems: state.session.stems.map((s) => s.name), keep: {} })));
$("btn-regenerate").addEventListener("click", () => act(() => submit({ type: "generate", stems: [] })));
$("btn-inpaint").addEventListener("click", () => act(() => submit({ type: "inpaint", stems: [...lanes.selection.stems], region: lanes.region() })));
$("btn-continue").addEventListener("click", () => act(() => submit({ type: "continue", seconds: Number($("continue-seconds").value), stems: [] })));
$("btn-cancel").addEventListener("click", () => act(async () => {
  if (state.job) await request({ type: "job.cancel", job_id: state.job.job_id });
}));

async function onJobEvent(ev) {
  if (ev.type === "job.done" && ev.session_id && ev.session_id === sid() && (!state.job || ev.job_id !== state.job.job_id)) {
    // another client's job on this session: show its takes too
    applySession((await request({ type: "session.get", session_id: sid() })).session);
    return;
  }
  if (!state.job || ev.job_id !== state.job.job_id) return;
  if (ev.type === "job.progress") {
    state.job.state = "running";
    renderJob(ev);
  } else if (JOB_END.has(ev.type)) {
    state.job.state = ev.type.slice(4);
    if (ev.type === "job.failed") showMessage("error", ev.code, ev.message);
    if (ev.type === "job.cancelled") showMessage("info", "cancelled", `job ${ev.job_id} cancelled`);
    renderJob(null);
    if (ev.type === "job.done") applySession((await request({ type: "session.get", session_id: sid() })).session);
  }
}

function renderJob(progress) {
  const job = state.job;
  const box = $("job");
  box.setAttribute("data-state", job ? job.state : "idle");
  box.setAttribute("data-job-id", job ? job.job_id : "");
  const bar = $("job-progress");
  if (progress && progress.total) {
    bar.max = progress.total;
    bar.value = progress.step;
  } else if (!job || job.state === "queued") bar.removeAttribute("value");
  else {
    bar.max = 1;
    bar.value = job.state === "done" ? 1 : 0;
  }
  const stage = progress ? `${progress.stage || ""} ${progress.total ? `${progress.step}/${progress.total}` : ""}` : "";
  $("job-text").textContent = job ? `${job.kind} ${job.job_id}: ${job.state} ${stage}`.trim() : "no job";
  $("btn-cancel").disabled = !job || !(job.state === "queued" || job.state === "running");
  setJobButtons();
}

function setJobButtons() {
  const busy = state.job && (state.job.state === "queued" || state.job.state === "running");
  const ready = state.conn && state.conn.state === "connected" && state.session;
  for (const id of JOB_BUTTONS) $(id).disabled = !ready || busy;
  $("btn-inpaint").disabled = !ready || busy || !lanes.selection;
  $("btn-update-session").disabled = !ready;
}

// ---- selection and audition --------------------------------------------------------------------
function renderSelection() {
  const t = $("selection-text");
  const region = lanes.region();
  if (!region) {
    t.textContent = "no selection: drag across a lane (snaps to beats); shift-drag adds a lane";
    for (const a of ["data-start-qn", "data-end-qn"]) t.removeAttribute(a);
    t.setAttribute("data-stems", "");
  } else {
    t.textContent = `selection ${lanes.describeSelection()}`;
    t.setAttribute("data-start-qn", String(region.start));
    t.setAttribute("data-end-qn", String(region.end));
    t.setAttribute("data-stems", [...lanes.selection.stems].join(","));
  }
  $("btn-clear-selection").disabled = !region;
  player.setLoop($("loop").checked ? lanes.selectionSeconds() : null);
  setJobButtons();
}

$("btn-clear-selection").addEventListener("click", () => lanes.setSelection(null));
$("loop").addEventListener("change", () => renderSelection());
$("btn-play").addEventListener("click", () => { player.play(player.playing ? null : player.position()); tick(); });
$("btn-stop").addEventListener("click", () => { player.stop(); player.offset = 0; tick(); });

function tick() {
  const sec = player.position();
  lanes.setPlayhead(sec);
  $("transport").setAttribute("data-playing", player.playing ? "1" : "0");
  if (state.session) {
    const beat = Math.floor(samplesToQuarterNotes(sec * SAMPLE_RATE, state.session.bpm) / beatQuarterNotes(state.session.time_signature));
    $("position").textContent = `${barBeat(beat, state.session.time_signature)} · ${sec.toFixed(2)} s`;
  }
  if (player.playing) requestAnimationFrame(tick);
}

// ---- downloads ---------------------------------------------------------------------------------
function activeTake(stem) {
  const st = state.session.stems.find((s) => s.name === stem);
  const take = st && st.takes.find((t) => t.take_id === st.active_take_id);
  if (!take) throw new Error(`${stem} has no take yet`);
  return take;
}

function saveBlob(blob, name) {
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 10000);
}

const baseName = (path) => path.split(/[\\/]/).pop();

async function downloadWav(stem) {
  if (stem === MIX) {
    const r = lanes.rows.get(MIX).data;
    const [l, rr] = r.channels;
    const inter = new Float32Array(l.length * 2);
    for (let i = 0; i < l.length; i++) { inter[2 * i] = l[i]; inter[2 * i + 1] = rr[i]; }
    saveBlob(wavBlob([inter.buffer], "float32", 2, SAMPLE_RATE), `${state.session.name || state.session.session_id}_mix.wav`);
    return;
  }
  const take = activeTake(stem);
  const d = await state.conn.download(take.take_id, take.format === "float32" ? "float32" : "pcm24", true);
  saveBlob(wavBlob(d.raw, d.begin.sample_format, 2, SAMPLE_RATE), baseName(take.path));
}

async function downloadManifest(stem) {
  const take = activeTake(stem);
  const reply = await request({ type: "take.manifest", take_id: take.take_id });
  const blob = new Blob([JSON.stringify(reply.manifest, null, 2) + "\n"], { type: "application/json" });
  saveBlob(blob, baseName(take.manifest_path || take.path.replace(/\.wav$/i, ".json")));
}

$("btn-clear-messages").addEventListener("click", () => $("message-list").replaceChildren());

// ---- start -------------------------------------------------------------------------------------
const token = new URLSearchParams(location.search).get("token") || sessionStorage.getItem("stemforge-token");
if (token) {
  sessionStorage.setItem("stemforge-token", token);
  start(token);
} else {
  $("token-form").hidden = false;
  $("conn").textContent = "no token";
  $("token-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const t = $("token-input").value.trim();
    if (!t) return;
    sessionStorage.setItem("stemforge-token", t);
    $("token-form").hidden = true;
    start(t);
  });
}
