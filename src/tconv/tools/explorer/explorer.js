// tconv explorer: reads the controls, asks tconv's API (the same objects as `tconv explain --json`), and draws.
// No arithmetic of the layer happens here: sizes, crops, stamps, running sums, products, tap counts and the
// matrix all arrive from the server; this script only lays them out, colours them and steps through them.
"use strict";

const LAYER_FIELDS = [
  "framework", "input", "kernel", "stride", "dilation", "padding", "output-padding", "output-size",
  "in-channels", "out-channels", "groups",
];
const DEFAULTS = { framework: "keras", input: "7x7", kernel: "5", stride: "2", padding: "same" };
const PRESETS = {
  dcgan: { framework: "keras", input: "7x7", kernel: "5", stride: "2", padding: "same" },
  seed004: {
    framework: "tensorflow", input: "2x2", kernel: "3", stride: "2", padding: "valid",
    x: "[[-67, -77], [-117, -127]]", w: "[[-1, 2, -3], [4, -5, 6], [-7, 8, -9]]",
  },
  torch1d: { framework: "torch", input: "5", kernel: "3", stride: "2", padding: "1", "output-padding": "1" },
  dilated: { framework: "torch", input: "4x4", kernel: "3", stride: "2", dilation: "2", padding: "2", "output-padding": "1" },
  three: { framework: "torch", input: "3x3x3", kernel: "3", stride: "2", padding: "1", "output-padding": "1" },
};
const STEP_MS = { scatter: 700, gather: 450 };

const $ = (id) => document.getElementById(id);
const state = { meta: null, explain: null, steps: null, taps: null, matrix: null, generation: 0 };
const players = {
  scatter: { step: 0, count: 0, timer: null },
  gather: { step: 0, count: 0, timer: null },
};

// ------------------------------------------------------------------------------------------- formatting

function fmt(v) {
  if (typeof v !== "number") return String(v);
  if (Number.isInteger(v)) return String(v);
  const a = Math.abs(v);
  if (a !== 0 && (a < 0.01 || a >= 1e5)) return v.toPrecision(2);
  return String(Number(v.toFixed(2)));
}

function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

function sizeText(list) { return list.join("x"); }

function depth(a) { let d = 0; while (Array.isArray(a)) { d += 1; a = a[0]; } return d; }

/** Every leaf of a nested array with its index. */
function leaves(a, prefix = [], out = []) {
  if (Array.isArray(a)) a.forEach((b, i) => leaves(b, prefix.concat(i), out));
  else out.push([prefix, a]);
  return out;
}

function maxAbs(a) {
  let m = 0;
  for (const [, v] of leaves(a)) if (typeof v === "number" && Math.abs(v) > m) m = Math.abs(v);
  return m;
}

/** A diverging colour (blue negative, red positive) for v in [-limit, limit]. */
function divergingColor(v, limit) {
  if (!limit || !v) return "";
  const t = Math.max(-1, Math.min(1, v / limit));
  const hue = t < 0 ? 215 : 8;
  const light = Math.round(97 - 47 * Math.abs(t));
  return `hsl(${hue} 75% ${light}%)`;
}

function sequentialColor(v, lo, hi) {
  if (hi === lo) return "hsl(165 45% 70%)";
  const t = (v - lo) / (hi - lo);
  return `hsl(${Math.round(200 - 150 * t)} 60% ${Math.round(88 - 48 * t)}%)`;
}

// ---------------------------------------------------------------------------------------------- grids

/**
 * A nested array (1-D, 2-D or 3-D) as grids: a 1-D array is one row, a 2-D one a grid, a 3-D one a row of
 * depth slices. `opts.cls(index, value)` adds classes, `opts.text`, `opts.color` and `opts.title` draw a cell.
 */
