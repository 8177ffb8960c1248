// Reference for bench_tokenizer.c: the Hugging Face tokenizers Rust core (npm @anush008/tokenizers 0.6.0)
// encoding the same IMDB texts one at a time (awaited in sequence, so single-threaded), same output format.
// usage: node bench/bench_tokenizer_node.js FILE.jsonl.gz MAX_TEXTS TOKENIZER.json...
'use strict';
const fs = require('fs');
const zlib = require('zlib');
const path = require('path');
const { Tokenizer } = require(path.join(__dirname, '..', 'tools', 'node_modules', '@anush008', 'tokenizers'));

async function main() {
  const [file, maxTexts, ...toks] = process.argv.slice(2);
  const max = parseInt(maxTexts, 10);
  let data = fs.readFileSync(file);
  if (file.endsWith('.gz')) data = zlib.gunzipSync(data);
  const texts = [];
  let bytes = 0;
  for (const line of data.toString('utf8').split('\n')) {
    if (!line.trim() || (max > 0 && texts.length >= max)) continue;
    const t = JSON.parse(line).text;
    if (typeof t === 'string') { texts.push(t); bytes += Buffer.byteLength(t); }
  }
  for (const tf of toks) {
    const tok = Tokenizer.fromFile(tf);
    let tokens = 0;
    const t0 = process.hrtime.bigint(), c0 = process.cpuUsage();
    for (const t of texts) tokens += (await tok.encode(t, null, { addSpecialTokens: true })).getLength();
    const s = Number(process.hrtime.bigint() - t0) / 1e9, c = process.cpuUsage(c0);
    const cpu = (c.user + c.system) / 1e6;   // all threads of the process, libuv's worker included
    console.log(JSON.stringify({ tokenizer: tf, texts: texts.length, bytes, seconds: +s.toFixed(3), cpu_seconds: +cpu.toFixed(3),
      texts_per_s: +(texts.length / s).toFixed(1), mb_per_s: +(bytes / s / 1e6).toFixed(2), tokens }));
  }
}
main().catch((e) => { console.error(e); process.exit(1); });
