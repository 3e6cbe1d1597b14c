// The API's preprocessing (api.service/app/imaging.py) in plain JS, for diagnosis on the phone:
// upright RGB pixels -> Pillow's BICUBIC resize to the model's size -> float32 in [0, 1].
// A canvas resize is not Pillow's (other filter, no rounding between passes), so the resize is
// Pillow's own algorithm (libImaging/Resample.c): a separable convolution, horizontal pass then
// vertical pass, with fixed-point coefficients and rounding to uint8 between the passes. Pure
// functions, no DOM: tests run them in Node against Pillow and in Chromium against the server.

const PRECISION_BITS = 32 - 8 - 2; // Resample.c: coefficients in 22-bit fixed point
const HALF = 1 << (PRECISION_BITS - 1);
const ONE = 1 << PRECISION_BITS;

/** Pillow's bicubic kernel (a = -0.5, support 2). */
function bicubic(x) {
  const a = -0.5;
  const v = Math.abs(x);
  if (v < 1) return ((a + 2) * v - (a + 3)) * v * v + 1;
  if (v < 2) return (((v - 5) * v + 8) * v - 4) * a;
  return 0;
}
const BICUBIC_SUPPORT = 2;

/** Resample.c precompute_coeffs + normalize_coeffs_8bpc for inSize -> outSize (whole box):
 * {ksize, bounds: Int32Array [xmin, count]*, kk: Int32Array fixed-point taps}. */
export function coefficients(inSize, outSize) {
  const scale = inSize / outSize;
  const filterscale = Math.max(scale, 1);
  const support = BICUBIC_SUPPORT * filterscale;
  const ksize = Math.ceil(support) * 2 + 1;
  const bounds = new Int32Array(outSize * 2);
  const kk = new Int32Array(outSize * ksize);
  const taps = new Float64Array(ksize);
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    const ss = 1 / filterscale;
    // C casts to int: truncation toward zero, as Math.trunc.
    const xmin = Math.max(0, Math.trunc(center - support + 0.5));
    const count = Math.min(inSize, Math.trunc(center + support + 0.5)) - xmin;
    let ww = 0;
    for (let x = 0; x < count; x++) {
      const w = bicubic((x + xmin - center + 0.5) * ss);
      taps[x] = w;
      ww += w;
    }
    for (let x = 0; x < count; x++) {
      const w = ww !== 0 ? taps[x] / ww : taps[x];
      kk[xx * ksize + x] = w < 0 ? Math.trunc(-0.5 + w * ONE) : Math.trunc(0.5 + w * ONE);
    }
    bounds[xx * 2] = xmin;
    bounds[xx * 2 + 1] = count;
  }
  return { ksize, bounds, kk };
}

/** Resample.c clip8: fixed-point sum -> uint8. */
function clip8(sum) {
  if (sum <= 0) return 0;
  if (sum >= 255 * ONE) return 255;
  return sum >> PRECISION_BITS;
}

/** One RGB image (Uint8Array, 3 bytes a pixel) resized with Pillow's Image.resize(size, BICUBIC). */
export function resizeBicubic(rgb, width, height, outWidth, outHeight) {
  if (width === outWidth && height === outHeight) return Uint8Array.from(rgb);
  const horiz = coefficients(width, outWidth);
  const vert = coefficients(height, outHeight);
  let source = rgb;
  let rows = height;
  let firstRow = 0;
  const needHorizontal = width !== outWidth;
  const needVertical = height !== outHeight;
  if (needHorizontal) {
    // Only the rows the vertical pass reads (Resample.c: ybox_first .. ybox_last).
    firstRow = needVertical ? vert.bounds[0] : 0;
    const lastRow = needVertical
      ? vert.bounds[outHeight * 2 - 2] + vert.bounds[outHeight * 2 - 1] : height;
    rows = lastRow - firstRow;
    const temp = new Uint8Array(outWidth * rows * 3);
    const { ksize, bounds, kk } = horiz;
    for (let y = 0; y < rows; y++) {
      const rowIn = (y + firstRow) * width * 3;
      const rowOut = y * outWidth * 3;
      for (let xx = 0; xx < outWidth; xx++) {
        const xmin = bounds[xx * 2];
        const count = bounds[xx * 2 + 1];
        const k = xx * ksize;
        let r = HALF; let g = HALF; let b = HALF;
        for (let x = 0; x < count; x++) {
          const w = kk[k + x];
          const p = rowIn + (xmin + x) * 3;
          r += source[p] * w; g += source[p + 1] * w; b += source[p + 2] * w;
        }
        const o = rowOut + xx * 3;
        temp[o] = clip8(r); temp[o + 1] = clip8(g); temp[o + 2] = clip8(b);
      }
    }
    source = temp;
  }
  if (!needVertical) return source === rgb ? Uint8Array.from(rgb) : source;
  const w3 = outWidth * 3;
  const out = new Uint8Array(w3 * outHeight);
  const { ksize, bounds, kk } = vert;
  for (let yy = 0; yy < outHeight; yy++) {
    const ymin = bounds[yy * 2] - firstRow;
    const count = bounds[yy * 2 + 1];
    const k = yy * ksize;
    for (let c = 0; c < w3; c++) {
      let sum = HALF;
      for (let y = 0; y < count; y++) sum += source[(ymin + y) * w3 + c] * kk[k + y];
      out[yy * w3 + c] = clip8(sum);
    }
  }
  return out;
}

/** RGBA (canvas ImageData, not premultiplied) -> RGB on white, as the API's paste on a white
 * background with the alpha band as mask (Pillow's BLEND rounding). */
export function rgbaToRgbOnWhite(rgba) {
  const n = rgba.length / 4;
  const rgb = new Uint8Array(n * 3);
  for (let i = 0; i < n; i++) {
    const a = rgba[i * 4 + 3];
    for (let c = 0; c < 3; c++) {
      const v = rgba[i * 4 + c];
      if (a === 255) {
        rgb[i * 3 + c] = v;
      } else {
        const t = 255 * (255 - a) + v * a + 128;
        rgb[i * 3 + c] = (t + (t >> 8)) >> 8;
      }
    }
  }
  return rgb;
}

/** uint8 RGB -> the model's float32 input in [0, 1] (the API divides by 255 in float32). */
export function toUnitFloat(rgb) {
  const out = new Float32Array(rgb.length);
  for (let i = 0; i < rgb.length; i++) out[i] = Math.fround(rgb[i] / 255);
  return out;
}

/** RGBA pixels of an upright photo -> the model's (1, size, size, 3) float32 input, flattened. */
export function modelInput(rgba, width, height, outWidth, outHeight) {
  return toUnitFloat(resizeBicubic(rgbaToRgbOnWhite(rgba), width, height, outWidth, outHeight));
}
