// The upload page: photo -> small JPEG made in the browser -> /api/predict/image -> answer in the
// user's language. Plain DOM, textContent only (the CSP forbids inline code; data is never HTML).

export const LANGUAGES = ['en', 'fr', 'sw', 'pt'];
export const MAX_SIDE = 512; // long side sent: 3.4x the model's 150 px, room for future models
export const MAX_UPLOAD_BYTES = 148000; // the JPEG; with multipart headers the body stays <= 150 KB
export const VERY_LIKELY = 0.8; // at or above: "very likely"; below the API's low_confidence: "unsure"
const API_PATH = 'api/predict/image';
const MODEL_PATH = 'api/v1/model';
const UPLOAD_TIMEOUT_MS = 120000; // 150 KB at 2G speeds still fits
const LANG_KEY = 'lang';
const PACK_PREFIX = 'cassava-offline-'; // ondevice.js's caches: one per verified offline pack
const API_ROOT = 'api/'; // the on_device url is a path on the API; the page reaches it here

const $ = (id) => document.getElementById(id);
let strings = {};
let language = 'en';
const state = {
  status: '', progress: null, result: null, error: null, blob: null, xhr: null,
  model: null, // {version, demo, labels, onDevice} from /api/v1/model, once known
  file: null, // the photo as chosen: what the phone diagnoses when the server cannot
  offline: { pack: null, runtime: null, size: null, key: '', busy: false },
};
let device = null; // ondevice.js, imported only when the offline pack is wanted or there
const loadDevice = async () => { device = device || await import('./ondevice.js'); return device; };

// ---- language -------------------------------------------------------------------------------

/** The first supported language among the remembered choice and the browser's preferences. */
export function pickLanguage(remembered, preferred) {
  if (LANGUAGES.includes(remembered)) return remembered;
  for (const tag of preferred || []) {
    const base = String(tag).toLowerCase().split('-')[0];
    if (LANGUAGES.includes(base)) return base;
  }
  return 'en';
}

/** The string for `key` in the current language, {name} placeholders filled from `vars`. */
export function t(key, vars = {}) {
  const text = typeof strings[key] === 'string' ? strings[key] : key;
  return text.replace(/\{(\w+)\}/g, (whole, name) => (name in vars ? String(vars[name]) : whole));
}

function remembered() {
  try { return localStorage.getItem(LANG_KEY); } catch { return null; }
}

export async function setLanguage(code, remember = false) {
  const response = await fetch(`i18n/${code}.json`);
  if (!response.ok) throw new Error(`i18n/${code}.json: HTTP ${response.status}`);
  strings = await response.json();
  language = code;
  document.documentElement.lang = code;
  if (remember) {
    try { localStorage.setItem(LANG_KEY, code); } catch { /* private mode: not remembered */ }
  }
  render();
}

// ---- the served model ---------------------------------------------------------------------

/** {version, demo, labels, onDevice} from a GET /v1/model body; demo only when the card says so,
 * explicitly; onDevice only when it is a complete TFLite artifact description (else null). */
export function modelStatus(body) {
  if (!body || !Number.isInteger(body.version)) return null;
  const art = body.on_device;
  const onDevice = art && art.format === 'tflite' && typeof art.url === 'string'
    && /^[0-9a-f]{64}$/.test(art.sha256) && Number.isInteger(art.bytes) ? art : null;
  const labels = Array.isArray(body.labels) ? body.labels : [];
  return { version: body.version, demo: body.demo === true, labels, onDevice };
}

/** Ask the API which model answers and whether it is a demo; keep what we knew on failure. */
export async function loadModel() {
  try {
    const response = await fetch(MODEL_PATH, { headers: { Accept: 'application/json' } });
    if (!response.ok) return;
    const status = modelStatus(await response.json());
    if (status) state.model = status;
  } catch {
    return; // offline or the API is down: the next answer triggers another look
  }
  render();
  await syncOffline();
}

// ---- diagnosis without network (ondevice.js) -------------------------------------------------

function offlineSupported() {
  return typeof WebAssembly === 'object' && 'caches' in window && Boolean(window.crypto && crypto.subtle);
}

/** Download size of the pack in bytes: the runtime gzipped (the larger of its two builds; the
 * browser takes one) plus the model as served. */
export function offlineSize(runtime, onDevice) {
  const build = (files) => files.reduce((sum, name) => sum + runtime.files[name].gzip_bytes, 0);
  return Math.max(...Object.values(runtime.variants).map(build)) + onDevice.bytes;
}

