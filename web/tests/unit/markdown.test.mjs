// Unit tests for web/assets/lib/markdown.js: the AST (parseMarkdown / parseInline), the DOM it
// renders (through the tiny DOM shim), safety (raw HTML, URL schemes), streaming prefixes and
// pathological inputs. Run: node --test web/tests/unit/
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { toHTML, findAll } from './dom-shim.mjs';
import { parseMarkdown, parseInline, renderMarkdown, renderInline, safeHref } from '../../assets/lib/markdown.js';

const html = (md, opts) => toHTML(renderMarkdown(md, opts));
const blocks = (md) => parseMarkdown(md).children;
const A = (href, text, extra = '') => `<a${extra} href="${href}" rel="noopener noreferrer nofollow" target="_blank">${text}</a>`;

test('paragraphs, soft and hard breaks', () => {
  assert.equal(html('one\ntwo\n\nthree'), '<p>one\ntwo</p><p>three</p>');
  assert.equal(html('hard  \nbreak'), '<p>hard<br>break</p>');
  assert.equal(html('back\\\nslash'), '<p>back<br>slash</p>');
  assert.equal(html('soft\nbreak', { breaks: true }), '<p>soft<br>break</p>');
  assert.equal(html('trailing   '), '<p>trailing</p>');
  assert.deepEqual(parseInline('a\nb'), [{ type: 'text', value: 'a' }, { type: 'softbreak' }, { type: 'text', value: 'b' }]);
});

test('headings: ATX levels, closing hashes, setext', () => {
  for (let l = 1; l <= 6; l++) assert.equal(html('#'.repeat(l) + ' Title'), `<h${l}>Title</h${l}>`);
  assert.equal(html('####### seven'), '<p>####### seven</p>');
  assert.equal(html('#nospace'), '<p>#nospace</p>');
  assert.equal(html('## closed ##'), '<h2>closed</h2>');
  assert.equal(html('# C\\#'), '<h1>C#</h1>');
  assert.equal(html('# *emph* title'), '<h1><em>emph</em> title</h1>');
  assert.equal(html('Big\n==='), '<h1>Big</h1>');
  assert.equal(html('Small\n---'), '<h2>Small</h2>');
  assert.deepEqual(blocks('### x')[0], { type: 'heading', level: 3, children: [{ type: 'text', value: 'x' }] });
});

test('emphasis, strong, strikethrough, nesting and literal leftovers', () => {
  assert.equal(html('*a* _b_ **c** __d__ ~~e~~ ~f~'), '<p><em>a</em> <em>b</em> <strong>c</strong> <strong>d</strong> <del>e</del> <del>f</del></p>');
  assert.equal(html('***both***'), '<p><em><strong>both</strong></em></p>');
  assert.equal(html('*a **b** c*'), '<p><em>a <strong>b</strong> c</em></p>');
  assert.equal(html('snake_case_name'), '<p>snake_case_name</p>');
  assert.equal(html('2 * 3 * 4'), '<p>2 * 3 * 4</p>');
  assert.equal(html('**unclosed'), '<p>**unclosed</p>');
  assert.equal(html('a ~~~ not strike ~~~ b'), '<p>a ~~~ not strike ~~~ b</p>');
  assert.equal(html('un*frigging*believable'), '<p>un<em>frigging</em>believable</p>');
});

test('inline code', () => {
  assert.equal(html('use `let x = 1;` here'), '<p>use <code>let x = 1;</code> here</p>');
  assert.equal(html('``a ` b``'), '<p><code>a ` b</code></p>');
  assert.equal(html('` `` `'), '<p><code>``</code></p>');
  assert.equal(html('`*not em*` and `<b>`'), '<p><code>*not em*</code> and <code>&lt;b&gt;</code></p>');
  assert.equal(html('`unclosed'), '<p>`unclosed</p>');
  assert.equal(html('`multi\nline`'), '<p><code>multi line</code></p>');
});

