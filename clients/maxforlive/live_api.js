// Stemforge Max for Live device: the `js` part, the only code that touches the Live Object Model.
// It answers the LiveApi calls of the Node part (stemforge_node.js / device.js):
//
//   in:  call <id> <method> [args...]           (from node.script, through [route lom] [prepend call] [deferlow])
//   out: lom_reply <id> <json>  |  lom_error <id> <message>      (to node.script)
//
// Methods: getTempo, getTimeSignature, getLoop (beats), getSelectedTrack, findOrCreateAudioTrack
// <name>, createAudioClip <trackIndex> <path> <positionBeats> (Live 12's Track.create_audio_clip,
// arrangement view). Written in ES5 for Max 8's JavaScript engine; Max runs it in its low-priority
// queue ([deferlow] in the patch), never in Live's audio thread.

autowatch = 1;
inlets = 1;
outlets = 1;

function song() {
  return new LiveAPI("live_set");
}

function first(api, prop) {
  var v = api.get(prop);
  return v instanceof Array ? v[0] : v;
}

function text(api, prop) {
  var v = api.get(prop);
  return v instanceof Array ? v.join(" ") : String(v);
}

function trackIndex(api) {
  var m = /tracks (\d+)/.exec(String(api.unquotedpath || api.path));
  return m ? parseInt(m[1], 10) : -1;
}

var methods = {
  getTempo: function () {
    return Number(first(song(), "tempo"));
  },
  getTimeSignature: function () {
    var s = song();
    return [Number(first(s, "signature_numerator")), Number(first(s, "signature_denominator"))];
  },
  getLoop: function () {
    var s = song();
    return { start: Number(first(s, "loop_start")), length: Number(first(s, "loop_length")) };
  },
  getSelectedTrack: function () {
    var t = new LiveAPI("live_set view selected_track");
    if (!t.id || Number(t.id) === 0) return { index: -1, name: "" };
    return { index: trackIndex(t), name: text(t, "name") };
  },
  findOrCreateAudioTrack: function (name) {
    var s = song();
    var n = s.getcount("tracks");
    for (var i = 0; i < n; i++) {
      var t = new LiveAPI("live_set tracks " + i);
      if (text(t, "name").toLowerCase() === String(name).toLowerCase() && Number(first(t, "has_audio_input")) === 1) {
        return { index: i, name: text(t, "name") };
      }
    }
    s.call("create_audio_track", -1); // -1 = at the end
    var index = s.getcount("tracks") - 1;
    var created = new LiveAPI("live_set tracks " + index);
    created.set("name", String(name));
    return { index: index, name: String(name) };
  },
  createAudioClip: function (index, path, position) {
    var t = new LiveAPI("live_set tracks " + index);
    t.call("create_audio_clip", String(path), Number(position));
    return { track: index, path: String(path), position: Number(position) };
  },
};

function call(id, method) {
  var args = Array.prototype.slice.call(arguments, 2);
  var fn = methods[method];
  if (!fn) {
    outlet(0, "lom_error", id, "unknown LiveApi method " + method);
    return;
  }
  try {
    outlet(0, "lom_reply", id, JSON.stringify(fn.apply(null, args)));
  } catch (err) {
    outlet(0, "lom_error", id, String(err && err.message ? err.message : err));
  }
}

function bang() {
  // live.thisdevice: the Live API is ready
  outlet(0, "lom_ready");
}
