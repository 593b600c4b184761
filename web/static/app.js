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
  if (!r.ok) {
    const err = new Error((data && data.error && data.error.message) || r.statusText);
    err.code = data && data.error && data.error.code;
    err.diagnostics = (data && data.error && data.error.diagnostics) || [];
    throw err;
  }
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
      const text = b.dataset.copyText ?? document.getElementById(copy).textContent.trim();
      await navigator.clipboard.writeText(text);
      say(target || 'message', b.dataset.done || 'OK');
      return;
    }
    if (b.dataset.confirm && !confirm(b.dataset.confirm)) return;
    // Turning ON asks first when a mapped input comes out empty with the flow's samples.
    if (b.dataset.preflight) {
      const r = await api('GET', b.dataset.preflight);
      const list = (r.warnings || []).map((w) => `${w.name} › ${w.field}`).join(', ');
      if (list && !confirm(b.dataset.preflightText.replace('{list}', list))) return;
    }
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
  // A checkbox is a yes or no, sent whether it is ticked or not; boxes marked data-list
  // together make the list of the values ticked.
  for (const box of f.querySelectorAll('input[type="checkbox"][name]:not([data-list])')) body[box.name] = box.checked;
  const lists = [...f.querySelectorAll('input[type="checkbox"][data-list]')];
  for (const box of lists) body[box.name] = [];
  for (const box of lists) if (box.checked) body[box.name].push(box.value);
  try {
    const data = await api((f.dataset.method || f.method).toUpperCase(), f.dataset.api, body);
    // An invitation link or a new API token is shown once, to copy.
    const shown = f.dataset.showLink || f.dataset.showToken;
    if (shown && data) {
      const box = document.getElementById(shown);
      document.getElementById(`${shown}-text`).textContent = f.dataset.showLink ? data.link : data.token;
      const note = box.querySelector('.note');
      if (note) note.textContent = data.emailed ? box.dataset.emailed : box.dataset.copyNote;
      box.hidden = false;
      f.reset();
      return;
    }
    // A connection made on a flow page is used there at once, after signing in to the
    // app when it connects through OAuth (which brings the browser back here).
    const made = data && data.connection && data.connection.id;
    if (f.dataset.bindFlow && made) {
      await api('POST', `/api/v1/flows/${encodeURIComponent(f.dataset.bindFlow)}/connections`, { slot: f.dataset.bindSlot, connection_id: made });
      if (f.dataset.oauth) {
        const r = await api('POST', `/api/v1/connections/${encodeURIComponent(made)}/oauth/start`, { return_to: f.dataset.next });
        location.href = r.authorize_url;
        return;
      }
    }
    if (f.dataset.next) location.href = f.dataset.next;
    else say(f.dataset.target || 'message', f.dataset.done || 'OK');
  } catch (err) {
    // The password was right: the sign-in asks for the second factor's code.
    const codeField = f.querySelector('#code-field');
    if (err.code === 'two_factor_required' && codeField) {
      codeField.hidden = false;
      const input = codeField.querySelector('input');
      input.disabled = false;
      input.focus();
    }
    say(f.dataset.target || 'message', err.message, true);
  }
});

// Two-factor sign-in on the account page: the secret and its QR code, then the code that
// confirms it and the recovery codes, shown once.
const tfStart = document.getElementById('tf-start');
if (tfStart) {
  tfStart.addEventListener('click', async () => {
    try {
      const r = await api('POST', '/api/v1/me/two-factor');
      document.getElementById('tf-qr').src = r.qr;
      document.getElementById('tf-secret').textContent = r.secret;
      document.getElementById('tf-setup').hidden = false;
      tfStart.hidden = true;
      document.getElementById('tf-code').focus();
    } catch (err) {
      say('message', err.message, true);
    }
  });
}
const tfConfirm = document.getElementById('tf-confirm');
if (tfConfirm) {
  tfConfirm.addEventListener('submit', async (e) => {
    e.preventDefault();
    try {
      const r = await api('POST', '/api/v1/me/two-factor/confirm', { code: document.getElementById('tf-code').value });
      const list = document.getElementById('tf-codes');
      list.replaceChildren(...r.recovery_codes.map((c) => {
        const li = document.createElement('li');
        li.textContent = c;
        return li;
      }));
      document.getElementById('tf-setup').hidden = true;
      document.getElementById('tf-done').hidden = false;
    } catch (err) {
      say('message', err.message, true);
    }
  });
}