function gridHtml(values, opts = {}) {
  const d = depth(values);
  let slices;
  if (d === 1) slices = [[values]];
  else if (d === 2) slices = [values];
  else slices = values;
  const rows = slices[0].length;
  const cols = rows ? slices[0][0].length : 0;
  const biggest = Math.max(rows, cols);
  const size = opts.size || (biggest > 64 ? "micro" : biggest > 28 ? "tiny" : biggest > 14 ? "dense" : "");
  const parts = ['<div class="slices">'];
  slices.forEach((slice, s) => {
    parts.push("<div>");
    if (d === 3) parts.push(`<div class="slice-label">depth ${s}</div>`);
    parts.push(`<div class="grid ${size}" style="grid-template-columns: repeat(${cols}, minmax(var(--cell), auto))">`);
    slice.forEach((row, r) => {
      row.forEach((value, c) => {
        const index = d === 1 ? [c] : d === 2 ? [r, c] : [s, r, c];
        const cls = opts.cls ? opts.cls(index, value) : "";
        const color = opts.color ? opts.color(value, index) : "";
        const text = opts.text ? opts.text(value, index) : fmt(value);
        const title = opts.title ? opts.title(value, index) : `(${index.join(", ")}) = ${fmt(value)}`;
        const dark = color && /\s([0-5]\d)%\)$/.test(color) ? " dark" : "";
        parts.push(
          `<span class="cell ${cls}${dark}" data-index="${index.join(",")}" title="${escapeHtml(title)}"` +
          (color ? ` style="background:${color}"` : "") + `>${escapeHtml(text)}</span>`,
        );
      });
    });
    parts.push("</div></div>");
  });
  parts.push("</div>");
  return parts.join("");
}

function key(index) { return index.join(","); }

function inBox(index, box) { return index.every((i, a) => i >= box[a][0] && i < box[a][1]); }

/** Classes that outline a box (per axis [start, stop)) on a 1-D, 2-D or 3-D grid's 2-D slices. */
function boxEdges(index, box) {
  if (!inBox(index, box)) return "";
  const n = index.length;
  const r = n === 1 ? null : index[n - 2];
  const c = index[n - 1];
  const rb = n === 1 ? null : box[n - 2];
  const cb = box[n - 1];
  let cls = " in-crop";
  if (rb === null || r === rb[0]) cls += " edge-top";
  if (rb === null || r === rb[1] - 1) cls += " edge-bottom";
  if (c === cb[0]) cls += " edge-left";
  if (c === cb[1] - 1) cls += " edge-right";
  return cls;
}

// ------------------------------------------------------------------------------------------- the state

function readControls() {
  const params = new URLSearchParams();
  for (const name of LAYER_FIELDS) {
    const value = $(name).value.trim();
    if (value) params.set(name, value);
  }
  for (const which of ["x", "w"]) {
    const kind = $(`${which}-kind`).value;
    if (kind === "typed") params.set(which, $(`${which}-values`).value.trim());
    else if (kind !== "count") params.set(which, kind);
  }
  const seed = $("seed").value.trim();
  if (seed && [$("x-kind").value, $("w-kind").value].includes("random")) params.set("seed", seed);
  return params;
}

function writeControls(params) {
  for (const name of LAYER_FIELDS) {
    const value = params.get(name);
    $(name).value = value !== null ? value : DEFAULTS[name] || "";
  }
  if (!$("framework").value) $("framework").value = DEFAULTS.framework;
  for (const which of ["x", "w"]) {
    const value = (params.get(which) || "count").trim();
    const known = ["count", "ones", "random"].includes(value.toLowerCase());
    $(`${which}-kind`).value = known ? value.toLowerCase() : "typed";
    if (!known) $(`${which}-values`).value = value;
    $(`${which}-values`).hidden = known;
  }
  $("seed").value = params.get("seed") || "";
  syncDims();
  showPaddingHelp();
}

function layerQuery(params) {
  const layer = new URLSearchParams();
  for (const name of LAYER_FIELDS) if (params.has(name)) layer.set(name, params.get(name));
  return layer;
}

function syncDims() {
  const axes = $("input").value.split(/[x,]/i).filter((s) => s.trim() !== "").length;
  if (axes >= 1 && axes <= 3) $("dims").value = String(axes);
}

function showPaddingHelp() {
  const meaning = state.meta && state.meta.padding_meanings[$("framework").value];
  $("padding-help").textContent = meaning ? `In ${$("framework").selectedOptions[0].text}'s terms: ${meaning}.` : "";
}

// ------------------------------------------------------------------------------------------------ fetch

