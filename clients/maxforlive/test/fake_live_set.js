// TEST-ONLY model of a Live set as the Live Object Model shows it to a Max `js` object (LiveAPI):
// just the paths, properties and calls live_api.js uses. Shared by patch.test.mjs and glue_harness.js.
"use strict";

function makeLiveSet(init = {}) {
  const set = { tempo: 96, signature_numerator: 7, signature_denominator: 8, loop_start: 4, loop_length: 3.5,
    tracks: [{ name: "Bass", has_audio_input: 1, clips: [] }, { name: "Keys", has_audio_input: 1, clips: [] }],
    selected: 1, ...init };
  class LiveAPI {
    constructor(path) {
      this.path = path;
      const m = /^live_set tracks (\d+)$/.exec(path);
      if (path === "live_set view selected_track") {
        this.track = set.tracks[set.selected];
        this.path = `live_set tracks ${set.selected}`;
      } else if (m) this.track = set.tracks[Number(m[1])];
      this.unquotedpath = this.path;
      this.id = this.track || path === "live_set" ? 1 : 0;
    }
    get(prop) { return [this.track ? this.track[prop] : set[prop]]; }
    set(prop, value) { this.track[prop] = value; }
    getcount(prop) {
      if (prop !== "tracks") throw new Error(`getcount ${prop}`);
      return set.tracks.length;
    }
    call(fn, ...args) {
      if (fn === "create_audio_track") set.tracks.push({ name: "Audio", has_audio_input: 1, clips: [] });
      else if (fn === "create_audio_clip") this.track.clips.push(args);
      else throw new Error(`unknown call ${fn}`);
    }
  }
  return { set, LiveAPI };
}

module.exports = { makeLiveSet };
