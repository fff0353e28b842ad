// A small, table-driven syntax highlighter for code blocks in chat replies.
//
//   tokenize(code, language) -> [{cls: 'tok-…' | null, text}]   (plain data; the texts join to `code`)
//   highlight(code, language) -> DocumentFragment of text nodes and <span class="tok-…">
//   languageOf(name) -> canonical language id or null;  TOKEN_CLASSES: every class used
//
// One forward scanner per language family (C-like with a table per language, bash, SQL,
// HTML/XML, CSS, YAML, TOML, diff), linear time, no backtracking regexes. Unknown languages and
// markdown are plain text. It colours; it does not parse: regex literals, heredocs, nested
// template expressions and the like are approximated.
//
// Its styles are in chat/chat.css.

export const TOKEN_CLASSES = Object.freeze([
  'tok-keyword', 'tok-string', 'tok-comment', 'tok-number', 'tok-function', 'tok-type',
  'tok-operator', 'tok-punct', 'tok-attr', 'tok-tag', 'tok-inserted', 'tok-deleted',
]);

const MAX_CODE = 200_000; // longer code is shown plain

const KW = 'tok-keyword', STR = 'tok-string', COM = 'tok-comment', NUM = 'tok-number', FN = 'tok-function';
const TYPE = 'tok-type', OP = 'tok-operator', PUN = 'tok-punct', ATTR = 'tok-attr', TAG = 'tok-tag';

const words = (s) => new Set(s.split(/\s+/).filter(Boolean));

const JS_KW = 'break case catch class const continue debugger default delete do else export extends finally for from function if import in instanceof let new of return static switch throw try typeof var void while with yield async await get set';
const JS_LIT = 'true false null undefined NaN Infinity this super';
const TS_KW = JS_KW + ' interface type enum implements namespace declare readonly abstract private public protected keyof infer is as satisfies module override';
const TS_TYPES = 'string number boolean any unknown never void object bigint symbol';
const C_KW = 'auto break case const continue default do else enum extern for goto if inline register restrict return sizeof static struct switch typedef union volatile while';
const C_TYPES = 'void char short int long float double signed unsigned bool size_t ssize_t uint8_t uint16_t uint32_t uint64_t int8_t int16_t int32_t int64_t FILE';
const CPP_KW = C_KW + ' alignas alignof catch class constexpr consteval constinit decltype delete explicit export friend mutable namespace new noexcept operator private protected public requires static_assert static_cast dynamic_cast reinterpret_cast const_cast template this throw try typename using virtual co_await co_return co_yield concept override final';
const CPP_TYPES = C_TYPES + ' string vector map set unordered_map unique_ptr shared_ptr auto wchar_t char8_t char16_t char32_t';

