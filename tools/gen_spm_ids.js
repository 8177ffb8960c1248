// Writes tests/fixtures/tokenizers/spm/<name>.jsonl: ids, type ids, ids without special tokens and decoded text
// from the Hugging Face tokenizers Rust core for the tokenizer.json files tools/gen_spm_fixtures.py wrote (what
// transformers' converters build from the SentencePiece models), on gen_tokenizer_ids.js's texts plus texts aimed
// at SentencePiece (digits, whitespace runs, tabs, the models' control and user-defined symbols, U+2581).
// Usage: cd tools && npm install @anush008/tokenizers@0.6.0 && node gen_spm_ids.js DIR_FROM_gen_spm_fixtures.py
'use strict';
const fs = require('fs');
const path = require('path');
const { Tokenizer } = require('@anush008/tokenizers');
const { texts } = require('./gen_tokenizer_ids.js');

const OUT = process.env.SPM_IDS_OUT || path.join(__dirname, '..', 'tests', 'fixtures', 'tokenizers', 'spm');
const spmTexts = [
  ['Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May.', null],
  ['Weng earns $12 an hour for babysitting. Yesterday, she just did 50 minutes of babysitting.', null],
  ['Hello', null],
  [' Hello', null],
  ['  two leading, two trailing  ', null],
  ['a\tb\t\tc\n\nd \t e', null],
  ['\u2581already\u2581meta \u2581 x\u2581\u2581y', null],
  ['1234567890 3.5% 1,000,000', null],
  ['<s>Hello</s> <unk> <pad> <bos> <eos> <s> </s>', null],
  ['[CLS] hi [SEP] [MASK] [PAD] [UNK]', null],
  ['<|user|>How many?<|end|> <ctrl> <|extra|> word words sword', null],
  ['<start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n', null],
  ['How many clips did Natalia sell?', 'She sold 72 clips altogether.'],
  ['ÀÉÎÕÜ àéîõü ﬁ ＡＢＣ', 'ＨＥＬＬＯ…'],
];

async function main() {
  const dir = process.argv[2];
  if (!dir) throw new Error('usage: node gen_spm_ids.js DIR');
  for (const name of fs.readdirSync(dir).sort()) {
    const file = path.join(dir, name, 'tokenizer.json');
    if (!fs.existsSync(file)) continue;
    const json = JSON.parse(fs.readFileSync(file, 'utf8'));
    const post = json._post;
    delete json._post;
    fs.writeFileSync(file, JSON.stringify(json));
    // the fast class's post-processor needs the ids the Rust core assigned to the special tokens
    let tok = Tokenizer.fromFile(file);
    const idOf = (t) => { const id = tok.tokenToId(t); return id === null || id === undefined ? post.unk_id : id; };
    const single = [], pair = [], special = {};
    for (let k = 0; k < 2; k++) {
      for (const arr of k ? [pair] : [single, pair]) {
        if (post.pre && (k === 0 || post.pre_on_b)) arr.push({ SpecialToken: { id: post.pre, type_id: k } });
        arr.push({ Sequence: { id: k ? 'B' : 'A', type_id: k } });
        if (post.post) arr.push({ SpecialToken: { id: post.post, type_id: k } });
      }
    }
    for (const t of [post.pre, post.post]) if (t) special[t] = { id: t, ids: [idOf(t)], tokens: [t] };
    json.post_processor = { type: 'TemplateProcessing', single, pair, special_tokens: special };
    fs.writeFileSync(file, JSON.stringify(json));
    tok = Tokenizer.fromFile(file);
    const lines = [];
    for (const [text, pr] of texts.concat(spmTexts)) {
      const e = await tok.encode(text, pr, { addSpecialTokens: true });
      const ns = await tok.encode(text, pr, { addSpecialTokens: false });
      const ids = e.getIds();
      lines.push(JSON.stringify({
        text, pair: pr,
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
