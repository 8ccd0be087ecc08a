// The page of `ecgcnn serve`: pick an example or upload a record, POST it to /v1/predict?explain=true,
// draw the 12 leads on ECG paper with the saliency of the top class, and the probabilities.
// Plain browser JavaScript, no build step and nothing fetched from other hosts.
// document.body.dataset.state is "loading" | "ready" | "done" | "error" (the tests wait on it).
"use strict";

const MM_PER_S = 25; // paper speed
const MM_PER_MV = 10; // gain
const COLUMN_S = 2.5; // each column of the 3 x 4 layout shows the next 2.5 s
const ROW_MM = 30; // baseline to baseline
const CAL_MM = 10; // room for the 1 mV calibration pulse at the start of each row
const BIN_S = 0.04; // saliency is averaged over 40 ms: raw gradients flicker sample to sample
const LAYOUT = [["I", "AVR", "V1", "V4"], ["II", "AVL", "V2", "V5"], ["III", "AVF", "V3", "V6"]];
const RHYTHM_LEAD = "II";
const HEAT = "#2a4bd7"; // blue: stands out against the red grid and the black trace
const UNITS_PER_MV = { mV: 1, uV: 1000, V: 0.001 };
const SUPERCLASSES = {
  NORM: "normal ECG", MI: "myocardial infarction", STTC: "ST/T change",
  CD: "conduction disturbance", HYP: "hypertrophy",
};

const $ = (id) => document.getElementById(id);
const esc = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const leadName = (l) => (/^AV[RLF]$/i.test(l) ? "a" + l.slice(1).toUpperCase() : l);
const pct = (x) => `${(100 * Math.min(1, Math.max(0, x))).toFixed(1)}%`;
const setState = (s) => { document.body.dataset.state = s; };
let model = null;
let lastFiles = null; // the files of the last upload (null after an example)
let repeat = null; // predicts the last ECG again (another baseline)

class ApiError extends Error {
  constructor(message, code, status) {
    super(message);
    Object.assign(this, { code, status });
  }
}

async function api(path, init) {
  let response;
  try {
    response = await fetch(path, init);
  } catch (exc) {
    throw new ApiError(`the server did not answer (${exc.message})`, "network", 0);
  }
  const body = await response.json().catch(() => null);
  if (!response.ok || body === null) {
    const e = body && body.error;
    const text = e ? e.message : `HTTP ${response.status} ${response.statusText}`.trim();
    throw new ApiError(text, e ? e.code : "http_error", response.status);
  }
  return body;
}

// --- start: the model, the examples --------------------------------------------------------------

async function init() {
  for (let attempt = 0; model === null; attempt++) {
    try {
      model = await api("/v1/model");
    } catch (exc) {
      if (exc.code !== "not_ready" || attempt >= 180) return fail(exc);
      $("model").textContent = `model not ready: ${exc.message}`; // still loading, or failed to load
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  }
  const auc = model.metrics && model.metrics.val && model.metrics.val.roc_auc_macro;
  $("model").innerHTML = [
    `<strong>${esc(model.name || "model")}</strong>`, esc(model.task || ""),
    `<code>${esc(model.id)}</code>`,
    auc ? `validation ROC-AUC ${auc.toFixed(3)}` : "",
  ].filter(Boolean).join('<span class="sep">·</span>');
  const names = { highpass: "filtered below 0.5 Hz", median: "median subtracted", keep: "as recorded" };
  if (model.default_baseline in names) {
    $("baseline-select").options[0].textContent = `the model's default: ${names[model.default_baseline]}`;
  }
  try {
    const examples = await api("/v1/examples");
    $("example-select").innerHTML = examples
      .map((e) => `<option value="${esc(e.name)}">${esc(e.description[0].toUpperCase() + e.description.slice(1))}</option>`)
      .join("");
  } catch (exc) {
    return fail(exc);
  }
  busy(false);
  setState("ready");
}

function busy(on) {
  $("predict-button").disabled = on || !$("example-select").options.length;
  $("example-select").disabled = on;
  $("file-input").disabled = on;
  $("baseline-select").disabled = on;
  $("drop-zone").classList.toggle("disabled", on);
}

// --- predict ---------------------------------------------------------------------------------------

async function run(task) {
  busy(true);
  setState("loading");
  $("error").hidden = true;
  try {
    show(await task());
    setState("done");
  } catch (exc) {
    fail(exc);
  } finally {
    busy(false);
  }
}

// An ONNX-served model cannot explain (422 not_supported): ask again without, keep `fallback` to draw.
async function predict(init, fallback) {
  try {
    return await api("/v1/predict?explain=true", init);
  } catch (exc) {
    if (exc.code !== "not_supported") throw exc;
    return { ...(await api("/v1/predict", init)), fallback };
  }
}

function predictExample() {
  const name = $("example-select").value;
  lastFiles = null;
  repeat = predictExample;
  run(async () => {
    const body = await api(`/v1/examples/${encodeURIComponent(name)}`);
    if ($("baseline-select").value) body.baseline = $("baseline-select").value;
    const init = { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) };
    const scale = UNITS_PER_MV[body.units || "mV"];
    const signal = body.signal.map((row) => row.map((v) => v / scale));
    return predict(init, { fs: body.fs, leads: body.leads || model.leads, signal, saliency: null });
  });
}