function setPack(pack) {
  state.offline.pack = pack;
  if (pack) document.documentElement.dataset.offlineReady = String(pack.version);
  else delete document.documentElement.dataset.offlineReady;
}

/** On load: the verified pack this phone keeps, if any (ondevice.js is not loaded otherwise). */
async function restorePack() {
  if (!offlineSupported()) return;
  const names = await caches.keys().catch(() => []);
  if (!names.some((name) => name.startsWith(PACK_PREFIX))) return;
  setPack(await (await loadDevice()).currentPack());
  render();
}

/** Online, with the served model known: show the download size; replace an outdated pack (the
 * old one stays until the new one verified); keep the last one if the server has none. */
async function syncOffline() {
  const off = state.offline;
  const onDevice = state.model && state.model.onDevice;
  if (!offlineSupported() || !onDevice) {
    render();
    return;
  }
  try {
    const response = await fetch('vendor/runtime.json', { cache: 'no-cache' });
    if (!response.ok) throw new Error(`vendor/runtime.json: HTTP ${response.status}`);
    off.runtime = await response.json();
    off.size = offlineSize(off.runtime, onDevice);
  } catch (error) {
    console.warn('offline pack:', error);
    render();
    return;
  }
  render();
  if (off.pack && !off.busy && !(await loadDevice()).packIsCurrent(off.pack, state.model, off.runtime)) {
    await installOffline();
  }
}

async function installOffline() {
  const off = state.offline;
  Object.assign(off, { busy: true, key: 'offline.downloading' });
  render();
  try {
    const ondevice = await loadDevice();
    const runtime = off.runtime || await ondevice.runtimeManifest();
    setPack(await ondevice.installPack(state.model, runtime, API_ROOT));
    off.key = 'offline.ready';
  } catch (error) {
    console.warn('offline pack:', error);
    off.key = error.key || 'offline.failed';
  } finally {
    off.busy = false;
    render();
  }
}

async function removeOffline() {
  await (await loadDevice()).removePacks();
  setPack(null);
  state.offline.key = 'offline.removed';
  render();
}

/** The sentence under the offline control, and its placeholders. */
function offlineMessage() {
  const { pack, key } = state.offline;
  const onDevice = state.model && state.model.onDevice;
  const vars = { version: pack ? pack.version : '', server: state.model ? state.model.version : '' };
  // SubtleCrypto and service workers exist only in secure contexts (https, or localhost).
  if (!window.isSecureContext) return ['offline.needs_https', vars];
  if (!offlineSupported()) return ['offline.unsupported', vars];
  if (state.model && !onDevice) return [pack ? 'offline.kept' : 'offline.none', vars];
  if (key) return [key, { ...vars, size: megabytes(state.offline.size) }];
  return pack ? ['offline.ready', vars] : ['', vars];
}

const megabytes = (bytes) => (bytes ? (bytes / 1e6).toFixed(1) : '?');

/** Whether a failed upload should be answered on the phone instead. */
function deviceCanAnswer() {
  return Boolean(state.offline.pack && state.file && offlineSupported());
}

/** Diagnose the chosen photo on this phone with the offline pack. */
async function diagnoseHere() {
  Object.assign(state, { error: null, result: null, status: 'upload.on_device', progress: null });
  render();
  try {
    const result = await (await loadDevice()).diagnoseOnDevice(state.file, state.offline.pack);
    Object.assign(state, { status: 'result.ready', result });
  } catch (error) {
    console.error('on-device diagnosis:', error);
    fail({ kind: 'network' });
  }
  showAnswer();
}

// ---- photo -> small JPEG --------------------------------------------------------------------

/** Width and height scaled so the long side is at most maxSide (never enlarged). */
export function targetSize(width, height, maxSide = MAX_SIDE) {
  const scale = Math.min(1, maxSide / Math.max(width, height));
  return [Math.max(1, Math.round(width * scale)), Math.max(1, Math.round(height * scale))];
}

class NotAPhoto extends Error {}

/** Decoded image, upright: EXIF orientation applied (Chromium does so by default as well). */
async function decode(file) {
  try {
    return await createImageBitmap(file, { imageOrientation: 'from-image' });
  } catch {
    // Engines without createImageBitmap options: <img> applies EXIF orientation too.
    const url = URL.createObjectURL(file);
    try {
      const img = new Image();
      img.src = url;
      await img.decode();
      return img;
    } catch {
      throw new NotAPhoto();
    } finally {
      URL.revokeObjectURL(url);
    }
  }
}

