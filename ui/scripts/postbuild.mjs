// After `vite build`: the manifest's PNG icons, then a .gz beside every compressible file
// (the server sends it to browsers that accept gzip).
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { png } from './icons.mjs';

const outDir = fileURLToPath(new URL('../../mediad/static/', import.meta.url));
const COMPRESSIBLE = /\.(js|mjs|css|html|svg|webmanifest|json|txt|map)$/;

if (!existsSync(join(outDir, 'index.html'))) {
  console.error(`postbuild: ${join(outDir, 'index.html')} is missing; did vite build run?`);
  process.exit(1);
}

writeFileSync(join(outDir, 'icon-192.png'), png(192));
writeFileSync(join(outDir, 'icon-512.png'), png(512));
writeFileSync(join(outDir, 'icon-maskable-512.png'), png(512, true));

function* files(dir) {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) yield* files(path);
    else yield path;
  }
}

let count = 0;
let before = 0;
let after = 0;
for (const path of files(outDir)) {
  if (!COMPRESSIBLE.test(path)) continue;
  const data = readFileSync(path);
  const gz = gzipSync(data, { level: 9 });
  writeFileSync(`${path}.gz`, gz);
  count += 1;
  before += data.length;
  after += gz.length;
}
console.log(
  `postbuild: icons written; ${count} files gzipped (${before} → ${after} bytes) in ${relative(process.cwd(), outDir)}`,
);
