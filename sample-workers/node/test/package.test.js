'use strict';
/**
 * The SDK as an npm package: what `npm pack` ships, the protos copy it
 * loads, and declarations that name every value it exports.
 */

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { execFileSync } = require('node:child_process');
const ts = require('typescript');
const { SOURCE_DIR, TARGET_DIR, relativeFiles } = require('../scripts/copy-protos');
const { PROTO_DIR } = require('../lib/proto');
const sdk = require('../lib');

const PACKAGE_DIR = path.join(__dirname, '..');
const manifest = require('../package.json');

test("the package's protos/ holds exactly the repository's proto/protos (run setup.sh when it does not)", () => {
  const source = relativeFiles(SOURCE_DIR);
  assert.ok(source.includes('FunctionRpc.proto'), `${SOURCE_DIR} has FunctionRpc.proto`);
  assert.deepEqual(relativeFiles(TARGET_DIR), source);
  for (const rel of source) {
    const same = fs.readFileSync(path.join(SOURCE_DIR, rel)).equals(fs.readFileSync(path.join(TARGET_DIR, rel)));
    assert.ok(same, `protos/${rel} differs from proto/protos/${rel}: run sample-workers/node/setup.sh`);
  }
});

test('the SDK loads its protos from inside the package', () => {
  assert.equal(path.resolve(PROTO_DIR), path.resolve(TARGET_DIR));
  assert.ok(path.resolve(PROTO_DIR).startsWith(PACKAGE_DIR + path.sep));
});

test('package.json is publishable: name, entry points, types, files, engines, a prepack that copies the protos', () => {
  assert.equal(manifest.name, 'fnhost-worker');
  assert.equal(manifest.private, undefined);
  assert.equal(manifest.main, 'lib/index.js');
  assert.equal(manifest.types, 'types/index.d.ts');
  assert.deepEqual(manifest.exports['.'], { types: './types/index.d.ts', default: './lib/index.js' });
  assert.equal(manifest.engines.node, '>=18');
  assert.match(manifest.scripts.prepack, /copy-protos/);
  for (const [name, range] of Object.entries(manifest.dependencies)) {
    assert.match(range, /^\^\d+\.\d+\.\d+$/, `${name}: a caret range from the locked version`);
  }
  const lock = require('../package-lock.json');
  for (const [name, range] of Object.entries(manifest.dependencies)) {
    const locked = lock.packages[`node_modules/${name}`].version;
    assert.equal(range, `^${locked}`, `${name}'s range starts at the version the tests run with`);
  }
});

test('npm pack ships lib/, types/, protos/, README.md and package.json, nothing else', () => {
  const out = execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts', '--loglevel=error'], {
    cwd: PACKAGE_DIR,
    encoding: 'utf8',
  });
  const files = JSON.parse(out)[0].files.map((f) => f.path).sort();
  const expected = [
    'README.md',
    'package.json',
    ...fs.readdirSync(path.join(PACKAGE_DIR, 'lib')).map((f) => `lib/${f}`),
    ...fs.readdirSync(path.join(PACKAGE_DIR, 'types')).map((f) => `types/${f}`),
    ...relativeFiles(TARGET_DIR).map((f) => `protos/${f}`),
  ].sort();
  assert.deepEqual(files, expected);
});

test('types/index.d.ts declares every value lib/index.js exports, and no value it does not', () => {
  const file = path.join(PACKAGE_DIR, manifest.types);
  const program = ts.createProgram([file], { strict: true, noEmit: true, types: ['node'] });
  const checker = program.getTypeChecker();
  const module = checker.getSymbolAtLocation(program.getSourceFile(file));
  const declared = checker
    .getExportsOfModule(module)
    .filter((s) => s.flags & ts.SymbolFlags.Value)
    .map((s) => s.name)
    .sort();
  assert.deepEqual(declared, Object.keys(sdk).sort());
  const diagnostics = ts.getPreEmitDiagnostics(program).map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n'));
  assert.deepEqual(diagnostics, [], 'the declarations type-check on their own');
});
