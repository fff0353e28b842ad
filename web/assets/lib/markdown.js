// Safe Markdown for chat replies: CommonMark-ish block and inline parsing plus the GitHub
// extensions replies use (tables, strikethrough, task lists, bare URLs), turned into DOM nodes
// with document.createElement / createTextNode only. Raw HTML in the input stays literal text;
// only http:, https:, mailto: and relative URLs become links; images become links (the CSP
// forbids remote images anyway).
//
// Built for streaming: renderMarkdown is called on every chunk of a growing reply, so parsing
// is linear (no backtracking regexes over unbounded text; nesting and link parts are capped),
// an unclosed fence renders as a code block so far, and an unclosed `**` stays literal.
//
//   parseMarkdown(text)          -> {type: 'root', children: Block[]}   (plain objects, no DOM)
//   parseInline(text)            -> Inline[]
//   renderMarkdown(text, opts?)  -> DocumentFragment   opts: {highlight = true, copy = true}
//   renderInline(text)           -> DocumentFragment   (titles, snippets: inline syntax only)
//
// Block nodes: paragraph{children} heading{level, children} code{lang, info, value, fenced,
// closed} blockquote{children} list{ordered, start, loose, items: item{checked, children}[]}
// table{align[], head: Inline[][], rows: Inline[][][]} hr.
// Inline nodes: text{value} code{value} em/strong/del{children} link{href, title, children}
// image{href, title, alt, children} softbreak hardbreak.
//
// Render the fragment into an element with class `markdown`. Code blocks are
//   <div class="code-block"><div class="code-head"><span class="code-lang">rust</span>
//   <button class="btn-icon code-copy" type="button" aria-label="Copy code">Copy</button></div>
//   <pre><code class="language-rust">…</code></pre></div>
// (styled in chat/chat.css). Tables are wrapped in <div class="md-table-wrap">, task
// items are <li class="task-list-item"><input type="checkbox" disabled> …, image links have
// class "md-image".
//
// Its styles are in chat/chat.css.

import { highlight } from './highlight.js';

const MAX_DEPTH = 24;          // nested quotes/lists beyond this are plain text
const MAX_INLINE_DEPTH = 48;   // nested emphasis/links beyond this are flattened
const MAX_LINK_PART = 4096;    // longest link destination or title scanned
const MAX_PARENS = 32;         // nested parentheses inside a link destination

// ---------------------------------------------------------------------------------------------
// Blocks

/** Parses Markdown into a plain tree (no DOM). */
export function parseMarkdown(text) {
  const src = String(text ?? '').replace(/\r\n?/g, '\n').replace(/\0/g, '\uFFFD');
  const lines = src.split('\n').map(expandLeadingTabs);
  return { type: 'root', children: parseBlocks(lines, 0).blocks };
}

function expandLeadingTabs(line) {
  if (line.indexOf('\t') < 0) return line;
  let out = '', col = 0, i = 0;
  for (; i < line.length; i++) {
    const c = line[i];
    if (c === ' ') { out += ' '; col++; }
    else if (c === '\t') { const n = 4 - (col % 4); out += ' '.repeat(n); col += n; }
    else break;
  }
  return out + line.slice(i);
}

function indentOf(line) {
  let i = 0;
  while (i < line.length && line.charCodeAt(i) === 32) i++;
  return i;
}
function isBlank(line) {
  for (let i = 0; i < line.length; i++) { const c = line[i]; if (c !== ' ' && c !== '\t') return false; }
  return true;
}
function stripIndent(line, n) {
  const ind = indentOf(line);
  return line.slice(Math.min(ind, n));
}

function fenceStart(line) {
  const ind = indentOf(line);
  if (ind > 3) return null;
  const c = line[ind];
  if (c !== '`' && c !== '~') return null;
  let j = ind;
  while (line[j] === c) j++;
  const len = j - ind;
  if (len < 3) return null;
  const info = line.slice(j).trim();
  if (c === '`' && info.includes('`')) return null;
  return { char: c, len, indent: ind, info };
}
function isFenceClose(line, f) {
  const ind = indentOf(line);
  if (ind > 3) return false;
  let j = ind;
  while (line[j] === f.char) j++;
  return j - ind >= f.len && isBlank(line.slice(j));
}

function atxHeading(line) {
  const ind = indentOf(line);
  if (ind > 3 || line[ind] !== '#') return null;
  let j = ind;
  while (line[j] === '#') j++;
  const level = j - ind;
  if (level > 6) return null;
  if (j < line.length && line[j] !== ' ' && line[j] !== '\t') return null;
  let content = line.slice(j).trim();
  let k = content.length;
  while (k > 0 && content[k - 1] === '#') k--;
  if (k === 0) content = '';
  else if (k < content.length && (content[k - 1] === ' ' || content[k - 1] === '\t')) content = content.slice(0, k).trimEnd();
  return { level, content };
}