test('fenced code blocks: markup, info string, tildes, unclosed, indented code', () => {
  const out = html('```rust title="x"\nfn main() {}\n```');
  assert.equal(out,
    '<div class="code-block"><div class="code-head"><span class="code-lang">rust</span>' +
    '<button class="btn-icon code-copy" type="button" aria-label="Copy code">Copy</button></div>' +
    '<pre><code class="language-rust"><span class="tok-keyword">fn</span> <span class="tok-function">main</span>' +
    '<span class="tok-punct">()</span> <span class="tok-punct">{}</span></code></pre></div>');
  const b = blocks('~~~python\nprint(1)\n~~~\n')[0];
  assert.deepEqual(b, { type: 'code', lang: 'python', info: 'python', value: 'print(1)', fenced: true, closed: true });
  assert.deepEqual(blocks('````\n```\ninner\n````')[0].value, '```\ninner');
  const open = blocks('text\n```js\nlet a = 1;\nlet b')[1];
  assert.equal(open.closed, false);
  assert.equal(open.value, 'let a = 1;\nlet b');
  assert.equal(blocks('  ```\n  indented\n    more\n  ```')[0].value, 'indented\n  more');
  const ind = blocks('    code\n      deeper\n\n    after blank')[0];
  assert.deepEqual(ind, { type: 'code', lang: '', info: '', value: 'code\n  deeper\n\nafter blank', fenced: false, closed: true });
  assert.match(html('```\nx\n```'), /<span class="code-lang">text<\/span>.*<pre><code>x<\/code><\/pre>/);
  assert.equal(html('```\n<script>alert(1)</script>\n```').includes('&lt;script&gt;'), true);
  assert.equal(html('```js\nx\n```', { copy: false }).includes('button'), false);
});

test('copy button writes the code to the clipboard and says Copied', async () => {
  const calls = [];
  const saved = Object.getOwnPropertyDescriptor(globalThis, 'navigator');
  Object.defineProperty(globalThis, 'navigator', { value: { clipboard: { writeText: async (t) => { calls.push(t); } } }, configurable: true });
  try {
    const frag = renderMarkdown('```sh\necho hi\n```');
    const [btn] = findAll(frag, 'button', 'code-copy');
    btn.click();
    await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual(calls, ['echo hi']);
    assert.equal(btn.textContent, 'Copied');
  } finally {
    if (saved) Object.defineProperty(globalThis, 'navigator', saved);
    else delete globalThis.navigator;
  }
});

test('block quotes, nested and lazy', () => {
  assert.equal(html('> a\n> > b\n> c'), '<blockquote><p>a</p><blockquote><p>b\nc</p></blockquote></blockquote>');
  assert.equal(html('> quote\nlazy'), '<blockquote><p>quote\nlazy</p></blockquote>');
  assert.equal(html('> # Title\n> - item'), '<blockquote><h1>Title</h1><ul><li>item</li></ul></blockquote>');
  assert.equal(html('> one\n\n> two'), '<blockquote><p>one</p></blockquote><blockquote><p>two</p></blockquote>');
});

test('lists: ordered, unordered, nested, tight and loose, task items', () => {
  assert.equal(html('- a\n- b'), '<ul><li>a</li><li>b</li></ul>');
  assert.equal(html('* a\n+ b'), '<ul><li>a</li></ul><ul><li>b</li></ul>');
  assert.equal(html('3. c\n4. d'), '<ol start="3"><li>c</li><li>d</li></ol>');
  assert.equal(html('1) x'), '<ol><li>x</li></ol>');
  assert.equal(html('- a\n\n- b'), '<ul><li><p>a</p></li><li><p>b</p></li></ul>');
  assert.equal(html('- a\n\n  more\n- b'), '<ul><li><p>a</p><p>more</p></li><li><p>b</p></li></ul>');
  assert.equal(html('1. one\n   - sub\n     - subsub\n2. two'),
    '<ol><li>one<ul><li>sub<ul><li>subsub</li></ul></li></ul></li><li>two</li></ol>');
  assert.equal(html('- item\n  ```js\n  x\n  ```').includes('<li>item<div class="code-block">'), true);
  assert.equal(html('- [ ] todo\n- [x] done'),
    '<ul class="task-list"><li class="task-list-item"><input type="checkbox" disabled> todo</li>' +
    '<li class="task-list-item"><input type="checkbox" disabled checked> done</li></ul>');
  const list = blocks('- [X] yes\n- plain')[0];
  assert.equal(list.items[0].checked, true);
  assert.equal(list.items[1].checked, null);
  assert.equal(html('para\n2. not a list'), '<p>para\n2. not a list</p>');
  assert.equal(html('para\n- a list'), '<p>para</p><ul><li>a list</li></ul>');
  assert.equal(html('- a\nlazy'), '<ul><li>a\nlazy</li></ul>');
});