// Adding an app from an OpenAPI document: read the file, preview the app file for the
// operations picked, save it.
function listProblems(diags) {
  document.getElementById('oa-problems').replaceChildren(...diags.map((d) => {
    const li = document.createElement('li');
    li.textContent = `${d.line}:${d.column}: ${d.message}`;
    return li;
  }));
}
async function previewApp(picking) {
  const boxes = [...document.querySelectorAll('#oa-op-list input')];
  const picked = boxes.filter((i) => i.checked).map((i) => i.value);
  const only = picking && picked.length < boxes.length ? picked : [];
  if (picking && picked.length === 0) { document.getElementById('oa-yaml').value = ''; return; }
  const r = await api('POST', '/api/v1/apps/openapi', { spec: document.getElementById('oa-spec').value, id: document.getElementById('oa-id').value, only });
  document.getElementById('oa-yaml').value = r.yaml;
  if (picking) return;
  document.getElementById('oa-op-list').replaceChildren(...r.operations.map((o) => {
    const label = document.createElement('label');
    label.className = 'check';
    const box = document.createElement('input');
    box.type = 'checkbox'; box.value = o.id; box.checked = true;
    label.append(box, ` ${o.method} ${o.path} — ${o.summary || o.id}`);
    return label;
  }));
  document.getElementById('oa-ops').hidden = false;
}
const oaFile = document.getElementById('oa-file');
if (oaFile) {
  oaFile.addEventListener('change', async () => {
    const f = oaFile.files[0];
    if (f) document.getElementById('oa-spec').value = await f.text();
  });
  document.getElementById('oa-op-list').addEventListener('change', async () => {
    try { listProblems([]); await previewApp(true); } catch (err) { say('message', err.message, true); }
  });
}
document.addEventListener('click', async (e) => {
  const b = e.target.closest('[data-openapi]');
  if (!b) return;
  e.preventDefault();
  listProblems([]);
  try {
    if (b.dataset.openapi === 'preview') {
      await previewApp(false);
      return;
    }
    const r = await fetch('/api/v1/apps', { method: 'POST', headers: { 'x-csrf-token': csrf(), 'content-type': 'application/json' }, body: JSON.stringify({ yaml: document.getElementById('oa-yaml').value }) });
    const data = await r.json();
    if (!r.ok) {
      listProblems((data.error && data.error.diagnostics) || []);
      throw new Error(data.error.message);
    }
    say('message', b.dataset.done || 'OK');
    setTimeout(() => location.reload(), 800);
  } catch (err) {
    say('message', err.message, true);
  }
});

// The project switcher goes to the project chosen at once.
for (const sel of document.querySelectorAll('select[data-autosubmit]')) {
  sel.addEventListener('change', () => sel.form.submit());
}

// Chart bars take their heights from data attributes: the Content-Security-Policy allows no
// inline styles.
for (const el of document.querySelectorAll('[data-h]')) el.style.height = `${el.dataset.h}px`;

// A decision on an approval or a task (My Tasks): the form's answers, the comment and the
// button pressed go to the API; a task's refused answers are shown next to their fields.
document.addEventListener('submit', async (e) => {
  const f = e.target.closest('form[data-task]');
  if (!f) return;
  e.preventDefault();
  const decision = e.submitter ? e.submitter.value : '';
  const answers = {};
  let comment = '';
  for (const [k, v] of new FormData(f).entries()) {
    if (k === 'comment') { comment = v; continue; }
    if (k === 'decision') continue;
    if (k in answers) answers[k] = [].concat(answers[k], v); else answers[k] = v;
  }
  for (const box of f.querySelectorAll('fieldset input[type="checkbox"][name]')) {
    if (!(box.name in answers)) answers[box.name] = [];
    else if (!Array.isArray(answers[box.name])) answers[box.name] = [answers[box.name]];
  }
  for (const old of f.querySelectorAll('.error[data-for]')) old.remove();
  for (const bad of f.querySelectorAll('[aria-invalid]')) bad.removeAttribute('aria-invalid');
  for (const b of f.querySelectorAll('button')) b.disabled = true;
  try {
    await api('POST', f.dataset.task, { decision, comment, answers });
    location.href = '/tasks?done=1';
  } catch (err) {
    for (const d of err.diagnostics) {
      const input = f.querySelector(`[name="${CSS.escape(d.path)}"]`);
      const p = document.createElement('p');
      p.className = 'error';
      p.dataset.for = d.path;
      p.id = `e-${d.path}`;
      p.textContent = d.message;
      const field = input ? input.closest('.field') : null;
      if (field) {
        field.append(p);
        input.setAttribute('aria-invalid', 'true');
        input.setAttribute('aria-describedby', p.id);
      }
    }
    say('message', err.message, true);
    const first = f.querySelector('[aria-invalid]');
    if (first) first.focus();
  } finally {
    for (const b of f.querySelectorAll('button')) b.disabled = false;
  }
});
