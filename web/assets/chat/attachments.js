// Attachments waiting to be sent: each file is uploaded at once (`POST /v1/files`, multipart)
// and shown as a preview (images) or a chip (name, size) with a remove button. A message then
// names them as AI SDK file parts `{type:'file', mediaType, filename, url:'/v1/files/{id}/content'}`.

import { api } from '../lib/api.js';
import { h, toast } from '../lib/dom.js';
import { formatSize, icon } from './ui.js';

export const MAX_FILES = 5;

export function createAttachments({ onChange } = {}) {
  const items = []; // {key, file, status:'uploading'|'ready'|'error', meta, preview, el, error}
  const el = h('div', { class: 'attachments', hidden: true, 'aria-label': 'Attachments', role: 'list' });
  let key = 0;

  function changed() {
    el.hidden = items.length === 0;
    onChange?.();
  }

  function remove(item) {
    const i = items.indexOf(item);
    if (i >= 0) items.splice(i, 1);
    item.el.remove();
    if (item.preview?.startsWith('blob:')) URL.revokeObjectURL(item.preview);
    changed();
  }

  function render(item) {
    const isImage = (item.meta?.media_type || item.file.type || '').startsWith('image/');
    const thumb = isImage && item.preview
      ? h('img', { class: 'attachment-thumb', src: item.preview, alt: '' })
      : h('span', { class: 'attachment-icon' }, icon('file', 18));
    const status = item.status === 'uploading' ? 'Uploading…' : item.status === 'error' ? (item.error || 'Upload failed') : formatSize(item.meta?.size ?? item.file.size);
    const next = h('div', { class: ['attachment', `is-${item.status}`], role: 'listitem', dataset: { status: item.status } },
      thumb,
      h('span', { class: 'attachment-text' },
        h('span', { class: 'attachment-name' }, item.meta?.filename || item.file.name || 'file'),
        h('span', { class: 'attachment-size' }, status)),
      h('button', { type: 'button', class: 'btn-icon attachment-remove', 'aria-label': `Remove ${item.file.name || 'file'}`, onclick: () => remove(item) }, icon('x', 14)));
    if (item.el) item.el.replaceWith(next);
    item.el = next;
    return next;
  }

  async function upload(item) {
    const form = new FormData();
    form.append('file', item.file, item.file.name || 'pasted-file');
    try {
      item.meta = await api('POST', '/v1/files', { body: form });
      item.status = 'ready';
    } catch (e) {
      item.status = 'error';
      item.error = e.status === 415 ? 'This kind of file is not supported' : e.status === 413 ? 'The file is too large' : (e.detail || e.message);
    }
    if (items.includes(item)) { render(item); changed(); }
  }

  /** Adds files (from the picker, a paste or a drop) and uploads them. */
  function add(files) {
    for (const file of Array.from(files || [])) {
      if (items.length >= MAX_FILES) { toast(`At most ${MAX_FILES} files per message`, 'error'); break; }
      const item = { key: ++key, file, status: 'uploading', meta: null, preview: null, el: null };
      if (file.type.startsWith('image/')) item.preview = URL.createObjectURL(file);
      items.push(item);
      el.append(render(item));
      upload(item);
    }
    changed();
  }

  return {
    el,
    add,
    get count() { return items.length; },
    busy: () => items.some((i) => i.status === 'uploading'),
    failed: () => items.some((i) => i.status === 'error'),
    /** The ready files as they will be sent. */
    files: () => items.filter((i) => i.status === 'ready').map((i) => i.meta),
    parts: () => items.filter((i) => i.status === 'ready').map((i) => ({
      type: 'file', mediaType: i.meta.media_type, filename: i.meta.filename, url: i.meta.url || `/v1/files/${i.meta.id}/content`,
    })),
    clear() { for (const i of [...items]) remove(i); },
  };
}