// C-like languages: keywords, literals, types, comments, strings and a few flags.
const CLIKE = {
  js: { kw: JS_KW, lit: JS_LIT, types: '', str: '"\'`', multi: '`', dollar: true, decorators: true, defs: { function: FN, class: TYPE } },
  ts: { kw: TS_KW, lit: JS_LIT, types: TS_TYPES, str: '"\'`', multi: '`', dollar: true, decorators: true, defs: { function: FN, class: TYPE, interface: TYPE, type: TYPE, enum: TYPE } },
  json: { kw: '', lit: 'true false null', types: '', str: '"', keys: true, caps: false },
  python: {
    kw: 'and as assert async await break class continue def del elif else except finally for from global if import in is lambda nonlocal not or pass raise return try while with yield match case',
    lit: 'True False None self cls', types: 'int str float bool list dict set tuple bytes bytearray object type complex frozenset',
    line: ['#'], block: [], str: '"\'', triple: true, prefixes: 'rbfuRBFU', decorators: true, defs: { def: FN, class: TYPE },
  },
  rust: {
    kw: 'as async await break const continue crate dyn else enum extern fn for if impl in let loop match mod move mut pub ref return static struct super trait type unsafe use where while yield macro_rules',
    lit: 'true false self Self None Some Ok Err',
    types: 'i8 i16 i32 i64 i128 isize u8 u16 u32 u64 u128 usize f32 f64 bool char str String Vec Option Result Box',
    str: '"', multi: '"', rust: true, defs: { fn: FN, struct: TYPE, enum: TYPE, trait: TYPE, type: TYPE, impl: TYPE },
  },
  go: {
    kw: 'break case chan const continue default defer else fallthrough for func go goto if import interface map package range return select struct switch type var',
    lit: 'true false nil iota',
    types: 'bool byte complex64 complex128 error float32 float64 int int8 int16 int32 int64 rune string uint uint8 uint16 uint32 uint64 uintptr any',
    str: '"\'`', multi: '`', rawMulti: '`', caps: false, defs: { func: FN, type: TYPE },
  },
  java: {
    kw: 'abstract assert break case catch class continue default do else enum extends final finally for if implements import instanceof interface native new package private protected public return static strictfp super switch synchronized this throw throws transient try var volatile while record sealed permits yield',
    lit: 'true false null', types: 'boolean byte char double float int long short void String Object Integer List Map',
    str: '"\'', triple: true, dollar: true, decorators: true, defs: { class: TYPE, interface: TYPE, enum: TYPE, record: TYPE },
  },
  kotlin: {
    kw: 'as break class continue do else for fun if in interface is object package return super throw try typealias val var when while by catch constructor companion data enum finally import init inner internal lateinit open operator out override private protected public sealed suspend vararg where',
    lit: 'true false null this', types: 'Int Long Short Byte Double Float Boolean Char String Unit Any Nothing List Map Set Array',
    str: '"\'', triple: true, dollar: true, decorators: true, defs: { fun: FN, class: TYPE, interface: TYPE, object: TYPE },
  },
  c: { kw: C_KW, lit: 'true false NULL', types: C_TYPES, str: '"\'', pre: true, caps: false, defs: { struct: TYPE, enum: TYPE, union: TYPE } },
  cpp: { kw: CPP_KW, lit: 'true false nullptr NULL', types: CPP_TYPES, str: '"\'', pre: true, defs: { class: TYPE, struct: TYPE, enum: TYPE, namespace: TYPE } },
  csharp: {
    kw: 'abstract as base break case catch checked class const continue default delegate do else enum event explicit extern finally fixed for foreach goto if implicit in interface internal is lock namespace new operator out override params private protected public readonly record ref return sealed sizeof stackalloc static struct switch throw try typeof unchecked unsafe using virtual volatile while async await var get set init where yield',
    lit: 'true false null this', types: 'bool byte char decimal double float int long object sbyte short string uint ulong ushort void dynamic',
    str: '"\'', pre: true, decorators: false, csharp: true, defs: { class: TYPE, interface: TYPE, struct: TYPE, enum: TYPE, record: TYPE },
  },
  sql: {
    kw: 'select from where and or not insert into values update set delete create table index view drop alter add column primary key foreign references join inner left right outer full cross on group by order having limit offset as distinct union all exists in is null like ilike between case when then else end begin commit rollback transaction returning with recursive default unique check constraint if asc desc cascade grant revoke trigger function procedure returns language replace temporary temp materialized explain analyze vacuum using natural lateral over partition window filter true false do nothing conflict',
    lit: '', types: 'int integer bigint smallint serial bigserial text varchar char character boolean bool date time timestamp timestamptz interval numeric decimal real float double precision json jsonb uuid bytea blob',
    line: ['--'], str: '\'"`', ci: true, caps: false, defs: {},
  },
};
for (const L of Object.values(CLIKE)) {
  L.kw = words(L.kw);
  L.lit = words(L.lit);
  L.types = words(L.types);
  L.line ??= ['//'];
  L.block ??= [['/*', '*/']];
  L.multi ??= '';
  L.caps ??= true;
  L.defs ??= {};
}
CLIKE.jsx = { ...CLIKE.js, jsx: true };
CLIKE.tsx = { ...CLIKE.ts, jsx: true };

const ALIASES = {
  js: 'js', javascript: 'js', mjs: 'js', cjs: 'js', node: 'js', jsx: 'jsx', ts: 'ts', typescript: 'ts', mts: 'ts',
  cts: 'ts', tsx: 'tsx', json: 'json', jsonc: 'json', json5: 'json', jsonl: 'json', geojson: 'json',
  python: 'python', py: 'python', python3: 'python', py3: 'python', pycon: 'python', rust: 'rust', rs: 'rust',
  go: 'go', golang: 'go', java: 'java', kotlin: 'kotlin', kt: 'kotlin', kts: 'kotlin', c: 'c', h: 'c',
  cpp: 'cpp', 'c++': 'cpp', cc: 'cpp', cxx: 'cpp', hpp: 'cpp', hh: 'cpp', csharp: 'csharp', cs: 'csharp',
  'c#': 'csharp', bash: 'bash', sh: 'bash', shell: 'bash', zsh: 'bash', ksh: 'bash', console: 'bash',
  shellsession: 'bash', sql: 'sql', postgres: 'sql', postgresql: 'sql', psql: 'sql', mysql: 'sql', sqlite: 'sql',
  plsql: 'sql', html: 'html', htm: 'html', xhtml: 'html', vue: 'html', svelte: 'html', xml: 'xml', svg: 'xml',
  plist: 'xml', xsd: 'xml', css: 'css', scss: 'css', less: 'css', yaml: 'yaml', yml: 'yaml', toml: 'toml',
  ini: 'toml', diff: 'diff', patch: 'diff', markdown: 'markdown', md: 'markdown',
};

/** The canonical language for a fence's info word, or null when unknown. */
export function languageOf(name) {
  const key = String(name ?? '').trim().toLowerCase();
  return Object.prototype.hasOwnProperty.call(ALIASES, key) ? ALIASES[key] : null;
}

/** Splits code into [{cls, text}] tokens; cls is a TOKEN_CLASSES entry or null. */
export function tokenize(code, language) {
  const src = String(code ?? '');
  const lang = languageOf(language);
  const out = new Tokens();
  if (!lang || lang === 'markdown' || src.length > MAX_CODE) out.push(null, src);
  else if (CLIKE[lang]) scanClike(src, CLIKE[lang], out);
  else SCANNERS[lang](src, out);
  return out.list;
}

