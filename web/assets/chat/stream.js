// Reading the AI SDK UI message stream (v1) that `POST /v1/chat` and `GET /v1/chat/{id}/stream`
// answer, and folding its parts into a UIMessage like the one `GET /v1/threads/{id}` returns.
//
//   const res = await request('POST', '/v1/chat', {body, signal});
//   await readUIStream(res, (part) => applyPart(msg, part), signal);
//
// The wire: SSE events `id: {seq}.{k}` / `data: {json part}`, ending with `data: [DONE]`;
// `: keep-alive` comments in between. A resumed stream replays the reply from its `start`
// part, so a reader that resumes starts from an empty message (nothing is doubled).

/**
 * Reads an SSE response body and calls `onPart(part, id)` for every JSON part, in order.
 * Resolves with `{done: true}` at `[DONE]`, `{done: false}` when the body ends without it
 * (a dropped connection). Rejects with the AbortError when `signal` aborts.
 */
export async function readUIStream(response, onPart, signal) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  let data = [];
  let id = null;
  const onAbort = () => reader.cancel().catch(() => {});
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let nl;
      while ((nl = buffer.indexOf('\n')) >= 0) {
        let line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        if (line.endsWith('\r')) line = line.slice(0, -1);
        if (line === '') {
          // End of an event.
          if (data.length) {
            const text = data.join('\n');
            data = [];
            if (text === '[DONE]') return { done: true };
            let part;
            try { part = JSON.parse(text); } catch { part = null; }
            if (part) onPart(part, id);
          }
          id = null;
        } else if (line.startsWith(':')) {
          // comment (keep-alive)
        } else if (line.startsWith('data:')) {
          data.push(line.slice(line[5] === ' ' ? 6 : 5));
        } else if (line.startsWith('id:')) {
          id = line.slice(line[3] === ' ' ? 4 : 3);
        }
      }
    }
    if (signal?.aborted) throw new DOMException('aborted', 'AbortError');
    return { done: false };
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
}

/** A fresh assistant message for a stream to fill. */
export function emptyAssistant(id = null) {
  return { id, role: 'assistant', parts: [], metadata: { status: 'streaming' }, _v: 0 };
}

function bump(msg, part) {
  if (part) part._v = (part._v || 0) + 1;
  msg._v = (msg._v || 0) + 1;
}

function findBlock(msg, type, id) {
  for (let i = msg.parts.length - 1; i >= 0; i--) {
    const p = msg.parts[i];
    if (p.type === type && p._id === id) return p;
  }
  return null;
}

function findTool(msg, toolCallId) {
  return msg.parts.find((p) => p.type === 'dynamic-tool' && p.toolCallId === toolCallId) || null;
}

/**
 * Applies one stream part to `msg` (mutating it); returns what happened: 'start', 'finish',
 * 'error', 'abort' or null. Each touched part gets its `_v` bumped so a renderer can redraw
 * only what changed.
 */
export function applyPart(msg, part) {
  const t = part.type;
  switch (t) {
    case 'start':
      if (part.messageId) msg.id = part.messageId;
      if (part.messageMetadata) Object.assign(msg.metadata, part.messageMetadata);
      msg.metadata.status = 'streaming';
      bump(msg);
      return 'start';
    case 'start-step':
      msg.parts.push({ type: 'step-start' });
      bump(msg);
      return null;
    case 'text-start':
    case 'reasoning-start': {
      const type = t === 'text-start' ? 'text' : 'reasoning';
      const p = { type, text: '', state: 'streaming', _id: part.id };
      msg.parts.push(p);
      bump(msg, p);
      return null;
    }
    case 'text-delta':
    case 'reasoning-delta': {
      const type = t === 'text-delta' ? 'text' : 'reasoning';
      let p = findBlock(msg, type, part.id);
      if (!p) { p = { type, text: '', state: 'streaming', _id: part.id }; msg.parts.push(p); }
      p.text += part.delta || '';
      bump(msg, p);
      return null;
    }
    case 'text-end':
    case 'reasoning-end': {
      const p = findBlock(msg, t === 'text-end' ? 'text' : 'reasoning', part.id);
      if (p) { p.state = 'done'; bump(msg, p); }
      return null;
    }
    case 'tool-input-start': {
      const p = { type: 'dynamic-tool', toolCallId: part.toolCallId, toolName: part.toolName, state: 'input-streaming', inputText: '' };
      msg.parts.push(p);
      bump(msg, p);
      return null;
    }
    case 'tool-input-delta': {
      const p = findTool(msg, part.toolCallId);
      if (p) { p.inputText = (p.inputText || '') + (part.inputTextDelta || ''); bump(msg, p); }
      return null;
    }
    case 'tool-input-available': {
      let p = findTool(msg, part.toolCallId);
      if (!p) { p = { type: 'dynamic-tool', toolCallId: part.toolCallId }; msg.parts.push(p); }
      p.toolName = part.toolName || p.toolName;
      p.input = part.input;
      p.state = 'input-available';
      bump(msg, p);
      return null;
    }
    case 'tool-output-available': {
      const p = findTool(msg, part.toolCallId);
      if (p) { p.output = part.output; p.state = 'output-available'; bump(msg, p); }
      return null;
    }
    case 'tool-output-error': {
      const p = findTool(msg, part.toolCallId);
      if (p) { p.errorText = part.errorText; p.state = 'output-error'; bump(msg, p); }
      return null;
    }
    case 'message-metadata':
      if (part.messageMetadata) Object.assign(msg.metadata, part.messageMetadata);
      bump(msg);
      return null;
    case 'finish':
      if (part.messageMetadata) Object.assign(msg.metadata, part.messageMetadata);
      if (part.finishReason) msg.metadata.finish_reason = part.finishReason;
      msg.metadata.status = part.finishReason === 'error' ? 'failed' : 'completed';
      closeBlocks(msg);
      bump(msg);
      return 'finish';
    case 'error':
      msg.metadata.status = 'failed';
      msg.metadata.error = part.errorText || 'The reply failed';
      closeBlocks(msg);
      bump(msg);
      return 'error';
    case 'abort':
      msg.metadata.status = 'stopped';
      closeBlocks(msg);
      bump(msg);
      return 'abort';
    case 'finish-step':
      return null;
    default:
      if (t && t.startsWith('data-')) {
        if (part.transient) return null;
        const existing = part.id ? msg.parts.find((p) => p.type === t && p.id === part.id) : null;
        if (existing) { existing.data = part.data; bump(msg, existing); }
        else { const p = { type: t, id: part.id, data: part.data }; msg.parts.push(p); bump(msg, p); }
      }
      return null;
  }
}

function closeBlocks(msg) {
  for (const p of msg.parts) {
    if ((p.type === 'text' || p.type === 'reasoning') && p.state === 'streaming') { p.state = 'done'; p._v = (p._v || 0) + 1; }
  }
}

/** The plain text of a message (its text parts, joined). */
export function messageText(msg) {
  return (msg.parts || []).filter((p) => p.type === 'text').map((p) => p.text).join('\n\n');
}
