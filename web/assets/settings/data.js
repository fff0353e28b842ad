// Settings → Data: export (the account zip of `GET /v1/me/export`, one thread as JSON,
// Markdown or CSV), import (`POST /v1/me/import`: ChatGPT, LibreChat, Open WebUI, Chatbot UI
// and Threadline exports; the server recognises the format of each conversation itself, the
// choice here only says where to find the file), and the account's share links with revoke.
// Downloads are plain links: the session cookie goes with them.

import { h, replace, toast } from '../lib/dom.js';
import { get, post, del, listAll } from '../lib/api.js';
import { field, section, loading, describeError, confirmDialog, showApiError, clearErrors, setFieldError, busy, formatInt, relativeTimeEl, copyText } from './ui.js';

export const IMPORT_SOURCES = [
  { id: 'auto', label: 'Any supported app (recognised automatically)', hint: 'Pick the file; each conversation’s format is recognised on its own.' },
  { id: 'chatgpt', label: 'ChatGPT', hint: 'ChatGPT → Settings → Data controls → Export. Unzip the mail’s archive and pick conversations.json.' },
  { id: 'librechat', label: 'LibreChat', hint: 'LibreChat → a conversation’s menu → Export → JSON (tree or not).' },
  { id: 'openwebui', label: 'Open WebUI', hint: 'Open WebUI → Settings → Chats → Export chats.' },
  { id: 'chatbotui', label: 'Chatbot UI', hint: 'Chatbot UI → Settings → Export data.' },
  { id: 'threadline', label: 'Threadline', hint: 'A thread’s JSON export, or the whole-account zip from “Download everything”.' },
];

const SOURCE_LABEL = { chatgpt: 'ChatGPT', librechat: 'LibreChat', openwebui: 'Open WebUI', chatbotui: 'Chatbot UI', threadline: 'Threadline' };