function isHr(line) {
  const ind = indentOf(line);
  if (ind > 3) return false;
  const c = line[ind];
  if (c !== '*' && c !== '-' && c !== '_') return false;
  let n = 0;
  for (let j = ind; j < line.length; j++) {
    const d = line[j];
    if (d === c) n++;
    else if (d !== ' ' && d !== '\t') return false;
  }
  return n >= 3;
}

function setextLevel(line) {
  const ind = indentOf(line);
  if (ind > 3) return 0;
  const c = line[ind];
  if (c !== '=' && c !== '-') return 0;
  let j = ind;
  while (line[j] === c) j++;
  return isBlank(line.slice(j)) ? (c === '=' ? 1 : 2) : 0;
}

function isQuoteStart(line) {
  const ind = indentOf(line);
  return ind <= 3 && line[ind] === '>';
}

function listMarker(line) {
  const ind = indentOf(line);
  if (ind > 3) return null;
  let j = ind, ordered = false, start = 1, delim;
  const c = line[j];
  if (c === '-' || c === '+' || c === '*') { delim = c; j++; }
  else {
    while (j < line.length && j - ind < 9 && line[j] >= '0' && line[j] <= '9') j++;
    if (j === ind) return null;
    const d = line[j];
    if (d !== '.' && d !== ')') return null;
    ordered = true;
    start = parseInt(line.slice(ind, j), 10);
    delim = d;
    j++;
  }
  if (j < line.length && line[j] !== ' ' && line[j] !== '\t') return null;
  const markerEnd = j;
  let k = j;
  while (k < line.length && (line[k] === ' ' || line[k] === '\t')) k++;
  const empty = k === line.length;
  let pad = k - markerEnd;
  if (empty || pad > 4) pad = 1;
  return { ordered, start, delim, contentOffset: markerEnd + pad, empty };
}

function splitRow(line) {
  let s = line.trim();
  if (s.startsWith('|')) s = s.slice(1);
  if (s.endsWith('|') && !s.endsWith('\\|')) s = s.slice(0, -1);
  const cells = [];
  let cur = '', from = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c === '\\' && s[i + 1] === '|') { cur += s.slice(from, i) + '|'; i++; from = i + 1; }
    else if (c === '|') { cells.push((cur + s.slice(from, i)).trim()); cur = ''; from = i + 1; }
  }
  cells.push((cur + s.slice(from)).trim());
  return cells;
}

function delimiterRow(line) {
  if (!line.includes('-') || !line.includes('|') || indentOf(line) > 3) return null;
  const align = [];
  for (const c of splitRow(line)) {
    if (!/^:?-+:?$/.test(c)) return null;
    const l = c[0] === ':', r = c[c.length - 1] === ':';
    align.push(l && r ? 'center' : r ? 'right' : l ? 'left' : null);
  }
  return align;
}

function tableStart(lines, i) {
  const head = lines[i];
  if (head === undefined || !head.includes('|') || indentOf(head) > 3 || i + 1 >= lines.length) return null;
  const align = delimiterRow(lines[i + 1]);
  if (!align) return null;
  const cells = splitRow(head);
  if (cells.length !== align.length) return null;
  return { align, head: cells };
}

/** Does this line start a block that ends a paragraph? */
function interruptsParagraph(lines, i, depth) {
  const l = lines[i];
  if (fenceStart(l) || atxHeading(l) || isHr(l) || tableStart(lines, i)) return true;
  if (depth < MAX_DEPTH) {
    if (isQuoteStart(l)) return true;
    const m = listMarker(l);
    if (m && !m.empty && (!m.ordered || m.start === 1)) return true;
  }
  return false;
}

/** Can `line` continue a paragraph lazily inside a quote or list item? */
function isLazy(line, prev, fence) {
  if (fence || isBlank(line) || prev === undefined || isBlank(prev)) return false;
  if (fenceStart(line) || atxHeading(line) || isHr(line) || isQuoteStart(line) || listMarker(line)) return false;
  return indentOf(prev) < 4;
}

function trackFence(fence, line) {
  if (fence) return isFenceClose(line, fence) ? null : fence;
  return fenceStart(line);
}

