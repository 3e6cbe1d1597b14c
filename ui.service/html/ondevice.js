// Diagnosis on the phone: the offline pack (the runtime from vendor/ and the served model's TFLite
// artifact, each checked against its SHA-256 with SubtleCrypto) kept in the Cache Storage, and
// inference with it. Loaded by app.js only when the user opts in or a pack is there: the first
// load stays small. One pack at a time: a new one replaces the old only after it verified, and
// a pack's runtime and model always come and go together (one cache per pack).

import { modelInput } from './preprocess.js';

export const PACK_PREFIX = 'cassava-offline-';
const PACK_META = 'offline-pack.json'; // the pack's own description, inside its cache
const RUNTIME_POINTER = 'vendor/runtime.json';
const MODEL_SIZE = 150; // the artifact's input: float32 [1, 150, 150, 3] in [0, 1]
export const LOW_CONFIDENCE = 0.5; // the API's default LOW_CONFIDENCE_THRESHOLD

/** Why a pack could not be installed; `key` is the sentence for the user. */
export class PackError extends Error {
  constructor(key, detail) {
    super(detail || key);
    this.key = key;
  }
}

const hex = (buffer) => Array.from(new Uint8Array(buffer), (b) => b.toString(16).padStart(2, '0')).join('');

async function fetchJson(url) {
  const response = await fetch(url, { cache: 'no-cache' });
  if (!response.ok) throw new PackError('offline.failed', `${url}: HTTP ${response.status}`);
  return response.json();
}

/** The runtime this build serves: {dir, version, files, variants}. */
export function runtimeManifest() {
  return fetchJson(RUNTIME_POINTER);
}

/** The runtime files this browser downloads (LiteRT.js picks its wasm build the same way). */
async function runtimeFiles(runtime) {
  const { supportsFeature } = await import(`./vendor/${runtime.dir}litert.js`);
  const relaxed = await supportsFeature('relaxedSimd').catch(() => false);
  return runtime.variants[relaxed ? 'relaxed_simd' : 'compat'];
}

/** The verified pack kept on this phone: its description, or null. */
export async function currentPack() {
  if (!('caches' in self)) return null;
  for (const name of await caches.keys()) {
    if (!name.startsWith(PACK_PREFIX)) continue;
    const meta = await (await caches.open(name)).match(PACK_META);
    if (meta) return { ...(await meta.json()), cache: name };
    await caches.delete(name); // an install cut short: never half a pack
  }
  return null;
}

/** Whether the pack already is the served version's (same version, same file) with this build's
 * runtime. */
export function packIsCurrent(pack, model, runtime) {
  const { onDevice } = model;
  return Boolean(pack && onDevice && pack.version === model.version && pack.sha256 === onDevice.sha256
    && pack.runtime.version === runtime.version && pack.runtime.dir === runtime.dir);
}

async function verifiedDownload(url, sha256) {
  let response;
  try {
    response = await fetch(url, { cache: 'no-cache' });
  } catch (error) {
    throw new PackError('offline.failed', `${url}: ${error.message}`);
  }
  if (!response.ok) throw new PackError('offline.failed', `${url}: HTTP ${response.status}`);
  const body = await response.arrayBuffer();
  const digest = hex(await crypto.subtle.digest('SHA-256', body));
  if (digest !== sha256) throw new PackError('offline.bad_download', `${url}: SHA-256 ${digest}, expected ${sha256}`);
  return { body, type: response.headers.get('content-type') || 'application/octet-stream' };
}

function isQuotaError(error) {
  return error && (error.name === 'QuotaExceededError' || error.code === 22);
}

/** Download the runtime and the model, verify both, keep them as one pack; then drop older ones.
 * `model` is the served model's {version, demo, labels, onDevice}. Resolves the new pack. */
