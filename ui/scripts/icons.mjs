// Draws the PNG icons of the manifest (the same picture as public/icon.svg) with no
// dependency: a tiny anti-aliased rasterizer and a PNG encoder over node:zlib.
import { deflateSync } from 'node:zlib';

const BG = [0x4f, 0x46, 0xe5];
const FG = [0xff, 0xff, 0xff];

// The picture on a 512 × 512 canvas (as icon.svg).
const ARROW = [
  [224, 112],
  [288, 112],
  [288, 264],
  [360, 264],
  [256, 376],
  [152, 264],
  [224, 264],
];
const BAR = { x: 136, y: 400, w: 240, h: 40, r: 20 };

function inRoundedRect(px, py, { x, y, w, h, r }) {
  if (px < x || py < y || px > x + w || py > y + h) return false;
  const cx = Math.min(Math.max(px, x + r), x + w - r);
  const cy = Math.min(Math.max(py, y + r), y + h - r);
  return (px - cx) ** 2 + (py - cy) ** 2 <= r * r;
}

function inPolygon(px, py, pts) {
  let inside = false;
  for (let i = 0, j = pts.length - 1; i < pts.length; j = i++) {
    const [xi, yi] = pts[i];
    const [xj, yj] = pts[j];
    if (yi > py !== yj > py && px < ((xj - xi) * (py - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}

/**
 * RGBA pixels of the icon at `size`. `maskable`: the background fills the square and the
 * picture shrinks into the safe zone (the inner 80 % circle).
 */
function draw(size, maskable) {
  const px = Buffer.alloc(size * size * 4);
  const ss = 4; // 4 × 4 samples a pixel
  const scale = 512 / size;
  const shrink = maskable ? 0.72 : 1;
  const bgRect = maskable ? { x: 0, y: 0, w: 512, h: 512, r: 0 } : { x: 0, y: 0, w: 512, h: 512, r: 112 };
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      let bg = 0;
      let fg = 0;
      for (let sy = 0; sy < ss; sy++) {
        for (let sx = 0; sx < ss; sx++) {
          const X = (x + (sx + 0.5) / ss) * scale;
          const Y = (y + (sy + 0.5) / ss) * scale;
          if (!inRoundedRect(X, Y, bgRect)) continue;
          bg++;
          // The picture's own coordinates (shrunk about the centre for maskable).
          const U = (X - 256) / shrink + 256;
          const V = (Y - 256) / shrink + 256;
          if (inPolygon(U, V, ARROW) || inRoundedRect(U, V, BAR)) fg++;
        }
      }
      const n = ss * ss;
      const i = (y * size + x) * 4;
      const a = bg / n;
      const f = bg ? fg / bg : 0;
      for (let c = 0; c < 3; c++) px[i + c] = Math.round(BG[c] * (1 - f) + FG[c] * f);
      px[i + 3] = Math.round(a * 255);
    }
  }
  return px;
}

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(buf) {
  let c = 0xffffffff;
  for (const b of buf) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type, data) {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([len, body, crc]);
}

export function png(size, maskable = false) {
  const rgba = draw(size, maskable);
  const raw = Buffer.alloc(size * (size * 4 + 1));
  for (let y = 0; y < size; y++) {
    raw[y * (size * 4 + 1)] = 0; // filter: none
    rgba.copy(raw, y * (size * 4 + 1) + 1, y * size * 4, (y + 1) * size * 4);
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(size, 0);
  ihdr.writeUInt32BE(size, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 6; // RGBA
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', deflateSync(raw, { level: 9 })),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}