/** source drawn at width x height; halving steps first so a 12 MP photo does not alias. */
function drawScaled(source, width, height) {
  let current = source;
  let [w, h] = [source.width, source.height];
  while (w / 2 >= width && h / 2 >= height) {
    [w, h] = [Math.round(w / 2), Math.round(h / 2)];
    current = paint(current, w, h);
  }
  return paint(current, width, height);
}

function paint(source, width, height) {
  const canvas = document.createElement('canvas');
  canvas.width = width;
  canvas.height = height;
  const ctx = canvas.getContext('2d');
  ctx.fillStyle = '#fff'; // transparent PNG areas become white, not black, in the JPEG
  ctx.fillRect(0, 0, width, height);
  ctx.imageSmoothingQuality = 'high';
  ctx.drawImage(source, 0, 0, width, height);
  return canvas;
}

const toJpeg = (canvas, quality) => new Promise((resolve) => canvas.toBlob(resolve, 'image/jpeg', quality));

/** The photo as an upright JPEG, long side <= MAX_SIDE, at most MAX_UPLOAD_BYTES. */
export async function shrink(file, maxBytes = MAX_UPLOAD_BYTES) {
  const source = await decode(file);
  let [width, height] = targetSize(source.width, source.height);
  while (width >= 64 && height >= 64) {
    const canvas = drawScaled(source, width, height);
    for (let quality = 0.85; quality > 0.3; quality -= 0.1) {
      const blob = await toJpeg(canvas, quality);
      if (blob && blob.size <= maxBytes) return { blob, width, height, quality };
    }
    [width, height] = [Math.round(width * 0.75), Math.round(height * 0.75)];
  }
  throw new NotAPhoto();
}

// ---- upload ---------------------------------------------------------------------------------

/** POST the form with XMLHttpRequest (upload progress events); resolves {status, body}. */
export function sendForm(form, onProgress = () => {}) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    state.xhr = xhr;
    xhr.open('POST', API_PATH);
    xhr.responseType = 'json';
    xhr.timeout = UPLOAD_TIMEOUT_MS;
    xhr.setRequestHeader('Accept', 'application/json, application/problem+json');
    xhr.upload.addEventListener('progress', (event) => {
      if (event.lengthComputable) onProgress(event.loaded / event.total);
    });
    xhr.upload.addEventListener('load', () => onProgress(1));
    const fail = (kind) => () => { state.xhr = null; reject(Object.assign(new Error(kind), { kind })); };
    xhr.addEventListener('error', fail('network'));
    xhr.addEventListener('timeout', fail('timeout'));
    xhr.addEventListener('abort', fail('abort'));
    xhr.addEventListener('load', () => {
      state.xhr = null;
      resolve({ status: xhr.status, body: xhr.response });
    });
    xhr.send(form);
  });
}

/** The i18n key of the sentence for a failed diagnosis, and whether a resend can help. */
export function describeError({ kind = '', status = 0, code = '', offline = false }) {
  const photo = (key) => ({ key, resend: false });
  const transient = (key) => ({ key, resend: true });
  if (kind === 'decode') return photo('error.not_a_photo');
  if (offline) return transient('error.offline');
  if (kind === 'timeout') return transient('error.timeout');
  if (kind === 'network' || status === 0) return transient('error.unreachable');
  switch (code) {
    case 'empty_image': case 'undecodable_image': case 'truncated_image': return photo('error.bad_photo');
    case 'body_too_large': case 'image_too_large': case 'image_too_costly': return photo('error.too_large');
    case 'image_too_small': case 'blank_image': return photo('error.no_leaf');
    case 'decoder_busy': return transient('error.busy');
    case 'unsupported_media_type': return photo('error.not_a_photo');
    case 'model_timeout': return transient('error.timeout');
    case 'model_unavailable': case 'model_error': case 'model_misconfigured': return transient('error.down');
    default: break;
  }
  if (status === 400) return photo('error.bad_photo');
  if (status === 413) return photo('error.too_large');
  if (status === 415) return photo('error.not_a_photo');
  if (status === 422) return transient('error.request');
  if (status === 429) return transient('error.busy');
  if (status === 504) return transient('error.timeout');
  if (status === 502 || status === 503) return transient('error.down');
  return transient('error.unexpected');
}