function parseBlocks(lines, depth) {
  const blocks = [];
  let blankBetween = false, pendingBlank = false;
  const push = (b) => {
    if (pendingBlank && blocks.length) blankBetween = true;
    pendingBlank = false;
    blocks.push(b);
  };
  const n = lines.length;
  let i = 0;
  while (i < n) {
    const line = lines[i];
    if (isBlank(line)) { pendingBlank = true; i++; continue; }
    const ind = indentOf(line);

    if (ind >= 4) {
      const buf = [];
      while (i < n && (isBlank(lines[i]) || indentOf(lines[i]) >= 4)) { buf.push(stripIndent(lines[i], 4)); i++; }
      while (buf.length && isBlank(buf[buf.length - 1])) buf.pop();
      push({ type: 'code', lang: '', info: '', value: buf.join('\n'), fenced: false, closed: true });
      continue;
    }

    const f = fenceStart(line);
    if (f) {
      const buf = [];
      let closed = false;
      i++;
      while (i < n) {
        if (isFenceClose(lines[i], f)) { closed = true; i++; break; }
        buf.push(stripIndent(lines[i], f.indent));
        i++;
      }
      const lang = f.info.split(/[\s{]/)[0];
      push({ type: 'code', lang, info: f.info, value: buf.join('\n'), fenced: true, closed });
      continue;
    }

    const hd = atxHeading(line);
    if (hd) { push({ type: 'heading', level: hd.level, children: parseInline(hd.content) }); i++; continue; }

    if (isHr(line)) { push({ type: 'hr' }); i++; continue; }

    if (line[ind] === '>' && depth < MAX_DEPTH) {
      const buf = [];
      let fence = null;
      while (i < n) {
        const l = lines[i];
        let rest;
        if (isQuoteStart(l)) {
          rest = l.slice(indentOf(l) + 1);
          if (rest[0] === ' ' || rest[0] === '\t') rest = rest.slice(1);
        } else if (isLazy(l, buf[buf.length - 1], fence)) {
          rest = l;
        } else break;
        buf.push(rest);
        fence = trackFence(fence, rest);
        i++;
      }
      push({ type: 'blockquote', children: parseBlocks(buf, depth + 1).blocks });
      continue;
    }

    const m = depth < MAX_DEPTH ? listMarker(line) : null;
    if (m) {
      const list = { type: 'list', ordered: m.ordered, start: m.start, loose: false, items: [] };
      let loose = false, trailingBlank = false;
      while (i < n) {
        const mm = listMarker(lines[i]);
        if (!mm || mm.ordered !== m.ordered || mm.delim !== m.delim || isHr(lines[i])) break;
        if (trailingBlank) loose = true;
        const offset = mm.contentOffset;
        let first = mm.empty ? '' : lines[i].slice(offset);
        let checked = null;
        const task = /^\[([ xX])\](?=[ \t]|$)/.exec(first);
        if (task) { checked = task[1] !== ' '; first = first.slice(3).replace(/^[ \t]/, ''); }
        const buf = [first];
        let fence = trackFence(null, first);
        i++;
        while (i < n) {
          const l = lines[i];
          if (isBlank(l)) {
            if (mm.empty && buf.length === 1 && buf[0] === '') break;
            buf.push('');
            i++;
            continue;
          }
          let rest;
          if (indentOf(l) >= offset) rest = l.slice(offset);
          else if (isLazy(l, buf[buf.length - 1], fence)) rest = l.trimStart();
          else break;
          buf.push(rest);
          fence = trackFence(fence, rest);
          i++;
        }
        trailingBlank = false;
        while (buf.length > 1 && buf[buf.length - 1] === '') { buf.pop(); trailingBlank = true; }
        const inner = parseBlocks(buf, depth + 1);
        if (inner.blankBetween) loose = true;
        list.items.push({ type: 'item', checked, children: inner.blocks });
      }
      list.loose = loose;
      push(list);
      if (trailingBlank) pendingBlank = true;
      continue;
    }

    const t = tableStart(lines, i);
    if (t) {
      i += 2;
      const width = t.align.length;
      const rows = [];
      while (i < n && !isBlank(lines[i]) && !fenceStart(lines[i]) && !atxHeading(lines[i]) && !isQuoteStart(lines[i]) && !isHr(lines[i])) {
        const cells = splitRow(lines[i]).slice(0, width);
        while (cells.length < width) cells.push('');
        rows.push(cells.map(parseInline));
        i++;
      }
      push({ type: 'table', align: t.align, head: t.head.map(parseInline), rows });
      continue;
    }

    // Paragraph, perhaps a setext heading.
    const buf = [line.trimStart()];
    let level = 0;
    i++;
    while (i < n) {
      const l = lines[i];
      if (isBlank(l)) break;
      const sl = setextLevel(l);
      if (sl) { level = sl; i++; break; }
      if (interruptsParagraph(lines, i, depth)) break;
      buf.push(l.trimStart());
      i++;
    }
    const body = parseInline(buf.join('\n').trimEnd());
    push(level ? { type: 'heading', level, children: body } : { type: 'paragraph', children: body });
  }
  return { blocks, blankBetween };
}

// ---------------------------------------------------------------------------------------------
// Inlines

const ASCII_PUNCT = '!"#$%&\'()*+,-./:;<=>?@[\\]^_`{|}~';
const PUNCT_RE = /[\p{P}\p{S}]/u;
const SPACE_RE = /\s/u;
const SPECIAL = /[\n\\`*_~[\]!<&hHwW]/g;
const ENTITY_RE = /&(?:#[xX]([0-9a-fA-F]{1,6})|#([0-9]{1,7})|([A-Za-z][A-Za-z0-9]{1,31}));/y;
const AUTOLINK_RE = /<([A-Za-z][A-Za-z0-9+.-]{1,31}:[^\s<>]*)>/y;
const EMAIL_RE = /<([^\s<>@\\]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)>/y;
const BARE_RE = /(?:https?:\/\/|www\.)[^\s<]*/iy;
const ENTITIES = {
  amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", nbsp: '\u00a0', copy: '©', reg: '®',
  trade: '™', hellip: '…', mdash: '—', ndash: '–', laquo: '«', raquo: '»', ldquo: '“',
  rdquo: '”', lsquo: '‘', rsquo: '’', bull: '•', middot: '·', times: '×', divide: '÷',
  deg: '°', plusmn: '±', rarr: '→', larr: '←', uarr: '↑', darr: '↓', harr: '↔', euro: '€',
  pound: '£', yen: '¥', cent: '¢', sect: '§', para: '¶', shy: '\u00ad', zwj: '\u200d', zwnj: '\u200c',
};

function decodeEntity(m) {
  if (m[1] || m[2]) {
    const cp = m[1] ? parseInt(m[1], 16) : parseInt(m[2], 10);
    return cp === 0 || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) ? '\uFFFD' : String.fromCodePoint(cp);
  }
  return Object.prototype.hasOwnProperty.call(ENTITIES, m[3]) ? ENTITIES[m[3]] : null;
}

/** Backslash escapes and entities, for link destinations and titles. */
function unescapeString(s) {
  if (s.indexOf('\\') < 0 && s.indexOf('&') < 0) return s;
  let out = '', from = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c === '\\' && i + 1 < s.length && ASCII_PUNCT.includes(s[i + 1])) {
      out += s.slice(from, i) + s[i + 1];
      i++;
      from = i + 1;
    } else if (c === '&') {
      ENTITY_RE.lastIndex = i;
      const m = ENTITY_RE.exec(s);
      const v = m && decodeEntity(m);
      if (v !== null && m) { out += s.slice(from, i) + v; i += m[0].length - 1; from = i + 1; }
    }
  }
  return out + s.slice(from);
}

function charBefore(s, i) {
  if (i <= 0) return '';
  const c = s.charCodeAt(i - 1);
  if (c >= 0xdc00 && c <= 0xdfff && i >= 2) return s.slice(i - 2, i);
  return s[i - 1];
}
function charAt(s, i) {
  if (i >= s.length) return '';
  const c = s.charCodeAt(i);
  if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) return s.slice(i, i + 2);
  return s[i];
}
const isWs = (c) => c === '' || SPACE_RE.test(c);
const isPunct = (c) => c !== '' && PUNCT_RE.test(c);

function skipSpaceNl(s, p) {
  let nl = false;
  while (p < s.length) {
    const c = s[p];
    if (c === ' ' || c === '\t') p++;
    else if (c === '\n' && !nl) { nl = true; p++; }
    else break;
  }
  return p;
}

/** `(dest "title")` right after `]`: {href, title, end} or null. Bounded scans only. */
function parseLinkTail(s, pos) {
  if (s[pos] !== '(') return null;
  const len = s.length;
  let p = skipSpaceNl(s, pos + 1);
  let href;
  if (s[p] === '<') {
    let q = p + 1;
    while (q < len && q - p < MAX_LINK_PART) {
      const c = s[q];
      if (c === '\\' && q + 1 < len) { q += 2; continue; }
      if (c === '>' || c === '<' || c === '\n') break;
      q++;
    }
    if (s[q] !== '>') return null;
    href = unescapeString(s.slice(p + 1, q));
    p = q + 1;
  } else {
    let q = p, depth = 0;
    while (q < len && q - p < MAX_LINK_PART) {
      const c = s[q];
      if (c === '\\' && q + 1 < len && ASCII_PUNCT.includes(s[q + 1])) { q += 2; continue; }
      if (c === '(') { if (++depth > MAX_PARENS) return null; }
      else if (c === ')') { if (depth === 0) break; depth--; }
      else if (c <= ' ') break;
      q++;
    }
    if (depth !== 0 || q - p >= MAX_LINK_PART) return null;
    href = unescapeString(s.slice(p, q));
    p = q;
  }
  const before = p;
  p = skipSpaceNl(s, p);
  let title = null;
  if (p > before && (s[p] === '"' || s[p] === "'" || s[p] === '(')) {
    const close = s[p] === '(' ? ')' : s[p];
    let q = p + 1;
    while (q < len && q - p < MAX_LINK_PART) {
      const c = s[q];
      if (c === '\\' && q + 1 < len) { q += 2; continue; }
      if (c === close) break;
      if (close === ')' && c === '(') return null;
      if (c === '\n' && s[q + 1] === '\n') return null;
      q++;
    }
    if (s[q] !== close) return null;
    title = unescapeString(s.slice(p + 1, q));
    p = skipSpaceNl(s, q + 1);
  }
  if (s[p] !== ')') return null;
  return { href, title, end: p + 1 };
}

/** Trailing punctuation is not part of a bare URL (GFM autolink rules, simplified). */
function trimBareUrl(url) {
  let open = 0, close = 0;
  for (let i = 0; i < url.length; i++) { if (url[i] === '(') open++; else if (url[i] === ')') close++; }
  let end = url.length;
  for (;;) {
    const c = url[end - 1];
    if (c === undefined) break;
    if ('?!.,:*_~\'";'.includes(c)) { end--; continue; }
    if (c === ')' && close > open) { close--; end--; continue; }
    break;
  }
  return url.slice(0, end);
}

// Linked-list tree used while parsing inlines (constant-time moves), converted to arrays after.
function mk(type, value) {
  return { type, value, parent: null, prev: null, next: null, first: null, last: null, level: 0 };
}
function appendChild(parent, node) {
  node.parent = parent;
  node.prev = parent.last;
  node.next = null;
  if (parent.last) parent.last.next = node; else parent.first = node;
  parent.last = node;
}
function unlink(node) {
  const p = node.parent;
  if (node.prev) node.prev.next = node.next; else p.first = node.next;
  if (node.next) node.next.prev = node.prev; else p.last = node.prev;
  node.prev = node.next = node.parent = null;
}
function insertAfter(ref, node) {
  node.parent = ref.parent;
  node.prev = ref;
  node.next = ref.next;
  if (ref.next) ref.next.prev = node; else ref.parent.last = node;
  ref.next = node;
}
/** Moves the nodes strictly between `from` and `to` (null: to the end) into `target`. */
function moveBetween(from, to, target) {
  let level = 0;
  for (let t = from.next; t && t !== to;) {
    const nx = t.next;
    unlink(t);
    appendChild(target, t);
    if (t.level > level) level = t.level;
    t = nx;
  }
  target.level = level + 1;
}

/** Parses inline Markdown into a plain tree. */
export function parseInline(text) {
  const s = String(text ?? '');
  const len = s.length;
  const root = mk('root');
  let delims = null;       // delimiter stack top: {node, char, count, orig, canOpen, canClose, prev, next}
  let brackets = null;     // bracket stack top: {node, image, prevDelim, prev, id}
  let bracketId = 0, inactiveUpTo = 0;  // link openers with id <= inactiveUpTo are inactive
  let ticks = null;        // backtick runs by length: Map(len -> {pos: [], ptr})
  let pend = '';
  let pos = 0;

  const flush = () => { if (pend) { appendChild(root, mk('text', pend)); pend = ''; } };
  const brk = (hard) => {
    flush();
    appendChild(root, mk(hard ? 'hardbreak' : 'softbreak'));
  };
  const removeDelim = (d) => {
    if (d.prev) d.prev.next = d.next;
    if (d.next) d.next.prev = d.prev; else delims = d.prev;
  };

  function processEmphasis(bottom) {
    if (delims === bottom) return;
    let closer = delims;
    while (closer.prev && closer.prev !== bottom) closer = closer.prev;
    const openersBottom = new Map();
    while (closer) {
      if (!closer.canClose) { closer = closer.next; continue; }
      const key = closer.char === '~' ? `~${closer.count}` : `${closer.char}${closer.canOpen ? 1 : 0}${closer.orig % 3}`;
      const ob = openersBottom.has(key) ? openersBottom.get(key) : bottom;
      let opener = closer.prev, found = false;
      while (opener && opener !== bottom && opener !== ob) {
        if (opener.char === closer.char && opener.canOpen) {
          if (closer.char === '~') { if (opener.count === closer.count) { found = true; break; } }
          else {
            const odd = (closer.canOpen || opener.canClose) && closer.orig % 3 !== 0 && (opener.orig + closer.orig) % 3 === 0;
            if (!odd) { found = true; break; }
          }
        }
        opener = opener.prev;
      }
      if (!found) {
        const old = closer;
        closer = closer.next;
        openersBottom.set(key, old.prev);
        if (!old.canOpen) removeDelim(old);
        continue;
      }
      let use, type;
      if (closer.char === '~') { use = closer.count; type = 'del'; }
      else { use = closer.count >= 2 && opener.count >= 2 ? 2 : 1; type = use === 2 ? 'strong' : 'em'; }
      opener.count -= use;
      closer.count -= use;
      opener.node.value = opener.node.value.slice(0, opener.node.value.length - use);
      closer.node.value = closer.node.value.slice(0, closer.node.value.length - use);
      const wrap = mk(type);
      insertAfter(opener.node, wrap);
      moveBetween(wrap, closer.node, wrap);
      if (wrap.level > MAX_INLINE_DEPTH) { wrap.type = 'text-wrap'; wrap.level--; }
      opener.next = closer;
      closer.prev = opener;
      if (opener.count === 0) { unlink(opener.node); removeDelim(opener); }
      if (closer.count === 0) { const nx = closer.next; unlink(closer.node); removeDelim(closer); closer = nx; }
    }
    while (delims && delims !== bottom) removeDelim(delims);
  }

  function findTickCloser(from, k) {
    if (!ticks) {
      ticks = new Map();
      for (let i = s.indexOf('`'); i >= 0; i = s.indexOf('`', i)) {
        let j = i;
        while (s[j] === '`') j++;
        const n = j - i;
        if (!ticks.has(n)) ticks.set(n, { pos: [], ptr: 0 });
        ticks.get(n).pos.push(i);
        i = j;
      }
    }
    const runs = ticks.get(k);
    if (!runs) return -1;
    while (runs.ptr < runs.pos.length && runs.pos[runs.ptr] < from) runs.ptr++;
    return runs.ptr < runs.pos.length ? runs.pos[runs.ptr] : -1;
  }

  while (pos < len) {
    SPECIAL.lastIndex = pos;
    const m = SPECIAL.exec(s);
    const next = m ? m.index : len;
    if (next > pos) { pend += s.slice(pos, next); pos = next; if (pos >= len) break; }
    const c = s[pos];

    if (c === '\n') {
      let sp = 0;
      while (sp < pend.length && pend[pend.length - 1 - sp] === ' ') sp++;
      pend = pend.slice(0, pend.length - sp);
      brk(sp >= 2);
      pos++;
      while (s[pos] === ' ' || s[pos] === '\t') pos++;
    } else if (c === '\\') {
      const d = s[pos + 1];
      if (d === '\n') { brk(true); pos += 2; while (s[pos] === ' ') pos++; }
      else if (d !== undefined && ASCII_PUNCT.includes(d)) { pend += d; pos += 2; }
      else { pend += '\\'; pos++; }
    } else if (c === '`') {
      let j = pos;
      while (s[j] === '`') j++;
      const k = j - pos;
      const close = findTickCloser(j, k);
      if (close < 0) { pend += s.slice(pos, j); pos = j; continue; }
      let code = s.slice(j, close).replace(/\n/g, ' ');
      if (code.length >= 2 && code[0] === ' ' && code[code.length - 1] === ' ' && code.trim() !== '') code = code.slice(1, -1);
      flush();
      appendChild(root, mk('code', code));
      pos = close + k;
    } else if (c === '*' || c === '_' || c === '~') {
      let j = pos;
      while (s[j] === c) j++;
      const count = j - pos;
      if (c === '~' && count > 2) { pend += s.slice(pos, j); pos = j; continue; }
      const before = charBefore(s, pos), after = charAt(s, j);
      const bWs = isWs(before), aWs = isWs(after), bP = isPunct(before), aP = isPunct(after);
      const left = !aWs && (!aP || bWs || bP);
      const right = !bWs && (!bP || aWs || aP);
      let canOpen = left, canClose = right;
      if (c === '_') { canOpen = left && (!right || bP); canClose = right && (!left || aP); }
      flush();
      const node = mk('text', s.slice(pos, j));
      appendChild(root, node);
      if (canOpen || canClose) {
        const d = { node, char: c, count, orig: count, canOpen, canClose, prev: delims, next: null };
        if (delims) delims.next = d;
        delims = d;
      }
      pos = j;
    } else if (c === '[' || (c === '!' && s[pos + 1] === '[')) {
      const image = c === '!';
      flush();
      const node = mk('text', image ? '![' : '[');
      appendChild(root, node);
      brackets = { node, image, prevDelim: delims, prev: brackets, id: ++bracketId };
      pos += image ? 2 : 1;
    } else if (c === ']') {
      pos++;
      const op = brackets;
      if (!op) { pend += ']'; continue; }
      brackets = op.prev;
      if (!op.image && op.id <= inactiveUpTo) { pend += ']'; continue; }
      const tail = parseLinkTail(s, pos);
      if (!tail) { pend += ']'; continue; }
      flush();
      const link = mk(op.image ? 'image' : 'link');
      link.href = tail.href;
      link.title = tail.title;
      moveBetween(op.node, null, link);
      appendChild(root, link);
      processEmphasis(op.prevDelim);
      let level = 0;
      for (let t = link.first; t; t = t.next) if (t.level > level) level = t.level;
      link.level = level + 1;
      unlink(op.node);
      if (link.level > MAX_INLINE_DEPTH) { link.type = 'text-wrap'; link.level--; }
      if (!op.image) inactiveUpTo = bracketId;
      pos = tail.end;
    } else if (c === '<') {
      AUTOLINK_RE.lastIndex = pos;
      let am = AUTOLINK_RE.exec(s), href = null;
      if (am) href = am[1];
      else {
        EMAIL_RE.lastIndex = pos;
        am = EMAIL_RE.exec(s);
        if (am) href = 'mailto:' + am[1];
      }
      if (!am) { pend += '<'; pos++; continue; }
      flush();
      const link = mk('link');
      link.href = href;
      link.title = null;
      link.level = 1;
      appendChild(link, mk('text', am[1]));
      appendChild(root, link);
      pos += am[0].length;
    } else if (c === '&') {
      ENTITY_RE.lastIndex = pos;
      const em = ENTITY_RE.exec(s);
      const v = em && decodeEntity(em);
      if (em && v !== null) { pend += v; pos += em[0].length; }
      else { pend += '&'; pos++; }
    } else if (c === '!') {
      pend += '!';
      pos++;
    } else {
      // h/H/w/W: maybe a bare URL (GFM autolink extension).
      const prev = pos > 0 ? s[pos - 1] : ' ';
      let url = null;
      if ((isWs(prev) || '*_~(\'"'.includes(prev))) {
        BARE_RE.lastIndex = pos;
        const bm = BARE_RE.exec(s);
        if (bm) {
          url = trimBareUrl(bm[0]);
          const host = url.replace(/^(?:https?:\/\/|www\.)/i, '');
          if (!/^[\p{L}\p{N}]/u.test(host)) url = null;
        }
      }
      if (!url) { pend += c; pos++; continue; }
      flush();
      const link = mk('link');
      link.href = /^www\./i.test(url) ? 'http://' + url : url;
      link.title = null;
      link.level = 1;
      appendChild(link, mk('text', url));
      appendChild(root, link);
      pos += url.length;
    }
  }
  flush();
  processEmphasis(null);
  return toTree(root);
}

