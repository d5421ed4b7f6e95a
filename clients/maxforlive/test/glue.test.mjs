// The whole device chain without Max or Live: stemforge_node.js + live_api.js wired as in the patch
// (glue_harness.js, with the test-only max-api stand-in and a model Live set), against the real
// daemon of STEMFORGE_DATA_DIR: the prompt and steps set from the patch, Generate pressed, and the
// returned stems placed by live_api.js's create_audio_clip at the loop start.

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { test } from "node:test";

const HERE = dirname(fileURLToPath(import.meta.url));

test("Generate in the patch places the stems in the Live set at the loop start", async () => {
  const out = await new Promise((resolve, reject) => {
    execFile(process.execPath, [join(HERE, "glue_harness.js")], {
      env: { ...process.env, NODE_PATH: join(HERE, "fake_modules") }, timeout: 180000,
    }, (err, stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout)));
  });
  const r = JSON.parse(out.trim().split("\n").pop());
  assert.equal(r.outcome, "done", JSON.stringify(r.seen));
  assert.deepEqual(r.seen.error, []);
  const names = r.tracks.map((t) => t.name);
  assert.deepEqual(names.slice(0, 1), ["Bass"]); // the existing track is reused
  assert.deepEqual(names.slice(1).sort(), ["drums", "instrument", "melody"]); // created, named after the stems
  for (const t of r.tracks) {
    assert.equal(t.clips.length, 1, t.name);
    const [file, position] = t.clips[0];
    assert.equal(position, 4); // the loop start, in beats
    assert.ok(existsSync(file), file);
    assert.match(file, new RegExp(`_${t.name.toLowerCase()}_120bpm_take\\d+\\.wav$`));
  }
  assert.equal(r.seen.placed.length, 4);
  assert.ok(r.seen.progress.length > 0);
});