/** Words for the confidence; `low` is the API's low_confidence flag (its threshold rules). */
export function confidenceKey(confidence, low) {
  if (low) return 'confidence.unsure';
  return confidence >= VERY_LIKELY ? 'confidence.very_likely' : 'confidence.likely';
}

const percent = (p) => Math.round(p * 100);

function isPrediction(body) {
  return body && typeof body.code === 'string' && typeof body.confidence === 'number'
    && Array.isArray(body.probabilities);
}

/** Send the prepared JPEG and show the answer or the error. */
export async function diagnose(blob) {
  state.blob = blob;
  const form = new FormData();
  form.append('image_to_predict', blob, 'leaf.jpg');
  return submit(form);
}

export async function submit(form) {
  if (!navigator.onLine && deviceCanAnswer()) return diagnoseHere();
  Object.assign(state, { error: null, result: null, status: 'upload.sending', progress: 0 });
  render();
  try {
    const { status, body } = await sendForm(form, (fraction) => {
      state.progress = fraction;
      if (fraction >= 1) state.status = 'upload.waiting';
      render();
    });
    const ok = status >= 200 && status < 300;
    const code = !ok && body && typeof body.code === 'string' ? body.code : '';
    if (ok && isPrediction(body)) {
      Object.assign(state, { status: 'result.ready', progress: null, result: body });
      // Another version answered (a model was installed or removed): its card may differ.
      if (!state.model || (body.model && body.model.version !== state.model.version)) loadModel();
    } else if ([502, 503, 504].includes(status) && deviceCanAnswer()) {
      return diagnoseHere(); // the API cannot answer: the phone can
    } else {
      fail({ status, code });
    }
  } catch (error) {
    if (error.kind === 'abort') {
      Object.assign(state, { status: '', progress: null, error: { key: 'upload.cancelled', resend: true } });
    } else if (deviceCanAnswer()) {
      return diagnoseHere(); // no network, or the API unreachable
    } else {
      fail({ kind: error.kind || 'network' });
    }
  }
  showAnswer();
}

function showAnswer() {
  render();
  if (state.result) {
    // The answer takes the focus (screen readers read it) and the top of the screen (phones).
    const heading = $('result-heading');
    heading.focus({ preventScroll: true });
    $('result').scrollIntoView({ block: 'start' });
  }
}

function fail(details) {
  const described = describeError({ ...details, offline: !navigator.onLine });
  Object.assign(state, { status: '', progress: null, error: { ...described, status: details.status } });
}

async function takeFile(file) {
  if (!file) return;
  Object.assign(state, { result: null, error: null, status: 'upload.preparing', progress: null, file });
  render();
  let prepared;
  try {
    prepared = await shrink(file);
  } catch (error) {
    if (!(error instanceof NotAPhoto)) console.error(error);
    Object.assign(state, { status: '', blob: null, error: describeError({ kind: 'decode' }) });
    render();
    return;
  }
  const preview = $('preview');
  if (preview.src) URL.revokeObjectURL(preview.src);
  preview.src = URL.createObjectURL(prepared.blob);
  preview.hidden = false;
  await diagnose(prepared.blob);
}

// ---- rendering ------------------------------------------------------------------------------

function fillList(list, items) {
  list.replaceChildren(...items.map((item) => {
    const li = document.createElement('li');
    if (typeof item === 'string') li.textContent = item; else li.append(...item);
    return li;
  }));
}

function className(code, fallback) {
  const key = `class.${code}`;
  return typeof strings[key] === 'string' ? strings[key] : fallback;
}

function renderResult(result) {
  $('result-name').textContent = className(result.code, result.prediction);
  $('result-confidence').textContent = t('result.confidence', {
    level: t(confidenceKey(result.confidence, result.low_confidence)),
    percent: percent(result.confidence),
  });
  $('result-low').hidden = !result.low_confidence;
  const here = result.source === 'device';
  $('result').dataset.code = result.code;
  $('result').dataset.source = here ? 'device' : 'server';
  $('result-source').hidden = !here;
  $('result-source').textContent = here ? t('result.on_device', { version: result.model.version }) : '';
  const others = result.probabilities.filter((p) => p.code !== result.code);
  fillList($('result-others'), others.map((p) => {
    const name = document.createElement('span');
    name.textContent = className(p.code, p.name);
    const value = document.createElement('span');
    value.className = 'pct';
    value.textContent = t('result.percent', { percent: percent(p.probability) });
    return [name, value];
  }));
  const advice = (strings.advice || {})[result.code] || { steps: [t('advice.unknown')], sources: [] };
  fillList($('advice-steps'), advice.steps);
  fillList($('advice-sources'), advice.sources);
}

