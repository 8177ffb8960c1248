// Writes tests/fixtures/tokenizers/extra_ids/<tokenizer>.jsonl: ids, type ids, ids without special tokens
// and decoded text (with and without special tokens) from the Hugging Face tokenizers Rust core, on texts
// chosen to stress the edges (unicode, emoji, CJK, accents, whitespace runs, long words, special-token
// strings, pairs). Usage: cd tools && npm install @anush008/tokenizers@0.6.0 && node gen_tokenizer_ids.js
'use strict';
const fs = require('fs');
const path = require('path');
const { Tokenizer } = require('@anush008/tokenizers');

const TOKS = path.join(__dirname, '..', 'tests', 'fixtures', 'tokenizers');
const OUT = path.join(TOKS, 'extra_ids');

const longWord = 'pneumonoultramicroscopicsilicovolcanoconiosis'.repeat(3);
const texts = [
  ['Ça va? Très bien, merci. Ångström, naïve, coöperate, résumé', null],
  ['Zürich Œuvre ÆØÅ æøå ß ẞ İstanbul ı ǈ ǉ', null],
  ['ΑΒΓ αβγ Σίσυφος ΟΔΥΣΣΕΥΣ', null],
  ['Привет, мир! Ёлка', null],
  ['東京都の天気は晴れです。北京欢迎你！서울 한국어', null],
  ['😀😃😄 👨‍👩‍👧‍👦 🏳️‍🌈 👍🏿 🇫🇷 ❤️', null],
  ['a\u0301 e\u0300 o\u0308 n\u0303 (combining marks)', null],
  ['tabs\t\t\tand\nnewlines\n\n\nand   spaces     end', null],
  ['\u3000ideographic\u3000space \u2028line\u2029para \u0085nel', null],
  ['     ', null],
  ['\t\n\r', null],
  [longWord, null],
  ['x'.repeat(150), null],
  ['a' + '\u00e9'.repeat(120), null],
  ['[CLS] [SEP] [PAD] [MASK] [UNK] in text', null],
  ['<s></s><pad><unk><mask> <mask>word', null],
  ['<|endoftext|>Hello<|endoftext|> <|endoftext|> world', null],
  ['<s> starts and ends </s>', null],
  ['hello  <mask>  there', null],
  ['HELLO World MiXeD CaSe', null],
  ["I'm you're he's we'll they'd it's don't CAN'T", null],
  ['$1,234.56 + 7% = ?? #hashtag @user e-mail@example.org', null],
  ['3.14159265358979 and 2718281828 and ٣٤٥ and ⅧⅨ', null],
  ['(parens) [brackets] {braces} <angles> «guillemets» “quotes” ‘single’', null],
  ['…—–-‐ ellipsis and dashes', null],
  ['ﬁﬂ ＡＢＣ ｶﾀｶﾅ ①②③ ㎏', null],
  ['\u200b\u200c\u200d\ufeff zero widths', null],
  ['mixed العربية עברית हिन्दी ไทย text', null],
  ['𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝕄𝕒𝕥𝕙 🄰🄱', null],
  ['<0x41> literal byte token text ▁ ▁▁ ▁x', null],
  ['first sentence here.', 'second sentence there!'],
  ['日本語', '中文'],
  ['', 'only the pair'],
  ['only the text', ''],
  ['   spaces   ', '   more   spaces   '],
  ['<s>special</s>', '[SEP] pair [CLS]'],
  [longWord, 'short'],
  ['emoji 🎉', 'accents éèê'],
];

const tokenizers = [
  ['bert-base-uncased', path.join(TOKS, 'bert-base-uncased', 'tokenizer.json')],
  ['gpt2', path.join(TOKS, 'gpt2', 'tokenizer.json')],
  ['pythia-gpt-neox-20b', path.join(TOKS, 'pythia-gpt-neox-20b', 'tokenizer.json')],
  ['roberta-base', path.join(TOKS, 'roberta-base', 'tokenizer.constructed.json')],
  ['mistral-7b-v0.1', path.join(TOKS, 'mistral-7b-v0.1', 'tokenizer.json')],
];

// Small synthetic tokenizer.json files covering components the real fixtures do not use: Unigram with
// Metaspace and byte fallback, Split with every behaviour, Whitespace/Digits/Punctuation, NFKC/Strip/
// Replace/Lowercase normalizers, single_word/lstrip/rstrip added tokens, TemplateProcessing pairs,
// BertProcessing, and the Strip/Replace/Fuse/BPEDecoder decoders.
function added(id, content, o = {}) {
  return Object.assign({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }, o);
}

