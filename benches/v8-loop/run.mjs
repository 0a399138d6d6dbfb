// Runs a WASI program in Node's V8: node run.mjs PROGRAM.wasm ARGS...
// The program links darklaunch, whose proxy-wasm imports ("env") are
// stubbed: the loop never calls them.
import { readFile } from 'node:fs/promises';
import { WASI } from 'node:wasi';

const [file, ...args] = process.argv.slice(2);
const wasi = new WASI({ version: 'preview1', args: ['v8-loop', ...args], env: {}, returnOnExit: true });
const module = await WebAssembly.compile(await readFile(file));
const imports = { wasi_snapshot_preview1: wasi.wasiImport, env: {} };
for (const i of WebAssembly.Module.imports(module)) {
  if (i.module === 'env') imports.env[i.name] = () => 0;
}
const instance = await WebAssembly.instantiate(module, imports);
// The library's reactor entry point would make WASI refuse to start a command.
const exports = { ...instance.exports };
delete exports._initialize;
process.exitCode = wasi.start({ exports });