test('tables with alignment, escaped pipes, ragged rows and inline content', () => {
  const out = html('| Name | Qty | Note |\n|:-----|----:|:----:|\n| `a|b` \\| x | **2** | ok |\n| short |');
  assert.equal(out,
    '<div class="md-table-wrap"><table><thead><tr><th style="text-align:left">Name</th>' +
    '<th style="text-align:right">Qty</th><th style="text-align:center">Note</th></tr></thead><tbody>' +
    '<tr><td style="text-align:left">`a</td><td style="text-align:right">b` | x</td><td style="text-align:center"><strong>2</strong></td></tr>' +
    '<tr><td style="text-align:left">short</td><td style="text-align:right"></td><td style="text-align:center"></td></tr></tbody></table></div>');
  const t = blocks('a | b\n--|--\n1 | 2')[0];
  assert.equal(t.type, 'table');
  assert.deepEqual(t.align, [null, null]);
  assert.equal(t.rows.length, 1);
  assert.equal(blocks('| a | b |\n|---|')[0].type, 'paragraph'); // column counts differ
  assert.equal(blocks('text\n| a |\n| - |')[1].type, 'table');
});

test('horizontal rules', () => {
  assert.equal(html('***'), '<hr>');
  assert.equal(html('- - -'), '<hr>');
  assert.equal(html('___\n\ntext'), '<hr><p>text</p>');
  assert.equal(html('a\n\n---\n\nb'), '<p>a</p><hr><p>b</p>');
});

test('links: inline, titles, autolinks, bare URLs, emails', () => {
  assert.equal(html('[site](https://example.com "Title")'), `<p>${A('https://example.com', 'site').replace('target="_blank"', 'target="_blank" title="Title"')}</p>`);
  assert.equal(html('[rel](/t/abc) [anchor](#x) [q](?a=1)'), `<p>${A('/t/abc', 'rel')} ${A('#x', 'anchor')} ${A('?a=1', 'q')}</p>`);
  assert.equal(html('[*em* link](<https://a.b/c d>)'), `<p>${A('https://a.b/c d', '<em>em</em> link')}</p>`);
  assert.equal(html('[p](https://en.wikipedia.org/wiki/Foo_(bar))'), `<p>${A('https://en.wikipedia.org/wiki/Foo_(bar)', 'p')}</p>`);
  assert.equal(html('<https://x.io/a?b=1>'), `<p>${A('https://x.io/a?b=1', 'https://x.io/a?b=1')}</p>`);
  assert.equal(html('<me@example.org>'), `<p>${A('mailto:me@example.org', 'me@example.org')}</p>`);
  assert.equal(html('[mail](mailto:a@b.c)'), `<p>${A('mailto:a@b.c', 'mail')}</p>`);
  assert.equal(html('see https://example.com/x.'), `<p>see ${A('https://example.com/x', 'https://example.com/x')}.</p>`);
  assert.equal(html('(https://example.com/a_(b))'), `<p>(${A('https://example.com/a_(b)', 'https://example.com/a_(b)')})</p>`);
  assert.equal(html('www.example.com, ok'), `<p>${A('http://www.example.com', 'www.example.com')}, ok</p>`);
  assert.equal(html('[https://a.b](https://a.b)'), `<p>${A('https://a.b', 'https://a.b')}</p>`); // no nested <a>
  assert.equal(html('[not a link] [x]'), '<p>[not a link] [x]</p>');
  assert.equal(html('[unclosed](https://a.b'), `<p>[unclosed](${A('https://a.b', 'https://a.b')}</p>`);
  assert.deepEqual(parseInline('[a](b)'), [{ type: 'link', href: 'b', title: null, children: [{ type: 'text', value: 'a' }] }]);
});

test('images become links with their alt text (no <img>)', () => {
  const out = html('![a *cat*](https://img.example/cat.png "pic")');
  assert.equal(out, '<p><a class="md-image" href="https://img.example/cat.png" rel="noopener noreferrer nofollow" target="_blank" title="pic">a cat</a></p>');
  assert.equal(html('![x](javascript:alert(1))'), '<p>x</p>');
  assert.equal(html('![](https://a.b/i.png)').includes('>image</a>'), true);
  assert.equal(findAll(renderMarkdown('![a](https://a.b/i.png)'), 'img').length, 0);
});

