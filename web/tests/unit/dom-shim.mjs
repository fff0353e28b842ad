// A tiny DOM for unit tests under Node (no npm packages): just what markdown.js and
// highlight.js use — createElement / createTextNode / createDocumentFragment, append,
// textContent, className, setAttribute, style, children, addEventListener — plus helpers to
// serialise a tree (`toHTML`, test-only) and find elements (`findAll`).
// Importing it installs `globalThis.document`.

class Node {
  constructor() { this.childNodes = []; this.parentNode = null; }
  append(...nodes) {
    for (const n of nodes) this.appendChild(typeof n === 'string' ? new Text(n) : n);
  }
  appendChild(n) {
    if (!(n instanceof Node)) throw new TypeError('appendChild: not a Node');
    if (n instanceof DocumentFragment) {
      for (const c of [...n.childNodes]) this.appendChild(c);
      return n;
    }
    if (n.parentNode) n.parentNode.removeChild(n);
    n.parentNode = this;
    this.childNodes.push(n);
    return n;
  }
  removeChild(n) {
    const i = this.childNodes.indexOf(n);
    if (i < 0) throw new Error('removeChild: not a child');
    this.childNodes.splice(i, 1);
    n.parentNode = null;
    return n;
  }
  replaceChildren(...nodes) {
    for (const c of this.childNodes) c.parentNode = null;
    this.childNodes = [];
    this.append(...nodes);
  }
  get firstChild() { return this.childNodes[0] ?? null; }
  get lastChild() { return this.childNodes[this.childNodes.length - 1] ?? null; }
  get children() { return this.childNodes.filter((c) => c instanceof Element); }
  get textContent() { return this.childNodes.map((c) => c.textContent).join(''); }
  set textContent(v) {
    this.replaceChildren();
    const s = String(v ?? '');
    if (s) this.append(new Text(s));
  }
}

class Text extends Node {
  constructor(data) { super(); this.data = String(data); }
  get nodeType() { return 3; }
  get nodeValue() { return this.data; }
  get textContent() { return this.data; }
  set textContent(v) { this.data = String(v); }
  appendChild() { throw new Error('Text nodes have no children'); }
}

class Element extends Node {
  constructor(tag) {
    super();
    this.localName = String(tag).toLowerCase();
    this.tagName = this.localName.toUpperCase();
    this.className = '';
    this.attributes = new Map();
    this.style = {};
    this.listeners = new Map();
  }
  get nodeType() { return 1; }
  setAttribute(k, v) {
    if (k === 'class') this.className = String(v);
    else this.attributes.set(k, String(v));
  }
  getAttribute(k) {
    if (k === 'class') return this.className || null;
    return this.attributes.has(k) ? this.attributes.get(k) : null;
  }
  hasAttribute(k) { return k === 'class' ? !!this.className : this.attributes.has(k); }
  removeAttribute(k) { if (k === 'class') this.className = ''; else this.attributes.delete(k); }
  get classList() {
    const list = this.className.split(/\s+/).filter(Boolean);
    return { contains: (c) => list.includes(c), length: list.length, [Symbol.iterator]: () => list[Symbol.iterator]() };
  }
  addEventListener(type, fn) {
    if (!this.listeners.has(type)) this.listeners.set(type, []);
    this.listeners.get(type).push(fn);
  }
  removeEventListener(type, fn) {
    const l = this.listeners.get(type);
    if (l) this.listeners.set(type, l.filter((f) => f !== fn));
  }
  dispatchEvent(ev) {
    for (const fn of this.listeners.get(ev.type) ?? []) fn.call(this, ev);
    return true;
  }
  click() { this.dispatchEvent({ type: 'click', target: this, preventDefault() {} }); }
  set innerHTML(_) { throw new Error('innerHTML is forbidden (Trusted Types)'); }
  set outerHTML(_) { throw new Error('outerHTML is forbidden (Trusted Types)'); }
  insertAdjacentHTML() { throw new Error('insertAdjacentHTML is forbidden (Trusted Types)'); }
}

class DocumentFragment extends Node {
  get nodeType() { return 11; }
}

export const document = {
  createElement: (tag) => new Element(tag),
  createTextNode: (text) => new Text(text),
  createDocumentFragment: () => new DocumentFragment(),
  createElementNS() { throw new Error('not in the shim'); },
  write() { throw new Error('document.write is forbidden'); },
};
globalThis.document = document;

export { Node, Text, Element, DocumentFragment };

const VOID = new Set(['br', 'hr', 'input', 'img']);
const esc = (s) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const escAttr = (s) => esc(s).replace(/"/g, '&quot;');

/** Serialises a shim tree, for readable assertions (tests only; the app never builds HTML). */
export function toHTML(node) {
  if (node instanceof Text) return esc(node.data);
  if (!(node instanceof Element)) return node.childNodes.map(toHTML).join('');
  let attrs = node.className ? ` class="${escAttr(node.className)}"` : '';
  for (const [k, v] of node.attributes) attrs += v === '' ? ` ${k}` : ` ${k}="${escAttr(v)}"`;
  const style = Object.entries(node.style).map(([k, v]) => `${k.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase())}:${v}`).join(';');
  if (style) attrs += ` style="${escAttr(style)}"`;
  if (VOID.has(node.localName)) return `<${node.localName}${attrs}>`;
  return `<${node.localName}${attrs}>${node.childNodes.map(toHTML).join('')}</${node.localName}>`;
}

/** Every element under `root` (depth first) that is `tag` (and has class `cls`, if given). */
export function findAll(root, tag, cls) {
  const out = [];
  const walk = (n) => {
    for (const c of n.childNodes) {
      if (c instanceof Element) {
        if ((!tag || c.localName === tag) && (!cls || c.classList.contains(cls))) out.push(c);
        walk(c);
      }
    }
  };
  walk(root);
  return out;
}