function upload(files) {
  files = Array.from(files || []);
  if (!files.length) return;
  lastFiles = files;
  repeat = () => upload(files);
  const form = new FormData();
  for (const f of files) form.append("files", f, f.name);
  if (files.some((f) => /\.(csv|npy)$/i.test(f.name))) {
    // no rate typed: none sent (a CSV's time column gives it; the server asks for a .npy's)
    if ($("fs-input").value.trim()) form.append("fs", $("fs-input").value);
    form.append("units", $("units-select").value);
  }
  if ($("baseline-select").value) form.append("baseline", $("baseline-select").value);
  run(() => predict({ method: "POST", body: form }, null));
}

function fail(exc) {
  const status = exc.status ? ` (${exc.status} ${esc(exc.code)})` : "";
  $("error").innerHTML = `<strong>Could not predict.</strong> <span id="error-message">${esc(exc.message)}</span>` +
    `<span class="code">${status}</span>`;
  $("error").hidden = false;
  // nothing from an earlier record stays on screen beside this error
  $("results").hidden = true;
  $("warnings").hidden = true;
  $("placeholder").hidden = false;
  $("probabilities").innerHTML = '<p class="hint">No prediction.</p>';
  setState("error");
}

// --- results ---------------------------------------------------------------------------------------

function show(out) {
  $("placeholder").hidden = true;
  $("record-name").textContent = out.record;
  const labels = out.labels.length ? `<strong>${esc(out.labels.join(", "))}</strong>` : "none at or above its threshold";
  const ecg = out.explanation || out.fallback;
  const facts = [`${out.duration_s.toFixed(1)} s`, `${out.windows} window${out.windows === 1 ? "" : "s"}`,
    `labels: ${labels}`];
  if (out.duration_s > 10.01 && ecg) facts.push("showing the first 10 s");
  $("record-facts").innerHTML = facts.join('<span class="sep">·</span>');
  showProbabilities(out);
  const warnings = [...out.warnings];
  if (out.filled_leads.length) warnings.push(`leads filled with zeros: ${out.filled_leads.map(leadName).join(", ")}`);
  $("warnings").innerHTML = warnings.map((w) => `<li>${esc(w)}</li>`).join("");
  $("warnings").hidden = !warnings.length;
  $("ecg").innerHTML = ecg ? paper(ecg, out.filled_leads) : "";
  $("legend").innerHTML = legend(out, ecg);
  $("results").hidden = false;
}