export async function installPack(model, runtime, apiRoot) {
  const { onDevice } = model;
  const files = await runtimeFiles(runtime);
  const downloads = [];
  for (const name of files) {
    const url = new URL(`vendor/${runtime.dir}${name}`, location.href).href;
    downloads.push({ url, ...(await verifiedDownload(url, runtime.files[name].sha256)) });
  }
  const modelUrl = new URL(apiRoot + onDevice.url.replace(/^\//, ''), location.href).href;
  downloads.push({ url: modelUrl, ...(await verifiedDownload(modelUrl, onDevice.sha256)) });

  const meta = {
    version: model.version, demo: model.demo, labels: model.labels, sha256: onDevice.sha256,
    bytes: onDevice.bytes, model: modelUrl, runtime: { version: runtime.version, dir: runtime.dir, files },
  };
  const name = `${PACK_PREFIX}${model.version}-${onDevice.sha256.slice(0, 16)}`;
  try {
    await caches.delete(name);
    const cache = await caches.open(name);
    for (const { url, body, type } of downloads) {
      await cache.put(url, new Response(body, { headers: { 'Content-Type': type } }));
    }
    // Written last: a pack without its description is an unfinished one (currentPack drops it).
    await cache.put(PACK_META, new Response(JSON.stringify(meta), { headers: { 'Content-Type': 'application/json' } }));
  } catch (error) {
    await caches.delete(name).catch(() => undefined);
    if (isQuotaError(error)) throw new PackError('offline.no_space', error.message);
    throw error;
  }
  for (const other of await caches.keys()) {
    if (other.startsWith(PACK_PREFIX) && other !== name) await caches.delete(other);
  }
  return { ...meta, cache: name };
}

/** Remove every pack from this phone. */
export async function removePacks() {
  for (const name of await caches.keys()) {
    if (name.startsWith(PACK_PREFIX)) await caches.delete(name);
  }
}

// ---- inference ------------------------------------------------------------------------------

let loaded = null; // {sha256, model} once compiled; the runtime loads once per page

async function compiled(pack) {
  if (loaded && loaded.sha256 === pack.sha256) return loaded.model;
  // The runtime's files come from the pack's cache through the service worker (vendor/ paths).
  const litert = await import(`./vendor/${pack.runtime.dir}litert.js`);
  if (!litert.getGlobalLiteRtPromise()) await litert.loadLiteRt(new URL(`vendor/${pack.runtime.dir}`, location.href).href);
  await litert.getGlobalLiteRtPromise();
  const stored = await (await caches.open(pack.cache)).match(pack.model);
  if (!stored) throw new Error('the offline model is missing from its pack');
  const model = await litert.loadAndCompile(new Uint8Array(await stored.arrayBuffer()), { accelerator: 'wasm' });
  loaded = { sha256: pack.sha256, model, litert };
  return model;
}

/** The photo's pixels, upright (EXIF orientation applied), as the browser decodes them; no colour
 * management (Pillow applies none either). */
async function pixels(file) {
  const bitmap = await createImageBitmap(file, {
    imageOrientation: 'from-image', colorSpaceConversion: 'none', premultiplyAlpha: 'none',
  });
  const canvas = typeof OffscreenCanvas === 'function'
    ? new OffscreenCanvas(bitmap.width, bitmap.height)
    : Object.assign(document.createElement('canvas'), { width: bitmap.width, height: bitmap.height });
  const context = canvas.getContext('2d');
  context.drawImage(bitmap, 0, 0);
  const { data } = context.getImageData(0, 0, bitmap.width, bitmap.height);
  const size = { width: bitmap.width, height: bitmap.height };
  bitmap.close();
  return { data, ...size };
}

/** An answer shaped like the API's (code, confidence, probabilities...), from the pack's model. */
export function answer(probabilities, pack) {
  const ranked = pack.labels.map((label, i) => ({ code: label.code, name: label.name, probability: probabilities[i] }))
    .sort((a, b) => b.probability - a.probability);
  const top = ranked[0];
  return {
    prediction: top.name, code: top.code, confidence: top.probability,
    low_confidence: top.probability < LOW_CONFIDENCE, probabilities: ranked,
    model: { version: pack.version }, source: 'device',
  };
}

/** Diagnose the photo file on this phone with the pack. */
export async function diagnoseOnDevice(file, pack) {
  const model = await compiled(pack);
  const { data, width, height } = await pixels(file);
  const input = new loaded.litert.Tensor(modelInput(data, width, height, MODEL_SIZE, MODEL_SIZE),
    [1, MODEL_SIZE, MODEL_SIZE, 3]);
  let outputs;
  try {
    outputs = await model.run(input);
  } finally {
    input.delete();
  }
  const output = await outputs[0].moveTo('wasm');
  const probabilities = Array.from(output.toTypedArray());
  output.delete();
  return answer(probabilities, pack);
}