export function render(panel, ctx) {
  let gone = false;
  replace(panel,
    exportSection(),
    importSection(),
    sharesSection(),
    eraseSection());

  // ---- export ---------------------------------------------------------------------------------
  function exportSection() {
    const threadSelect = h('select', { name: 'thread', 'aria-label': 'Thread to export' }, h('option', { value: '' }, 'Loading threads…'));
    const links = h('div', { class: 'form-actions thread-export-links' });
    const updateLinks = () => {
      const id = threadSelect.value;
      replace(links, id ? [
        ['json', 'JSON (every branch)'], ['markdown', 'Markdown'], ['csv', 'CSV'],
      ].map(([format, label]) => h('a', {
        class: 'btn', href: `/v1/threads/${encodeURIComponent(id)}/export?format=${format}`, download: '',
        dataset: { format },
      }, label)) : h('span', { class: 'muted' }, 'Choose a thread.'));
    };
    threadSelect.addEventListener('change', updateLinks);
    Promise.all([listAll('/v1/threads', { limit: 200 }, 500), listAll('/v1/threads', { limit: 200, archived: true }, 500)])
      .then(([active, archived]) => {
        if (gone) return;
        const all = [...active, ...archived];
        replace(threadSelect, all.length
          ? all.map((t) => h('option', { value: t.id }, `${t.title || 'Untitled thread'}${t.archived ? ' (archived)' : ''}`))
          : h('option', { value: '' }, 'No threads yet'));
        updateLinks();
      })
      .catch((e) => { replace(threadSelect, h('option', { value: '' }, `Threads could not load: ${describeError(e)}`)); });

    return section('Export',
      h('p', null, 'Everything your account holds, as a zip: your profile and preferences, every thread (archived ones too) with all its branches, your files, and your credit ledger.'),
      h('p', null, h('a', { class: 'btn btn-primary export-all', href: '/v1/me/export', download: '' }, 'Download everything (.zip)')),
      h('h3', null, 'One thread'),
      h('div', { class: 'thread-export' }, field('Thread', threadSelect), links));
  }

  // ---- import ---------------------------------------------------------------------------------
  function importSection() {
    const source = h('select', { name: 'source' }, IMPORT_SOURCES.map((s) => h('option', { value: s.id }, s.label)));
    const hint = h('p', { class: 'muted import-hint' }, IMPORT_SOURCES[0].hint);
    source.addEventListener('change', () => {
      hint.textContent = IMPORT_SOURCES.find((s) => s.id === source.value)?.hint || '';
    });
    const file = h('input', { type: 'file', name: 'file', accept: '.json,.zip,application/json,application/zip', required: true });
    const submit = h('button', { class: 'btn btn-primary', type: 'submit' }, 'Import');
    const result = h('div', { class: 'import-result', 'aria-live': 'polite' });
    const form = h('form', { class: 'settings-form import-form', onsubmit },
      field('Exported from', source),
      hint,
      field('Export file', file, 'A .json or .zip file, up to 64 MB. Importing the same file again adds nothing twice.'),
      h('div', { class: 'form-actions' }, submit));

    async function onsubmit(e) {
      e.preventDefault();
      clearErrors(form);
      const chosen = file.files?.[0];
      if (!chosen) { setFieldError(form, 'file', 'Choose the export file first.'); file.focus(); return; }
      const body = new FormData();
      body.append('file', chosen, chosen.name);
      replace(result, loading(`Importing ${chosen.name}…`));
      try {
        const report = await busy(submit, () => post('/v1/me/import', body), 'Importing…');
        if (!gone) replace(result, importReport(report));
        file.value = '';
      } catch (err) {
        replace(result);
        if (err.code === 'validation_failed' && err.problem?.errors?.file) {
          setFieldError(form, 'file', `This file could not be read as an export: ${err.problem.errors.file.join('; ')}`);
        } else if (err.status === 413) {
          setFieldError(form, 'file', err.detail || 'This file is too large to import (at most 64 MB and 10,000 conversations).');
        } else {
          showApiError(form, err);
        }
      }
    }

    return section('Import',
      h('p', null, 'Bring your conversations from ChatGPT, LibreChat, Open WebUI, Chatbot UI or another Threadline. Each conversation becomes a thread, with its branches.'),
      form, result);
  }

  // ---- shares ---------------------------------------------------------------------------------
  function sharesSection() {
    const box = h('div', { class: 'shares-box' });
    const find = h('button', { class: 'btn', type: 'button', onclick: () => loadShares() }, 'Show my share links');
    replace(box, h('p', { class: 'muted' }, 'Share links let anyone with the link read a thread up to a message, without signing in.'), find);

    async function loadShares() {
      replace(box, loading('Looking through your threads…'));
      try {
        const threads = [
          ...await listAll('/v1/threads', { limit: 200 }, 200),
          ...await listAll('/v1/threads', { limit: 200, archived: true }, 200),
        ];
        const shares = [];
        // A few at a time: one request per thread (the API lists shares per thread).
        let next = 0;
        const worker = async () => {
          while (next < threads.length && !gone) {
            const t = threads[next++];
            const page = await get(`/v1/threads/${encodeURIComponent(t.id)}/shares`).catch(() => ({ data: [] }));
            for (const s of page.data) shares.push({ ...s, title: t.title });
          }
        };
        await Promise.all([worker(), worker(), worker(), worker()]);
        if (gone) return;
        shares.sort((a, b) => b.created_at.localeCompare(a.created_at));
        drawShares(shares);
      } catch (e) {
        replace(box, h('p', { class: 'error-text', role: 'alert' }, describeError(e)),
          h('button', { class: 'btn', type: 'button', onclick: loadShares }, 'Try again'));
      }
    }

    function drawShares(shares) {
      if (!shares.length) {
        replace(box, h('p', { class: 'muted' }, 'You have no live share links. Share a thread from its menu in the chat.'));
        return;
      }
      replace(box, h('ul', { class: 'share-list', 'aria-label': 'Share links' }, shares.map((s) => {
        const url = `${location.origin}/s/${s.id}`;
        const revoke = h('button', { class: 'btn btn-danger', type: 'button', 'aria-label': `Revoke the share link of ${s.title || 'Untitled thread'}`, onclick: () => onRevoke(s, revoke) }, 'Revoke');
        return h('li', { class: 'card share-item', dataset: { shareId: s.id } },
          h('div', { class: 'share-main' },
            h('a', { href: `/t/${encodeURIComponent(s.thread_id)}`, 'data-link': '' }, s.title || 'Untitled thread'),
            h('div', { class: 'muted' }, 'Shared ', relativeTimeEl(s.created_at), ' · ',
              h('a', { href: `/s/${s.id}`, target: '_blank', rel: 'noopener' }, `/s/${s.id}`))),
          h('div', { class: 'share-actions' },
            h('button', { class: 'btn', type: 'button', onclick: async () => toast(await copyText(url) ? 'Link copied' : url) }, 'Copy link'),
            revoke));
      })));
    }

    async function onRevoke(s, button) {
      const ok = await confirmDialog({ title: 'Revoke this share link?', body: 'Anyone who opens it afterwards sees “not found”.', confirm: 'Revoke', danger: true });
      if (!ok) return;
      try {
        await busy(button, () => del(`/v1/shares/${encodeURIComponent(s.id)}`), 'Revoking…');
        button.closest('li').remove();
        toast('Share link revoked');
      } catch (err) {
        toast(describeError(err), 'error');
      }
    }

    return section('Share links', box);
  }

  // ---- delete the account ---------------------------------------------------------------------
  function eraseSection() {
    const hasPassword = ctx.me?.kind === 'registered';
    const password = h('input', { type: 'password', name: 'password', autocomplete: 'current-password', required: true });
    const submit = h('button', { class: 'btn btn-danger', type: 'submit' }, 'Delete my account');
    const form = h('form', { class: 'settings-form erase-form', onsubmit },
      hasPassword ? field('Password', password, 'Your password confirms that it is you.') : null,
      h('div', { class: 'form-actions' }, submit));

    async function onsubmit(e) {
      e.preventDefault();
      clearErrors(form);
      if (hasPassword && !password.value) { setFieldError(form, 'password', 'Enter your password.'); password.focus(); return; }
      const ok = await confirmDialog({
        title: 'Delete your account for good?',
        body: 'Your threads, messages, files, preferences and email are erased and cannot be brought back. Credits you used stay in the books, without your name.',
        confirm: 'Delete for good', danger: true,
      });
      if (!ok) return;
      try {
        await busy(submit, () => del('/v1/me', { body: hasPassword ? { password: password.value } : {} }), 'Deleting…');
        location.assign('/?erased=1');
      } catch (err) {
        if (err.code === 'reauthentication_required') {
          if (hasPassword) setFieldError(form, 'password', err.detail || 'That password is not right.');
          else showApiError(form, err);
        } else {
          showApiError(form, err);
        }
      }
    }

    return section('Delete account',
      h('p', null, 'Erases everything that is yours: threads, messages and replies, files, preferences, sessions, API keys and your email. This cannot be undone; download everything first if you want a copy.'),
      form);
  }

  return () => { gone = true; };
}

