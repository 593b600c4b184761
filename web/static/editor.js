// The no-code editor. The flow file stays the source of truth: the forms edit a document
// (the YAML as JSON) and every change is turned back into YAML by the server, validated
// with the same diagnostics as `flowbot validate`. Everything is a real button, input or
// select with a label, so the keyboard reaches all of it.
(() => {
  const root = document.getElementById('editor');
  if (!root) return;
  const T = JSON.parse(document.getElementById('editor-text').textContent);
  const lang = document.documentElement.lang === 'ja' ? 'ja' : 'en';
  const S = {
    flowId: root.dataset.flow || '',
    doc: null, header: '', yaml: '', valid: false,
    selected: null, apps: [], connections: [], chosen: {},
    lastFocus: null, describe: {}, timer: null, seq: 0, valuesSeq: 0, rows: 1000,
    drag: null, empty: {}, problems: [], valueList: [], valueLabels: {},
  };
  const $ = (id) => document.getElementById(id);
  const el = window.FlowbotValues.el;
  const tx = (t) => (t ? (lang === 'ja' ? t.ja : t.en) : '');
  const clone = (v) => JSON.parse(JSON.stringify(v));

  // ---- the document ----
  const at = (path) => path.reduce((o, k) => (o == null ? o : o[k]), S.doc);
  const parentList = (path) => at(path.slice(0, -1));
  const app = (id) => S.apps.find((a) => a.id === id);
  const action = (a, id) => (app(a)?.actions || []).find((x) => x.id === id);
  function kindOf(step) {
    if (step.app) return 'action';
    for (const k of ['branch', 'switch', 'for_each', 'set', 'wait', 'approval', 'task']) if (step[k] !== undefined) return k;
    return 'unknown';
  }
  // Lanes are read, never written, while drawing: a lane appears in the file when a step
  // is added to it.
  function lanesOf(step, path) {
    const k = kindOf(step);
    if (k === 'branch') return [[T.then, [...path, 'branch', 'then']], [T.else, [...path, 'branch', 'else']]];
    if (k === 'switch') {
      const out = (step.switch.cases || []).map((c, i) => [c.name || `case${i + 1}`, [...path, 'switch', 'cases', i, 'steps']]);
      out.push([T.default_lane, [...path, 'switch', 'default']]);
      return out;
    }
    if (k === 'for_each') return [[T.loop_body, [...path, 'for_each', 'steps']]];
    if (k === 'approval') return [[T.approved_lane, [...path, 'approval', 'then']], [T.rejected_lane, [...path, 'approval', 'else']]];
    return [];
  }
  function listAt(path) {
    let o = S.doc;
    path.forEach((k, i) => {
      if (o[k] === undefined || o[k] === null) o[k] = i === path.length - 1 ? [] : {};
      o = o[k];
    });
    return o;
  }
  // Slots nobody uses any more leave the file with the last step that used them.
  function pruneSlots() {
    const used = new Set();
    if (S.doc.trigger?.connection) used.add(S.doc.trigger.connection);
    const walk = (list) => (list || []).forEach((s) => {
      if (s.connection) used.add(s.connection);
      lanesOf(s, []).forEach(([, p]) => walk(p.reduce((o, k) => (o == null ? o : o[k]), s)));
    });
    walk(S.doc.steps);
    for (const slot of Object.keys(S.doc.connections || {})) if (!used.has(slot)) delete S.doc.connections[slot];
    if (S.doc.connections && !Object.keys(S.doc.connections).length) delete S.doc.connections;
  }
  function allIds(list = S.doc.steps || [], out = []) {
    list.forEach((s) => {
      out.push(s.id);
      lanesOf(s, []).forEach(([, p]) => allIds(p.reduce((o, k) => (o == null ? o : o[k]), s) || [], out));
    });
    return out;
  }
  function freshId(base) {
    const ids = new Set(allIds());
    let id = base, n = 2;
    while (ids.has(id)) id = `${base}${n++}`;
    return id;
  }
  // A step's id from its action, as a person would name it: get_customer → customer,
  // search_records → search (a counter when taken).
  function friendlyBase(actionId) {
    const parts = String(actionId).split('_').filter(Boolean);
    if (parts.length > 1 && ['get', 'fetch', 'read'].includes(parts[0])) return parts.slice(1).join('_');
    return parts[0] || 'step';
  }
  function ensureSlot(appId) {
    S.doc.connections = S.doc.connections || {};
    if (!S.doc.connections[appId]) S.doc.connections[appId] = { app: appId };
    return appId;
  }
  function needsConnection(appId) {
    return (app(appId)?.connection || []).length > 0;
  }

  // ---- server round trips ----
  async function sync(now) {
    clearTimeout(S.timer);
    // `data-pending` says a change is not yet in the YAML (tests and scripts wait on it).
    root.dataset.pending = '1';
    // Numbered when the change is made, not when it is sent: an answer still on its way
    // for an earlier change must not clear `pending` while this one waits out its delay.
    const my = ++S.seq;
    const run = async () => {
      try {
        const r = await api('POST', '/api/v1/editor/yaml', { doc: S.doc, header: S.header, base: S.yaml });
        // A newer change came since: its answer is the one to show.
        if (my !== S.seq) return;
        delete root.dataset.pending;
        S.yaml = r.yaml; S.valid = r.valid;
        $('ed-yaml').value = r.yaml;
        showProblems(r.diagnostics);
      } catch (e) {
        if (my !== S.seq) return;
        delete root.dataset.pending;
        showProblems([{ message: e.message }]);
      }
    };
    if (now) return run();
    S.timer = setTimeout(run, 250);
  }
  // A problem's field path (`steps[2].branch.then[0].input.email`) as the document's path.
  const tokens = (p) => (p || '').split('.').flatMap((part) => {
    const m = [...part.matchAll(/([^[\]]+)|\[(\d+)\]/g)];
    return m.map((x) => (x[2] !== undefined ? Number(x[2]) : x[1]));
  });
  function stepPaths(list = S.doc.steps || [], path = ['steps'], out = []) {
    list.forEach((s, i) => {
      out.push([...path, i]);
      lanesOf(s, [...path, i]).forEach(([, lp]) => stepPaths(at(lp) || [], lp, out));
    });
    return out;
  }
  // Where a problem belongs: the trigger or a step, and the form control it concerns.
  function placeOf(d) {
    const t = tokens(d.path);
    if (t[0] === 'trigger') {
      const ids = { app: 't-app', events: 't-events', event: 't-events', connection: 'f-connection' };
      return { target: 'trigger', control: t[1] === 'options' && t[2] ? `t-opt-${t[2]}` : ids[t[1]] };
    }
    let best = null;
    for (const p of stepPaths()) if (same(t.slice(0, p.length), p) && (!best || p.length > best.length)) best = p;
    if (!best) return { target: null };
    const rest = t.slice(best.length);
    let control;
    // A missing input is reported on the `input` mapping; its name is in the message.
    const missing = /^missing required input `([^`]+)`/.exec(d.message || '');
    if (rest[0] === 'input' && rest[1] !== undefined) control = `f-in-${rest[1]}`;
    else if (missing) control = `f-in-${missing[1]}`;
    else if (rest[0] === 'id') control = 'f-id';
    else if (rest[0] === 'name') control = 'f-name';
    else if (rest[0] === 'connection') control = 'f-connection';
    else if (rest[0] === 'for_each' && rest[1] === 'items') control = 'l-items';
    else if (rest[0] === 'branch') control = 'c-value-0';
    return { target: best, control, step: at(best) };
  }
  function showProblems(list) {
    S.problems = list;
    $('yaml-problems').replaceChildren(...list.map((d) => el('li', { text: d.line ? `${d.line}:${d.column}: ${d.message}` : d.message })));
    $('ed-problems').replaceChildren(...list.map((d) => {
      const where = placeOf(d);
      const li = el('li', {}, where.step ? `${where.step.name || where.step.id} › ` : where.target === 'trigger' ? `${T.trigger} › ` : '', d.local || d.message);
      if (where.target) {
        li.append(' ', el('button', { type: 'button', class: 'small', onclick: () => { S.selected = where.target; render(); loadValues(); setTimeout(() => $(where.control)?.focus(), 0); }, text: T.open_it }));
      }
      return li;
    }));
    $('ed-state').textContent = list.length ? T.problems.replace('{n}', list.length) : T.no_problems;
    $('ed-state').className = list.length ? 'error' : 'notice';
    placeProblems();
  }
  // Each problem of the open form next to its field, in the user's language.
  function placeProblems() {
    const box = $('ed-form');
    box.querySelectorAll('.field-problem').forEach((p) => p.remove());
    box.querySelectorAll('[aria-invalid]').forEach((c) => c.removeAttribute('aria-invalid'));
    if (!S.selected) return;
    const loose = [];
    S.problems.forEach((d, n) => {
      const where = placeOf(d);
      if (!same(where.target, S.selected)) return;
      const ctl = where.control && $(where.control);
      const msg = el('p', { class: 'field-problem error', id: `problem-${n}`, text: d.local || d.message });
      if (!ctl) { loose.push(msg); return; }
      ctl.setAttribute('aria-invalid', 'true');
      ctl.setAttribute('aria-describedby', [ctl.getAttribute('aria-describedby'), msg.id].filter(Boolean).join(' '));
      (ctl.closest('.field') || ctl.parentElement).append(msg);
    });
    if (loose.length) box.prepend(...loose);
  }
  function changed() { pruneSlots(); render(); sync(); }
  // Saved notes belong to the version just saved: the next change clears them.
  root.addEventListener('input', () => { $('ed-saved').textContent = ''; $('ed-saved').className = ''; });

  // ---- the flow as cards ----
  // What a card says: the step's name, then what it does in the app's own words.
  function stepWhat(s) {
    const k = kindOf(s);
    if (k !== 'action') return T['kind_' + k] || k;
    const a = app(s.app), ac = action(s.app, s.action);
    return `${a ? tx(a.name) : s.app} · ${ac ? tx(ac.name) : s.action}`;
  }
  function stepLabel(s) { return `${s.name || s.id} (${stepWhat(s)})`; }
  const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);
  // The "+" between two cards (and after the last): adds there, and takes dropped cards.
  function insertButton(listPath, index, last, laneKey) {
    const attrs = { type: 'button', class: 'ed-insert', 'data-list': JSON.stringify(listPath), 'data-index': index,
      'aria-label': T.insert_here, title: T.insert_here, text: '+' };
    if (last && laneKey === null) attrs.id = 'ed-add';
    else if (last) { attrs.class += ' ed-add'; attrs['data-lane'] = laneKey[0]; attrs.id = laneKey[1]; }
    else attrs.id = `ins-${listPath.join('-')}-${index}`;
    const b = el('button', attrs);
    b.addEventListener('click', (e) => openAdder(listPath, e.currentTarget, index));
    b.addEventListener('dragover', (e) => { if (S.drag) { e.preventDefault(); b.classList.add('drop'); } });
    b.addEventListener('dragleave', () => b.classList.remove('drop'));
    b.addEventListener('drop', (e) => { e.preventDefault(); b.classList.remove('drop'); if (S.drag) moveTo(S.drag, listPath, index); });
    return el('li', { class: 'ins' }, b);
  }
  function renderList(list, path, laneKey = null) {
    const ol = el('ol', { class: 'cards' });
    list.forEach((s, i) => {
      const p = [...path, i];
      const sel = same(S.selected, p);
      ol.append(insertButton(path, i, false, laneKey));
      const open = el('button', { type: 'button', class: 'ed-open', id: `step-${s.id}`, 'data-step': s.id, 'aria-pressed': sel ? 'true' : 'false',
        'aria-describedby': 'canvas-help', onclick: () => select(p) },
      el('span', { class: 'node-name', text: s.name || s.id }), el('span', { class: 'node-what muted', text: stepWhat(s) }));
      // Alt+↑/↓ moves the card: the keyboard's drag.
      open.addEventListener('keydown', (e) => {
        if (!e.altKey || !['ArrowUp', 'ArrowDown'].includes(e.key)) return;
        e.preventDefault();
        const d = e.key === 'ArrowUp' ? -1 : 1;
        if (i + d >= 0 && i + d < list.length) move(p, d);
      });
      const node = el('div', { class: 'node' + (sel ? ' selected' : ''), draggable: 'true', 'data-path': JSON.stringify(p) },
        open,
        el('div', { class: 'node-tools' },
          el('button', { type: 'button', id: `up-${s.id}`, 'aria-label': `${T.move_up}: ${s.name || s.id}`, title: T.move_up, disabled: i === 0, onclick: () => move(p, -1), text: '↑' }),
          el('button', { type: 'button', id: `down-${s.id}`, 'aria-label': `${T.move_down}: ${s.name || s.id}`, title: T.move_down, disabled: i === list.length - 1, onclick: () => move(p, 1), text: '↓' }),
          el('button', { type: 'button', 'aria-label': `${T.remove}: ${s.name || s.id}`, title: T.remove, 'data-remove': s.id, onclick: () => remove(p), text: '✕' })));
      node.addEventListener('dragstart', (e) => { S.drag = p; e.dataTransfer.effectAllowed = 'move'; e.dataTransfer.setData('text/plain', s.id); e.stopPropagation(); });
      node.addEventListener('dragend', () => { S.drag = null; });
      const li = el('li', { class: 'card-item' }, node);
      const lanes = lanesOf(s, p);
      if (lanes.length) {
        const row = el('div', { class: 'lanes' });
        for (const [n, [name, lp]] of lanes.entries()) {
          row.append(el('div', { class: 'lane' },
            el('div', { class: 'lane-name', text: name }),
            renderList(at(lp) || [], lp, [`${s.id}:${name}`, `add-${s.id}-${n}`])));
        }
        li.append(row);
      }
      ol.append(li);
    });
    ol.append(insertButton(path, list.length, true, laneKey));
    return ol;
  }
  // The path of a step object, wherever it is now.
  function pathOf(step, list = S.doc.steps, path = ['steps']) {
    for (let i = 0; i < (list || []).length; i++) {
      if (list[i] === step) return [...path, i];
      for (const [, lp] of lanesOf(list[i], [...path, i])) {
        const found = pathOf(step, at(lp), lp);
        if (found) return found;
      }
    }
    return null;
  }
  function moveTo(from, listPath, index) {
    S.drag = null;
    // Never into itself.
    if (same(listPath.slice(0, from.length), from)) return;
    const src = parentList(from), i = from[from.length - 1];
    const dst = listAt(listPath);
    const step = src[i];
    let j = index;
    if (src === dst && i < index) j -= 1;
    src.splice(i, 1);
    dst.splice(j, 0, step);
    S.selected = pathOf(step);
    changed();
    setTimeout(() => $(`step-${step.id}`)?.focus(), 0);
  }
  function move(path, d) {
    const list = parentList(path), i = path[path.length - 1];
    [list[i], list[i + d]] = [list[i + d], list[i]];
    S.selected = [...path.slice(0, -1), i + d];
    changed();
  }
  function remove(path) {
    const s = at(path);
    if (!confirm(T.remove_confirm.replace('{id}', s.name || s.id))) return;
    parentList(path).splice(path[path.length - 1], 1);
    S.selected = null;
    changed();
  }
  function select(path) {
    S.selected = path;
    clearResult();
    render();
    loadValues();
    // On a phone the panel is a sheet over the cards: its first field takes the focus.
    if (matchMedia('(max-width: 800px)').matches) setTimeout(() => $('h-form')?.scrollIntoView(), 0);
  }
  function clearResult() {
    $('ed-test-result').hidden = true;
    $('ed-test-result').replaceChildren();
  }

  // ---- adding steps: the catalogue ----
  let addTo = null;
  let addAt = null;
  let opener = null;
  function openAdder(listPath, from, index) {
    addTo = listPath;
    addAt = index ?? null;
    opener = from || null;
    const d = $('ed-adder');
    d.hidden = false;
    $('ed-cat-search').value = '';
    renderCatalogue('');
    $('ed-cat-search').focus();
  }
  function renderCatalogue(q) {
    q = q.toLowerCase();
    const box = $('ed-catalogue');
    const items = [];
    for (const k of ['branch', 'switch', 'for_each', 'set', 'approval', 'task']) {
      const label = T['kind_' + k];
      if (!q || label.toLowerCase().includes(q) || k.includes(q)) {
        items.push(el('button', { type: 'button', class: 'ed-pick', 'data-pick': k, onclick: () => add(k), text: label }));
      }
    }
    for (const a of S.apps) {
      for (const ac of a.actions) {
        const label = `${tx(a.name)} · ${tx(ac.name)}`;
        const hay = `${a.id} ${ac.id} ${a.name.en} ${a.name.ja} ${ac.name.en} ${ac.name.ja}`.toLowerCase();
        if (!q || q.split(/\s+/).every((w) => hay.includes(w))) {
          items.push(el('button', { type: 'button', class: 'ed-pick', 'data-pick': `${a.id}.${ac.id}`, onclick: () => add('action', a.id, ac.id), text: label }));
        }
      }
    }
    box.replaceChildren(...(items.length ? items : [el('p', { class: 'muted', text: T.nothing_found })]));
  }
  function add(kind, appId, actionId) {
    let step;
    if (kind === 'action') {
      const spec = action(appId, actionId);
      step = { id: freshId(friendlyBase(actionId)), name: tx(spec.name), app: appId, action: actionId };
      if (needsConnection(appId)) step.connection = ensureSlot(appId);
      step.input = {};
      for (const f of spec.inputs) if (f.required && f.default !== undefined && f.default !== null) step.input[f.name] = f.default;
      // The object an earlier step of the same app works on is most often this one's too.
      if (spec.inputs.some((f) => f.name === 'object')) {
        const before = allSteps().filter((x) => x.app === appId && typeof x.input?.object === 'string' && x.input.object).pop();
        if (before) step.input.object = before.input.object;
      }
    } else if (kind === 'branch') {
      step = { id: freshId('branch'), name: T.kind_branch, branch: { if: { value: '', op: 'equals', to: '' }, then: [], else: [] } };
    } else if (kind === 'switch') {
      step = { id: freshId('switch'), name: T.kind_switch, switch: { cases: [{ name: 'case1', if: { value: '', op: 'equals', to: '' }, steps: [] }], default: [] } };
    } else if (kind === 'for_each') {
      step = { id: freshId('each'), name: T.kind_for_each, for_each: { items: '', steps: [] } };
    } else if (kind === 'approval') {
      step = { id: freshId('approval'), name: T.kind_approval, approval: { to: { roles: ['admin'] }, message: '' } };
    } else if (kind === 'task') {
      step = { id: freshId('task'), name: T.kind_task, task: { to: { roles: ['operator'] }, message: '', fields: [{ key: 'note', label: T.field_default_label, type: 'long_text' }] } };
    } else {
      step = { id: freshId('values'), name: T.kind_set, set: { value: '' } };
    }
    const list = listAt(addTo);
    const at_ = addAt === null || addAt > list.length ? list.length : addAt;
    list.splice(at_, 0, step);
    clearResult();
    $('ed-adder').hidden = true;
    S.selected = [...addTo, at_];
    if (step.connection) autoConnection(appId, step.connection);
    changed();
    loadValues().then(() => { if (step.app && prefill(step)) { render(); sync(); } });
    setTimeout(() => $('f-name')?.focus(), 0);
  }
  // A slot takes the app's only connection without asking.
  function autoConnection(appId, slot) {
    const mine = S.connections.filter((c) => c.app === appId);
    if (!S.chosen[slot] && mine.length === 1) S.chosen[slot] = mine[0].id;
  }
  // Required inputs left empty take the nearest obtained value of the same name
  // (`customer_id` ← `trigger.customer_id`); a record id after a search takes the first
  // record found. Only a suggestion: the field shows it and can be changed.
  function prefill(step) {
    const spec = action(step.app, step.action);
    if (!spec) return false;
    let changedAny = false;
    const nearest = [...S.valueList].reverse();
    for (const f of spec.inputs) {
      if (!f.required || step.input[f.name] !== undefined || !['text', 'number', 'integer'].includes(f.kind)) continue;
      let expr;
      // After a search in the same app, a record id is the record found, not any `id`.
      if (f.name === 'id') {
        const search = allSteps().filter((x) => x !== step && x.app === step.app && /^search/.test(x.action)).pop();
        if (search && available(search, step)) expr = `${search.id}.records[0].Id`;
      }
      if (!expr) {
        // Not from inside a list: one item of many is rarely what an input means.
        const match = nearest.find((v) => !v.expr.includes('[') && v.expr.split('.').pop().toLowerCase() === f.name.toLowerCase());
        expr = match?.expr;
      }
      if (expr) { step.input[f.name] = `{{ ${expr} }}`; changedAny = true; }
    }
    return changedAny;
  }
  // Whether `earlier` has run by the time `step` runs: it comes before it in the same list
  // or in a list that contains it.
  function available(earlier, step) {
    const a = pathOf(earlier), b = pathOf(step);
    const parent = a.slice(0, -1);
    return same(b.slice(0, parent.length), parent) && b[parent.length] > a[a.length - 1];
  }

  // ---- forms ----
  function field(labelText, control, help, required) {
    const target = control.classList?.contains('chip-wrap') ? control.querySelector('.chip-input') : control;
    const labelId = `${target.id}-label`;
    if (target.tagName === 'DIV' || target.tagName === 'FIELDSET') target.setAttribute('aria-labelledby', labelId);
    if (help && target.tagName !== 'FIELDSET') target.setAttribute('aria-describedby', `${target.id}-help`);
    return el('div', { class: 'field' },
      el('label', { for: target.id, id: labelId }, labelText, required ? el('span', { class: 'req', 'aria-label': T.required, text: ' *' }) : null),
      control,
      help ? el('small', { class: 'muted', id: target.id + '-help', text: help }) : null);
  }
  // A value a person reads: the step's name › the field's label.
  function chipLabel(expr) {
    const [head, ...rest] = expr.split('.');
    const step = head === 'trigger' ? null : allSteps().find((s) => s.id === head.replace(/\[\d+\]$/, ''));
    const who = head === 'trigger' ? T.trigger : step ? (step.name || step.id) : head;
    const label = S.valueLabels[expr];
    return `${who} › ${label || rest.join('.') || head}`;
  }
  function allSteps(list = S.doc.steps || [], out = []) {
    list.forEach((s) => { out.push(s); lanesOf(s, []).forEach(([, p]) => allSteps(p.reduce((o, k) => (o == null ? o : o[k]), s) || [], out)); });
    return out;
  }
  // A text input that shows templates as chips (see chips.js).
  function chipInput(id, value, onchange, extra = {}) {
    const wrap = window.FlowbotChips.input(id, value, onchange, { ...extra, labelOf: chipLabel, values: () => S.valueList });
    wrap.querySelector('.chip-input').addEventListener('focus', (e) => { S.lastFocus = e.currentTarget; });
    return wrap;
  }
  function textInput(id, value, onchange, extra = {}) {
    const i = el('input', { id, type: 'text', value: value ?? '', ...extra });
    i.value = value === undefined || value === null ? '' : (typeof value === 'string' ? value : JSON.stringify(value));
    i.addEventListener('input', () => onchange(i.value));
    i.addEventListener('focus', () => { S.lastFocus = i; });
    return i;
  }
  function datalist(id, items) {
    const dl = $(id) || document.body.appendChild(el('datalist', { id }));
    dl.replaceChildren(...items.map((it) => el('option', { value: it.name, label: it.label ? `${it.label} / ${it.name}${it.type ? ` · ${it.type}${it.length ? ` ${it.length}` : ''}` : ''}` : it.name })));
    return id;
  }
  // The project's tables, offered for a table trigger's or step's `table` (asked once).
  function tablesList() {
    if (!S.tablesAsked) {
      S.tablesAsked = true;
      datalist('dl-tables', []);
      const q = root.dataset.project ? `?project=${encodeURIComponent(root.dataset.project)}` : '';
      api('GET', `/api/v1/tables${q}`)
        .then((ts) => datalist('dl-tables', ts.map((t) => ({ name: t.name }))))
        .catch(() => { /* no suggestions; any name may be typed */ });
    }
    return 'dl-tables';
  }
  async function describeList(appId, slot, object) {
    const conn = S.chosen[slot] || '';
    const key = `${appId}:${conn}:${object || ''}`;
    if (S.describe[key]) return S.describe[key];
    const path = conn
      ? `/api/v1/connections/${conn}/describe${object ? `?object=${encodeURIComponent(object)}` : ''}`
      : `/api/v1/apps/${appId}/describe${object ? `?object=${encodeURIComponent(object)}` : ''}`;
    try { S.describe[key] = (await api('GET', path)).items || []; } catch { S.describe[key] = []; }
    return S.describe[key];
  }
  function mapRows(id, obj, onchange, keyList) {
    obj = obj && typeof obj === 'object' && !Array.isArray(obj) ? obj : {};
    const box = el('div', { class: 'map', id, role: 'group' });
    const entries = Object.entries(obj);
    // A value that was a number, a boolean or a structure keeps its type while its text
    // is unchanged.
    const shown = (v) => (typeof v === 'string' ? v : JSON.stringify(v));
    const write = () => {
      const out = {};
      box.querySelectorAll('.map-row').forEach((r) => {
        const k = r.querySelector('.k').value.trim();
        const raw = r.querySelector('.v').value;
        if (k) out[k] = k in obj && typeof obj[k] !== 'string' && raw === shown(obj[k]) ? obj[k] : raw;
      });
      onchange(out);
    };
    const row = (k, v, i) => {
      const kIn = el('input', { class: 'k', id: `${id}-k-${i}`, 'aria-label': `${T.key} ${i + 1}`, list: keyList, value: k });
      kIn.value = k;
      const vIn = chipInput(`${id}-v-${i}`, v, write, { class: 'v', 'aria-label': `${T.value} ${i + 1}` });
      kIn.addEventListener('change', write);
      return el('div', { class: 'map-row row' }, kIn, el('span', { text: '→' }), vIn,
        el('button', { type: 'button', 'aria-label': `${T.remove} ${i + 1}`, onclick: (e) => { e.target.closest('.map-row').remove(); write(); }, text: '✕' }));
    };
    entries.forEach(([k, v], i) => box.append(row(k, v, i)));
    let next = entries.length;
    box.append(el('button', { type: 'button', id: `${id}-add`, onclick: (e) => { e.target.before(row('', '', next++)); e.target.previousSibling.querySelector('.k').focus(); }, text: `+ ${T.add_row}` }));
    return box;
  }
  function listRows(id, arr, onchange, itemList) {
    arr = Array.isArray(arr) ? arr : [];
    const box = el('div', { class: 'list', id, role: 'group' });
    const write = () => onchange([...box.querySelectorAll('.item')].map((i) => i.value).filter((v) => v !== ''));
    const row = (v, i) => {
      const inp = itemList
        ? textInput(`${id}-${i}`, v, write, { class: 'item', 'aria-label': `${T.item} ${i + 1}`, list: itemList })
        : chipInput(`${id}-${i}`, v, write, { class: 'item', 'aria-label': `${T.item} ${i + 1}` });
      return el('div', { class: 'row' }, inp, el('button', { type: 'button', 'aria-label': `${T.remove} ${i + 1}`, onclick: (e) => { e.target.parentElement.remove(); write(); }, text: '✕' }));
    };
    arr.forEach((v, i) => box.append(row(v, i)));
    let next = arr.length;
    box.append(el('button', { type: 'button', id: `${id}-add`, onclick: (e) => { e.target.before(row('', next++)); e.target.previousSibling.querySelector('input').focus(); }, text: `+ ${T.add_row}` }));
    return box;
  }
  function inputControl(step, f) {
    const id = `f-in-${f.name}`;
    const val = step.input?.[f.name];
    const set = (v) => {
      step.input = step.input || {};
      if (v === '' || v === undefined || (typeof v === 'object' && v !== null && !Array.isArray(v) && !Object.keys(v).length)) delete step.input[f.name];
      else step.input[f.name] = v;
      sync();
      preview();
    };
    const sfObject = step.app === 'salesforce' ? step.input?.object : null;
    switch (f.kind) {
      case 'boolean': {
        const s = el('select', { id }, el('option', { value: '', text: '—' }), el('option', { value: 'true', text: 'true' }), el('option', { value: 'false', text: 'false' }));
        s.value = val === true ? 'true' : val === false ? 'false' : '';
        s.addEventListener('change', () => set(s.value === '' ? '' : s.value === 'true'));
        return s;
      }
      case 'select': {
        const s = el('select', { id }, el('option', { value: '', text: '—' }), ...f.choices.map((c) => el('option', { value: c, text: c })));
        s.value = val ?? '';
        s.addEventListener('change', () => set(s.value));
        return s;
      }
      case 'map': case 'headers':
        return mapRows(id, val, set, sfObject && f.name !== 'headers' ? 'dl-fields' : undefined);
      case 'list':
        return listRows(id, val, set, sfObject ? 'dl-fields' : undefined);
      case 'code': {
        // Program text is never rendered, so the picker does not insert into it (no
        // S.lastFocus). Tab indents; Escape first lets the next Tab leave the box.
        const t = el('textarea', { id, class: 'code', rows: 12, spellcheck: 'false', autocapitalize: 'off', autocomplete: 'off', wrap: 'off' });
        t.value = typeof val === 'string' ? val : '';
        let leave = false;
        t.addEventListener('keydown', (e) => {
          if (e.key === 'Escape') { leave = true; return; }
          if (e.key !== 'Tab' || e.shiftKey || e.altKey || e.ctrlKey || e.metaKey || leave) { leave = false; return; }
          e.preventDefault();
          t.setRangeText('  ', t.selectionStart, t.selectionEnd, 'end');
        });
        t.addEventListener('input', () => set(t.value));
        return t;
      }
      case 'json': {
        const t = el('textarea', { id, rows: 4 });
        t.value = val === undefined ? '' : (typeof val === 'string' ? val : JSON.stringify(val, null, 2));
        t.addEventListener('focus', () => { S.lastFocus = t; });
        t.addEventListener('change', () => { try { set(t.value.trim() ? JSON.parse(t.value) : ''); } catch { set(t.value); } });
        return t;
      }
      default: {
        const extra = {};
        if (step.app === 'salesforce' && f.name === 'object') extra.list = 'dl-objects';
        if (step.app === 'table' && f.name === 'table') extra.list = tablesList();
        if (f.choices_from) {
          extra.list = `dl-ch-${f.name}`;
          datalist(extra.list, []);
          loadChoices(step, f);
        }
        if (f.kind === 'number' || f.kind === 'integer') extra.inputmode = 'decimal';
        const onText = (v) => {
          if ((f.kind === 'number' || f.kind === 'integer') && v.trim() !== '' && !isNaN(Number(v))) set(Number(v));
          else set(v);
          if (extra.list === 'dl-objects') loadFields(step);
        };
        // Names chosen from the app's lists stay plain inputs (their suggestions need one);
        // everything else may hold values from earlier steps, shown as chips.
        return extra.list ? textInput(id, val, onText, extra) : chipInput(id, val, onText, extra);
      }
    }
  }
  // Create in one lane, update in the other: the same mapping twice. A step whose map is
  // empty offers to take it from the other lane's step of the same app.
  function copyFromLane(step, name) {
    if (step.input?.[name] && Object.keys(step.input[name]).length) return null;
    const here = pathOf(step);
    const parent = here.slice(0, -1);
    const owner = parent.slice(0, parent.findLastIndex((k) => typeof k === 'number') + 1);
    const host = owner.length ? at(owner) : null;
    if (!host) return null;
    const other = lanesOf(host, owner).map(([, lp]) => at(lp) || []).flat()
      .find((x) => x !== step && x.app === step.app && x.input?.[name] && Object.keys(x.input[name]).length);
    if (!other) return null;
    return el('button', { type: 'button', id: `f-copy-${name}`, onclick: () => {
      step.input[name] = clone(other.input[name]);
      changed();
    }, text: T.copy_from.replace('{step}', other.name || other.id) });
  }
  // An input whose choices come from another action of the app: asked for with the
  // step's connection and its other inputs as typed.
  async function loadChoices(step, f) {
    const conn = S.chosen[step.connection] || '';
    const values = Object.fromEntries(Object.entries(step.input || {}).filter(([k, v]) => k !== f.name && typeof v !== 'object'));
    try {
      const r = await api('POST', `/api/v1/apps/${encodeURIComponent(step.app)}/choices`, { action: step.action, input: f.name, connection_id: conn || null, values });
      datalist(`dl-ch-${f.name}`, r.choices.map((c) => ({ name: c.value, label: c.label === c.value ? '' : c.label })));
    } catch { /* no suggestions; the input still takes any value */ }
  }
  async function loadFields(step) {
    if (step.app !== 'salesforce') return;
    const objects = await describeList('salesforce', step.connection);
    datalist('dl-objects', objects);
    // Fields once the object is one the org has (not on every keystroke), and only if the
    // object is still the one asked about when the answer comes.
    const obj = step.input?.object;
    const known = objects.some((o) => o.name === obj);
    const fields = known ? await describeList('salesforce', step.connection, obj) : [];
    if (step.input?.object === obj) datalist('dl-fields', fields);
  }
  function connectionPicker(appId, slot) {
    const s = el('select', { id: 'f-connection' }, el('option', { value: '', text: '—' }),
      ...S.connections.filter((c) => c.app === appId).map((c) => el('option', { value: c.id, text: c.name })));
    s.value = S.chosen[slot] || '';
    s.addEventListener('change', () => { S.chosen[slot] = s.value; S.describe = {}; render(); });
    return field(`${T.connection} (${slot})`, s, T.connection_help, true);
  }
  function conditionRows(cond, write) {
    // One comparison, or all/any of several.
    const mode = cond.all ? 'all' : cond.any ? 'any' : 'one';
    const rows = mode === 'one' ? [cond] : cond[mode];
    const box = el('div', { class: 'cond', role: 'group', 'aria-label': T.condition });
    const modeSel = el('select', { id: 'c-mode' }, ...['one', 'all', 'any'].map((m) => el('option', { value: m, text: T['cond_' + m] })));
    modeSel.value = mode;
    const emit = () => {
      const list = [...box.querySelectorAll('.cmp')].map((r) => {
        const c = { value: r.querySelector('.cv').value, op: r.querySelector('.co').value };
        if (!['is_empty', 'is_not_empty'].includes(c.op)) c.to = r.querySelector('.ct').value;
        return c;
      });
      write(modeSel.value === 'one' ? list[0] || { value: '', op: 'equals', to: '' } : { [modeSel.value]: list });
    };
    modeSel.addEventListener('change', () => { emit(); render(); });
    box.append(field(T.match, modeSel));
    rows.forEach((c, i) => {
      const v = chipInput(`c-value-${i}`, c.value, emit, { class: 'cv' });
      const o = el('select', { id: `c-op-${i}`, class: 'co' }, ...OPS.map((op) => el('option', { value: op, text: T['op_' + op] || op })));
      o.value = c.op || 'equals';
      o.addEventListener('change', emit);
      const t = chipInput(`c-to-${i}`, c.to, emit, { class: 'ct' });
      box.append(el('div', { class: 'cmp row' }, field(T.cond_value, v), field(T.cond_op, o), field(T.cond_to, t)));
    });
    if (mode !== 'one') {
      box.append(el('button', { type: 'button', id: 'c-add', onclick: () => { rows.push({ value: '', op: 'equals', to: '' }); write({ [mode]: rows }); render(); }, text: `+ ${T.add_condition}` }));
    }
    return box;
  }
  const OPS = ['equals', 'not_equals', 'greater_than', 'greater_or_equal', 'less_than', 'less_or_equal', 'contains', 'not_contains', 'starts_with', 'ends_with', 'is_empty', 'is_not_empty', 'matches'];

  function renderForm() {
    const box = $('ed-form');
    box.replaceChildren();
    if (S.selected === 'trigger') return renderTriggerForm(box);
    if (!S.selected) { box.append(el('p', { class: 'muted', text: T.select_step })); return; }
    const step = at(S.selected);
    if (!step) return;
    const k = kindOf(step);
    box.append(el('h3', { text: stepLabel(step) }));
    const idIn = textInput('f-id', step.id, (v) => { step.id = v; sync(); });
    idIn.addEventListener('change', () => renderTree());
    box.append(field(T.step_id, idIn, T.step_id_help, true));
    box.append(field(T.step_name, textInput('f-name', step.name, (v) => { step.name = v; sync(); })));
    if (k === 'action') {
      const spec = action(step.app, step.action);
      if (!spec) { box.append(el('p', { class: 'error', text: `${step.app}.${step.action}?` })); return; }
      box.append(el('p', { class: 'muted', text: tx(spec.description) }));
      if (step.connection) box.append(connectionPicker(step.app, step.connection));
      for (const f of spec.inputs) {
        box.append(field(tx(f.label) + ` (${f.name})`, inputControl(step, f), tx(f.help), f.required));
        const copy = f.kind === 'map' ? copyFromLane(step, f.name) : null;
        if (copy) box.append(copy);
      }
      box.append(el('div', { id: 'f-warnings', class: 'error', 'aria-live': 'polite' }));
      box.append(el('div', { class: 'row' },
        el('button', { type: 'button', id: 'f-test', class: 'primary', onclick: () => testStep(false), text: T.test_step })));
      loadFields(step);
      preview();
    } else if (k === 'branch') {
      box.append(conditionRows(step.branch.if, (c) => { step.branch.if = c; sync(); }));
    } else if (k === 'switch') {
      step.switch.cases.forEach((c, i) => {
        box.append(el('h4', { text: `${T.case} ${i + 1}` }));
        box.append(field(T.case_name, textInput(`s-name-${i}`, c.name, (v) => { c.name = v; sync(); })));
        const holder = el('div');
        holder.append(conditionRows(c.if, (x) => { c.if = x; sync(); }));
        holder.querySelectorAll('[id]').forEach((e) => { e.id = `s${i}-${e.id}`; });
        holder.querySelectorAll('label[for]').forEach((l) => { l.htmlFor = `s${i}-${l.htmlFor}`; });
        box.append(holder);
      });
      box.append(el('button', { type: 'button', id: 's-add', onclick: () => { step.switch.cases.push({ name: `case${step.switch.cases.length + 1}`, if: { value: '', op: 'equals', to: '' }, steps: [] }); changed(); }, text: `+ ${T.add_case}` }));
    } else if (k === 'for_each') {
      box.append(field(T.loop_items, chipInput('l-items', step.for_each.items, (v) => { step.for_each.items = v; sync(); }), T.loop_items_help, true));
      box.append(field(T.loop_max, textInput('l-max', step.for_each.max_iterations, (v) => { if (v === '') delete step.for_each.max_iterations; else step.for_each.max_iterations = Number(v); sync(); }, { inputmode: 'numeric' })));
    } else if (k === 'approval' || k === 'task') {
      peopleForm(box, step, k);
    } else if (k === 'set') {
      box.append(field(T.kind_set, mapRows('f-set', step.set, (m) => { step.set = m; sync(); })));
      box.append(el('div', { class: 'row' }, el('button', { type: 'button', id: 'f-test', onclick: () => testStep(false), text: T.test_step })));
    }
  }

  // ---- people: approvals and tasks ----
  const ROLES = ['owner', 'admin', 'editor', 'viewer', 'operator'];
  // Who is asked: members and addresses (templates allowed), roles, the run's starter.
  function peopleRows(id, to, onchange) {
    to = to && typeof to === 'object' ? to : {};
    const box = el('div', { id, class: 'people' });
    const write = () => {
      for (const k of ['members', 'roles', 'emails']) if (!to[k] || !to[k].length) delete to[k];
      if (!to.starter) delete to.starter;
      onchange(to);
    };
    box.append(field(T.people_members, listRows(`${id}-members`, to.members, (v) => { to.members = v; write(); }), T.people_members_help));
    const roles = el('fieldset', { id: `${id}-roles` }, el('legend', { text: T.people_roles }));
    for (const r of ROLES) {
      const cb = el('input', { type: 'checkbox', id: `${id}-role-${r}`, checked: (to.roles || []).includes(r) });
      cb.addEventListener('change', () => { to.roles = ROLES.filter((x) => $(`${id}-role-${x}`).checked); write(); });
      roles.append(el('span', { class: 'row inline' }, cb, el('label', { for: cb.id, class: 'inline', text: T['role_' + r] || r })));
    }
    box.append(roles);
    box.append(field(T.people_emails, listRows(`${id}-emails`, to.emails, (v) => { to.emails = v; write(); }), T.people_emails_help));
    const st = el('input', { type: 'checkbox', id: `${id}-starter`, checked: !!to.starter });
    st.addEventListener('change', () => { to.starter = st.checked; write(); });
    box.append(el('div', { class: 'row' }, st, el('label', { for: st.id, class: 'inline', text: T.people_starter })));
    return box;
  }
  function peopleForm(box, step, k) {
    const p = step[k];
    box.append(el('h4', { text: T.people_to }));
    box.append(peopleRows('p-to', p.to, (to) => { p.to = to; sync(); }));
    const msg = el('textarea', { id: 'p-message', rows: 4 });
    msg.value = p.message || '';
    msg.addEventListener('input', () => { p.message = msg.value; sync(); });
    msg.addEventListener('focus', () => { S.lastFocus = msg; });
    box.append(field(T.people_message, msg, T.people_message_help));
    if (k === 'approval') {
      const rule = el('select', { id: 'p-rule' }, ...['any', 'all', 'count'].map((r) => el('option', { value: r, text: T['rule_' + r] })));
      rule.value = typeof p.rule === 'number' ? 'count' : (p.rule || 'any');
      const n = textInput('p-rule-n', typeof p.rule === 'number' ? p.rule : 2, (v) => { if (rule.value === 'count') { p.rule = Number(v) || 1; sync(); } }, { inputmode: 'numeric' });
      n.hidden = rule.value !== 'count';
      rule.addEventListener('change', () => {
        n.hidden = rule.value !== 'count';
        if (rule.value === 'any') delete p.rule; else p.rule = rule.value === 'all' ? 'all' : (Number(n.value) || 2);
        sync();
      });
      box.append(field(T.people_rule, el('div', { class: 'row', id: 'p-rule-box' }, rule, n)));
      $('p-rule-box')?.setAttribute('role', 'group');
    }
    if (k === 'task') {
      box.append(el('h4', { text: T.form_fields }));
      box.append(fieldsEditor('p-fields', p.fields, (f) => { p.fields = f; sync(); }));
    }
    // Send back: any step before this one.
    const before = [];
    for (const s of allSteps()) { if (s === step) break; before.push(s); }
    const back = el('select', { id: 'p-back' }, el('option', { value: '', text: T.no_send_back }),
      ...before.map((s) => el('option', { value: s.id, text: s.name || s.id })));
    back.value = p.send_back_to || '';
    back.addEventListener('change', () => { if (back.value) p.send_back_to = back.value; else delete p.send_back_to; sync(); });
    box.append(field(T.send_back_to, back, T.send_back_help));
    // The deadline.
    const d = p.deadline || null;
    const after = textInput('p-after', d?.after ?? '', (v) => {
      if (!v) { delete p.deadline; } else { p.deadline = { ...(p.deadline || {}), after: v }; }
      sync();
    }, { placeholder: '2d' });
    box.append(field(T.deadline_after, after, T.deadline_help));
    const then = el('select', { id: 'p-then' }, ...['fail', ...(k === 'approval' ? ['else'] : []), 'escalate'].map((x) => el('option', { value: x, text: T['at_deadline_' + x] })));
    then.value = d?.then || 'fail';
    then.addEventListener('change', () => {
      if (!p.deadline) return;
      if (then.value === 'fail') delete p.deadline.then; else p.deadline.then = then.value;
      if (then.value !== 'escalate') delete p.deadline.escalate_to;
      else p.deadline.escalate_to = p.deadline.escalate_to || { roles: ['owner'] };
      changed();
    });
    box.append(field(T.deadline_then, then));
    if (d?.then === 'escalate') {
      box.append(el('h4', { text: T.escalate_to }));
      box.append(peopleRows('p-esc', d.escalate_to, (to) => { p.deadline.escalate_to = to; sync(); }));
    }
  }
  // A form's fields (the form trigger's, a task's): key, label, kind, required, choices,
  // and the checks, as rows a person edits.
  const FIELD_TYPES = ['text', 'long_text', 'number', 'date', 'datetime', 'email', 'phone', 'select', 'multi_select', 'checkbox', 'file'];
  function fieldsEditor(id, fields, onchange) {
    fields = Array.isArray(fields) ? fields : [];
    const box = el('div', { id, class: 'form-fields', role: 'group' });
    // A label in both languages: `{ ja, en }` when English is given, else one text.
    const labelIn = (f, which) => (f.label && typeof f.label === 'object' ? (f.label[which] || '') : (which === 'ja' ? (f.label || '') : ''));
    const setLabel = (f, which, v) => {
      const ja = which === 'ja' ? v : labelIn(f, 'ja');
      const en = which === 'en' ? v : labelIn(f, 'en');
      if (en && ja) f.label = { ja, en }; else f.label = ja || en;
    };
    const write = () => onchange(fields);
    fields.forEach((f, i) => {
      const row = el('fieldset', { class: 'card form-field', id: `${id}-${i}` }, el('legend', { text: `${T.form_field} ${i + 1}` }));
      const set = (k, v) => { if (v === '' || v === false || v === undefined) delete f[k]; else f[k] = v; write(); };
      row.append(field(T.form_field_label, textInput(`${id}-${i}-label`, labelIn(f, 'ja'), (v) => { setLabel(f, 'ja', v); write(); })));
      row.append(field(T.form_field_label_en, textInput(`${id}-${i}-label-en`, labelIn(f, 'en'), (v) => { setLabel(f, 'en', v); write(); }), T.form_field_label_en_help));
      row.append(field(T.form_field_key, textInput(`${id}-${i}-key`, f.key, (v) => set('key', v)), T.form_field_key_help, true));
      const type = el('select', { id: `${id}-${i}-type` }, ...FIELD_TYPES.map((t) => el('option', { value: t, text: T['field_type_' + t] || t })));
      type.value = f.type || 'text';
      type.addEventListener('change', () => { set('type', type.value === 'text' ? '' : type.value); renderForm(); });
      row.append(field(T.form_field_type, type));
      const req = el('input', { type: 'checkbox', id: `${id}-${i}-required`, checked: !!f.required });
      req.addEventListener('change', () => set('required', req.checked));
      row.append(el('div', { class: 'row' }, req, el('label', { for: req.id, class: 'inline', text: T.required_field })));
      if (['select', 'multi_select'].includes(f.type)) {
        row.append(field(T.form_field_choices, textInput(`${id}-${i}-choices`, (f.choices || []).join(', '), (v) => set('choices', v.split(',').map((x) => x.trim()).filter(Boolean))), T.form_field_choices_help));
      }
      row.append(field(T.form_field_help, textInput(`${id}-${i}-help`, typeof f.help === 'string' ? f.help : '', (v) => set('help', v))));
      const checks = el('details', { id: `${id}-${i}-checks` }, el('summary', { text: T.form_field_checks }));
      const num = (k) => textInput(`${id}-${i}-${k}`, f[k] ?? '', (v) => set(k, v === '' ? '' : Number(v)), { inputmode: 'decimal' });
      if (f.type === 'file') {
        checks.append(field(T.form_field_max_size, textInput(`${id}-${i}-max_size`, f.max_size ?? '', (v) => set('max_size', v)), T.form_field_max_size_help),
          field(T.form_field_accept, textInput(`${id}-${i}-accept`, (f.accept || []).join(', '), (v) => set('accept', v.split(',').map((x) => x.trim()).filter(Boolean))), T.form_field_accept_help));
      } else if (['number'].includes(f.type)) {
        checks.append(field(T.form_field_min, num('min')), field(T.form_field_max, num('max')));
      } else if (!['checkbox', 'select', 'multi_select', 'date', 'datetime'].includes(f.type)) {
        checks.append(field(T.form_field_min_length, num('min_length')), field(T.form_field_max_length, num('max_length')),
          field(T.form_field_pattern, textInput(`${id}-${i}-pattern`, f.pattern, (v) => set('pattern', v)), T.form_field_pattern_help));
      }
      checks.append(field(T.form_field_default, textInput(`${id}-${i}-default`, f.default ?? '', (v) => set('default', v))));
      if (f.min !== undefined || f.max !== undefined || f.pattern || f.min_length !== undefined || f.max_length !== undefined) checks.open = true;
      row.append(checks);
      row.append(el('div', { class: 'row' },
        el('button', { type: 'button', id: `${id}-${i}-up`, disabled: i === 0, onclick: () => { fields.splice(i - 1, 0, fields.splice(i, 1)[0]); write(); renderForm(); $(`${id}-${i - 1}-up`)?.focus(); }, text: `↑ ${T.move_up}` }),
        el('button', { type: 'button', id: `${id}-${i}-remove`, onclick: () => { fields.splice(i, 1); write(); renderForm(); }, text: `✕ ${T.remove_field}` })));
      box.append(row);
    });
    box.append(el('button', { type: 'button', id: `${id}-add`, onclick: () => {
      const keys = new Set(fields.map((f) => f.key));
      let n = fields.length + 1;
      while (keys.has(`field${n}`)) n++;
      fields.push({ key: `field${n}`, label: `${T.form_field} ${n}` });
      write(); renderForm(); $(`${id}-${fields.length - 1}-label`)?.focus();
    }, text: `+ ${T.add_field}` }));
    return box;
  }
  // The mail trigger: the conditions a mail must meet, one row each (all must hold).
  function mailOptions(box, tr) {
    const conds = Array.isArray(tr.options?.conditions) ? tr.options.conditions : [];
    const write = () => {
      if (conds.length) tr.options = { ...(tr.options || {}), conditions: conds };
      else if (tr.options) { delete tr.options.conditions; if (!Object.keys(tr.options).length) delete tr.options; }
      sync();
    };
    const fs = el('fieldset', { id: 't-conds' }, el('legend', { text: T.mail_conditions }));
    fs.append(el('p', { class: 'muted', text: T.mail_conditions_help }));
    const choice = (id, value, options, label, onchange) => {
      const s = el('select', { id, 'aria-label': label }, ...options.map(([v, t]) => el('option', { value: v, text: t })));
      s.value = value;
      s.addEventListener('change', () => onchange(s.value));
      return s;
    };
    conds.forEach((c, i) => {
      const id = `t-cond-${i}`;
      fs.append(el('div', { class: 'row' },
        choice(`${id}-field`, c.field || 'subject', [['from', T.mail_from], ['to', T.mail_to], ['subject', T.mail_subject], ['body', T.mail_body]], `${T.mail_condition} ${i + 1}: ${T.mail_field}`, (v) => { c.field = v; write(); }),
        choice(`${id}-op`, c.op || 'contains', [['contains', T.op_contains], ['not_contains', T.op_not_contains], ['regex', T.op_matches]], `${T.mail_condition} ${i + 1}: ${T.mail_op}`, (v) => { c.op = v; write(); }),
        textInput(`${id}-value`, c.value ?? '', (v) => { c.value = v; write(); }, { 'aria-label': `${T.mail_condition} ${i + 1}: ${T.mail_value}` }),
        el('button', { type: 'button', id: `${id}-remove`, 'aria-label': `${T.remove} ${i + 1}`, onclick: () => { conds.splice(i, 1); write(); renderForm(); }, text: '✕' })));
    });
    fs.append(el('button', { type: 'button', id: 't-cond-add', disabled: conds.length >= 20, onclick: () => {
      conds.push({ field: 'subject', op: 'contains', value: '' });
      write(); renderForm(); $(`t-cond-${conds.length - 1}-value`)?.focus();
    }, text: `+ ${T.mail_condition_add}` }));
    box.append(fs);
  }
  // The form trigger: its words, who may answer, and its fields.
  function formOptions(box, tr) {
    tr.options = tr.options || {};
    const o = tr.options;
    for (const k of ['title', 'description', 'thanks']) {
      const v = o[k] && typeof o[k] === 'object' ? (o[k][lang] || o[k].ja || o[k].en || '') : (o[k] || '');
      box.append(field(T['form_' + k], textInput(`t-form-${k}`, v, (x) => {
        if (!x) delete o[k];
        else if (o[k] && typeof o[k] === 'object') o[k] = { ...o[k], [lang]: x };
        else o[k] = x;
        sync();
      })));
    }
    const mo = el('input', { type: 'checkbox', id: 't-form-members', checked: !!o.members_only });
    mo.addEventListener('change', () => { if (mo.checked) o.members_only = true; else delete o.members_only; sync(); });
    box.append(el('div', { class: 'row' }, mo, el('label', { for: mo.id, class: 'inline', text: T.form_members_only })));
    box.append(el('h4', { text: T.form_fields }));
    box.append(fieldsEditor('t-fields', o.fields, (f) => { o.fields = f; sync(); }));
  }

  function renderTriggerForm(box) {
    const tr = S.doc.trigger = S.doc.trigger || {};
    box.append(el('h3', { text: T.trigger }));
    const withTriggers = S.apps.filter((a) => a.triggers.length);
    const appSel = el('select', { id: 't-app' }, el('option', { value: '', text: '—' }), ...withTriggers.map((a) => el('option', { value: a.id, text: tx(a.name) })));
    appSel.value = tr.app || '';
    appSel.addEventListener('change', () => {
      if (tr.app === 'ecforce' && S.doc.concurrency_key === '{{ trigger.customer_id }}') delete S.doc.concurrency_key;
      tr.app = appSel.value;
      tr.events = [];
      delete tr.options; delete tr.connection;
      if (needsConnection(tr.app)) { tr.connection = ensureSlot(tr.app); autoConnection(tr.app, tr.connection); }
      if (tr.app === 'ecforce') {
        tr.options = { customer_id_path: 'id' };
        S.doc.concurrency_key = '{{ trigger.customer_id }}';
      }
      changed();
    });
    box.append(field(T.trigger_app, appSel, null, true));
    const a = app(tr.app);
    if (!a) return;
    const evs = el('fieldset', { id: 't-events' }, el('legend', { text: T.trigger_events }));
    for (const t of a.triggers) {
      const cb = el('input', { type: 'checkbox', id: `t-ev-${t.id}`, checked: (tr.events || []).includes(t.id) });
      cb.addEventListener('change', () => {
        const set = new Set(tr.events || []);
        if (cb.checked) set.add(t.id); else set.delete(t.id);
        tr.events = a.triggers.map((x) => x.id).filter((x) => set.has(x));
        // The options shown follow the events chosen.
        changed();
        $(cb.id)?.focus();
      });
      evs.append(el('div', { class: 'row' }, cb, el('label', { for: cb.id, class: 'inline', text: `${tx(t.name)} (${t.id})` })));
    }
    box.append(evs);
    if (tr.connection) box.append(connectionPicker(tr.app, tr.connection));
    // Only what applies: the options of the chosen events' triggers (a polling interval
    // only for a polling trigger).
    const chosen = a.triggers.filter((t) => (tr.events || []).includes(t.id));
    const opts = new Map();
    for (const t of (chosen.length ? chosen : a.triggers)) for (const o of t.options) opts.set(o.name, o);
    if (tr.app === 'form') { formOptions(box, tr); opts.clear(); }
    if (tr.app === 'mail') { mailOptions(box, tr); opts.clear(); }
    for (const o of opts.values()) {
      box.append(field(`${tx(o.label)} (${o.name})`, textInput(`t-opt-${o.name}`, tr.options?.[o.name], (v) => { tr.options = tr.options || {}; if (v === '') delete tr.options[o.name]; else tr.options[o.name] = v; sync(); }, tr.app === 'table' && o.name === 'table' ? { list: tablesList() } : undefined), tx(o.help), o.required));
    }
    // A trigger the app calls: its URL is here (known before the first save), with how
    // to register it in the app.
    // A mail trigger's address instead of a URL: shown on the flow's page when this server
    // receives mail (the trigger's setup words say so otherwise).
    if (tr.app === 'mail') {
      const address = $('mail-address')?.textContent?.trim();
      box.append(el('div', { class: 'field' },
        el('h4', { id: 't-mail-label', text: T.mail_trigger_address }),
        address ? el('code', { id: 't-mail', class: 'wrap', text: address }) : null,
        ...chosen.filter((t) => t.setup).slice(0, 1).map((t) => el('p', { class: 'muted', text: tx(t.setup) }))));
    } else if (chosen.some((t) => !t.polling)) {
      const url = $('webhook-url')?.textContent || '';
      box.append(el('div', { class: 'field' },
        el('h4', { id: 't-hook-label', text: T.webhook_url }),
        el('code', { id: 't-hook', class: 'wrap', text: url }), ' ',
        el('button', { type: 'button', class: 'small', 'aria-describedby': 't-hook-label', onclick: async (e) => {
          try { await navigator.clipboard.writeText(($('webhook-url')?.textContent || '').trim()); e.currentTarget.textContent = T.copied; } catch { /* shown as it is */ }
        }, text: T.copy_value }),
        ...chosen.filter((t) => t.setup).slice(0, 1).map((t) => el('p', { class: 'muted', text: tx(t.setup) }))));
    }
    // Rarely changed by hand (templates set it): folded unless the flow has one.
    const adv = el('details', { id: 't-advanced' }, el('summary', { text: T.advanced }),
      field(T.concurrency_key, textInput('t-key', S.doc.concurrency_key, (v) => { if (v) S.doc.concurrency_key = v; else delete S.doc.concurrency_key; sync(); }), T.concurrency_key_help));
    if (S.doc.concurrency_key) adv.open = true;
    box.append(adv);
    // Samples for the pickers.
    box.append(el('h4', { text: T.trigger_sample }));
    box.append(el('p', { class: 'muted', text: T.trigger_sample_help }));
    const row = el('div', { class: 'row' });
    const noId = !currentId();
    if (S.flowId) row.append(el('button', { type: 'button', id: 't-wait', onclick: waitWebhook, text: tr.app === 'mail' ? T.wait_mail : T.wait_webhook }));
    if (tr.app === 'ecforce') row.append(el('button', { type: 'button', id: 't-fetch', disabled: noId, onclick: fetchRecent, text: T.fetch_recent }));
    box.append(row);
    const ta = el('textarea', { id: 't-sample', rows: 5 });
    box.append(field(T.enter_sample, ta, T.enter_sample_help));
    box.append(el('button', { type: 'button', id: 't-sample-save', disabled: noId, onclick: saveSample, text: T.save_sample }));
    if (noId) box.append(el('p', { class: 'muted', text: T.id_first }));
  }

  // ---- samples and tests ----
  function currentId() { return S.doc.id || S.flowId; }
  // Results are tables with labels; text while waiting or when something went wrong.
  function showResult(...kids) {
    const out = $('ed-test-result');
    out.hidden = false;
    out.replaceChildren(...kids.filter((k) => k).map((k) => (typeof k === 'string' ? el('p', { text: k }) : k)));
  }
  // The labels the app gives a step's (or the trigger's) values.
  function outputLabels(step) {
    const out = {};
    const specs = step === 'trigger'
      ? (app(S.doc.trigger?.app)?.triggers || []).filter((t) => !(S.doc.trigger.events || []).length || S.doc.trigger.events.includes(t.id)).flatMap((t) => t.outputs || [])
      : action(step.app, step.action)?.outputs || [];
    for (const o of specs) out[o.name] = tx(o.label);
    return out;
  }
  const V = window.FlowbotValues;
  function showTrigger(value) {
    showResult(V.result(T.output, value, T, outputLabels('trigger'), 'trigger'));
  }
  async function waitWebhook() {
    showResult(T.waiting);
    try {
      const r = await api('POST', `/api/v1/flows/${currentId()}/test-trigger?wait=120`);
      if (r.received) showTrigger(r.trigger); else showResult(T.nothing_received);
    } catch (e) { showResult(e.message); }
    loadValues();
  }
  async function fetchRecent() {
    try {
      const r = await api('POST', `/api/v1/flows/${currentId()}/samples/trigger/fetch`, { yaml: S.yaml, connections: S.chosen });
      showTrigger(r.trigger);
    } catch (e) { showResult(e.message); }
    loadValues();
  }
  async function saveSample() {
    try {
      const v = JSON.parse($('t-sample').value);
      await api('PUT', `/api/v1/flows/${currentId()}/samples/trigger`, v);
      showResult(T.sample_saved);
    } catch (e) { showResult(`${T.sample_invalid}: ${e.message}`); }
    loadValues();
  }
  async function testStep(confirmed) {
    showResult(T.testing);
    await sync(true);
    const step = at(S.selected);
    // No trigger sample yet: take the newest object the trigger's app has (when it can).
    if (S.doc.trigger?.app === 'ecforce' && currentId()) {
      try {
        const have = await api('GET', `/api/v1/flows/${encodeURIComponent(currentId())}/samples`);
        if (!have.trigger) await api('POST', `/api/v1/flows/${encodeURIComponent(currentId())}/samples/trigger/fetch`, { yaml: S.yaml, connections: S.chosen });
      } catch { /* the test says what is missing */ }
    }
    try {
      const r = await api('POST', '/api/v1/editor/test-step', { yaml: S.yaml, step_id: step.id, confirm: confirmed, connections: S.chosen });
      if (r.needs_confirmation) {
        if (confirm(`${T.confirm_write}\n\n${JSON.stringify(r.input, null, 2)}`)) return testStep(true);
        showResult(T.not_run);
        return;
      }
      const input = r.input ? el('details', { class: 'input' }, el('summary', { text: T.rendered_input }), V.table(r.input, T)) : null;
      if (r.ok) showResult(V.result(T.output, r.output, T, outputLabels(step), step.id), input);
      // The plain explanation first, the app's own words (with its code) once after it.
      else showResult(r.explanation ? el('p', { class: 'notice', text: r.explanation }) : null,
        el('p', { class: 'error wrap', text: `${T.failed}: ${r.error}${r.code && !String(r.error).includes(r.code) ? ` (${r.code})` : ''}` }), input);
      // Inputs that came out empty are asked about again before saving.
      S.empty[step.id] = (r.warnings || []).filter((w) => / is empty in this test/.test(w.message)).map((w) => w.field);
      showWarnings(r.warnings);
    } catch (e) { showResult(e.message); }
  }
  let previewTimer = null;
  function preview() {
    clearTimeout(previewTimer);
    previewTimer = setTimeout(previewNow, 500);
  }
  async function previewNow() {
    const step = S.selected && S.selected !== 'trigger' ? at(S.selected) : null;
    if (!step || step.app !== 'salesforce' || !step.input?.fields) return;
    await sync(true);
    try {
      const r = await api('POST', '/api/v1/editor/test-step', { yaml: S.yaml, step_id: step.id, dry_run: true, connections: S.chosen });
      showWarnings(r.warnings);
    } catch { /* shown by the problems list */ }
  }
  function showWarnings(list) {
    const w = $('f-warnings');
    if (w) w.replaceChildren(...(list || []).map((x) => el('p', { class: 'length-warning', text: x.message })));
  }
  async function loadValues() {
    const box = $('ed-values');
    const step = S.selected && S.selected !== 'trigger' ? at(S.selected) : null;
    if (!step) { box.replaceChildren(el('p', { class: 'muted', text: T.values_help })); return; }
    const my = ++S.valuesSeq;
    await sync(true);
    try {
      const r = await api('POST', '/api/v1/editor/values', { yaml: S.yaml, step_id: step.id });
      if (my !== S.valuesSeq) return;
      // The labels chips show, and what `{{` completes with.
      S.valueList = r.groups.flatMap((g) => g.values);
      for (const g of r.groups) for (const v of g.values) if (v.label) S.valueLabels[v.expr] = v.label;
      document.querySelectorAll('#ed-form .chip').forEach((c) => { c.textContent = chipLabel(c.dataset.expr); });
      box.replaceChildren(V.picker(r.groups, T, (v) => insert(v.expr)));
      V.filter(box, $('ed-values-search').value);
    } catch (e) { box.replaceChildren(el('p', { class: 'error', text: e.message })); }
  }
  function insert(expr) {
    const i = S.lastFocus;
    if (!i || !document.body.contains(i)) { alert(T.focus_first); return; }
    if (i.classList.contains('chip-input')) { window.FlowbotChips.insert(i, expr, chipLabel); return; }
    const text = `{{ ${expr} }}`;
    const s = i.selectionStart ?? i.value.length, e = i.selectionEnd ?? i.value.length;
    i.value = i.value.slice(0, s) + text + i.value.slice(e);
    i.dispatchEvent(new Event('input', { bubbles: true }));
    i.dispatchEvent(new Event('change', { bubbles: true }));
    i.focus();
    i.setSelectionRange(s + text.length, s + text.length);
  }

  // ---- save, YAML, versions ----
  async function save() {
    await sync(true);
    // A change still on its way must be in what is saved.
    for (let i = 0; root.dataset.pending && i < 100; i++) await new Promise((r) => setTimeout(r, 50));
    if (!S.valid) { say('ed-saved', T.fix_first, true); return; }
    // An input that came out empty in a test would be empty in every run: ask once more.
    const empty = Object.entries(S.empty).filter(([id, l]) => l.length && allIds().includes(id)).map(([id, l]) => `${id}: ${l.join(', ')}`);
    if (empty.length && !confirm(T.empty_confirm.replace('{list}', empty.join('; ')))) return;
    const isNew = !S.flowId;
    const body = { yaml: S.yaml };
    if (isNew) { body.create_only = true; body.webhook_token = root.dataset.token; if (root.dataset.project) body.project = root.dataset.project; }
    try {
      let r;
      try {
        r = await api('POST', '/api/v1/flows', body);
      } catch (e) {
        // A flow with this id exists: replace it only when the user says so.
        if (!isNew || !/exists already/.test(e.message) || !confirm(T.overwrite_confirm.replace('{id}', S.doc.id))) throw e;
        r = await api('POST', '/api/v1/flows', { yaml: S.yaml });
      }
      const id = r.flow?.id || S.doc.id;
      for (const [slot, conn] of Object.entries(S.chosen)) {
        if (conn && S.doc.connections?.[slot]) await api('POST', `/api/v1/flows/${id}/connections`, { slot, connection_id: conn });
      }
      if (isNew) { location.href = `/flows/${encodeURIComponent(id)}?saved=1`; return; }
      say('ed-saved', T.saved);
      loadVersions();
    } catch (e) { say('ed-saved', e.message, true); }
  }
  // A new flow: its URL follows the id typed, and an id already taken is said at once.
  let idTimer = null;
  function newId(id) {
    if (S.flowId) return;
    const hook = $('webhook-url');
    if (hook && root.dataset.token) hook.textContent = `${root.dataset.public}/hooks/${id || '…'}/${root.dataset.token}`;
    if ($('t-hook') && hook) $('t-hook').textContent = hook.textContent;
    clearTimeout(idTimer);
    idTimer = setTimeout(async () => {
      let exists = false;
      if (id) { try { await api('GET', `/api/v1/flows/${encodeURIComponent(id)}`); exists = true; } catch { exists = false; } }
      const w = $('ed-overwrite');
      w.hidden = !exists;
      w.textContent = exists ? T.overwrite_warning : '';
    }, 300);
  }
  async function applyYaml() {
    try {
      const r = await api('POST', '/api/v1/editor/parse', { yaml: $('ed-yaml').value });
      if (!r.doc) { showProblems(r.diagnostics); return; }
      S.doc = r.doc; S.header = r.header; S.yaml = $('ed-yaml').value;
      S.selected = null;
      render(); sync(true);
    } catch (e) { showProblems([{ message: e.message }]); }
  }
  async function loadVersions() {
    if (!S.flowId) return;
    const box = $('ed-versions');
    const vs = (await api('GET', `/api/v1/flows/${S.flowId}/versions`)).sort((a, b) => a.version - b.version);
    const opts = () => vs.map((v) => el('option', { value: v.version, text: `v${v.version} · ${new Date(v.created_at).toLocaleString()} · ${v.created_by || ''}` }));
    const from = el('select', { id: 'v-from' }, ...opts());
    const to = el('select', { id: 'v-to' }, ...opts());
    if (vs.length > 1) from.value = vs[vs.length - 2].version;
    to.value = vs[vs.length - 1]?.version;
    const list = el('ul', {}, ...vs.slice().reverse().map((v) => el('li', {},
      `v${v.version} `, el('span', { class: 'muted', text: `${new Date(v.created_at).toLocaleString()} ${v.created_by || ''}` }), ' ',
      el('button', { type: 'button', 'data-restore': v.version, onclick: () => restore(v.version), text: T.restore }))));
    box.replaceChildren(list, el('div', { class: 'row' }, field(T.diff_from, from), field(T.diff_to, to),
      el('button', { type: 'button', id: 'v-diff', onclick: () => showDiff(from.value, to.value), text: T.show_diff })),
      el('pre', { id: 'v-diff-out', class: 'diff', hidden: true }));
  }
  async function showDiff(a, b) {
    const out = $('v-diff-out');
    let r;
    try { r = await api('GET', `/api/v1/flows/${S.flowId}/diff?from=${a}&to=${b}`); } catch (e) { out.hidden = false; out.textContent = e.message; return; }
    out.hidden = false;
    out.replaceChildren(...r.lines.map((l) => el('div', { class: l.op === '+' ? 'add' : l.op === '-' ? 'del' : 'same', text: `${l.op} ${l.text}` })));
  }
  async function restore(v) {
    if (!confirm(T.restore_confirm.replace('{v}', v))) return;
    try {
      await api('POST', `/api/v1/flows/${S.flowId}/versions/${v}/restore`);
      location.reload();
    } catch (e) { say('ed-saved', e.message, true); }
  }

  // ---- the page ----
  function render() {
    $('ed-id').value = S.doc.id || '';
    $('ed-name').value = S.doc.name || '';
    const active = document.activeElement?.id;
    renderTree();
    renderForm();
    placeProblems();
    $('ed-panel').hidden = !S.selected;
    if (active && $(active) && $(active) !== document.activeElement) $(active).focus();
  }
  // The trigger's card, then the steps' cards.
  function renderTree() {
    S.doc.steps = S.doc.steps || [];
    const tr = S.doc.trigger || {};
    const a = app(tr.app);
    const names = (a?.triggers || []).filter((t) => (tr.events || []).includes(t.id)).map((t) => tx(t.name));
    const sel = S.selected === 'trigger';
    const open = el('button', { type: 'button', class: 'ed-open', id: 'ed-trigger-open', 'aria-pressed': sel ? 'true' : 'false',
      onclick: () => { S.selected = 'trigger'; clearResult(); render(); loadValues(); } },
    el('span', { class: 'node-name', text: T.trigger }),
    el('span', { class: 'node-what muted', text: a ? `${tx(a.name)}${names.length ? ` · ${names.join(', ')}` : ''}` : T.trigger_empty }));
    $('ed-tree').replaceChildren(
      el('div', { class: 'node trigger' + (sel ? ' selected' : '') }, open),
      renderList(S.doc.steps, ['steps']));
  }
  async function start() {
    // A reader may not list connections: the flow is drawn without them.
    const conns0 = root.dataset.build ? api('GET', '/api/v1/connections') : Promise.resolve([]);
    const [apps, conns] = await Promise.all([api('GET', '/api/v1/apps'), conns0]);
    S.apps = apps;
    S.connections = conns;
    const r = await api('POST', '/api/v1/editor/parse', { yaml: $('ed-yaml').value });
    S.doc = r.doc || { version: 1, id: '', name: '', trigger: {}, steps: [] };
    S.header = r.header || '';
    S.yaml = $('ed-yaml').value;
    if (S.flowId) {
      try {
        const f = await api('GET', `/api/v1/flows/${S.flowId}`);
        Object.assign(S.chosen, f.bindings || {});
      } catch { /* a new flow */ }
    }
    $('ed-id').addEventListener('input', (e) => { S.doc.id = e.target.value; newId(e.target.value); sync(); });
    $('ed-name').addEventListener('input', (e) => { S.doc.name = e.target.value; sync(); });
    $('ed-panel-close').addEventListener('click', () => {
      const back = S.selected === 'trigger' ? 'ed-trigger-open' : `step-${at(S.selected)?.id}`;
      S.selected = null; render(); $(back)?.focus();
    });
    $('ed-values-search').addEventListener('input', (e) => V.filter($('ed-values'), e.target.value));
    $('ed-cat-search').addEventListener('input', (e) => renderCatalogue(e.target.value));
    const closeAdder = () => { $('ed-adder').hidden = true; (opener && document.body.contains(opener) ? opener : $('ed-add')).focus(); };
    $('ed-cat-close').addEventListener('click', closeAdder);
    $('ed-adder').addEventListener('keydown', (e) => { if (e.key === 'Escape') closeAdder(); });
    $('ed-save')?.addEventListener('click', save);
    $('ed-apply-yaml').addEventListener('click', applyYaml);
    // A new flow has an id from the start (its webhook URL and samples hang on it): the
    // server put one in the field, and what is there now — typed or cleared while the page
    // was loading — is the id. This never writes into the field a user may be typing in.
    if (!S.flowId) {
      S.doc.id = $('ed-id').value.trim();
      if ($('ed-name').value.trim()) S.doc.name = $('ed-name').value;
    }
    render();
    newId(S.doc.id);
    await sync(true);
    if (new URLSearchParams(location.search).has('saved')) {
      say('ed-saved', T.saved);
    }
    loadVersions();
    loadValues();
  }
  start().catch((e) => showProblems([{ message: e.message }]));
})();
