// The UI's few behaviours: calls to the API with the session's CSRF token, copy buttons.
const csrf = () => document.querySelector('meta[name="csrf-token"]')?.content || '';

async function api(method, path, body) {
  const opts = { method, headers: { 'x-csrf-token': csrf() } };
  if (body !== undefined) {
    opts.headers['content-type'] = 'application/json';
    opts.body = JSON.stringify(body);
  }
  const r = await fetch(path, opts);
  const text = await r.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = text; }
  if (!r.ok) throw new Error((data && data.error && data.error.message) || r.statusText);
  return data;
}

function say(el, msg, bad) {
  const box = document.getElementById(el);
  if (box) { box.textContent = msg; box.className = bad ? 'error' : 'notice'; }
}

document.addEventListener('click', async (e) => {
  const b = e.target.closest('[data-action]');
  if (!b) return;
  e.preventDefault();
  const { action, path, body, target, reload, copy } = b.dataset;
  try {
    if (action === 'copy') {
      await navigator.clipboard.writeText(document.getElementById(copy).textContent.trim());
      say(target || 'message', b.dataset.done || 'OK');
      return;
    }
    if (b.dataset.confirm && !confirm(b.dataset.confirm)) return;
    const data = await api(action, path, body ? JSON.parse(body) : undefined);
    if (b.dataset.navigate && data && data[b.dataset.navigate]) { location.href = data[b.dataset.navigate]; return; }
    if (reload) { location.href = reload === 'same' ? location.href : reload; return; }
    say(target || 'message', b.dataset.done || JSON.stringify(data));
  } catch (err) {
    say(target || 'message', err.message, true);
  }
});

// The YAML editor: check without saving, or save as a new version; problems are listed
// with their line and column.
document.addEventListener('click', async (e) => {
  const b = e.target.closest('[data-yaml]');
  if (!b) return;
  e.preventDefault();
  const list = document.getElementById('yaml-problems');
  const yaml = document.getElementById('yaml').value;
  const show = (diags) => {
    list.replaceChildren(...diags.map((d) => {
      const li = document.createElement('li');
      li.textContent = `${d.line}:${d.column}: ${d.message}`;
      return li;
    }));
  };
  try {
    if (b.dataset.yaml === 'validate') {
      const r = await api('POST', '/api/v1/validate', { yaml });
      show(r.diagnostics);
      if (r.valid) say('message', 'OK');
    } else {
      const r = await fetch('/api/v1/flows', { method: 'POST', headers: { 'x-csrf-token': csrf(), 'content-type': 'application/json' }, body: JSON.stringify({ yaml }) });
      const data = await r.json();
      if (r.ok) { location.href = '/flows/' + data.flow.id; return; }
      show((data.error && data.error.diagnostics) || []);
      say('message', data.error.message, true);
    }
  } catch (err) {
    say('message', err.message, true);
  }
});

// "Test trigger": wait for the next request to the webhook and show what the flow gets.
document.addEventListener('click', async (e) => {
  const b = e.target.closest('[data-test-trigger]');
  if (!b) return;
  e.preventDefault();
  const out = document.getElementById('test-trigger-result');
  out.hidden = false;
  out.textContent = '…';
  b.disabled = true;
  try {
    const r = await api('POST', b.dataset.testTrigger);
    out.textContent = r.received ? JSON.stringify(r.trigger, null, 2) : '—';
  } catch (err) {
    out.textContent = err.message;
  } finally {
    b.disabled = false;
  }
});

document.addEventListener('submit', async (e) => {
  const f = e.target.closest('form[data-api]');
  if (!f) return;
  e.preventDefault();
  const body = {};
  for (const [k, v] of new FormData(f).entries()) {
    if (k.startsWith('settings.')) { (body.settings ||= {})[k.slice(9)] = v; } else { body[k] = v; }
  }
  try {
    const data = await api(f.method.toUpperCase(), f.dataset.api, body);
    if (f.dataset.next) location.href = f.dataset.next;
    else say(f.dataset.target || 'message', f.dataset.done || 'OK');
  } catch (err) {
    say(f.dataset.target || 'message', err.message, true);
  }
});

// Chart bars take their heights from data attributes: the Content-Security-Policy allows no
// inline styles.
for (const el of document.querySelectorAll('[data-h]')) el.style.height = `${el.dataset.h}px`;
