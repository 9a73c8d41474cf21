'use strict';
/**
 * Copies the repository's protocol definition (`proto/protos/` at the
 * repository root) into this package's `protos/`: the folder `lib/proto.js`
 * loads and the package ships, so an installed package never reads outside
 * its own directory. Run by `prepack` (`npm pack` and `npm publish` ship a
 * fresh copy) and by `setup.sh` (the source tree runs from a copy too).
 *
 * Only files whose bytes differ are written, each through a rename, so a
 * worker starting meanwhile (the end-to-end tests run the source tree) never
 * reads a half-written file; files the source no longer has are removed.
 */

const fs = require('node:fs');
const path = require('node:path');

/** The repository's `.proto` files. */
const SOURCE_DIR = path.join(__dirname, '../../../proto/protos');
/** The package's copy. */
const TARGET_DIR = path.join(__dirname, '../protos');

/**
 * Paths of every file under `dir`, relative to it with `/` separators,
 * sorted; `[]` when `dir` does not exist.
 *
 * @param {string} dir
 * @returns {string[]}
 */
function relativeFiles(dir) {
  if (!fs.existsSync(dir)) return [];
  const out = [];
  const walk = (rel) => {
    for (const entry of fs.readdirSync(path.join(dir, rel), { withFileTypes: true })) {
      const child = rel === '' ? entry.name : `${rel}/${entry.name}`;
      if (entry.isDirectory()) walk(child);
      else out.push(child);
    }
  };
  walk('');
  return out.sort();
}

/**
 * Makes `to` hold exactly the files of `from`.
 *
 * @param {string} [from=SOURCE_DIR]
 * @param {string} [to=TARGET_DIR]
 * @returns {string[]} the relative paths written or removed
 * @throws {Error} when `from` has no `FunctionRpc.proto`
 */
function syncProtos(from = SOURCE_DIR, to = TARGET_DIR) {
  const wanted = relativeFiles(from);
  if (!wanted.includes('FunctionRpc.proto')) {
    throw new Error(`${from} has no FunctionRpc.proto: run this from the fnhost repository`);
  }
  const changed = [];
  for (const rel of wanted) {
    const bytes = fs.readFileSync(path.join(from, rel));
    const target = path.join(to, rel);
    if (fs.existsSync(target) && fs.readFileSync(target).equals(bytes)) continue;
    fs.mkdirSync(path.dirname(target), { recursive: true });
    const temp = `${target}.${process.pid}.tmp`;
    fs.writeFileSync(temp, bytes);
    fs.renameSync(temp, target);
    changed.push(rel);
  }
  for (const rel of relativeFiles(to)) {
    if (!wanted.includes(rel)) {
      fs.rmSync(path.join(to, rel));
      changed.push(rel);
    }
  }
  return changed;
}

if (require.main === module) {
  try {
    syncProtos();
  } catch (err) {
    process.stderr.write(`copy-protos: ${err.message}\n`);
    process.exit(1);
  }
}

module.exports = { SOURCE_DIR, TARGET_DIR, relativeFiles, syncProtos };