function syntheticTokenizers() {
  const bert = JSON.parse(fs.readFileSync(path.join(TOKS, 'bert-base-uncased', 'tokenizer.json'), 'utf8'));
  const gpt2 = JSON.parse(fs.readFileSync(path.join(TOKS, 'gpt2', 'tokenizer.json'), 'utf8'));
  const out = {};
  // 1. WordPiece with a normalizer Sequence and a pre-tokenizer Sequence
  out['synthetic-wordpiece'] = {
    version: '1.0', truncation: null, padding: null,
    added_tokens: bert.added_tokens.concat([
      added(30522, 'hello', { single_word: true, normalized: true, special: false }),
      added(30523, '<sw>', { lstrip: true, rstrip: true }),
    ]),
    normalizer: { type: 'Sequence', normalizers: [
      { type: 'NFKC' }, { type: 'Replace', pattern: { Regex: '[0-9]{4,}' }, content: '#' },
      { type: 'Strip', strip_left: true, strip_right: true }, { type: 'Lowercase' }, { type: 'StripAccents' }] },
    pre_tokenizer: { type: 'Sequence', pretokenizers: [
      { type: 'WhitespaceSplit' }, { type: 'Punctuation', behavior: 'Contiguous' }, { type: 'Digits', individual_digits: true }] },
    post_processor: { type: 'BertProcessing', sep: ['[SEP]', 102], cls: ['[CLS]', 101] },
    decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
    model: bert.model,
  };
  out['synthetic-whitespace'] = Object.assign({}, out['synthetic-wordpiece'], {
    normalizer: { type: 'BertNormalizer', clean_text: true, handle_chinese_chars: false, strip_accents: false, lowercase: true },
    pre_tokenizer: { type: 'Whitespace' },
    post_processor: { type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '[CLS]', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [{ Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '[SEP]', type_id: 0 } },
             { Sequence: { id: 'B', type_id: 2 } }, { SpecialToken: { id: '[SEP]', type_id: 2 } }],
      special_tokens: { '[CLS]': { id: '[CLS]', ids: [101], tokens: ['[CLS]'] }, '[SEP]': { id: '[SEP]', ids: [102], tokens: ['[SEP]'] } } },
    decoder: { type: 'Sequence', decoders: [{ type: 'WordPiece', prefix: '##', cleanup: false }, { type: 'Strip', content: ' ', start: 2, stop: 1 }] },
  });
  // 2. byte-level BPE cut to its first merges, with Split pre-tokenizers of every behaviour
  const NMERGES = 4000;
  const merges = gpt2.model.merges.slice(0, NMERGES);
  const keep = new Set();
  for (const [tok, id] of Object.entries(gpt2.model.vocab)) if (id < 256) keep.add(tok);
  for (const m of merges) { const [a, b] = m.split(' '); keep.add(a); keep.add(b); keep.add(a + b); }
  const vocab = {};
  let next = 0;
  for (const [tok, id] of Object.entries(gpt2.model.vocab).sort((x, y) => x[1] - y[1])) if (keep.has(tok)) vocab[tok] = next++;
  vocab['<|endoftext|>'] = next;
  const bpeModel = { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null,
                     fuse_unk: false, byte_fallback: false, vocab, merges: merges.map((m) => m.split(' ')) };
  const behaviours = ['Removed', 'Isolated', 'MergedWithPrevious', 'MergedWithNext', 'Contiguous'];
  behaviours.forEach((beh, i) => {
    out['synthetic-split-' + beh.toLowerCase()] = {
      version: '1.0', truncation: null, padding: null,
      added_tokens: [added(next, '<|endoftext|>', { normalized: true })],
      normalizer: { type: 'NFC' },
      pre_tokenizer: { type: 'Sequence', pretokenizers: [
        { type: 'Split', pattern: { Regex: i % 2 ? '[0-9]+|[.,!?]' : '\\s+' }, behavior: beh, invert: false },
        { type: 'Split', pattern: { String: 'e' }, behavior: beh, invert: i === 3 },
        { type: 'ByteLevel', add_prefix_space: i === 2, trim_offsets: true, use_regex: i !== 4 }] },
      post_processor: { type: 'TemplateProcessing',
        single: [{ Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '<|endoftext|>', type_id: 0 } }],
        pair: [{ Sequence: { id: 'A', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }, { SpecialToken: { id: '<|endoftext|>', type_id: 1 } }],
        special_tokens: { '<|endoftext|>': { id: '<|endoftext|>', ids: [next], tokens: ['<|endoftext|>'] } } },
      decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
      model: bpeModel,
    };
  });
  // 3. Unigram (SentencePiece-style) with Metaspace, byte fallback and a Replace/Fuse/Strip decoder chain
  const pieces = [['<unk>', 0], ['<s>', 0], ['</s>', 0]];
  for (let b = 0; b < 256; b++) pieces.push(['<0x' + b.toString(16).toUpperCase().padStart(2, '0') + '>', 0]);
  const seen = new Set(pieces.map((p) => p[0]));
  let rank = 0;
  for (const tok of Object.keys(bert.model.vocab)) {
    if (tok.startsWith('[') || tok.startsWith('##') && tok.length < 3) continue;
    const cands = tok.startsWith('##') ? [tok.slice(2)] : ['\u2581' + tok, tok];
    for (const c of cands) if (!seen.has(c) && rank < 6000) { seen.add(c); pieces.push([c, -1 - Math.log(2 + rank++)]); }
  }
  pieces.push(['\u2581', -2.5]);
  for (const scheme of ['always', 'first']) {
    out['synthetic-unigram-' + scheme] = {
      version: '1.0', truncation: null, padding: null,
      added_tokens: [added(0, '<unk>'), added(1, '<s>'), added(2, '</s>')],
      normalizer: { type: 'Sequence', normalizers: [{ type: 'NFKD' }, { type: 'Lowercase' }] },
      pre_tokenizer: { type: 'Metaspace', replacement: '\u2581', prepend_scheme: scheme, split: scheme === 'always' },
      post_processor: { type: 'TemplateProcessing',
        single: [{ Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '</s>', type_id: 0 } }],
        pair: [{ Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '</s>', type_id: 0 } },
               { Sequence: { id: 'B', type_id: 1 } }, { SpecialToken: { id: '</s>', type_id: 1 } }],
        special_tokens: { '</s>': { id: '</s>', ids: [2], tokens: ['</s>'] } } },
      decoder: scheme === 'always'
        ? { type: 'Metaspace', replacement: '\u2581', prepend_scheme: 'always', split: true }
        : { type: 'Sequence', decoders: [{ type: 'Replace', pattern: { String: '\u2581' }, content: ' ' },
            { type: 'ByteFallback' }, { type: 'Fuse' }, { type: 'Strip', content: ' ', start: 1, stop: 0 }] },
      model: { type: 'Unigram', unk_id: 0, vocab: pieces, byte_fallback: scheme === 'always' },
    };
  }
  // 4. T5-style: SentencePiece's nmt_nfkc Precompiled charsmap + whitespace squeeze, Metaspace, Unigram. The charsmap
  // comes from the committed fixture, or on first generation from SPM_PRECOMPILED_JSON (huggingface/spm_precompiled's
  // src/precompiled.json).
  const pcFixture = path.join(OUT, 'synthetic-unigram-precompiled', 'tokenizer.json');
  const pc = process.env.SPM_PRECOMPILED_JSON ? JSON.parse(fs.readFileSync(process.env.SPM_PRECOMPILED_JSON, 'utf8'))
    : JSON.parse(fs.readFileSync(pcFixture, 'utf8')).normalizer.normalizers[0];
  out['synthetic-unigram-precompiled'] = Object.assign({}, out['synthetic-unigram-always'], {
    normalizer: { type: 'Sequence', normalizers: [{ type: 'Precompiled', precompiled_charsmap: pc.precompiled_charsmap },
      { type: 'Replace', pattern: { Regex: ' {2,}' }, content: ' ' }] },
    pre_tokenizer: { type: 'Sequence', pretokenizers: [{ type: 'WhitespaceSplit' },
      { type: 'Metaspace', replacement: '\u2581', prepend_scheme: 'always', split: true }] },
    model: { type: 'Unigram', unk_id: 0, vocab: pieces, byte_fallback: false },
  });
  return out;
}

async function main() {
  fs.mkdirSync(OUT, { recursive: true });
  for (const [name, json] of Object.entries(syntheticTokenizers())) {
    const dir = path.join(OUT, name);
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(json));
    tokenizers.push([name, path.join(dir, 'tokenizer.json')]);
  }
  for (const [name, file] of tokenizers) {
    const tok = Tokenizer.fromFile(file);
    const lines = [];
    for (const [text, pair] of texts) {
      const e = await tok.encode(text, pair, { addSpecialTokens: true });
      const ns = await tok.encode(text, pair, { addSpecialTokens: false });
      const ids = e.getIds();
      lines.push(JSON.stringify({
        text, pair,
        ids, type_ids: e.getTypeIds(), attention_mask: e.getAttentionMask(),
        ids_no_special: ns.getIds(),
        decoded: await tok.decode(ids, false),
        decoded_skip_special: await tok.decode(ids, true),
      }));
    }
    fs.writeFileSync(path.join(OUT, name + '.jsonl'), lines.join('\n') + '\n');
    console.log(name + ': ' + lines.length + ' rows');
  }
}
module.exports = { texts };   // tools/gen_spm_ids.js encodes the same texts
if (require.main === module) main().catch((e) => { console.error(e); process.exit(1); });