async function getJson(endpoint, params) {
  const response = await fetch(`/api/${endpoint}?${params.toString()}`, { headers: { Accept: "application/json" } });
  let body;
  try {
    body = await response.json();
  } catch (err) {
    body = { error: `the server answered ${response.status} without JSON` };
  }
  return { ok: response.ok, status: response.status, body };
}

// A change marks the page busy at once, not when its debounced update starts, so nothing (a person, a test)
// reads the old results as the new ones while the timer waits on a slow machine.
let debounce = null;
function scheduleUpdate(delay = 200) {
  clearTimeout(debounce);
  document.body.dataset.busy = "true";
  debounce = setTimeout(() => { debounce = null; update().catch(showFailure); }, delay);
}

function showFailure(err) {
  showError(`The explorer could not reach tconv: ${err && err.message ? err.message : err}`);
}

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = false;
  $("results").classList.add("stale");
}

function clearError() {
  $("error").hidden = true;
  $("error").textContent = "";
  $("results").classList.remove("stale");
}

// Every update marks the page busy while it runs, and until no change is waiting (people see the results dim;
// the tests wait on it).
let pending = 0;
async function update() {
  pending += 1;
  document.body.dataset.busy = "true";
  try {
    await refresh();
  } finally {
    pending -= 1;
    if (!pending && debounce === null) {
      state.freshLayer = false;
      document.body.dataset.busy = "false";
    }
  }
}

async function refresh() {
  const params = readControls();
  const url = `${location.pathname}?${params.toString()}`;
  if (url !== `${location.pathname}${location.search}`) history.replaceState(null, "", url);
  const generation = ++state.generation;
  const layer = layerQuery(params);
  const explained = await getJson("explain", layer);
  if (generation !== state.generation) return;
  markInvalid(explained.ok ? "" : explained.body.error || "");
  if (!explained.ok) {
    showError(explained.body.error || `error ${explained.status}`);
    return;
  }
  clearError();
  state.explain = explained.body;
  renderExplain();
  const views = explained.body.transposed;
  const [steps, taps, matrix] = views
    ? await Promise.all([getJson("steps", params), getJson("taps", layer), getJson("matrix", params)])
    : [null, null, null];
  if (generation !== state.generation) return;
  state.steps = steps;
  state.taps = taps;
  state.matrix = matrix;
  renderSteps();
  renderTaps();
  renderMatrix();
}