/** The import's outcome: the counts, then a row per conversation. */
function importReport(report) {
  const rows = report.conversations || [];
  return h('div', { class: 'card import-report', role: 'status' },
    h('p', { class: 'import-counts' },
      h('strong', null, `${formatInt(report.imported)} imported`), ' · ',
      `${formatInt(report.already_imported)} already imported`, ' · ',
      `${formatInt(report.skipped)} skipped`),
    rows.length ? h('div', { class: 'table-scroll' }, h('table', { class: 'data' },
      h('thead', null, h('tr', null,
        h('th', { scope: 'col' }, 'Conversation'), h('th', { scope: 'col' }, 'From'),
        h('th', { scope: 'col', class: 'num' }, 'Messages'), h('th', { scope: 'col' }, 'Result'))),
      h('tbody', null, rows.slice(0, 200).map((c) => h('tr', { dataset: { status: c.status } },
        h('td', null, c.thread_id
          ? h('a', { href: `/t/${encodeURIComponent(c.thread_id)}`, 'data-link': '' }, c.title || 'Untitled')
          : (c.title || `Conversation ${c.index + 1}`)),
        h('td', null, SOURCE_LABEL[c.source] || c.source || '—'),
        h('td', { class: 'num' }, formatInt(c.messages)),
        h('td', null, c.status === 'imported' ? 'Imported' : c.status === 'already_imported' ? 'Already imported'
          : h('span', { class: 'error-text' }, `Skipped${c.reason ? `: ${c.reason}` : ''}`))))))) : null,
    rows.length > 200 ? h('p', { class: 'muted' }, `…and ${rows.length - 200} more.`) : null);
}
