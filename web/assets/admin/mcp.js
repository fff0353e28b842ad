// Admin → MCP servers: the registered remote MCP servers (`GET /v1/admin/mcp-servers`),
// register or change one (`PUT /v1/admin/mcp-servers/{name}`: URL, bearer secret kept /
// replaced / removed, enabled), remove one (`DELETE`), and list a server's tools now
// (`GET …/{name}/tools`, also at `/admin/mcp/{name}`; a server that cannot be reached
// answers 502 with the reason, shown as is).

import { h, replace, toast } from '../lib/dom.js';
import { get, put, del } from '../lib/api.js';
import { field, section, loading, errorPanel, showApiError, clearErrors, setFieldError, busy, confirmDialog, describeError, relativeTimeEl } from '../settings/ui.js';

const NAME = /^[a-z][a-z0-9_-]{0,31}$/;

export function render(panel, { id, ctx }) {
  let gone = false;
  const listBox = h('div', { class: 'mcp-list' }, loading());
  const toolsBox = h('div', { class: 'mcp-tools', 'aria-live': 'polite' });
  const formBox = h('div');
  replace(panel,
    section('MCP servers',
      h('p', { class: 'muted' }, 'Remote Model Context Protocol servers (Streamable HTTP) whose tools tool-capable models may call.'),
      listBox),
    toolsBox,
    formBox);
  drawForm(null);
  load();

  async function load() {
    try {
      const list = await get('/v1/admin/mcp-servers');
      if (gone) return;
      drawList(list.data);
      if (id) showTools(id);
    } catch (e) {
      if (!gone) replace(listBox, errorPanel(e, load));
    }
  }

  function drawList(servers) {
    if (!servers.length) { replace(listBox, h('p', { class: 'muted' }, 'No MCP servers yet. Register one below.')); return; }
    replace(listBox, h('div', { class: 'table-scroll' }, h('table', { class: 'data mcp-servers' },
      h('thead', null, h('tr', null,
        h('th', { scope: 'col' }, 'Name'), h('th', { scope: 'col' }, 'URL'), h('th', { scope: 'col' }, 'Secret'),
        h('th', { scope: 'col' }, 'Status'), h('th', { scope: 'col' }, 'Changed'), h('th', { scope: 'col' }, h('span', { class: 'visually-hidden' }, 'Actions')))),
      h('tbody', null, servers.map((s) => {
        const remove = h('button', { class: 'btn btn-danger', type: 'button', 'aria-label': `Remove ${s.name}`, onclick: () => onRemove(s, remove) }, 'Remove');
        return h('tr', { dataset: { server: s.name } },
          h('td', null, h('strong', null, s.name)),
          h('td', { class: 'mono mcp-url' }, s.url),
          h('td', null, s.has_secret ? 'set' : '—'),
          h('td', null, h('span', { class: ['badge', !s.enabled && 'badge-muted'] }, s.enabled ? 'enabled' : 'disabled')),
          h('td', null, relativeTimeEl(s.updated_at)),
          h('td', { class: 'row-actions' },
            h('a', { class: 'btn', href: `/admin/mcp/${s.name}`, 'data-link': '' }, 'Tools'),
            h('button', { class: 'btn', type: 'button', onclick: () => { drawForm(s); formBox.querySelector('input[name=url]').focus(); } }, 'Edit'),
            remove));
      })))));
  }

  async function showTools(name) {
    replace(toolsBox, section(`Tools of ${name}`, loading('Connecting…')));
    try {
      const tools = await get(`/v1/admin/mcp-servers/${encodeURIComponent(name)}/tools`);
      if (gone) return;
      replace(toolsBox, section(`Tools of ${name}`,
        tools.data.length ? h('ul', { class: 'tool-list' }, tools.data.map((t) => h('li', { class: 'card' },
          h('code', null, t.name), h('span', { class: 'muted' }, ` (models call it ${t.wire_name})`),
          t.description ? h('p', null, t.description) : null,
          h('details', null, h('summary', null, 'Input schema'), h('pre', null, JSON.stringify(t.input_schema, null, 2))))))
          : h('p', { class: 'muted' }, 'This server offers no tools.'),
        h('a', { href: '/admin/mcp', 'data-link': '' }, 'Close')));
    } catch (err) {
      if (gone) return;
      replace(toolsBox, section(`Tools of ${name}`,
        h('p', { class: 'error-text', role: 'alert' }, err.status === 404 ? `No server is registered as ${name}.` : `The server could not be listed: ${describeError(err)}`),
        h('button', { class: 'btn', type: 'button', onclick: () => showTools(name) }, 'Try again')));
    }
  }

  function drawForm(server) {
    const editing = Boolean(server);
    const name = h('input', { name: 'name', type: 'text', required: true, value: server?.name || '', readonly: editing, pattern: NAME.source, spellcheck: 'false' });
    const url = h('input', { name: 'url', type: 'url', required: true, value: server?.url || '', placeholder: 'https://mcp.example.com/mcp', spellcheck: 'false' });
    const secret = h('input', { name: 'secret', type: 'password', autocomplete: 'off', placeholder: editing && server.has_secret ? 'Leave empty to keep the current one' : 'Optional' });
    const removeSecret = h('input', { type: 'checkbox', name: 'remove_secret' });
    const enabled = h('input', { type: 'checkbox', name: 'enabled', checked: server ? server.enabled : true });
    const save = h('button', { class: 'btn btn-primary', type: 'submit' }, editing ? 'Save changes' : 'Register');
    const form = h('form', { class: 'settings-form mcp-form', novalidate: true, onsubmit },
      field('Name', name, 'Lower-case letters, digits, - and _ (up to 32); it prefixes the tools: name.tool.'),
      field('URL', url, 'The Streamable HTTP endpoint.'),
      field('Bearer secret', secret, 'Sent as Authorization: Bearer …; never shown again.'),
      editing && server.has_secret ? h('label', { class: 'check' }, removeSecret, ' Remove the secret') : null,
      h('label', { class: 'check' }, enabled, ' Enabled (offer its tools to models)'),
      h('div', { class: 'form-actions' }, save,
        editing ? h('button', { class: 'btn btn-ghost', type: 'button', onclick: () => drawForm(null) }, 'Cancel') : null));
    replace(formBox, section(editing ? `Change ${server.name}` : 'Register a server', form));

    async function onsubmit(e) {
      e.preventDefault();
      clearErrors(form);
      const n = name.value.trim();
      if (!NAME.test(n)) { setFieldError(form, 'name', 'Start with a letter; then letters, digits, - or _ (32 at most).'); name.focus(); return; }
      if (!/^https?:\/\/\S+$/.test(url.value.trim())) { setFieldError(form, 'url', 'An http or https URL.'); url.focus(); return; }
      const body = { url: url.value.trim(), enabled: enabled.checked };
      if (removeSecret.checked) body.secret = null;
      else if (secret.value) body.secret = secret.value;
      try {
        await busy(save, () => put(`/v1/admin/mcp-servers/${encodeURIComponent(n)}`, body), 'Saving…');
        toast(`${n} saved`);
        drawForm(null);
        load();
      } catch (err) {
        showApiError(form, err);
      }
    }
  }

  async function onRemove(s, button) {
    const ok = await confirmDialog({ title: `Remove ${s.name}?`, body: 'Its tools are no longer offered to models.', confirm: 'Remove', danger: true });
    if (!ok) return;
    try {
      await busy(button, () => del(`/v1/admin/mcp-servers/${encodeURIComponent(s.name)}`), 'Removing…');
      toast(`${s.name} removed`);
      if (id === s.name) ctx.navigate('/admin/mcp', { replace: true });
      else load();
    } catch (err) {
      toast(describeError(err), 'error');
    }
  }

  return () => { gone = true; };
}
