// Unit tests for web/assets/lib/highlight.js: per-language token classes on a sample, lossless
// tokens, DOM output through the shim, unknown languages, and linear time on big inputs.
// Run: node --test web/tests/unit/
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { toHTML } from './dom-shim.mjs';
import { highlight, tokenize, languageOf, TOKEN_CLASSES } from '../../assets/lib/highlight.js';

// language -> [sample, [[class, text], ...] that must appear as tokens]
const SAMPLES = {
  js: ["import { x } from './y.js';\n// note\nconst n = 42, s = `t${n}`;\nfunction add(a, b) { return a + b; }\nclass Foo {}",
    [['keyword', 'import'], ['string', "'./y.js'"], ['comment', '// note'], ['number', '42'], ['string', '`t${n}`'],
      ['function', 'add'], ['type', 'Foo'], ['operator', '+'], ['punct', ';']]],
  ts: ['interface P { name: string }\nexport type Id = string | null;',
    [['keyword', 'interface'], ['type', 'P'], ['type', 'string'], ['keyword', 'null'], ['operator', '|']]],
  jsx: ['const App = () => <div className="a">Hi</div>;',
    [['tag', 'div'], ['attr', 'className'], ['string', '"a"'], ['operator', '=>'], ['punct', '<']]],
  tsx: ['export default function App(): JSX.Element { return <Box open />; }',
    [['keyword', 'function'], ['function', 'App'], ['tag', 'Box'], ['punct', '/>']]],
  json: ['{"name": "threadline", "n": 1.5e3, "ok": true, "x": null}',
    [['attr', '"name"'], ['string', '"threadline"'], ['number', '1.5e3'], ['keyword', 'true'], ['keyword', 'null'], ['punct', '{']]],
  python: ["@app.route('/')\ndef hello(name: str = None) -> str:\n    \"\"\"Doc.\"\"\"\n    # comment\n    return f\"hi {name}\"",
    [['attr', '@app.route'], ['keyword', 'def'], ['function', 'hello'], ['type', 'str'], ['keyword', 'None'],
      ['string', '"""Doc."""'], ['comment', '# comment'], ['string', 'f"hi {name}"'], ['operator', '->']]],
  rust: ["#[derive(Debug)]\nstruct P<'a> { s: &'a str }\nfn main() {\n    let c = 'x'; let r = r#\"raw \"q\"\"#;\n    println!(\"{}\", 1_000u32); // hi\n}",
    [['attr', '#[derive(Debug)]'], ['keyword', 'struct'], ['type', 'P'], ['type', "'a"], ['type', 'str'], ['string', "'x'"],
      ['string', 'r#"raw "q""#'], ['function', 'println!'], ['number', '1_000u32'], ['comment', '// hi'], ['function', 'main']]],
  go: ['package main\nfunc main() {\n\ts := `raw`\n\tvar n int = 0x1F\n\tfmt.Println(s) // c\n}',
    [['keyword', 'package'], ['keyword', 'func'], ['function', 'main'], ['string', '`raw`'], ['type', 'int'],
      ['number', '0x1F'], ['function', 'Println'], ['comment', '// c'], ['operator', ':=']]],
  java: ['@Override\npublic static void main(String[] args) { System.out.println("hi"); /* c */ }',
    [['attr', '@Override'], ['keyword', 'public'], ['type', 'void'], ['type', 'String'], ['function', 'println'], ['string', '"hi"'], ['comment', '/* c */']]],
  kotlin: ['data class User(val name: String)\nfun greet(u: User) = """Hi ${u.name}"""',
    [['keyword', 'class'], ['type', 'User'], ['keyword', 'val'], ['keyword', 'fun'], ['function', 'greet'], ['string', '"""Hi ${u.name}"""']]],
  c: ['#include <stdio.h>\nint main(void) { char c = \'a\'; printf("%d\\n", 10); return 0; }',
    [['attr', '#include <stdio.h>'], ['type', 'int'], ['function', 'main'], ['string', "'a'"], ['string', '"%d\\n"'], ['number', '10'], ['keyword', 'return']]],
  cpp: ['#include <vector>\nnamespace app { template<typename T> class Box { public: T v; }; } // c',
    [['attr', '#include <vector>'], ['keyword', 'namespace'], ['keyword', 'template'], ['keyword', 'typename'], ['type', 'Box'], ['comment', '// c']]],
  csharp: ['using System;\npublic class P { static void Main() { var s = @"C:\\path"; Console.WriteLine($"{s}"); } }',
    [['keyword', 'using'], ['keyword', 'class'], ['type', 'P'], ['function', 'Main'], ['string', '@"C:\\path"'], ['string', '$"{s}"'], ['type', 'Console']]],
  bash: ['#!/bin/bash\nexport PATH="$HOME/bin:$PATH"\nfor f in *.txt; do\n  grep -n \'x\' "$f" | wc -l > out 2>&1\ndone\necho $USER',
    [['comment', '#!/bin/bash'], ['keyword', 'export'], ['attr', 'PATH'], ['string', '"$HOME/bin:$PATH"'], ['keyword', 'for'],
      ['keyword', 'do'], ['function', 'grep'], ['attr', '-n'], ['string', "'x'"], ['operator', '|'], ['function', 'wc'], ['keyword', 'done'], ['attr', '$USER']]],
  sql: ["SELECT id, COUNT(*) AS n FROM users\nWHERE name LIKE 'a%' AND age > 18 -- adults\nCREATE TABLE t (id INTEGER PRIMARY KEY);",
    [['keyword', 'SELECT'], ['function', 'COUNT'], ['keyword', 'FROM'], ['string', "'a%'"], ['number', '18'], ['comment', '-- adults'], ['type', 'INTEGER'], ['operator', '>']]],
  html: ['<!DOCTYPE html>\n<!-- c -->\n<div class="box" hidden>Hi &amp; bye</div>\n<script>const a = 1;</script>\n<style>p { color: red; }</style>',
    [['keyword', '<!DOCTYPE html>'], ['comment', '<!-- c -->'], ['tag', 'div'], ['attr', 'class'], ['string', '"box"'], ['attr', 'hidden'],
      ['number', '&amp;'], ['keyword', 'const'], ['attr', 'color'], ['tag', 'script'], ['punct', '</']]],
  xml: ['<?xml version="1.0"?>\n<root attr=\'v\'><![CDATA[x]]><child/></root>',
    [['keyword', '<?xml version="1.0"?>'], ['tag', 'root'], ['attr', 'attr'], ['string', "'v'"], ['string', '<![CDATA[x]]>'], ['punct', '/>']]],
  css: ['/* c */\n@media (max-width: 600px) {\n  .box > a:hover, #id { color: #fff; width: calc(100% - 2px) !important; --x: 1; }\n}',
    [['comment', '/* c */'], ['keyword', '@media'], ['attr', 'max-width'], ['number', '600px'], ['type', '.box'], ['tag', 'a'], ['keyword', ':hover'],
      ['type', '#id'], ['attr', 'color'], ['number', '#fff'], ['function', 'calc'], ['keyword', '!important'], ['attr', '--x'], ['operator', '>']]],
  yaml: ['# c\nname: app\nversion: 1.2\non: [push, pull_request]\njobs:\n  - run: "echo hi"  # tail\n    ok: true\n    script: |\n      line: not a key\nnext: null',
    [['comment', '# c'], ['attr', 'name'], ['string', 'app'], ['number', '1.2'], ['punct', '['], ['attr', 'run'], ['string', '"echo hi"'],
      ['comment', '# tail'], ['keyword', 'true'], ['operator', '|'], ['string', '      line: not a key'], ['keyword', 'null'], ['punct', '-']]],
  toml: ["# c\n[package]\nname = \"threadline\"\nversion = '0.1.0'\nedition = 2021\nfeatures = [\"derive\"]\nok = true",
    [['comment', '# c'], ['type', '[package]'], ['attr', 'name'], ['operator', '='], ['string', '"threadline"'], ['string', "'0.1.0'"],
      ['number', '2021'], ['keyword', 'true'], ['punct', '[']]],
  diff: ['diff --git a/x b/x\n--- a/x\n+++ b/x\n@@ -1,2 +1,2 @@\n-old line\n+new line\n same',
    [['comment', 'diff --git a/x b/x'], ['comment', '--- a/x'], ['comment', '+++ b/x'], ['keyword', '@@ -1,2 +1,2 @@'],
      ['deleted', '-old line'], ['inserted', '+new line']]],
};

