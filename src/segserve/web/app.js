// The segserve playground: pick an image, type a prompt, call POST /v1/images/segmentation, and
// look at / download what comes back. Plain ES modules, no dependencies, nothing from other hosts.
//
// Each part of the page is a module named for it, and loading a module wires up its listeners, so
// this entry only imports them.

import "./api-key.js";
import "./image-input.js";
import "./prompt.js";
import "./request.js";
import "./result-view.js";
import "./segment-list.js";
import "./picture.js";
import "./downloads.js";
import "./viewport.js";
import "./server-status.js";
import "./samples.js";
import "./code-panel.js";
import { counters } from "./layers.js";
import "./visual-prompts.js";
import { state } from "./state.js";

// For tests and the curious: the current state, read-only use please.
window.segserve = { state, counters };