function showProbabilities(out) {
  let classes = (model && model.classes) || Object.keys(out.probabilities);
  if (classes.length > 12) classes = [...classes].sort((a, b) => out.probabilities[b] - out.probabilities[a]);
  $("probabilities").innerHTML = classes.map((c) => {
    const p = out.probabilities[c];
    const t = out.thresholds[c];
    const on = out.labels.includes(c);
    const what = `${c}: probability ${p.toFixed(3)}, threshold ${t.toFixed(3)}${on ? ", a label" : ""}`;
    return `<div class="prob${on ? " on" : ""}" data-class="${esc(c)}" data-probability="${p}" ` +
      `title="${esc(SUPERCLASSES[c] ? `${SUPERCLASSES[c]}. ${what}` : what)}" role="listitem">` +
      `<span class="name">${esc(c)}</span>` +
      `<span class="bar" aria-hidden="true"><span class="fill" style="width:${pct(p)}"></span>` +
      `<span class="tick" style="left:${pct(t)}"></span></span>` +
      `<span class="value" aria-label="${esc(what)}">${p.toFixed(3)}</span></div>`;
  }).join("");
  $("probabilities").setAttribute("role", "list");
}

function legend(out, ecg) {
  const scale = "25 mm/s, 10 mm/mV; the step at the start of each row is 1 mV.";
  if (!ecg) {
    return "This server runs an ONNX model, which gives no explanation, and the page has no " +
      "signal of its own for an uploaded file: only the probabilities are shown.";
  }
  if (!out.explanation) {
    return `${scale} This server runs an ONNX model, which gives no explanation: the ECG is ` +
      "drawn as sent, without saliency.";
  }
  const target = out.explanation.target;
  return `<span class="swatch" aria-hidden="true"></span><span>Shading: ${esc(out.explanation.method)} ` +
    `of <strong id="explained-class">${esc(target)}</strong> (the most probable class, ` +
    `p = ${out.probabilities[target].toFixed(3)}); darker where the output is more sensitive to ` +
    `the signal. ${scale}</span>`;
}

// --- ECG paper (SVG in millimetres) ----------------------------------------------------------------

function paper(ecg, filled) {
  const index = Object.fromEntries(ecg.leads.map((l, i) => [l.toUpperCase(), i]));
  const standard = LAYOUT.flat().every((l) => l in index);
  const rows = standard
    ? [...LAYOUT.map((r) => r.map((lead, c) => ({ lead, t0: c * COLUMN_S }))),
      [{ lead: RHYTHM_LEAD, t0: 0, span: 4 * COLUMN_S, rhythm: true }]]
    : ecg.leads.map((l) => [{ lead: l.toUpperCase(), t0: 0, span: 4 * COLUMN_S }]);
  const width = CAL_MM + 4 * COLUMN_S * MM_PER_S;
  const height = rows.length * ROW_MM;
  const heat = ecg.saliency ? saliencyBins(ecg) : null;
  const missing = new Set((filled || []).map((l) => l.toUpperCase()));
  const parts = [grid(width, height)];
  rows.forEach((row, r) => {
    const base = ROW_MM * (r + 0.5);
    parts.push(`<path class="cal" d="M1.5 ${base}H3V${base - MM_PER_MV}H8V${base}H9.5"/>`);
    row.forEach((seg, c) => {
      const span = seg.span || COLUMN_S;
      const x0 = CAL_MM + seg.t0 * MM_PER_S;
      const i = index[seg.lead];
      const attr = seg.rhythm ? `data-rhythm="${esc(seg.lead)}"` : `data-lead="${esc(seg.lead)}"`;
      const label = leadName(seg.lead) + (missing.has(seg.lead) ? " (filled)" : "");
      parts.push(`<g class="lead${seg.rhythm ? " rhythm" : ""}" ${attr}>`);
      if (heat) parts.push(band(heat, i, seg.t0, span, x0, base, `sal-${r}-${c}`));
      if (c > 0) parts.push(`<path class="divider" d="M${x0} ${base - 4}V${base + 4}"/>`);
      parts.push(`<path class="trace" d="${trace(ecg.signal[i], ecg.fs, seg.t0, span, x0, base)}"/>`);
      parts.push(`<text x="${x0 + 1.2}" y="${base - 9}">${esc(label)}</text></g>`);
    });
  });
  const what = `12-lead ECG on paper${heat ? ", shaded by saliency" : ""}`;
  return `<svg viewBox="0 0 ${width} ${height}" role="img" aria-label="${what}" ` +
    `preserveAspectRatio="xMinYMin meet">${parts.join("")}</svg>`;
}