test('backslash escapes and entities', () => {
  assert.equal(html('\\*not em\\* \\[not link\\](x) \\`no code\\` \\# \\\\'), '<p>*not em* [not link](x) `no code` # \\</p>');
  assert.equal(html('\\# not heading'), '<p># not heading</p>');
  assert.equal(html('1\\. not list'), '<p>1. not list</p>');
  assert.equal(html('\\a stays'), '<p>\\a stays</p>');
  assert.equal(html('&amp; &copy; &#65; &#x1F600; &unknown;'), '<p>&amp; © A 😀 &amp;unknown;</p>');
});

test('raw HTML stays literal text', () => {
  const frag = renderMarkdown('<script>alert(1)</script>\n\n<img src=x onerror="alert(1)">\n\n<div onclick=x>hi</div> <a href="javascript:x">y</a>');
  assert.equal(findAll(frag, 'script').length, 0);
  assert.equal(findAll(frag, 'img').length, 0);
  assert.equal(findAll(frag, 'div').length, 0);
  assert.equal(findAll(frag, 'a').length, 0);
  assert.equal(toHTML(frag), '<p>&lt;script&gt;alert(1)&lt;/script&gt;</p><p>&lt;img src=x onerror="alert(1)"&gt;</p>' +
    '<p>&lt;div onclick=x&gt;hi&lt;/div&gt; &lt;a href="javascript:x"&gt;y&lt;/a&gt;</p>');
  assert.equal(renderMarkdown('<b>x</b>').textContent, '<b>x</b>');
  assert.equal(html('`<img onerror=x>`'), '<p><code>&lt;img onerror=x&gt;</code></p>');
});

test('javascript:, data: and other schemes never become links', () => {
  const bad = [
    '[x](javascript:alert(1))', '[x](JavaScript:alert(1))', '[x]( javascript:alert(1))', '[x](<java\tscript:alert(1)>)',
    '[x](javascript&#58;alert(1))', '[x](java&#x73;cript:alert(1))', '[x](javascript\\:alert(1))', '[x](data:text/html,<script>)',
    '[x](vbscript:msgbox)', '[x](file:///etc/passwd)', '<javascript:alert(1)>', '<data:text/html,x>', '[x](\u0001javascript:alert(1))',
  ];
  for (const md of bad) {
    const frag = renderMarkdown(md);
    assert.equal(findAll(frag, 'a').length, 0, md);
  }
  assert.equal(html('[click](javascript:alert(1))'), '<p>click</p>');
  assert.equal(safeHref('https://a.b'), 'https://a.b');
  assert.equal(safeHref('HTTP://A.B'), 'HTTP://A.B');
  assert.equal(safeHref('/relative:colon'), '/relative:colon');
  assert.equal(safeHref('javascript:x'), null);
  assert.equal(safeHref('  '), null);
});

test('renderInline: inline syntax only', () => {
  assert.equal(toHTML(renderInline('**Plan** for `x` — [docs](https://d.e)')), `<strong>Plan</strong> for <code>x</code> — ${A('https://d.e', 'docs')}`);
  assert.equal(toHTML(renderInline('# not a heading\n- nor list')), '# not a heading\n- nor list');
  assert.equal(toHTML(renderInline('<b>raw</b>')), '&lt;b&gt;raw&lt;/b&gt;');
});

const SAMPLE = `# Plan for **Threadline**

Here is a *short* answer with \`inline code\`, a [link](https://example.com "ex") and https://docs.rs/x.

1. First step
2. Second step with ~~old~~ new text
   - nested *bullet*
   - [x] done task
3. Third

> Quoted text
> > nested quote

| Column | Value |
|:-------|------:|
| a      | **1** |
| b \\| c | 2     |

\`\`\`rust
fn main() {
    let x: Vec<u8> = vec![1, 2, 3]; // comment
    println!("{:?}", x);
}
\`\`\`

---

Final paragraph with an image ![diagram](https://example.com/d.png) and <script>alert(1)</script>.
`;

