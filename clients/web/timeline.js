// What a lane plays and draws: its active take, and where that take does not reach (after a
// `continue`, whose takes start where their sources end), the newest other take of the stem that
// covers the gap, as a DAW shows a track's clips side by side. Pure functions on SessionInfo data.

function subtract(intervals, [a, b]) {
  const out = [];
  for (const [s, e] of intervals) {
    if (b <= s || a >= e) out.push([s, e]);
    else {
      if (s < a) out.push([s, a]);
      if (b < e) out.push([b, e]);
    }
  }
  return out;
}

function intersect(intervals, [a, b]) {
  const out = [];
  for (const [s, e] of intervals) {
    const lo = Math.max(s, a);
    const hi = Math.min(e, b);
    if (lo < hi) out.push([lo, hi]);
  }
  return out;
}

/** [{take, start, end}] (timeline samples, end exclusive) for one StemState; [] when it has no take. */
export function laneSegments(stem) {
  const active = stem.takes.find((t) => t.take_id === stem.active_take_id);
  if (!active) return [];
  const first = [active.start_sample, active.start_sample + active.frames];
  const segments = [{ take: active, start: first[0], end: first[1] }];
  let gaps = subtract([[0, Number.MAX_SAFE_INTEGER]], first);
  const others = stem.takes.filter((t) => t !== active).sort((x, y) => (y.number || 0) - (x.number || 0));
  for (const take of others) {
    if (gaps.length === 0) break;
    const used = intersect(gaps, [take.start_sample, take.start_sample + take.frames]);
    for (const [start, end] of used) {
      segments.push({ take, start, end });
      gaps = subtract(gaps, [start, end]);
    }
  }
  return segments;
}

/** End of the session's timeline: its length, or the end of its last take if that is later. */
export function timelineEnd(session) {
  let total = session.length_samples;
  for (const st of session.stems) for (const t of st.takes) total = Math.max(total, t.start_sample + t.frames);
  return total;
}