// Converts the linked tree to arrays. Over-deep wraps ('text-wrap') are flattened with an
// explicit stack, so the recursion depth stays within MAX_INLINE_DEPTH.
function toTree(parent) {
  const out = [];
  const stack = [parent.first];
  while (stack.length) {
    const t = stack.pop();
    if (!t) continue;
    stack.push(t.next);
    switch (t.type) {
      case 'text-wrap': stack.push(t.first); break;
      case 'text':
        if (!t.value) break;
        if (out.length && out[out.length - 1].type === 'text') out[out.length - 1].value += t.value;
        else out.push({ type: 'text', value: t.value });
        break;
      case 'code': out.push({ type: 'code', value: t.value }); break;
      case 'softbreak': case 'hardbreak': out.push({ type: t.type }); break;
      case 'em': case 'strong': case 'del': out.push({ type: t.type, children: toTree(t) }); break;
      case 'link': out.push({ type: 'link', href: t.href, title: t.title, children: toTree(t) }); break;
      case 'image': {
        const children = toTree(t);
        out.push({ type: 'image', href: t.href, title: t.title, alt: plainText(children), children });
        break;
      }
      default: break;
    }
  }
  return out;
}

function plainText(nodes) {
  let s = '';
  for (const n of nodes) {
    if (n.type === 'text' || n.type === 'code') s += n.value;
    else if (n.type === 'softbreak' || n.type === 'hardbreak') s += ' ';
    else if (n.type === 'image') s += n.alt;
    else if (n.children) s += plainText(n.children);
  }
  return s;
}