function markInvalid(message) {
  for (const name of LAYER_FIELDS.concat(["x-values", "w-values"])) $(name).removeAttribute("aria-invalid");
  if (!message) return;
  const lower = message.toLowerCase();
  const guesses = [
    ["input", /^input|input_size|input's|the input/], ["kernel", /^kernel|kernel_size/], ["stride", /stride/],
    ["dilation", /dilation/], ["padding", /padding must|takes padding|padding is|crops the whole/],
    ["output-padding", /output_padding|output-padding/], ["output-size", /output_size|output-size|output_shape/],
    ["groups", /groups/], ["x-values", /^x /], ["w-values", /^w /],
  ];
  for (const [name, pattern] of guesses) if (pattern.test(lower)) { $(name).setAttribute("aria-invalid", "true"); break; }
}

// ------------------------------------------------------------------------------------------- rendering

function renderExplain() {
  const e = state.explain;
  const kind = e.transposed ? "transposed convolution" : "convolution";
  $("summary").innerHTML =
    `<span id="size-in">${sizeText(e.input_size)}</span> &rarr; <span id="output-size-value">${sizeText(e.output_size)}</span>` +
    ` <small>${escapeHtml(kind)}, ${escapeHtml(e.framework)}'s terms</small>`;
  $("formula").textContent = e.formula.join("\n");
  const lines = [];
  e.padding.forEach((pair, axis) => {
    const op = e.output_padding[axis];
    lines.push(
      `axis ${axis}: crop ${pair[0]} at the start and ${pair[1]} at the end` +
      (e.transposed ? `, output padding ${op}` : " (padding of the input)"),
    );
  });
  lines.push(`matrix C: ${e.matrix.rows} x ${e.matrix.columns}, ${e.matrix.nonzeros} nonzeros (density ${fmt(e.matrix.density)})`);
  $("crop-lines").innerHTML = lines.map((l) => `<li>${escapeHtml(l)}</li>`).join("");
  $("warnings").innerHTML = e.warnings.length
    ? e.warnings.map((w) => `<li>${escapeHtml(w)}</li>`).join("")
    : '<li class="none">none</li>';
  $("equivalent").innerHTML = e.equivalent_conv.map((l) => `<li>${escapeHtml(l)}</li>`).join("");
  const code = [];
  for (const [name, layer] of Object.entries(e.frameworks)) {
    const id = `code-${name}`;
    code.push(
      `<article class="framework" aria-labelledby="${id}-title"><header><h3 id="${id}-title">${escapeHtml(name)}</h3>` +
      `<span class="badge ${layer.exact ? "exact" : "extra"}">${layer.exact ? "exact" : "needs an extra step"}</span>` +
      `<button type="button" class="copy" data-copy="${id}" aria-label="Copy the ${escapeHtml(name)} code">Copy</button></header>` +
      `<pre id="${id}"><code>${escapeHtml(layer.code)}</code></pre>` +
      (layer.notes.length ? `<ul>${layer.notes.map((n) => `<li>${escapeHtml(n)}</li>`).join("")}</ul>` : "") +
      "</article>",
    );
  }
  $("code").innerHTML = code.join("");
  if (!e.transposed) {
    for (const id of ["scatter", "gather", "output", "taps", "matrix"]) $(`${id}-section`).hidden = true;
  } else {
    for (const id of ["scatter", "gather", "output", "taps", "matrix"]) $(`${id}-section`).hidden = false;
  }
}

function sectionMessage(ids, message) {
  for (const id of ids) $(id).innerHTML = `<p class="section-message">${escapeHtml(message)}</p>`;
}

// A section's answer from the server: its body, or null when there is none yet or it is an error (the
// error is then shown in the elements messageIds, and the elements captionIds are emptied).
function answerBody(answer, messageIds, captionIds) {
  if (!answer) return null;
  if (answer.ok) return answer.body;
  sectionMessage(messageIds, answer.body.error || `error ${answer.status}`);
  for (const id of captionIds) $(id).textContent = "";
  return null;
}

function renderSteps() {
  if (!state.steps) return;
  const s = answerBody(
    state.steps,
    ["scatter-canvas", "gather-spread", "output-grid"],
    ["scatter-caption", "gather-caption", "output-caption", "scatter-note"],
  );
  if (!s) {
    for (const id of ["scatter-input", "scatter-kernel", "gather-kernel", "gather-output"]) $(id).innerHTML = "";
    players.scatter.count = players.gather.count = 0;
    stop("scatter");
    stop("gather");
    setRange("scatter");
    setRange("gather");
    return;
  }
  const limit = Math.max(maxAbs(s.output), maxAbs(s.canvas), 1e-12);
  $("output-caption").textContent =
    `${sizeText(s.output_size)}, ${s.shown}; hover a cell for its index.`;
  $("output-grid").innerHTML = gridHtml(s.output, { color: (v) => divergingColor(v, limit) });
  $("canvas-title").textContent =
    `full output ${sizeText(s.full_size)} (the box is the layer's ${sizeText(s.output_size)} output)`;
  $("spread-title").textContent =
    `zeros inserted (${s.zeros_between.join(", ")} between inputs), padded ` +
    `(${s.spread_padding.map((p) => `${p[0]}, ${p[1]}`).join("; ")}; negative crops)`;
  const outpad = s.output_padding.some((v) => v > 0);
  $("scatter-note").textContent = outpad
    ? `Output padding ${s.output_padding.join(", ")} keeps elements past the end of the crop (green where they lie beyond the full output: zeros).`
    : "";
  players.scatter.count = s.scatter.length + 1;
  players.gather.count = s.gather.length;
  players.scatter.step = Math.min(players.scatter.step, players.scatter.count - 1);
  players.gather.step = Math.min(players.gather.step, players.gather.count - 1);
  if (state.freshLayer) {
    players.scatter.step = players.scatter.count - 1;
    players.gather.step = 0;
  }
  drawScatter();
  drawGather();
}

function setRange(view) {
  const player = players[view];
  const range = document.querySelector(`.player[data-view=${view}] input[type=range]`);
  range.max = String(Math.max(player.count - 1, 0));
  range.value = String(player.step);
  range.setAttribute("aria-valuetext", `step ${player.step + 1} of ${Math.max(player.count, 1)}`);
}

function drawScatter() {
  const s = state.steps && state.steps.ok ? state.steps.body : null;
  setRange("scatter");
  if (!s) return;
  const t = players.scatter.step; // steps 0..t-1 are applied
  const shown = new Map();
  for (let i = 0; i < t; i += 1) {
    const step = s.scatter[i];
    step.cells.forEach((cell, j) => shown.set(key(cell), step.sums[j]));
  }
  const current = t > 0 ? s.scatter[t - 1] : null;
  const currentCells = new Set(current ? current.cells.map(key) : []);
  const limit = Math.max(maxAbs(s.canvas), 1e-12);
  const inputLimit = Math.max(maxAbs(s.x), 1e-12);
  const kernelLimit = Math.max(maxAbs(s.w), 1e-12);
  $("scatter-input").innerHTML = gridHtml(s.x, {
    color: (v) => divergingColor(v, inputLimit),
    cls: (index) => (current && key(index) === key(current.index) ? "current" : ""),
  });
  $("scatter-kernel").innerHTML = gridHtml(s.w, { color: (v) => divergingColor(v, kernelLimit) });
  const full = s.full_size;
  $("scatter-canvas").innerHTML = gridHtml(s.canvas, {
    text: (v, index) => (shown.has(key(index)) ? fmt(shown.get(key(index))) : ""),
    color: (v, index) => (shown.has(key(index)) ? divergingColor(shown.get(key(index)), limit) : ""),
    title: (v, index) => `full output (${index.join(", ")})` + (shown.has(key(index)) ? ` = ${fmt(shown.get(key(index)))}` : ""),
    cls: (index) => {
      let cls = inBox(index, s.crop) ? boxEdges(index, s.crop) : " cropped";
      if (index.some((i, a) => i >= full[a])) cls += " outpad";
      if (currentCells.has(key(index))) cls += " current";
      return cls;
    },
  });
  let caption;
  if (!current) {
    caption = `Step 0 of ${s.scatter.length}: the full output starts empty. Each of the ${s.scatter.length} input elements will stamp the kernel, scaled by its value, stride apart.`;
  } else {
    caption =
      `Step ${t} of ${s.scatter.length}: input (${current.index.join(", ")}) = ${fmt(current.value)} stamps ` +
      `${fmt(current.value)} x kernel at (${current.origin.join(", ")}); overlapping stamps add up.`;
    if (t === s.scatter.length) {
      caption += ` All stamps are in: crop ${s.padding.map((p) => `(${p[0]}, ${p[1]})`).join(", ")} from the full ${sizeText(full)} leaves the ${sizeText(s.output_size)} output (the box).`;
    }
  }
  $("scatter-caption").textContent = caption;
}

function drawGather() {
  const s = state.steps && state.steps.ok ? state.steps.body : null;
  setRange("gather");
  if (!s) return;
  const t = players.gather.step;
  const step = s.gather[t];
  const windowCells = new Set(step.cells.map(key));
  const order = new Map(s.gather.map((g, i) => [key(g.index), i]));
  const kinds = s.spread_kind;
  const kindAt = (index) => index.reduce((a, i) => a[i], kinds);
  const inputLimit = Math.max(maxAbs(s.x), 1e-12);
  const kernelLimit = Math.max(maxAbs(s.w), 1e-12);
  const outLimit = Math.max(maxAbs(s.output), 1e-12);
  $("gather-spread").innerHTML = gridHtml(s.spread, {
    cls: (index) => {
      const kind = ["pad", "zero", "input"][kindAt(index)];
      return kind + (windowCells.has(key(index)) ? " current" : "");
    },
    color: (v, index) => (kindAt(index) === 2 ? divergingColor(v, inputLimit) : ""),
    text: (v, index) => (kindAt(index) === 0 ? "" : fmt(v)),
    title: (v, index) => `${["padding", "inserted zero", "input"][kindAt(index)]} (${index.join(", ")})` +
      (kindAt(index) === 2 ? ` = ${fmt(v)}` : ""),
  });
  $("gather-kernel").innerHTML = gridHtml(s.flipped, { color: (v) => divergingColor(v, kernelLimit) });
  $("gather-output").innerHTML = gridHtml(s.output, {
    text: (v, index) => (order.get(key(index)) <= t ? fmt(v) : ""),
    color: (v, index) => (order.get(key(index)) <= t ? divergingColor(v, outLimit) : ""),
    cls: (index) => (key(index) === key(step.index) ? "current" : ""),
  });
  const kernelValues = leaves(s.flipped).map(([, v]) => v);
  const terms = [];
  step.products.forEach((product, j) => {
    if (product === 0) return;
    const value = step.cells[j].reduce((a, i) => a[i], s.spread);
    terms.push(`${fmt(value)}*${fmt(kernelValues[j])}`);
  });
  const sum = terms.length ? `${terms.join(" + ")} = ${fmt(step.value)}` : `only zeros and padding: ${fmt(step.value)}`;
  $("gather-caption").textContent =
    `Output (${step.index.join(", ")}), step ${t + 1} of ${s.gather.length}: the flipped kernel over the window; ` +
    `input x flipped kernel where the input is not zero: ${sum}.`;
}

function renderTaps() {
  const t = answerBody(state.taps, ["taps-grid"], ["taps-caption"]);
  if (!t) return;
  const checkerboard = state.explain && state.explain.warnings.some((w) => w.includes("checkerboard"));
  $("taps-caption").textContent = t.even
    ? `Every output element receives ${t.max} taps: no checkerboard.`
    : `Between ${t.min} and ${t.max} taps per output element (each is a sum of that many products). ` +
      (checkerboard
        ? "The repeating pattern inside is the checkerboard artifact: the kernel is not divisible by the stride."
        : "Inside the pattern is even; only the borders receive fewer.");
  $("taps-grid").innerHTML = gridHtml(t.taps, {
    color: (v) => sequentialColor(v, t.min, t.max),
    title: (v, index) => `(${index.join(", ")}): ${v} taps`,
  });
}

function renderMatrix() {
  const m = answerBody(state.matrix, ["matrix-grid"], ["matrix-caption", "matrix-check"]);
  if (!m) return;
  const limit = Math.max(maxAbs(m.C), 1e-12);
  $("matrix-caption").textContent =
    `C is ${m.rows} x ${m.columns} with ${m.nonzeros} nonzeros: the forward convolution y = C x maps this layer's ` +
    `output (columns) to its input (rows); the transposed convolution is C^T (one channel; blank cells are zero).`;
  $("matrix-grid").innerHTML = gridHtml(m.C, {
    text: (v) => (v === 0 ? "" : fmt(v)),
    color: (v) => divergingColor(v, limit),
    title: (v, index) => `row ${index[0]} (input element), column ${index[1]} (output element): ${fmt(v)}`,
    size: Math.max(m.rows, m.columns) > 40 ? "micro" : Math.max(m.rows, m.columns) > 20 ? "tiny" : "",
  });
  const shownValues = m.CT_x.length > 12 ? `${m.CT_x.slice(0, 12).map(fmt).join(", ")}, ...` : m.CT_x.map(fmt).join(", ");
  $("matrix-check").textContent =
    `C^T x = [${shownValues}] ${m.equal ? "equals" : "DIFFERS FROM"} the layer's output, element for element.`;
}

// ------------------------------------------------------------------------------------------- players

function stop(view) {
  const player = players[view];
  if (player.timer) clearInterval(player.timer);
  player.timer = null;
  const button = document.querySelector(`.player[data-view=${view}] button[data-action=play]`);
  button.textContent = "Play";
  button.setAttribute("aria-label", `Play the ${view}`);
}

function go(view, step) {
  const player = players[view];
  player.step = Math.max(0, Math.min(player.count - 1, step));
  if (view === "scatter") drawScatter();
  else drawGather();
}

function play(view) {
  const player = players[view];
  if (player.timer) { stop(view); return; }
  if (player.count < 2) return;
  if (player.step >= player.count - 1) go(view, 0);
  const button = document.querySelector(`.player[data-view=${view}] button[data-action=play]`);
  button.textContent = "Pause";
  button.setAttribute("aria-label", `Pause the ${view}`);
  player.timer = setInterval(() => {
    if (player.step >= player.count - 1) { stop(view); return; }
    go(view, player.step + 1);
  }, STEP_MS[view]);
}

function wirePlayers() {
  for (const element of document.querySelectorAll(".player")) {
    const view = element.dataset.view;
    element.addEventListener("click", (event) => {
      const button = event.target.closest("button");
      if (!button) return;
      const action = button.dataset.action;
      if (action === "play") { play(view); return; }
      stop(view);
      const player = players[view];
      const target = { first: 0, prev: player.step - 1, next: player.step + 1, last: player.count - 1 }[action];
      go(view, target);
    });
    element.querySelector("input[type=range]").addEventListener("input", (event) => {
      stop(view);
      go(view, Number(event.target.value));
    });
  }
}

// -------------------------------------------------------------------------------------------- wiring

function applyPreset(name) {
  const preset = PRESETS[name];
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(preset)) params.set(k, v);
  writeControls(params);
  state.freshLayer = true;
  scheduleUpdate(0);
}