for (const [lang, [code, expected]] of Object.entries(SAMPLES)) {
  test(`highlight ${lang}: expected token classes`, () => {
    const toks = tokenize(code, lang);
    assert.equal(toks.map((t) => t.text).join(''), code, 'tokens are lossless');
    const have = new Set(toks.filter((t) => t.cls).map((t) => `${t.cls}|${t.text}`));
    // adjacent punctuation merges into one span ("/>;"), so punct only needs to be contained
    const found = (cls, text) => have.has(`tok-${cls}|${text}`) || (cls === 'punct' && toks.some((t) => t.cls === 'tok-punct' && t.text.includes(text)));
    for (const [cls, text] of expected) assert.ok(found(cls, text), `${lang}: tok-${cls} ${JSON.stringify(text)} in ${[...have].join(' ')}`);
    for (const t of toks) assert.ok(t.cls === null || TOKEN_CLASSES.includes(t.cls), t.cls);
  });
}

test('aliases resolve; unknown languages and markdown are plain text', () => {
  assert.equal(languageOf('JavaScript'), 'js');
  assert.equal(languageOf('py'), 'python');
  assert.equal(languageOf('rs'), 'rust');
  assert.equal(languageOf('shell'), 'bash');
  assert.equal(languageOf('yml'), 'yaml');
  assert.equal(languageOf('c++'), 'cpp');
  assert.equal(languageOf('klingon'), null);
  assert.deepEqual(tokenize('if (x) { return 1 }', 'klingon'), [{ cls: null, text: 'if (x) { return 1 }' }]);
  assert.deepEqual(tokenize('# Title *x*', 'markdown'), [{ cls: null, text: '# Title *x*' }]);
  assert.deepEqual(tokenize('', 'js'), []);
  assert.deepEqual(tokenize('x', undefined), [{ cls: null, text: 'x' }]);
});