function renderOffline() {
  const off = state.offline;
  const toggle = $('offline-toggle');
  const onDevice = state.model && state.model.onDevice;
  toggle.checked = Boolean(off.pack) || off.busy;
  toggle.disabled = off.busy || !offlineSupported() || (!off.pack && !onDevice);
  $('offline-size').textContent = off.size && onDevice ? t('offline.size', { size: megabytes(off.size) }) : '';
  const [key, vars] = offlineMessage();
  $('offline-status').textContent = key ? t(key, vars) : '';
}

function render() {
  for (const el of document.querySelectorAll('[data-i18n]')) el.textContent = t(el.dataset.i18n);
  for (const el of document.querySelectorAll('[data-i18n-alt]')) el.alt = t(el.dataset.i18nAlt);
  document.title = t('app.title');
  document.querySelector('meta[name="description"]').content = t('app.description');
  $('lang').value = language;
  const { pack } = state.offline;
  $('offline').hidden = navigator.onLine;
  if (!navigator.onLine && pack) $('offline').textContent = t('offline.banner_device', { version: pack.version });
  // The demo notice follows the card of the model that answers: the server's, or the pack's when
  // the phone answers (or would: offline).
  const packAnswers = pack && ((state.result && state.result.source === 'device') || !navigator.onLine);
  $('demo-notice').hidden = !((state.model && state.model.demo) || (packAnswers && pack.demo));
  renderOffline();

  $('status').textContent = state.status ? t(state.status) : '';
  const uploading = state.progress !== null;
  $('uploading').hidden = !uploading;
  if (uploading) {
    $('progress').value = percent(state.progress);
    $('progress-text').textContent = t('upload.progress', { percent: percent(state.progress) });
  }

  const { error } = state;
  $('error').classList.toggle('shown', Boolean(error));
  $('error-text').textContent = error ? t(error.key, { status: error.status ?? '' }) : '';
  $('error-actions').hidden = !error;
  $('retry').hidden = !(error && error.resend && state.blob);

  $('result').hidden = !state.result;
  if (state.result) renderResult(state.result);
}

// ---- wiring ---------------------------------------------------------------------------------

function openPicker(id) {
  const input = $(id);
  input.value = ''; // choosing the same photo again still fires "change"
  input.click();
}

function wire() {
  $('take').addEventListener('click', () => openPicker('camera-input'));
  $('choose').addEventListener('click', () => openPicker('file-input'));
  $('another').addEventListener('click', () => openPicker('file-input'));
  $('again').addEventListener('click', () => {
    $('photo').scrollIntoView();
    $('take').focus();
  });
  for (const id of ['camera-input', 'file-input']) {
    $(id).addEventListener('change', (event) => takeFile(event.target.files[0]));
  }
  $('retry').addEventListener('click', () => state.blob && diagnose(state.blob));
  $('cancel').addEventListener('click', () => state.xhr && state.xhr.abort());
  $('lang').addEventListener('change', (event) => {
    setLanguage(event.target.value, true).catch(() => render()); // unreachable file: keep the old one
  });
  $('offline-toggle').addEventListener('change', (event) => {
    if (event.target.checked) installOffline(); else removeOffline();
  });
  window.addEventListener('online', render);
  window.addEventListener('offline', render);

  const zone = $('photo');
  zone.addEventListener('dragover', (event) => {
    event.preventDefault();
    zone.classList.add('dragging');
  });
  zone.addEventListener('dragleave', () => zone.classList.remove('dragging'));
  zone.addEventListener('drop', (event) => {
    event.preventDefault();
    zone.classList.remove('dragging');
    takeFile(event.dataTransfer.files[0]);
  });
}

async function start() {
  wire();
  await setLanguage(pickLanguage(remembered(), navigator.languages));
  await restorePack().catch((error) => console.warn('offline pack:', error));
  document.body.classList.add('ready');
  loadModel();
  if ('serviceWorker' in navigator) {
    // After the first render, so the shell download never competes with the page itself.
    navigator.serviceWorker.register('sw.js').catch((error) => console.warn('service worker:', error));
  }
}

export const ready = start();