test('streaming: every prefix of a sample reply renders without throwing', () => {
  for (let i = 0; i <= SAMPLE.length; i++) {
    const frag = renderMarkdown(SAMPLE.slice(0, i));
    assert.equal(findAll(frag, 'script').length, 0);
  }
  const full = renderMarkdown(SAMPLE);
  assert.equal(findAll(full, 'h1').length, 1);
  assert.equal(findAll(full, 'table').length, 1);
  assert.equal(findAll(full, 'div', 'code-block').length, 1);
  assert.equal(findAll(full, 'blockquote').length, 2);
  assert.equal(findAll(full, 'hr').length, 1);
  assert.equal(findAll(full, 'input').length, 1);
  assert.equal(findAll(full, 'a').length, 3);
});

test('streaming: unclosed constructs render sensibly so far', () => {
  assert.equal(html('some **bold'), '<p>some **bold</p>');
  assert.equal(html('some **bold**'), '<p>some <strong>bold</strong></p>');
  const open = renderMarkdown('Intro\n\n```python\ndef f():\n    return 1');
  const [code] = findAll(open, 'code');
  assert.equal(code.className, 'language-python');
  assert.equal(code.textContent, 'def f():\n    return 1');
  assert.equal(html('[half a link](https://exa'), `<p>[half a link](${A('https://exa', 'https://exa')}</p>`);
  assert.equal(html('| a | b |\n|--'), '<p>| a | b |\n|--</p>');
});

test('pathological 200 KB inputs parse in linear time (they finish)', () => {
  const N = 200_000;
  const inputs = [
    '*'.repeat(N), '['.repeat(N), '>'.repeat(5000) + ' deep', ('>'.repeat(50) + ' x\n').repeat(3900),
    '*'.repeat(50000) + 'a' + '['.repeat(50000) + '>'.repeat(5000), '_'.repeat(N), '~'.repeat(N), '`'.repeat(N),
    'a*'.repeat(N / 2), '*a '.repeat(N / 3), '*a'.repeat(N / 4) + 'a*'.repeat(N / 4), '**a '.repeat(N / 8) + ' a**'.repeat(N / 8),
    '[a]('.repeat(N / 4), '[a](x'.repeat(N / 5), '['.repeat(N / 2) + ']'.repeat(N / 2), '!['.repeat(N / 4) + '[a](b)'.repeat(N / 12),
    '[a'.repeat(N / 4) + '](x)'.repeat(N / 8), Array.from({ length: 600 }, (_, i) => '`'.repeat(i + 1) + 'x').join(''),
    '<a:'.repeat(N / 3), '<'.repeat(N), '&#x'.repeat(N / 3), '- '.repeat(N / 2), '1. '.repeat(N / 3), '> - '.repeat(N / 4),
    'http://'.repeat(N / 7), ('(https://x.y' + ')'.repeat(100) + ' ').repeat(N / 120), '|a|b|\n|-|-|\n' + '|x|y|\n'.repeat(N / 6),
    '|'.repeat(N) + '\n' + '|-'.repeat(N / 2), '\\'.repeat(N), 'a' + ' '.repeat(N) + 'b\nc', '# a' + ' '.repeat(N) + 'x',
    '```\n'.repeat(N / 4), '*_[`<&!~'.repeat(N / 8), '😀*'.repeat(N / 3), 'a  \n'.repeat(N / 4),
    '!['.repeat(3000) + 'x' + '](y)'.repeat(3000), Array.from({ length: 5000 }, (_, i) => ' '.repeat(i % 40) + '- x').join('\n'),
  ];
  for (const input of inputs) {
    assert.ok(input.length > 5000);
    const tree = parseMarkdown(input);
    assert.ok(Array.isArray(tree.children));
    renderMarkdown(input);
  }
  // nesting is capped, not recursed without bound
  const deep = parseMarkdown('>'.repeat(5000) + ' x');
  let depth = 0;
  for (let b = deep.children[0]; b && b.type === 'blockquote'; b = b.children[0]) depth++;
  assert.ok(depth > 10 && depth < 100);
  assert.equal(renderMarkdown('*'.repeat(50000)).textContent, '');
  assert.equal(renderMarkdown('['.repeat(50000)).textContent, '['.repeat(50000));
});
