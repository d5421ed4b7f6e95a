// TEST-ONLY stand-in for Node for Max's `max-api` module (which exists only inside Max), so that
// glue_harness.js can run stemforge_node.js unchanged under plain Node. The harness plays the patch:
// it receives what the script sends to its outlet and sends messages into its inlet (handlers).
"use strict";

const handlers = new Map();
let sink = () => {};

module.exports = {
  addHandler(name, fn) { handlers.set(name, fn); },
  addHandlers(map) { for (const [name, fn] of Object.entries(map)) handlers.set(name, fn); },
  outlet(...args) { sink(...args); return Promise.resolve(); },
  post(...args) { sink("__post", ...args); return Promise.resolve(); },
  // harness hooks
  __connect(fn) { sink = fn; },
  __send(name, ...args) {
    const fn = handlers.get(name);
    if (!fn) throw new Error(`stemforge_node.js has no handler for ${name}`);
    return fn(...args);
  },
};