function grid(width, height) {
  const lines = (step) => {
    let d = "";
    for (let x = 0; x <= width + 1e-6; x += step) d += `M${x} 0V${height}`;
    for (let y = 0; y <= height + 1e-6; y += step) d += `M0 ${y}H${width}`;
    return d;
  };
  return `<rect class="sheet" width="${width}" height="${height}"/>` +
    `<path class="minor" d="${lines(1)}"/><path class="major" d="${lines(5)}"/>`;
}

function trace(samples, fs, t0, span, x0, base) {
  const first = Math.round(t0 * fs);
  const last = Math.min(samples.length, Math.round((t0 + span) * fs) + 1);
  const points = [];
  for (let j = first; j < last; j++) {
    const x = x0 + ((j - first) / fs) * MM_PER_S;
    points.push(`${x.toFixed(2)} ${(base - samples[j] * MM_PER_MV).toFixed(2)}`);
  }
  return points.length ? "M" + points.join("L") : "";
}

// Saliency averaged over BIN_S bins, on one 0-1 scale for all leads (its 99.5th percentile is 1).
function saliencyBins(ecg) {
  const per = Math.max(1, Math.round(BIN_S * ecg.fs));
  const bins = ecg.saliency.map((row) => {
    const out = [];
    for (let i = 0; i < row.length; i += per) {
      const piece = row.slice(i, i + per);
      out.push(piece.reduce((a, b) => a + b, 0) / piece.length);
    }
    return out;
  });
  const sorted = bins.flat().sort((a, b) => a - b);
  const top = sorted[Math.floor(0.995 * (sorted.length - 1))] || 0;
  return { binS: per / ecg.fs, bins: bins.map((r) => r.map((v) => (top > 0 ? Math.min(1, v / top) : 0))) };
}

// A translucent band behind the trace whose opacity follows the saliency (a power above 1 keeps
// weak saliency from tinting the whole page).
function band(heat, lead, t0, span, x0, base, id) {
  const row = heat.bins[lead];
  const first = Math.floor(t0 / heat.binS);
  const count = Math.min(row.length - first, Math.ceil(span / heat.binS));
  if (count <= 0) return "";
  const stops = [];
  for (let k = 0; k < count; k++) {
    const offset = ((k + 0.5) / count) * 100;
    const alpha = 0.8 * Math.pow(row[first + k], 1.5);
    stops.push(`<stop offset="${offset.toFixed(2)}%" stop-color="${HEAT}" stop-opacity="${alpha.toFixed(3)}"/>`);
  }
  const w = count * heat.binS * MM_PER_S;
  return `<linearGradient id="${id}">${stops.join("")}</linearGradient>` +
    `<rect class="saliency" x="${x0}" y="${base - 8}" width="${w.toFixed(2)}" height="16" fill="url(#${id})"/>`;
}

// --- wiring ----------------------------------------------------------------------------------------

document.addEventListener("DOMContentLoaded", () => {
  $("predict-button").addEventListener("click", predictExample);
  $("file-input").addEventListener("change", (e) => {
    upload(e.target.files);
    e.target.value = ""; // choosing the same files again predicts again
  });
  for (const id of ["fs-input", "units-select"]) { // what a .csv/.npy cannot say for itself
    $(id).addEventListener("change", () => {
      if (lastFiles && lastFiles.some((f) => /\.(csv|npy)$/i.test(f.name))) upload(lastFiles);
    });
  }
  $("baseline-select").addEventListener("change", () => { if (repeat) repeat(); });
  const zone = $("drop-zone");
  for (const type of ["dragenter", "dragover"]) {
    zone.addEventListener(type, (e) => { e.preventDefault(); zone.classList.add("over"); });
  }
  for (const type of ["dragleave", "drop"]) {
    zone.addEventListener(type, (e) => { e.preventDefault(); zone.classList.remove("over"); });
  }
  zone.addEventListener("drop", (e) => { if (!$("file-input").disabled) upload(e.dataTransfer.files); });
  // a file dropped beside the zone must not replace the page
  for (const type of ["dragover", "drop"]) window.addEventListener(type, (e) => e.preventDefault());
  busy(true);
  init();
});
