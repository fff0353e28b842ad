// Sign up (`/signup`) and log in (`/login`) with email and password.
//
// The browser already holds an anonymous session (the app starts one); register and login
// send it along, so the server links the anonymous account into the signed-in one and its
// chats stay. On success the page reloads from `/`: every view and the feed start again as the
// new account.

import { h, replace } from '../lib/dom.js';
import { register, login, get } from '../lib/api.js';
import { field, showApiError, setFieldError, setFormError, clearErrors, retryText, busy } from './ui.js';

export function mount(root, params, ctx) {
  const mode = params.mode === 'signup' ? 'signup' : 'login';
  const signup = mode === 'signup';
  const me = ctx.me;
  document.title = `${signup ? 'Sign up' : 'Log in'} · Threadline`;

  const email = h('input', { type: 'email', name: 'email', required: true, autocomplete: 'email', maxlength: 254, spellcheck: 'false' });
  const password = h('input', {
    type: 'password', name: 'password', required: true, maxlength: 256,
    autocomplete: signup ? 'new-password' : 'current-password', minlength: signup ? 8 : undefined,
  });
  const name = signup ? h('input', { type: 'text', name: 'name', autocomplete: 'name', maxlength: 100 }) : null;
  const submit = h('button', { class: 'btn btn-primary auth-submit', type: 'submit' }, signup ? 'Create account' : 'Log in');
  const showPassword = h('input', { type: 'checkbox', onchange: (e) => { password.type = e.target.checked ? 'text' : 'password'; } });

  const form = h('form', { class: 'auth-form', novalidate: true, onsubmit },
    field('Email', email),
    field('Password', password, signup ? 'At least 8 characters.' : null),
    h('label', { class: 'check' }, showPassword, ' Show password'),
    signup ? field('Name (optional)', name) : null,
    submit);

  const keepNote = h('p', { class: 'auth-keep muted' });
  if (me?.kind === 'anonymous') {
    keepNote.textContent = signup
      ? 'The chats you started on this browser are kept: they move into your new account.'
      : 'The chats you started on this browser are kept: they move into the account you log in to.';
    // Say how many, when there are some.
    get('/v1/threads', { limit: 200 }).then((page) => {
      const n = page.data.length;
      if (n > 0) {
        keepNote.textContent = `Your ${n}${page.next_cursor ? '+' : ''} chat${n === 1 ? '' : 's'} on this browser ${n === 1 ? 'is' : 'are'} kept: ${n === 1 ? 'it moves' : 'they move'} into ${signup ? 'your new account' : 'the account you log in to'}.`;
      }
    }).catch(() => {});
  } else if (me) {
    keepNote.textContent = `You are signed in as ${me.email || me.name || 'an account'}. ${signup ? 'Signing up' : 'Logging in'} here switches this browser to ${signup ? 'the new' : 'that'} account.`;
  }

  const other = signup
    ? h('p', { class: 'auth-switch' }, 'Already have an account? ', h('a', { href: '/login', 'data-link': '' }, 'Log in'))
    : h('p', { class: 'auth-switch' }, 'New here? ', h('a', { href: '/signup', 'data-link': '' }, 'Create an account'));

  replace(root, h('div', { class: 'page auth-page' },
    h('div', { class: 'card auth-card' },
      h('h1', null, signup ? 'Create your account' : 'Log in'),
      keepNote,
      form,
      other,
      h('p', { class: 'muted auth-back' }, h('a', { href: '/', 'data-link': '' }, 'Back to chat')))));
  email.focus();

  async function onsubmit(e) {
    e.preventDefault();
    clearErrors(form);
    const values = { email: email.value.trim(), password: password.value, name: name?.value.trim() };
    if (!values.email) { setFieldError(form, 'email', 'Enter your email address.'); email.focus(); return; }
    if (!values.email.includes('@')) { setFieldError(form, 'email', 'This does not look like an email address.'); email.focus(); return; }
    if (!values.password) { setFieldError(form, 'password', 'Enter your password.'); password.focus(); return; }
    if (signup && values.password.length < 8) {
      setFieldError(form, 'password', 'Use at least 8 characters.');
      password.focus();
      return;
    }
    try {
      await busy(submit, () => (signup ? register(values.email, values.password, values.name) : login(values.email, values.password)),
        signup ? 'Creating…' : 'Logging in…');
    } catch (err) {
      showAuthError(err);
      return;
    }
    location.assign('/');
  }

  function showAuthError(err) {
    switch (err.code) {
      case 'invalid_credentials':
        setFieldError(form, 'password', 'Wrong email or password.');
        password.select();
        password.focus();
        return;
      case 'email_taken':
        setFieldError(form, 'email', 'This email already has an account.');
        setFormError(form, 'This email already has an account. ', h('a', { href: '/login', 'data-link': '' }, 'Log in instead'), '.');
        return;
      case 'rate_limited': {
        const wait = retryText(err.retryAfter);
        setFormError(form, signup
          ? `Too many sign-ups from this network.${wait ? ` Try again ${wait}.` : ' Try again later.'}`
          : `Too many failed attempts.${wait ? ` Try again ${wait}.` : ' Try again later.'}`);
        return;
      }
      case 'already_linked':
      case 'cannot_link':
        setFormError(form, 'The chats of this browser were already moved into an account. Reload the page and try again.');
        return;
      default:
        showApiError(form, err);
    }
  }
}