function changeDims() {
  const d = Number($("dims").value);
  for (const name of ["input", "kernel", "stride", "dilation", "output-padding", "output-size"]) {
    const parts = $(name).value.split(/[x,]/i).map((p) => p.trim()).filter((p) => p !== "");
    if (!parts.length) continue;
    if (parts.length > 1 || name === "input") $(name).value = Array(d).fill(parts[0]).join("x");
  }
  const padding = $("padding").value;
  if (/[,:]/.test(padding)) $("padding").value = padding.split(",")[0];
  for (const which of ["x", "w"]) {
    if ($(`${which}-kind`).value === "typed") {
      $(`${which}-kind`).value = "count";
      $(`${which}-values`).hidden = true;
    }
  }
  state.freshLayer = true;
  scheduleUpdate(0);
}

async function copyCode(id) {
  const text = $(id).textContent;
  const button = document.querySelector(`button[data-copy="${id}"]`);
  try {
    await navigator.clipboard.writeText(text);
    button.textContent = "Copied";
  } catch (err) {
    const range = document.createRange();
    range.selectNodeContents($(id));
    const selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    button.textContent = "Selected: press Ctrl+C";
  }
  setTimeout(() => { button.textContent = "Copy"; }, 1800);
}

async function start() {
  wirePlayers();
  const meta = await getJson("meta", new URLSearchParams());
  if (meta.ok) {
    state.meta = meta.body;
    $("version").textContent = meta.body.version;
  }
  writeControls(new URLSearchParams(location.search));
  $("controls").addEventListener("input", (event) => {
    const id = event.target.id;
    if (id === "dims") return;
    if (id === "input") syncDims();
    state.freshLayer = !["x-values", "w-values", "seed"].includes(id);
    scheduleUpdate();
  });
  $("controls").addEventListener("change", (event) => {
    const id = event.target.id;
    if (id === "dims") { changeDims(); return; }
    if (id === "framework") showPaddingHelp();
    if (id === "x-kind" || id === "w-kind") {
      const which = id[0];
      const typed = event.target.value === "typed";
      $(`${which}-values`).hidden = !typed;
      if (typed && !$(`${which}-values`).value) $(`${which}-values`).value = $(`${which}-values`).placeholder;
    }
    if (event.target.tagName === "SELECT") scheduleUpdate(0);
  });
  $("controls").addEventListener("submit", (event) => event.preventDefault());
  $("controls").addEventListener("click", (event) => {
    const button = event.target.closest("button[data-preset]");
    if (button) applyPreset(button.dataset.preset);
  });
  $("code").addEventListener("click", (event) => {
    const button = event.target.closest("button[data-copy]");
    if (button) copyCode(button.dataset.copy).catch(() => {});
  });
  state.freshLayer = true;
  await update();
  document.body.dataset.ready = "true";
}

document.addEventListener("DOMContentLoaded", () => { start().catch(showFailure); });