/** Highlights code as a DocumentFragment of text nodes and <span class="tok-…">. */
export function highlight(code, language) {
  const frag = document.createDocumentFragment();
  for (const t of tokenize(code, language)) {
    if (!t.cls) { frag.append(document.createTextNode(t.text)); continue; }
    const span = document.createElement('span');
    span.className = t.cls;
    span.textContent = t.text;
    frag.append(span);
  }
  return frag;
}

class Tokens {
  constructor() { this.list = []; }
  push(cls, text) {
    if (!text) return;
    const last = this.list[this.list.length - 1];
    if (last && last.cls === cls) last.text += text;
    else this.list.push({ cls, text });
  }
}

const isDigit = (c) => c >= '0' && c <= '9';
const isAlpha = (c) => (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
const UNI_LETTER = /[\p{L}\p{N}]/u;
const isIdent = (c, dollar) => c !== undefined && (isAlpha(c) || isDigit(c) || c === '_' || (dollar && c === '$') || (c > '\x7f' && UNI_LETTER.test(c)));
const isIdentStart = (c, dollar) => c !== undefined && !isDigit(c) && isIdent(c, dollar);
const isSpace = (c) => c === ' ' || c === '\t' || c === '\n' || c === '\r' || c === '\f' || c === '\v';
const OPS = '+-*/%=<>!&|^~?:';
const PUNCTS = '()[]{};,.';

function lineEnd(s, i) {
  const j = s.indexOf('\n', i);
  return j < 0 ? s.length : j;
}
function spaceRun(s, i) {
  while (i < s.length && isSpace(s[i])) i++;
  return i;
}
function atLineStart(s, i) {
  let k = i - 1;
  while (k >= 0 && (s[k] === ' ' || s[k] === '\t')) k--;
  return k < 0 || s[k] === '\n';
}
function numberEnd(s, i) {
  let j = i + 1;
  while (j < s.length) {
    const c = s[j];
    if (isIdent(c, false)) j++;
    else if (c === '.' && isDigit(s[j + 1] ?? '')) j++;
    else if ((c === '+' || c === '-') && (s[j - 1] === 'e' || s[j - 1] === 'E') && isDigit(s[i]) && s[i + 1] !== 'x' && isDigit(s[j + 1] ?? '')) j++;
    else break;
  }
  return j;
}
/** End of a quoted string starting at i (the quote); stops at a newline unless `multi`. */
function stringEnd(s, i, q, multi, escapes = true) {
  let j = i + 1;
  while (j < s.length) {
    const c = s[j];
    if (c === '\\' && escapes) { j += 2; continue; }
    if (c === q) return j + 1;
    if (c === '\n' && !multi) return j;
    j++;
  }
  return s.length;
}
function endOf(s, marker, from) {
  const j = s.indexOf(marker, from);
  return j < 0 ? s.length : j + marker.length;
}

function scanClike(s, L, out) {
  const n = s.length;
  let i = 0, prevWord = '', prevSig = '', inTag = false;
  while (i < n) {
    const c = s[i];
    let j;
    if (isSpace(c)) { j = spaceRun(s, i); out.push(null, s.slice(i, j)); i = j; continue; }

    if (L.pre && c === '#' && atLineStart(s, i)) { j = lineEnd(s, i); out.push(ATTR, s.slice(i, j)); i = j; continue; }
    const lc = L.line.find((m) => s.startsWith(m, i));
    if (lc) { j = lineEnd(s, i); out.push(COM, s.slice(i, j)); i = j; continue; }
    const bc = L.block.find((m) => s.startsWith(m[0], i));
    if (bc) { j = endOf(s, bc[1], i + bc[0].length); out.push(COM, s.slice(i, j)); i = j; continue; }

    if (L.rust && c === '#' && (s[i + 1] === '[' || (s[i + 1] === '!' && s[i + 2] === '['))) {
      const e = lineEnd(s, i);
      const k = s.indexOf(']', i);
      j = k < 0 || k > e ? e : k + 1;
      out.push(ATTR, s.slice(i, j)); i = j; continue;
    }
    if (L.decorators && c === '@' && isIdentStart(s[i + 1], false)) {
      j = i + 1;
      while (j < n && (isIdent(s[j], false) || (s[j] === '.' && isIdentStart(s[j + 1], false)))) j++;
      out.push(ATTR, s.slice(i, j)); i = j; continue;
    }
    if (L.csharp && (c === '@' || c === '$') && (s[i + 1] === '"' || (s[i + 2] === '"' && (s[i + 1] === '@' || s[i + 1] === '$')))) {
      const q = s.indexOf('"', i);
      j = c === '@' || s[i + 1] === '@' ? verbatimEnd(s, q) : stringEnd(s, q, '"', false);
      out.push(STR, s.slice(i, j)); i = j; continue;
    }

    if (L.rust && c === "'") {
      // char literal or lifetime
      let k = -1;
      if (s[i + 1] === '\\') { const e = s.indexOf("'", i + 2); if (e > 0 && e - i <= 12) k = e + 1; }
      else if (s[i + 2] === "'" && s[i + 1] !== "'") k = i + 3;
      else if (s.codePointAt(i + 1) > 0xffff && s[i + 3] === "'") k = i + 4;
      if (k > 0) { out.push(STR, s.slice(i, k)); i = k; continue; }
      if (isIdentStart(s[i + 1], false)) {
        j = i + 1;
        while (j < n && isIdent(s[j], false)) j++;
        out.push(TYPE, s.slice(i, j)); i = j; continue;
      }
      out.push(PUN, c); i++; continue;
    }
    if (L.str.includes(c)) {
      if (L.triple && s.startsWith(c + c + c, i)) j = endOf(s, c + c + c, i + 3);
      else j = stringEnd(s, i, c, L.multi.includes(c), !(L.rawMulti && L.rawMulti.includes(c)));
      const text = s.slice(i, j);
      if (L.keys && c === '"' && s[spaceRun(s, j)] === ':') out.push(ATTR, text);
      else out.push(STR, text);
      i = j; prevSig = '"'; continue;
    }

    if (isDigit(c) || (c === '.' && isDigit(s[i + 1] ?? ''))) {
      j = numberEnd(s, i); out.push(NUM, s.slice(i, j)); i = j; prevSig = '0'; continue;
    }

    if (isIdentStart(c, L.dollar)) {
      j = i + 1;
      while (j < n && isIdent(s[j], L.dollar)) j++;
      const word = s.slice(i, j);
      // string prefixes: r"", f'', b"" (python), r#""#, b'' (rust)
      if (L.prefixes && word.length <= 2 && [...word].every((ch) => L.prefixes.includes(ch)) && (s[j] === '"' || s[j] === "'")) {
        const q = s[j];
        const e = s.startsWith(q + q + q, j) ? endOf(s, q + q + q, j + 3) : stringEnd(s, j, q, false, !/r/i.test(word));
        out.push(STR, s.slice(i, e)); i = e; continue;
      }
      if (L.rust && (word === 'r' || word === 'br') && (s[j] === '#' || s[j] === '"')) {
        let k = j;
        while (s[k] === '#') k++;
        if (s[k] === '"') {
          const e = endOf(s, '"' + '#'.repeat(k - j), k + 1);
          out.push(STR, s.slice(i, e)); i = e; continue;
        }
      }
      if (L.rust && word === 'b' && (s[j] === '"' || s[j] === "'")) {
        const e = stringEnd(s, j, s[j], s[j] === '"');
        out.push(STR, s.slice(i, e)); i = e; continue;
      }
      const key = L.ci ? word.toLowerCase() : word;
      let cls = null;
      if (L.jsx && inTag && s[j] === '=') cls = ATTR;
      else if (L.kw.has(key)) cls = KW;
      else if (L.lit.has(key)) cls = KW;
      else if (L.types.has(key)) cls = TYPE;
      else if (L.rust && s[j] === '!' && s[j + 1] !== '=') { cls = FN; j++; }
      else if (L.defs[prevWord]) cls = L.defs[prevWord];
      else if (s[spaceRunInline(s, j)] === '(') cls = FN;
      else if (L.caps && c >= 'A' && c <= 'Z' && /[a-z]/.test(word)) cls = TYPE;
      out.push(cls, s.slice(i, j));
      prevWord = key; prevSig = 'a'; i = j; continue;
    }

    if (L.jsx && c === '<' && !inTag && jsxAllowed(prevSig, prevWord)) {
      const close = s[i + 1] === '/';
      const k = close ? i + 2 : i + 1;
      if (isIdentStart(s[k], true) || s[k] === '>') {
        j = k;
        while (j < n && (isIdent(s[j], true) || s[j] === '.' || s[j] === '-' || s[j] === ':')) j++;
        out.push(PUN, s.slice(i, k));
        out.push(TAG, s.slice(k, j));
        inTag = true; i = j; prevSig = '<'; continue;
      }
    }
    if (L.jsx && inTag && (c === '>' || (c === '/' && s[i + 1] === '>'))) {
      j = c === '>' ? i + 1 : i + 2;
      out.push(PUN, s.slice(i, j)); inTag = false; i = j; prevSig = '>'; prevWord = ''; continue;
    }

    if (OPS.includes(c)) {
      j = i + 1;
      while (j < n && j - i < 3 && OPS.includes(s[j]) && !L.line.some((m) => s.startsWith(m, j)) && !L.block.some((m) => s.startsWith(m[0], j))) j++;
      out.push(OP, s.slice(i, j)); prevSig = c; prevWord = ''; i = j; continue;
    }
    if (PUNCTS.includes(c)) { out.push(PUN, c); prevSig = c; if (c !== '.') prevWord = ''; i++; continue; }
    out.push(null, c); i++;
  }
}

function spaceRunInline(s, i) {
  while (s[i] === ' ' || s[i] === '\t') i++;
  return i;
}
function verbatimEnd(s, q) {
  let j = q + 1;
  while (j < s.length) {
    if (s[j] === '"') { if (s[j + 1] === '"') { j += 2; continue; } return j + 1; }
    j++;
  }
  return s.length;
}
function jsxAllowed(prevSig, prevWord) {
  if (prevSig === 'a') return prevWord === 'return' || prevWord === 'yield' || prevWord === 'default';
  return prevSig === '' || '(=,{}[:?&|>;'.includes(prevSig);
}

// ---------------------------------------------------------------------------------------------

const BASH_KW = words('if then else elif fi for while until do done case esac in function select return exit break continue local export readonly declare typeset unset shift source alias time');

function scanBash(s, out) {
  const n = s.length;
  let i = 0, cmd = true;
  while (i < n) {
    const c = s[i];
    let j;
    if (c === '\n') { out.push(null, c); cmd = true; i++; continue; }
    if (isSpace(c)) { j = i + 1; while (j < n && isSpace(s[j]) && s[j] !== '\n') j++; out.push(null, s.slice(i, j)); i = j; continue; }
    if (c === '#' && (i === 0 || isSpace(s[i - 1]) || s[i - 1] === ';')) { j = lineEnd(s, i); out.push(COM, s.slice(i, j)); i = j; continue; }
    if (c === '$' && s[i + 1] === ' ' && atLineStart(s, i)) { out.push(PUN, '$'); cmd = true; i++; continue; }
    if (c === "'") { j = stringEnd(s, i, "'", true, false); out.push(STR, s.slice(i, j)); i = j; cmd = false; continue; }
    if (c === '"') { j = stringEnd(s, i, '"', true); out.push(STR, s.slice(i, j)); i = j; cmd = false; continue; }
    if (c === '$') {
      if (s[i + 1] === '{') { const e = s.indexOf('}', i); const le = lineEnd(s, i); j = e < 0 || e > le ? le : e + 1; }
      else if (s[i + 1] === "'") { j = stringEnd(s, i + 1, "'", true); out.push(STR, s.slice(i, j)); i = j; continue; }
      else if (s[i + 1] === '(') { out.push(PUN, '$('); i += 2; cmd = true; continue; }
      else if (isIdentStart(s[i + 1], false)) { j = i + 1; while (j < n && isIdent(s[j], false)) j++; }
      else if (s[i + 1] !== undefined && '0123456789@#?$!*-'.includes(s[i + 1])) j = i + 2;
      else { out.push(null, c); i++; continue; }
      out.push(ATTR, s.slice(i, j)); i = j; cmd = false; continue;
    }
    if ('|&;()<>'.includes(c)) {
      j = i + 1;
      while (j < n && j - i < 3 && '|&;<>'.includes(s[j])) j++;
      const op = s.slice(i, j);
      out.push(c === '(' || c === ')' ? PUN : OP, op);
      if (/[|&;(]/.test(op)) cmd = true;
      i = j; continue;
    }
    if (c === '`') { out.push(PUN, c); cmd = true; i++; continue; }
    if (c === '\\') { out.push(null, s.slice(i, i + 2)); i += 2; continue; }
    // a word
    j = i;
    while (j < n && !isSpace(s[j]) && !'|&;()<>"\'$`\\'.includes(s[j])) j++;
    if (j === i) { out.push(null, c); i++; continue; }
    const word = s.slice(i, j);
    const eq = word.indexOf('=');
    if (cmd && eq > 0 && /^[A-Za-z_][A-Za-z0-9_]*$/.test(word.slice(0, eq))) {
      out.push(ATTR, word.slice(0, eq)); out.push(OP, '='); out.push(null, word.slice(eq + 1));
    } else if (BASH_KW.has(word) && (cmd || word === 'in' || word === 'do' || word === 'then')) {
      out.push(KW, word);
      cmd = !['in', 'for', 'case', 'select', 'function'].includes(word);
    } else if (word[0] === '-' && word.length > 1) {
      out.push(ATTR, word);
    } else if (/^[0-9]+$/.test(word)) {
      out.push(NUM, word); cmd = false;
    } else if (cmd && word !== '[' && word !== '[[') {
      out.push(FN, word); cmd = false;
    } else {
      out.push(null, word); cmd = false;
    }
    i = j;
  }
}

// ---------------------------------------------------------------------------------------------

function scanMarkup(s, out, html) {
  const n = s.length;
  const lower = html ? s.toLowerCase() : s;
  let i = 0;
  while (i < n) {
    const c = s[i];
    let j;
    if (c === '<') {
      if (s.startsWith('<!--', i)) { j = endOf(s, '-->', i + 4); out.push(COM, s.slice(i, j)); i = j; continue; }
      if (s.startsWith('<![CDATA[', i)) { j = endOf(s, ']]>', i + 9); out.push(STR, s.slice(i, j)); i = j; continue; }
      if (s[i + 1] === '!' || s[i + 1] === '?') { j = endOf(s, '>', i + 2); out.push(KW, s.slice(i, j)); i = j; continue; }
      const close = s[i + 1] === '/';
      const k = close ? i + 2 : i + 1;
      if (isAlpha(s[k] ?? '')) {
        j = k;
        while (j < n && !isSpace(s[j]) && s[j] !== '>' && s[j] !== '/' && s[j] !== '<') j++;
        const name = s.slice(k, j);
        out.push(PUN, s.slice(i, k));
        out.push(TAG, name);
        i = scanAttributes(s, j, out);
        const tag = name.toLowerCase();
        if (html && !close && (tag === 'script' || tag === 'style') && s[i - 1] === '>' && s[i - 2] !== '/') {
          const endTag = lower.indexOf('</' + tag, i);
          const e = endTag < 0 ? n : endTag;
          const inner = tag === 'script' ? (/\btype\s*=\s*["']?(?:application\/json|importmap)/i.test(s.slice(k, i)) ? 'json' : 'js') : 'css';
          for (const t of tokenize(s.slice(i, e), inner)) out.push(t.cls, t.text);
          i = e;
        }
        continue;
      }
      out.push(null, c); i++; continue;
    }
    if (c === '&') {
      j = i + 1;
      while (j < n && j - i < 32 && (isIdent(s[j], false) || s[j] === '#')) j++;
      if (s[j] === ';' && j > i + 1) { out.push(NUM, s.slice(i, j + 1)); i = j + 1; continue; }
      out.push(null, c); i++; continue;
    }
    j = i + 1;
    while (j < n && s[j] !== '<' && s[j] !== '&') j++;
    out.push(null, s.slice(i, j)); i = j;
  }
}

function scanAttributes(s, i, out) {
  const n = s.length;
  while (i < n) {
    const c = s[i];
    if (isSpace(c)) { const j = spaceRun(s, i); out.push(null, s.slice(i, j)); i = j; continue; }
    if (c === '>') { out.push(PUN, c); return i + 1; }
    if (c === '/' && s[i + 1] === '>') { out.push(PUN, '/>'); return i + 2; }
    if (c === '<') return i;
    if (c === '=') { out.push(OP, c); i++; continue; }
    if (c === '"' || c === "'") { const j = stringEnd(s, i, c, true, false); out.push(STR, s.slice(i, j)); i = j; continue; }
    let j = i;
    const afterEq = s[i - 1] === '=';
    while (j < n && !isSpace(s[j]) && !'>"\'=<'.includes(s[j]) && !(s[j] === '/' && s[j + 1] === '>')) j++;
    if (j === i) j = i + 1;
    out.push(afterEq ? STR : ATTR, s.slice(i, j)); i = j;
  }
  return i;
}

// ---------------------------------------------------------------------------------------------

function scanCss(s, out) {
  const n = s.length;
  let i = 0, depth = 0, parens = 0, inValue = false, prop = false, valueParens = false;
  while (i < n) {
    const c = s[i];
    let j;
    if (isSpace(c)) { j = spaceRun(s, i); out.push(null, s.slice(i, j)); i = j; continue; }
    if (c !== ':') prop = false;
    if (s.startsWith('/*', i)) { j = endOf(s, '*/', i + 2); out.push(COM, s.slice(i, j)); i = j; continue; }
    if (s.startsWith('//', i) && (i === 0 || isSpace(s[i - 1]))) { j = lineEnd(s, i); out.push(COM, s.slice(i, j)); i = j; continue; }
    if (c === '"' || c === "'") { j = stringEnd(s, i, c, false); out.push(STR, s.slice(i, j)); i = j; continue; }
    if (c === '{') { out.push(PUN, c); depth++; inValue = false; i++; continue; }
    if (c === '}') { out.push(PUN, c); depth = Math.max(0, depth - 1); inValue = false; i++; continue; }
    if (c === ';') { out.push(PUN, c); inValue = false; i++; continue; }
    if (c === '@') { j = i + 1; while (j < n && (isIdent(s[j], false) || s[j] === '-')) j++; out.push(KW, s.slice(i, j)); i = j; continue; }
    if (c === '!' && s.startsWith('important', i + 1)) { out.push(KW, s.slice(i, i + 10)); i += 10; continue; }
    if (isDigit(c) && !inValue) {
      j = i + 1;
      while (j < n && (isDigit(s[j]) || s[j] === '.')) j++;
      while (j < n && (isAlpha(s[j]) || s[j] === '%')) j++;
      out.push(NUM, s.slice(i, j)); i = j; continue;
    }
    if (inValue) {
      if (c === '#') { j = i + 1; while (j < n && isIdent(s[j], false)) j++; out.push(NUM, s.slice(i, j)); i = j; continue; }
      if (isDigit(c) || ((c === '.' || c === '-' || c === '+') && isDigit(s[i + 1] ?? ''))) {
        j = i + 1;
        while (j < n && (isDigit(s[j]) || s[j] === '.')) j++;
        while (j < n && (isAlpha(s[j]) || s[j] === '%')) j++;
        out.push(NUM, s.slice(i, j)); i = j; continue;
      }
    }
    if (isIdentStart(c, false) || c === '-') {
      j = i + 1;
      while (j < n && (isIdent(s[j], false) || s[j] === '-')) j++;
      const word = s.slice(i, j);
      const k = spaceRunInline(s, j);
      let cls;
      if (inValue) cls = s[j] === '(' ? FN : null;
      else if (s[k] === ':' && s[k + 1] !== ':' && (parens > 0 || (depth > 0 && isDeclaration(s, k)))) { cls = ATTR; prop = true; }
      else cls = TAG;
      out.push(cls, word); i = j; continue;
    }
    if (c === ':') {
      if (prop) { out.push(PUN, c); inValue = true; prop = false; i++; continue; }
      j = i + 1; if (s[j] === ':') j++;
      while (j < n && (isIdent(s[j], false) || s[j] === '-')) j++;
      out.push(KW, s.slice(i, j)); i = j; continue;
    }
    if ((c === '.' || c === '#') && isIdentStart(s[i + 1] ?? '', false) || (c === '.' && s[i + 1] === '-')) {
      j = i + 1; while (j < n && (isIdent(s[j], false) || s[j] === '-')) j++;
      out.push(TYPE, s.slice(i, j)); i = j; continue;
    }
    if ('>+~*=|^$'.includes(c)) { out.push(OP, c); i++; continue; }
    if (c === '(') { parens++; if (parens === 1 && inValue) valueParens = true; }
    if (c === ')') { parens = Math.max(0, parens - 1); if (!parens && !valueParens) inValue = false; if (!parens) valueParens = false; }
    if ('()[],'.includes(c)) { out.push(PUN, c); i++; continue; }
    out.push(null, c); i++;
  }
}

/** After `prop` comes `:` at k: is this a declaration (`;` or `}` before any `{`)? Bounded look-ahead. */
function isDeclaration(s, k) {
  const end = Math.min(s.length, k + 400);
  for (let j = k + 1; j < end; j++) {
    const c = s[j];
    if (c === '{') return false;
    if (c === ';' || c === '}') return true;
  }
  return true;
}

// ---------------------------------------------------------------------------------------------

const YAML_LIT = words('true false null yes no on off True False Null TRUE FALSE NULL Yes No ~');
const NUMBER_RE = /^[-+]?(?:0x[0-9a-fA-F_]+|0o[0-7_]+|0b[01_]+|(?:\d[\d_]*)?\.?\d[\d_]*(?:[eE][-+]?\d+)?|\.inf|\.nan|inf|nan)$/;

function scalarClass(v) {
  if (YAML_LIT.has(v)) return KW;
  if (v.length < 64 && NUMBER_RE.test(v)) return NUM;
  return STR;
}

function scanYaml(s, out) {
  const lines = s.split('\n');
  let block = -1; // indent of the key owning a block scalar (| or >), or -1
  lines.forEach((line, li) => {
    if (li) out.push(null, '\n');
    const ind = line.length - line.trimStart().length;
    if (block >= 0) {
      if (line.trim() === '' || ind > block) { out.push(STR, line); return; }
      block = -1;
    }
    out.push(null, line.slice(0, ind));
    let i = ind;
    const rest = line.slice(i);
    if (rest.startsWith('#')) { out.push(COM, rest); return; }
    if (rest.startsWith('---') || rest.startsWith('...')) { out.push(PUN, rest.slice(0, 3)); i += 3; }
    while (line[i] === '-' && (line[i + 1] === ' ' || line[i + 1] === undefined)) {
      out.push(PUN, '-'); i++;
      const j = spaceRunInline(line, i); out.push(null, line.slice(i, j)); i = j;
    }
    // key?
    const keyEnd = yamlKeyEnd(line, i);
    if (keyEnd > i) {
      out.push(ATTR, line.slice(i, keyEnd)); out.push(PUN, ':'); i = keyEnd + 1;
    }
    i = yamlValue(line, i, out);
    const v = line.slice(i);
    if (/^\s*[|>][-+0-9]*\s*(?:#.*)?$/.test(v)) {
      out.push(OP, v); block = ind; return;
    }
    out.push(null, v);
  });
}

function yamlKeyEnd(line, i) {
  if (line[i] === '"' || line[i] === "'") {
    const e = stringEnd(line, i, line[i], false);
    return line[e] === ':' && (line[e + 1] === undefined || line[e + 1] === ' ' || line[e + 1] === '\t') ? e : -1;
  }
  if (line[i] === '#' || line[i] === '[' || line[i] === '{' || line[i] === '&' || line[i] === '*' || line[i] === '!') return -1;
  for (let j = i; j < line.length; j++) {
    const c = line[j];
    if (c === '#' && (line[j - 1] === ' ' || line[j - 1] === '\t')) return -1;
    if (c === ':' && (line[j + 1] === undefined || line[j + 1] === ' ' || line[j + 1] === '\t')) return j > i ? j : -1;
  }
  return -1;
}

/** Tokenizes a YAML value from i up to a block-scalar indicator; returns where it stopped. */
function yamlValue(line, i, out) {
  const n = line.length;
  while (i < n) {
    const c = line[i];
    let j;
    if (c === ' ' || c === '\t') { j = spaceRunInline(line, i); out.push(null, line.slice(i, j)); i = j; continue; }
    if (c === '#' && (i === 0 || line[i - 1] === ' ' || line[i - 1] === '\t')) { out.push(COM, line.slice(i)); return n; }
    if (c === '|' || c === '>') return i;
    if (c === '"' || c === "'") { j = stringEnd(line, i, c, false, c === '"'); out.push(STR, line.slice(i, j)); i = j; continue; }
    if (c === '&' || c === '*' || c === '!') { j = i + 1; while (j < n && !isSpace(line[j]) && !',[]{}'.includes(line[j])) j++; out.push(TYPE, line.slice(i, j)); i = j; continue; }
    if ('[]{},'.includes(c)) { out.push(PUN, c); i++; continue; }
    if (c === ':' && (line[i + 1] === ' ' || line[i + 1] === undefined)) { out.push(PUN, c); i++; continue; }
    j = i;
    while (j < n && !(line[j] === ' ' && line[j + 1] === '#') && !',[]{}'.includes(line[j]) && !(line[j] === ':' && line[j + 1] === ' ')) j++;
    // inside flow collections stop at the separators; elsewhere take the whole scalar
    let v = line.slice(i, j);
    const trimmed = v.trimEnd();
    out.push(scalarClass(trimmed), trimmed);
    out.push(null, v.slice(trimmed.length));
    i = j;
  }
  return i;
}

// ---------------------------------------------------------------------------------------------

function scanToml(s, out) {
  const n = s.length;
  let i = 0, depth = 0;
  while (i < n) {
    const c = s[i];
    let j;
    if (isSpace(c)) { j = spaceRun(s, i); out.push(null, s.slice(i, j)); i = j; continue; }
    if (c === '#' || c === ';' && atLineStart(s, i)) { j = lineEnd(s, i); out.push(COM, s.slice(i, j)); i = j; continue; }
    if (c === '[' && depth === 0 && atLineStart(s, i)) {
      const e = lineEnd(s, i);
      const k = s.indexOf(']', i);
      j = k < 0 || k > e ? e : (s[k + 1] === ']' ? k + 2 : k + 1);
      out.push(TYPE, s.slice(i, j)); i = j; continue;
    }
    if (c === '"' || c === "'") {
      const triple = s.startsWith(c + c + c, i);
      j = triple ? endOf(s, c + c + c, i + 3) : stringEnd(s, i, c, false, c === '"');
      const k = spaceRunInline(s, j);
      out.push(!triple && s[k] === '=' ? ATTR : STR, s.slice(i, j)); i = j; continue;
    }
    if (c === '[' || c === '{') { out.push(PUN, c); depth++; i++; continue; }
    if (c === ']' || c === '}') { out.push(PUN, c); depth = Math.max(0, depth - 1); i++; continue; }
    if (c === ',' || c === '.') { out.push(PUN, c); i++; continue; }
    if (c === '=') { out.push(OP, c); i++; continue; }
    j = i;
    while (j < n && (isIdent(s[j], false) || '-+:._'.includes(s[j]))) j++;
    if (j === i) { out.push(null, c); i++; continue; }
    let word = s.slice(i, j);
    const k = spaceRunInline(s, j);
    if (s[k] === '=') { out.push(ATTR, word); i = j; continue; } // a bare or dotted key
    if (word === 'true' || word === 'false') out.push(KW, word);
    else if (isDigit(word[0]) || ((word[0] === '+' || word[0] === '-') && isDigit(word[1] ?? '')) || word === 'inf' || word === 'nan') out.push(NUM, word);
    else if (/^[A-Za-z_][\w-]*$/.test(word) && atLineStart(s, i)) out.push(ATTR, word);
    else out.push(null, word);
    i = j;
  }
}

// ---------------------------------------------------------------------------------------------

function scanDiff(s, out) {
  const lines = s.split('\n');
  lines.forEach((line, li) => {
    if (li) out.push(null, '\n');
    const next = lines[li + 1] ?? '', prev = lines[li - 1] ?? '';
    let cls = null;
    if (/^(?:diff |index |similarity |rename |new file|deleted file|old mode|new mode|Binary files)/.test(line)) cls = COM;
    else if ((line.startsWith('--- ') && next.startsWith('+++ ')) || (line.startsWith('+++ ') && prev.startsWith('--- '))) cls = COM;
    else if (line.startsWith('@@')) cls = KW;
    else if (line[0] === '+' || line[0] === '>') cls = 'tok-inserted';
    else if (line[0] === '-' || line[0] === '<') cls = 'tok-deleted';
    out.push(cls, line);
  });
}

const SCANNERS = {
  bash: scanBash,
  html: (s, out) => scanMarkup(s, out, true),
  xml: (s, out) => scanMarkup(s, out, false),
  css: scanCss,
  yaml: scanYaml,
  toml: scanToml,
  diff: scanDiff,
};
