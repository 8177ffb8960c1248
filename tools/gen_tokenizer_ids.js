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

async function main() {
  fs.mkdirSync(OUT, { recursive: true });
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
main().catch((e) => { console.error(e); process.exit(1); });
