// End-to-end run of the web studio in headless Chromium (playwright-core + Debian's chromium),
// against a real daemon. Driven by tests/clients/test_web_chromium.py, which starts the daemon,
// restarts it when this script asks, and checks the audio through the daemon afterwards.
//
//   node clients/web/test/studio_e2e.mjs --url http://127.0.0.1:PORT/?token=T --screenshot out.png --downloads DIR
//
// Protocol with the driver (one JSON object per stdout line): {"event":"restart"} asks for a daemon
// restart (the driver answers "restarted" on stdin); {"event":"result",...} ends the run. Progress
// lines are {"event":"step","name":...}. Exit code 0 = every check here passed.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
import { chromium } from "playwright-core";

const { values: args } = parseArgs({
  options: {
    url: { type: "string" },
    screenshot: { type: "string" },
    downloads: { type: "string" },
    chromium: { type: "string", default: process.env.CHROMIUM || "/usr/bin/chromium" },
    "no-restart": { type: "boolean", default: false },
  },
});
const WAIT = 90_000;
const emit = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");
const step = (name) => emit({ event: "step", name });
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();

function check(cond, what) {
  if (!cond) throw new Error(`check failed: ${what}`);
}

const profile = mkdtempSync(join(tmpdir(), "stemforge-chromium-"));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: args.chromium,
  headless: true,
  acceptDownloads: true,
  viewport: { width: 1400, height: 860 },
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--autoplay-policy=no-user-gesture-required"],
});
const result = { event: "result" };
const page = context.pages()[0] || (await context.newPage());
try {
  page.setDefaultTimeout(WAIT);
  const consoleErrors = [];
  page.on("console", (m) => { if (m.type() === "error") consoleErrors.push(m.text()); });
  page.on("pageerror", (e) => consoleErrors.push(String(e)));
  const lane = (stem) => page.locator(`.lane[data-stem="${stem}"]`);
  const takeId = (stem) => lane(stem).getAttribute("data-take-id");
  const waitJob = async (state) => page.waitForSelector(`#job[data-state="${state}"]`);
  const waitDrawn = async (stems) => {
    for (const s of stems) await page.waitForSelector(`.lane[data-stem="${s}"][data-take-id]:not([data-take-id=""]):not([data-drawn="0"])`);
    await page.waitForSelector(`.lane[data-stem="mix"]:not([data-drawn="0"])`);
  };

  step("open page");
  await page.goto(args.url);
  await page.waitForSelector('#conn[data-state="connected"]');
  result.model_text = await page.textContent("#model");

  step("new session");
  await page.fill("#s-name", "e2e");
  await page.fill("#s-bpm", "120");
  await page.fill("#s-num", "4");
  await page.selectOption("#s-den", "4");
  await page.fill("#s-length", "1");
  await page.selectOption("#s-length-unit", "bars");
  await page.click("#btn-new-session");
  await page.waitForSelector('.lane[data-stem="melody"]');
  result.session_id = decodeURIComponent(new URL(page.url()).hash.slice(1));
  check(result.session_id.length > 0, "the session id is in the page URL");
  const stems = await page.$$eval(".lane", (ls) => ls.map((l) => l.dataset.stem).filter((s) => s !== "mix"));
  check(JSON.stringify(stems) === JSON.stringify(["bass", "drums", "instrument", "melody"]), `lanes ${stems}`);

  step("generate");
  await page.fill("#prompt", "funky bass and tight drums");
  await page.click("#advanced summary");
  await page.fill("#opt-steps", "2");
  await page.fill("#opt-seed", "11");
  await page.fill("#opt-chord-cfg", "4.5");
  await page.fill("#opt-chroma", "0.5");
  await page.click("#btn-generate");
  await waitJob("done");
  await waitDrawn(stems);
  const first = {};
  for (const s of stems) first[s] = await takeId(s);
  result.first = first;

  step("waveforms");
  result.canvas_pixels = await page.$$eval(".lane canvas.wave", (cs) => cs.map((c) => {
    const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
    let n = 0;
    for (let i = 0; i < d.length; i += 4) {
      const bg = d[i] < 70 && d[i + 1] < 80 && d[i + 2] < 90; // background and grid are dark grey
      if (!bg) n++;
    }
    return n / c.width; // lit pixels per column: a flat line is ~1, a waveform more
  }));
  // music is peaky (drum hits): zoomed to its peak, most columns of a real take light a few pixels, where the
  // untrained model's noise fills the lane; either way a drawn waveform lights more than a flat line does
  check(result.canvas_pixels.every((n) => n > 2), `every lane shows a waveform: ${result.canvas_pixels}`);

  step("daemon error shown as is");
  await page.fill("#s-bpm", "0");
  await page.click("#btn-update-session");
  const err = page.locator('#message-list li[data-code="invalid_argument"]').first();
  await err.waitFor();
  result.error_text = await err.textContent();
  await page.fill("#s-bpm", "120");

  step("keep drums, regenerate the others");
  await lane("drums").locator(".btn-keep").click();
  await page.waitForSelector('.lane[data-stem="drums"] .btn-keep[aria-pressed="true"]');
  await page.click("#btn-regenerate");
  await waitJob("done");
  await page.waitForFunction((old) => document.querySelector('.lane[data-stem="bass"]').dataset.takeId !== old, first.bass);
  await waitDrawn(stems);
  const second = {};
  for (const s of stems) second[s] = await takeId(s);
  result.second = second;
  check(second.drums === first.drums, "the kept drums take stays");
  for (const s of ["bass", "instrument", "melody"]) check(second[s] !== first[s], `${s} regenerated`);

  step("switch takes");
  await lane("bass").locator(".take-select").selectOption(first.bass);
  await page.waitForSelector(`.lane[data-stem="bass"][data-take-id="${first.bass}"]:not([data-drawn="0"])`);

  step("select a region (snapped to beats) and inpaint");
  const body = await lane("bass").locator(".lane-body").boundingBox();
  const xAt = (beats) => body.x + (body.width * beats) / 4; // 1 bar of 4/4 = 4 beats on the lane
  await page.mouse.move(xAt(1.3), body.y + body.height / 2);
  await page.mouse.down();
  await page.mouse.move(xAt(2.2), body.y + body.height / 2, { steps: 4 });
  await page.mouse.move(xAt(2.8), body.y + body.height / 2, { steps: 4 });
  await page.mouse.up();
  const sel = page.locator("#selection-text");
  result.selection = { start_qn: Number(await sel.getAttribute("data-start-qn")),
    end_qn: Number(await sel.getAttribute("data-end-qn")), stems: await sel.getAttribute("data-stems") };
  check(result.selection.start_qn === 1 && result.selection.end_qn === 3 && result.selection.stems === "bass",
    `selection snapped to beats 1..3 of bass: ${JSON.stringify(result.selection)}`);
  await page.click("#btn-inpaint");
  await waitJob("done");
  await page.waitForFunction((old) => document.querySelector('.lane[data-stem="bass"]').dataset.takeId !== old, first.bass);
  await waitDrawn(["bass"]);
  result.inpaint = { stem: "bass", source_take: first.bass, new_take: await takeId("bass") };
  const options = await lane("bass").locator(".take-select option").allTextContents();
  check(options.length === 3 && options.some((o) => o.includes("inpainted")), `bass takes: ${options}`);

  step("audition: solo, loop the selection, play");
  await lane("bass").locator(".btn-solo").click();
  await page.check("#loop");
  await page.click("#btn-play");
  await page.waitForSelector('#transport[data-playing="1"]');
  result.gains = await page.evaluate(() => window.stemforgeStudio.player.gains());
  check(result.gains.bass === 1 && result.gains.drums === 0 && result.gains.melody === 0, `solo gains ${JSON.stringify(result.gains)}`);
  result.loop = await page.evaluate(() => window.stemforgeStudio.player.loop);
  check(result.loop && Math.abs(result.loop[0] - 0.5) < 1e-9 && Math.abs(result.loop[1] - 1.5) < 1e-9, `loop ${result.loop}`);
  await page.waitForTimeout(300);
  result.position = await page.evaluate(() => window.stemforgeStudio.player.position());
  check(result.position >= 0.5 && result.position <= 1.5, `playing inside the loop: ${result.position}`);

  step("screenshot");
  await page.screenshot({ path: args.screenshot, fullPage: true });
  await page.click("#btn-stop");

  step("downloads");
  const [wav] = await Promise.all([page.waitForEvent("download"), lane("bass").locator(".btn-download").click()]);
  result.wav_name = wav.suggestedFilename();
  result.wav_path = join(args.downloads, result.wav_name);
  await wav.saveAs(result.wav_path);
  // a daemon that does not serve take.manifest answers with an error, which the page shows as is
  const manifestOutcome = Promise.race([
    page.waitForEvent("download").then((download) => ({ download })),
    page.locator("#message-list li", { hasText: "take.manifest" }).first().waitFor()
      .then(() => page.locator("#message-list li", { hasText: "take.manifest" }).first().textContent())
      .then((error) => ({ error })),
  ]);
  await lane("bass").locator(".btn-manifest").click();
  const man = await manifestOutcome;
  if (man.download) {
    result.manifest_name = man.download.suggestedFilename();
    result.manifest_path = join(args.downloads, result.manifest_name);
    await man.download.saveAs(result.manifest_path);
  } else result.manifest_error = man.error;

  step("continue");
  const beforeContinue = await takeId("bass");
  await page.fill("#continue-seconds", "1");
  await page.click("#btn-continue");
  await page.waitForFunction((old) => document.querySelector('.lane[data-stem="bass"]').dataset.takeId !== old, beforeContinue);
  await waitJob("done");
  await waitDrawn(stems);
  const continued = await lane("bass").locator(".take-select option:checked").textContent();
  check(continued.includes("continued"), `the continued take is active: ${continued}`);
  result.continued_take = await takeId("bass");
  // the lane plays the continuation after the earlier take: sound on both sides of the 2 s mark
  result.continue_cover = await lane("bass").locator("canvas.wave").evaluate((c) => {
    const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
    const lit = (x0, x1) => {
      let n = 0;
      for (let y = 20; y < c.height; y++) for (let x = x0; x < x1; x++) {
        const i = (y * c.width + x) * 4;
        if (!(d[i] < 70 && d[i + 1] < 80 && d[i + 2] < 90)) n++;
      }
      return n / (x1 - x0);
    };
    const w = c.width;
    return [lit(Math.floor(w * 0.05), Math.floor(w * 0.6)), lit(Math.floor(w * 0.7), Math.floor(w * 0.95))];
  });
  check(result.continue_cover.every((n) => n > 2), `waveform before and after the continuation: ${result.continue_cover}`);

  step("cancel a long job");
  await page.fill("#opt-steps", "1000");
  await page.click("#btn-regenerate");
  await page.waitForSelector("#btn-cancel:not([disabled])");
  await page.click("#btn-cancel");
  await waitJob("cancelled");
  await page.fill("#opt-steps", "2");

  if (!args["no-restart"]) {
    step("daemon restart");
    emit({ event: "restart" });
    await page.waitForSelector('#conn:not([data-state="connected"])');
    const answer = await lines.next();
    check(!answer.done && answer.value.trim() === "restarted", `driver answered ${JSON.stringify(answer.value)}`);
    await page.waitForSelector('#conn[data-state="connected"]');
    await page.waitForSelector('#message-list li[data-code="reconnected"]');
    check((await takeId("bass")) === result.continued_take, "the session is back after the restart");
    await lane("melody").locator(".btn-keep").click();
    await page.waitForSelector('.lane[data-stem="melody"] .btn-keep[aria-pressed="true"]');
    result.reconnected = true;
  }
  result.console_errors = consoleErrors;
  emit(result);
} catch (err) {
  result.page_messages = await page.locator("#message-list").textContent().catch(() => null);
  emit({ event: "error", message: String(err && err.stack ? err.stack : err), partial: result });
  process.exitCode = 1;
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
  process.stdin.destroy();
}