// ---------------------------------------------------------------------------------------------
// DOM

/** The URL if it may become a link (http, https, mailto or relative), else null. */
export function safeHref(href) {
  const u = String(href ?? '').replace(/[\t\n\r]/g, '').replace(/^[\u0000-\u0020]+/, '');
  if (!u.trim()) return null;
  const m = /^([A-Za-z][A-Za-z0-9+.-]*):/.exec(u);
  if (m && !['http', 'https', 'mailto'].includes(m[1].toLowerCase())) return null;
  return u;
}

function el(tag, className) {
  const e = document.createElement(tag);
  if (className) e.className = className;
  return e;
}

/** Renders Markdown as a DocumentFragment (no HTML strings anywhere). */
export function renderMarkdown(text, options = {}) {
  const opts = { highlight: true, copy: true, ...options };
  const frag = document.createDocumentFragment();
  for (const b of parseMarkdown(text).children) frag.append(renderBlock(b, opts, false));
  return frag;
}

/** Renders inline Markdown only (emphasis, code, links) as a DocumentFragment. */
export function renderInline(text) {
  const frag = document.createDocumentFragment();
  appendInlines(frag, parseInline(text), false, {});
  return frag;
}

function renderBlock(b, opts, tight) {
  switch (b.type) {
    case 'paragraph': {
      if (tight) { const f = document.createDocumentFragment(); appendInlines(f, b.children, false, opts); return f; }
      const p = el('p');
      appendInlines(p, b.children, false, opts);
      return p;
    }
    case 'heading': {
      const h = el('h' + b.level);
      appendInlines(h, b.children, false, opts);
      return h;
    }
    case 'hr': return el('hr');
    case 'code': return renderCode(b, opts);
    case 'blockquote': {
      const q = el('blockquote');
      for (const c of b.children) q.append(renderBlock(c, opts, false));
      return q;
    }
    case 'list': {
      const list = el(b.ordered ? 'ol' : 'ul');
      if (b.ordered && b.start !== 1) list.setAttribute('start', String(b.start));
      if (b.items.some((it) => it.checked !== null)) list.className = 'task-list';
      for (const it of b.items) {
        const li = el('li');
        if (it.checked !== null) {
          li.className = 'task-list-item';
          const box = el('input');
          box.setAttribute('type', 'checkbox');
          box.setAttribute('disabled', '');
          if (it.checked) box.setAttribute('checked', '');
          li.append(box, document.createTextNode(' '));
        }
        for (const c of it.children) li.append(renderBlock(c, opts, !b.loose));
        list.append(li);
      }
      return list;
    }
    case 'table': {
      const wrap = el('div', 'md-table-wrap');
      const table = el('table');
      const row = (cells, tag) => {
        const tr = el('tr');
        cells.forEach((cell, i) => {
          const td = el(tag);
          if (b.align[i]) td.style.textAlign = b.align[i];
          appendInlines(td, cell, false, opts);
          tr.append(td);
        });
        return tr;
      };
      const thead = el('thead');
      thead.append(row(b.head, 'th'));
      table.append(thead);
      if (b.rows.length) {
        const tbody = el('tbody');
        for (const r of b.rows) tbody.append(row(r, 'td'));
        table.append(tbody);
      }
      wrap.append(table);
      return wrap;
    }
    default: return document.createTextNode('');
  }
}

