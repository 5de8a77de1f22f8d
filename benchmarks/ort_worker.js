// ONNX Runtime's side of compare_pytorch.py --only onnxruntime: a worker that times inference of
// ONNX models, one request per line.
//
//   node ort_worker.js ORT_DIR
//
// ORT_DIR holds node_modules/onnxruntime-node (`npm install --ignore-scripts onnxruntime-node@1.30.0`
// there). Each line on stdin is a JSON request
//   {"model": "lenet.onnx", "batch": 64, "threads": 1, "min_time": 0.5}
// and gets one JSON line back:
//   {"per_s": runs per wall-clock second, "cpu_per_s": runs per second of the process's CPU time}
// or {"error": "..."}. Sessions are created once per (model, threads), as a server would: CPU
// execution provider, graph optimisation "all", sequential execution, `threads` intra-op threads,
// one inter-op thread. The input is uniform in [-1, 1) from a fixed seed, named as the model's
// first input, shaped (batch, 1, 28, 28). Exit status 77 when onnxruntime-node is not installed.
'use strict';
const fs = require('fs');
const path = require('path');
const readline = require('readline');

const [ortDir] = process.argv.slice(2);
if (!ortDir) {
    console.error('usage: node ort_worker.js ORT_DIR');
    process.exit(2);
}
const modulePath = path.join(ortDir, 'node_modules', 'onnxruntime-node');
if (!fs.existsSync(path.join(modulePath, 'package.json'))) {
    console.error(`onnxruntime-node is not installed in ${ortDir}`);
    process.exit(77);
}
const ort = require(modulePath);

const sessions = new Map();

async function session(model, threads) {
    const key = `${model}\n${threads}`;
    if (!sessions.has(key)) {
        sessions.set(key, await ort.InferenceSession.create(model, {
            intraOpNumThreads: threads,
            interOpNumThreads: 1,
            executionMode: 'sequential',
            graphOptimizationLevel: 'all',
        }));
    }
    return sessions.get(key);
}

function input(batch) {
    // A linear congruential generator: the same pixels on every run, no dependency.
    const values = new Float32Array(batch * 28 * 28);
    let state = 1;
    for (let i = 0; i < values.length; ++i) {
        state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
        values[i] = state / 2147483648 - 1;
    }
    return new ort.Tensor('float32', values, [batch, 1, 28, 28]);
}

async function time(request) {
    const s = await session(request.model, request.threads);
    const feeds = {[s.inputNames[0]]: input(request.batch)};
    for (let i = 0; i < 3; ++i) {
        await s.run(feeds); // warm-up: ORT's arena, the thread pool
    }
    let count = 0;
    const start = process.hrtime.bigint();
    const cpuStart = process.cpuUsage();
    for (;;) {
        await s.run(feeds);
        ++count;
        const elapsed = Number(process.hrtime.bigint() - start) / 1e9;
        if (elapsed >= request.min_time) {
            const cpu = process.cpuUsage(cpuStart);
            return {per_s: count / elapsed, cpu_per_s: count / ((cpu.user + cpu.system) / 1e6)};
        }
    }
}

const lines = readline.createInterface({input: process.stdin});
lines.on('line', async (line) => {
    lines.pause();
    let reply;
    try {
        reply = await time(JSON.parse(line));
    } catch (e) {
        reply = {error: String(e && e.message ? e.message : e)};
    }
    process.stdout.write(JSON.stringify(reply) + '\n');
    lines.resume();
});