test('highlight returns a fragment of text nodes and tok spans', () => {
  const frag = highlight('let s = "<b>"; // hi', 'js');
  assert.equal(toHTML(frag), '<span class="tok-keyword">let</span> s <span class="tok-operator">=</span> ' +
    '<span class="tok-string">"&lt;b&gt;"</span><span class="tok-punct">;</span> <span class="tok-comment">// hi</span>');
  assert.equal(frag.textContent, 'let s = "<b>"; // hi');
  assert.equal(toHTML(highlight('<img onerror=x>', 'nope')), '&lt;img onerror=x&gt;');
  assert.deepEqual([...TOKEN_CLASSES].sort(), ['tok-attr', 'tok-comment', 'tok-deleted', 'tok-function', 'tok-inserted', 'tok-keyword',
    'tok-number', 'tok-operator', 'tok-punct', 'tok-string', 'tok-tag', 'tok-type'].sort());
});

test('unterminated strings and comments (streaming) do not throw and stay lossless', () => {
  const code = SAMPLES.python[0] + '\n' + SAMPLES.rust[0] + '\n' + SAMPLES.html[0];
  for (const lang of Object.keys(SAMPLES)) {
    for (let i = 0; i <= code.length; i += 7) {
      const part = code.slice(0, i);
      assert.equal(tokenize(part, lang).map((t) => t.text).join(''), part);
    }
  }
});

test('big and pathological inputs tokenize in linear time (they finish)', () => {
  const nasty = ['"\'`/*<!--#{[(\n' + 'a: b = c;\n', '\\', '"', "'", '<', '<a ', '/*', '#[', "'a", 'r#', '${', '@', '- ', ': ', '[[', '{{', '0x', '1e'];
  for (const lang of Object.keys(SAMPLES)) {
    for (const piece of nasty) {
      const s = piece.repeat(Math.ceil(50_000 / piece.length));
      assert.equal(tokenize(s, lang).length > 0, true);
    }
  }
});