function renderCode(b, opts) {
  const lang = b.lang || '';
  const box = el('div', 'code-block');
  const head = el('div', 'code-head');
  const label = el('span', 'code-lang');
  label.textContent = lang || 'text';
  head.append(label);
  if (opts.copy) head.append(copyButton(b.value));
  const pre = el('pre');
  const code = el('code');
  const cls = lang.toLowerCase().replace(/[^a-z0-9_+#.-]/g, '');
  if (cls) code.className = 'language-' + cls;
  code.append(opts.highlight ? highlight(b.value, lang) : document.createTextNode(b.value));
  pre.append(code);
  box.append(head, pre);
  return box;
}

function copyButton(value) {
  const btn = el('button', 'btn-icon code-copy');
  btn.setAttribute('type', 'button');
  btn.setAttribute('aria-label', 'Copy code');
  btn.textContent = 'Copy';
  let timer = 0;
  const show = (label) => {
    btn.textContent = label;
    btn.setAttribute('aria-label', label === 'Copy' ? 'Copy code' : label);
    clearTimeout(timer);
    if (label !== 'Copy') timer = setTimeout(() => show('Copy'), 1500);
  };
  btn.addEventListener('click', () => {
    try {
      Promise.resolve(navigator.clipboard.writeText(value)).then(() => show('Copied'), () => show('Copy failed'));
    } catch {
      show('Copy failed');
    }
  });
  return btn;
}

function appendInlines(parent, nodes, inLink, opts) {
  for (const n of nodes) {
    switch (n.type) {
      case 'text': parent.append(document.createTextNode(n.value)); break;
      case 'softbreak': parent.append(opts.breaks ? el('br') : document.createTextNode('\n')); break;
      case 'hardbreak': parent.append(el('br')); break;
      case 'code': { const c = el('code'); c.textContent = n.value; parent.append(c); break; }
      case 'em': case 'strong': case 'del': {
        const e = el(n.type);
        appendInlines(e, n.children, inLink, opts);
        parent.append(e);
        break;
      }
      case 'link': case 'image': {
        const href = inLink ? null : safeHref(n.href);
        if (!href) {
          if (n.type === 'image') parent.append(document.createTextNode(n.alt));
          else appendInlines(parent, n.children, inLink, opts);
          break;
        }
        const a = el('a', n.type === 'image' ? 'md-image' : '');
        a.setAttribute('href', href);
        a.setAttribute('rel', 'noopener noreferrer nofollow');
        a.setAttribute('target', '_blank');
        if (n.title) a.setAttribute('title', n.title);
        if (n.type === 'image') a.append(document.createTextNode(n.alt || 'image'));
        else appendInlines(a, n.children, true, opts);
        parent.append(a);
        break;
      }
      default: break;
    }
  }
}
