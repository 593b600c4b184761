// Tables: the new-table form and one table's grid. Every read and write goes through
// /api/v1/tables… (the same rules as any client); this script only draws and asks.
(() => {
  const T = JSON.parse(document.getElementById('table-text')?.textContent || '{}');
  const ja = document.documentElement.lang === 'ja';
  const TYPES = ['text', 'long_text', 'number', 'date', 'datetime', 'checkbox', 'select', 'email', 'url', 'file', 'json'];
  const OPS = ['equals', 'not_equals', 'contains', 'greater_than', 'less_than', 'is_empty', 'is_not_empty'];
  const fmt = (s, vars) => String(s).replace(/\{(\w+)\}/g, (_, k) => (vars[k] ?? ''));

  function el(tag, attrs = {}, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'text') e.textContent = v;
      else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else if (k === 'value') e.value = v;
      else if (k === 'checked') e.checked = !!v;
      else e.setAttribute(k, v === true ? '' : v);
    }
    for (const k of kids.flat()) if (k !== null && k !== undefined) e.append(k);
    return e;
  }

  // The store's messages, in Japanese on a Japanese page.
  const JA = [
    [/^`(.*)` is not a number$/, '「$1」は数値ではありません'],
    [/^`(.*)` is not a date \(YYYY-MM-DD\)$/, '「$1」は日付（YYYY-MM-DD）ではありません'],
    [/^`(.*)` is not a date and time.*$/, '「$1」は日時（例: 2026-04-01 09:30）ではありません'],
    [/^`(.*)` is not one of (.*)$/, '「$1」は選択肢（$2）にありません'],
    [/^`(.*)` is not an email address$/, '「$1」はメールアドレスではありません'],
    [/^`(.*)` is not an http\(s\) URL$/, '「$1」は http(s) の URL ではありません'],
    [/^`(.*)` is not true or false$/, '「$1」は はい/いいえ ではありません'],
    [/^a value is required$/, '値は必須です'],
    [/^at most (\d+) characters$/, '$1 文字以内で入力してください'],
    [/^row (\S+) has this value already: `(.*)` is unique$/, 'レコード $1 に同じ値があります（「$2」は一意です）'],
    [/^the table has no column `(.*)`$/, 'テーブルに列「$1」はありません'],
    [/^the table has no row (.*)$/, 'テーブルにレコード $1 はありません'],
    [/^not JSON: (.*)$/, 'JSON ではありません: $1'],
    [/^a select column needs its choices$/, '選択肢の列には選択肢が必要です'],
    [/^two columns have this key$/, '同じキーの列が2つあります'],
    [/^a column key starts with a letter.*$/, '列のキーは英字で始め、英数字と _ だけを使ってください（64 文字以内）'],
    [/^a table's name has 1 to 100 characters$/, 'テーブル名は 1〜100 文字です'],
    [/^a table named `(.*)` exists already in this project$/, 'このプロジェクトには「$1」という名前のテーブルがすでにあります'],
    [/^a table needs at least one column$/, '列を1つ以上追加してください'],
  ];
  const tr = (m) => {
    if (!ja) return m;
    for (const [re, to] of JA) if (re.test(m)) return m.replace(re, to);
    return m;
  };

  async function call(method, path, body, raw) {
    const opts = { method, headers: { 'x-csrf-token': document.querySelector('meta[name="csrf-token"]')?.content || '' } };
    if (raw !== undefined) { opts.headers['content-type'] = 'text/csv'; opts.body = raw; }
    else if (body !== undefined) { opts.headers['content-type'] = 'application/json'; opts.body = JSON.stringify(body); }
    const r = await fetch(path, opts);
    const text = await r.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch { data = text; }
    if (!r.ok) {
      const err = new Error(tr((data && data.error && data.error.message) || r.statusText));
      err.rows = (data && data.error && data.error.rows) || [];
      throw err;
    }
    return data;
  }
  function say(box, msg, bad) {
    box.textContent = msg;
    box.className = bad ? 'error' : 'notice';
  }
  // Problems as a list: by line in a file, or by column in a row.
  function problemList(rows, byLine) {
    return el('ul', { class: 'error problems' }, rows.map((p) => el('li', {
      text: fmt(byLine ? T.problem_line : T.problem_row, { line: p.index, column: p.column || '—', message: tr(p.message) }),
    })));
  }

  // ---- the columns editor (new table, and a table's columns) ----
  function columnsEditor(box, columns, existing) {
    const rows = columns.map((c) => ({ ...c, choices: (c.choices || []).join(', '), old: existing }));
    const draw = () => {
      const table = el('table', { class: 'columns-edit' },
        el('thead', {}, el('tr', {}, [T.column_key, T.column_label, T.column_type, T.column_required, T.column_unique, T.column_choices, ''].map((h) => el('th', { scope: 'col', text: h })))),
        el('tbody', {}, rows.map((c, i) => el('tr', {},
          el('td', {}, el('input', { id: `col-key-${i}`, 'aria-label': `${T.column_key} ${i + 1}`, value: c.key || '', readonly: c.old ? true : undefined, oninput: (e) => { c.key = e.target.value; onkeys(); } })),
          el('td', {}, el('input', { id: `col-label-${i}`, 'aria-label': `${T.column_label} ${i + 1}`, value: c.label || '', oninput: (e) => { c.label = e.target.value; } })),
          el('td', {}, el('select', { id: `col-type-${i}`, 'aria-label': `${T.column_type} ${i + 1}`, onchange: (e) => { c.type = e.target.value; } },
            TYPES.map((t) => el('option', { value: t, text: T['type_' + t], selected: (c.type || 'text') === t ? true : undefined })))),
          el('td', {}, el('input', { type: 'checkbox', id: `col-required-${i}`, 'aria-label': `${T.column_required} ${i + 1}`, checked: c.required, onchange: (e) => { c.required = e.target.checked; } })),
          el('td', {}, el('input', { type: 'checkbox', id: `col-unique-${i}`, 'aria-label': `${T.column_unique} ${i + 1}`, checked: c.unique, onchange: (e) => { c.unique = e.target.checked; } })),
          el('td', {}, el('input', { id: `col-choices-${i}`, 'aria-label': `${T.column_choices} ${i + 1}`, value: c.choices || '', oninput: (e) => { c.choices = e.target.value; } })),
          el('td', {}, el('button', { type: 'button', class: 'small', 'aria-label': fmt(T.column_remove, { col: c.key || i + 1 }), text: '✕', onclick: () => { rows.splice(i, 1); draw(); onkeys(); } })),
        ))));
      box.replaceChildren(el('div', { class: 'grid-wrap' }, table), el('button', { type: 'button', id: 'col-add', text: `+ ${T.column_add}`, onclick: () => { rows.push({ key: '', type: 'text' }); draw(); document.getElementById(`col-key-${rows.length - 1}`)?.focus(); } }));
    };
    let onkeys = () => {};
    draw();
    return {
      columns: () => rows.map((c) => {
        const out = { key: c.key.trim(), type: c.type || 'text', required: !!c.required, unique: !!c.unique };
        if (c.label && c.label.trim()) out.label = c.label.trim();
        const choices = String(c.choices || '').split(/[,、]/).map((x) => x.trim()).filter(Boolean);
        if (choices.length) out.choices = choices;
        return out;
      }),
      onKeys: (f) => { onkeys = f; },
    };
  }

  // ---- the list page: a new table ----
  const nt = document.getElementById('new-table');
  if (nt) {
    const ed = columnsEditor(document.getElementById('nt-columns'), [{ key: '', type: 'text' }], false);
    const pk = document.getElementById('nt-pk');
    const keys = () => {
      const chosen = pk.value;
      pk.replaceChildren(el('option', { value: '', text: T.primary_auto }),
        ...ed.columns().filter((c) => c.key).map((c) => el('option', { value: c.key, text: c.key, selected: c.key === chosen ? true : undefined })));
    };
    ed.onKeys(keys);
    keys();
    document.getElementById('nt-create').addEventListener('click', async () => {
      const box = document.getElementById('nt-message');
      try {
        const t = await call('POST', '/api/v1/tables', {
          name: document.getElementById('nt-name').value, project: nt.dataset.project || null,
          columns: ed.columns(), primary_key: pk.value || null,
        });
        say(box, T.table_made);
        location.href = `/tables/${t.id}`;
      } catch (e) {
        say(box, e.message, true);
        if (e.rows.length) box.append(problemList(e.rows, false));
      }
    });
  }

  // ---- the grid ----
  const app = document.getElementById('grid-app');
  if (!app) return;
  const setup = JSON.parse(document.getElementById('table-setup').textContent);
  let table = setup.table;
  const base = `/api/v1/tables/${encodeURIComponent(table.id)}`;
  const S = { sort: '', desc: false, filters: [], q: '', after: null, before: null, limit: 100, page: null, selected: new Set(), editing: null };
  const cols = () => table.schema.columns;
  const heading = (c) => c.label || c.key;

  function shown(c, v) {
    if (v === null || v === undefined) return '';
    if (c.type === 'checkbox') return v ? '✓' : '';
    if (c.type === 'datetime') { const d = new Date(v); return isNaN(d) ? String(v) : d.toLocaleString(ja ? 'ja-JP' : 'en-GB'); }
    if (c.type === 'file') return v.name || '';
    if (typeof v === 'object') return JSON.stringify(v);
    return String(v);
  }
  // An input for a column's value; `read()` gives what to send.
  function control(c, v, id) {
    const label = heading(c);
    let input;
    if (c.type === 'checkbox') input = el('input', { type: 'checkbox', id, 'aria-label': label, checked: !!v });
    else if (c.type === 'select') input = el('select', { id, 'aria-label': label }, el('option', { value: '', text: '' }), (c.choices || []).map((x) => el('option', { value: x, text: x, selected: x === v ? true : undefined })));
    else if (c.type === 'long_text' || c.type === 'json') input = el('textarea', { id, 'aria-label': label, rows: 2, value: v === null || v === undefined ? '' : (typeof v === 'string' ? v : JSON.stringify(v)) });
    else if (c.type === 'file') input = el('input', { id, 'aria-label': label, value: shown(c, v), readonly: true });
    else {
      const type = { number: 'text', date: 'date', email: 'email', url: 'url' }[c.type] || 'text';
      input = el('input', { type, id, 'aria-label': label, value: v === null || v === undefined ? '' : String(v), inputmode: c.type === 'number' ? 'decimal' : undefined });
      if (c.type === 'datetime') input.placeholder = '2026-04-01 09:30';
    }
    return { input, read: () => (c.type === 'checkbox' ? input.checked : input.value) };
  }

  const msg = el('div', { id: 'grid-message', role: 'status', 'aria-live': 'polite' });
  const problems = el('div', { id: 'grid-problems' });
  const search = el('input', { id: 'grid-search', type: 'search', 'aria-label': T.search_label, placeholder: T.search_label });
  const fCol = el('select', { id: 'filter-column', 'aria-label': T.filter_column });
  const fOp = el('select', { id: 'filter-op', 'aria-label': T.filter_op }, OPS.map((o) => el('option', { value: o, text: T['op_' + o] })));
  const fVal = el('input', { id: 'filter-value', 'aria-label': T.filter_value });
  const chips = el('ul', { id: 'filter-list', class: 'chips' });
  const grid = el('div', { id: 'grid-wrap', class: 'grid-wrap' });
  const pager = el('div', { class: 'row', id: 'grid-pager' });
  const addBox = el('div', { id: 'add-row' });

  function fillColumns() {
    fCol.replaceChildren(...cols().map((c) => el('option', { value: c.key, text: heading(c) })));
  }

  function query() {
    const p = new URLSearchParams();
    if (S.sort) p.set('sort', S.sort);
    if (S.desc) p.set('order', 'desc');
    if (S.q) p.set('q', S.q);
    if (S.filters.length) p.set('filter', JSON.stringify(S.filters));
    if (S.after) p.set('after', S.after);
    if (S.before) p.set('before', S.before);
    p.set('limit', S.limit);
    return p.toString();
  }
  async function load() {
    app.dataset.loading = '1';
    try {
      const page = await call('GET', `${base}/rows?${query()}`);
      // Only a first page is counted: the pages after it keep its count.
      if (page.total === null || page.total === undefined) {
        page.total = S.page ? S.page.total : 0;
        page.total_capped = S.page ? S.page.total_capped : false;
      }
      S.page = page;
      S.selected.clear();
      draw();
    } catch (e) {
      say(msg, e.message, true);
    } finally {
      delete app.dataset.loading;
    }
  }
  const reset = () => { S.after = null; S.before = null; };

  function drawChips() {
    chips.replaceChildren(...S.filters.map((f, i) => {
      const c = cols().find((x) => x.key === f.column);
      return el('li', { class: 'chip' }, `${c ? heading(c) : f.column} ${T['op_' + f.op]} ${f.value ?? ''} `,
        el('button', { type: 'button', class: 'small', 'aria-label': `${T.filter_remove}: ${f.column}`, text: '✕', onclick: () => { S.filters.splice(i, 1); reset(); drawChips(); load(); } }));
    }));
  }

  function draw() {
    const page = S.page;
    const head = el('tr', {},
      el('th', { scope: 'col' }, el('input', { type: 'checkbox', id: 'select-all', 'aria-label': T.select_all, onchange: (e) => {
        page.rows.forEach((r) => (e.target.checked ? S.selected.add(r._id) : S.selected.delete(r._id)));
        grid.querySelectorAll('input.select-row').forEach((b) => { b.checked = e.target.checked; });
      } })),
      el('th', { scope: 'col', text: T.row_id }),
      cols().map((c) => {
        const sorted = S.sort === c.key;
        return el('th', { scope: 'col', 'aria-sort': sorted ? (S.desc ? 'descending' : 'ascending') : undefined },
          el('button', { type: 'button', class: 'sort', id: `sort-${c.key}`, 'aria-label': fmt(T.sort_by, { col: heading(c) }), onclick: () => {
            if (S.sort === c.key) S.desc = !S.desc; else { S.sort = c.key; S.desc = false; }
            reset(); load();
          } }, heading(c), sorted ? (S.desc ? ' ▼' : ' ▲') : ''));
      }),
      setup.run ? el('th', { scope: 'col', text: T.actions }) : null);
    const body = page.rows.map((r) => {
      const editing = S.editing === r._id;
      const ctrls = {};
      const cells = cols().map((c) => {
        if (!editing) return el('td', { 'data-col': c.key, text: shown(c, r[c.key]) });
        ctrls[c.key] = control(c, r[c.key], `edit-${c.key}`);
        return el('td', { 'data-col': c.key }, ctrls[c.key].input);
      });
      const actions = !setup.run ? null : el('td', { class: 'row-actions' }, editing
        ? [el('button', { type: 'button', class: 'primary small', id: 'edit-save', text: T.save, onclick: async () => {
          const values = {};
          for (const c of cols()) {
            if (c.type === 'file') continue;
            const v = ctrls[c.key].read();
            const before = r[c.key] === null || r[c.key] === undefined ? '' : r[c.key];
            if (c.type === 'checkbox' ? v !== !!r[c.key] : String(v) !== (typeof before === 'object' ? JSON.stringify(before) : String(before))) values[c.key] = v;
          }
          try {
            await call('PATCH', `${base}/rows/${encodeURIComponent(r._id)}`, { values });
            S.editing = null;
            problems.replaceChildren();
            say(msg, T.saved);
            await load();
          } catch (e) {
            say(msg, e.message, true);
            problems.replaceChildren(problemList(e.rows, false));
          }
        } }),
        el('button', { type: 'button', class: 'small', text: T.cancel, onclick: () => { S.editing = null; problems.replaceChildren(); draw(); } })]
        : [el('button', { type: 'button', class: 'small', 'data-edit': r._id, text: T.edit, 'aria-label': `${T.edit} ${r._id}`, onclick: () => { S.editing = r._id; draw(); grid.querySelector('td input, td select, td textarea')?.focus(); } }),
          el('button', { type: 'button', class: 'small', 'data-delete': r._id, text: T.delete, 'aria-label': `${T.delete} ${r._id}`, onclick: async () => {
            if (!confirm(T.delete_confirm)) return;
            try { await call('DELETE', `${base}/rows/${encodeURIComponent(r._id)}`); say(msg, T.deleted); await load(); } catch (e) { say(msg, e.message, true); }
          } })]);
      return el('tr', { 'data-row': r._id },
        el('td', {}, el('input', { type: 'checkbox', class: 'select-row', 'aria-label': fmt(T.select_row, { id: r._id }), checked: S.selected.has(r._id), onchange: (e) => (e.target.checked ? S.selected.add(r._id) : S.selected.delete(r._id)) })),
        el('td', { text: r._id }), cells, actions);
    });
    grid.replaceChildren(el('table', { id: 'grid' }, el('thead', {}, head), el('tbody', {}, body)),
      page.rows.length ? '' : el('p', { class: 'muted', id: 'grid-empty', text: T.no_rows }));
    const total = fmt(page.total_capped ? T.total_capped : T.total, { n: page.total.toLocaleString() });
    pager.replaceChildren(
      el('button', { type: 'button', id: 'page-prev', text: T.prev, disabled: page.prev ? undefined : true, onclick: () => { S.before = page.prev; S.after = null; load(); } }),
      el('button', { type: 'button', id: 'page-next', text: T.next, disabled: page.next ? undefined : true, onclick: () => { S.after = page.next; S.before = null; load(); } }),
      el('span', { id: 'grid-total', class: 'muted', text: total }),
      el('label', { for: 'per-page', text: T.per_page }),
      el('select', { id: 'per-page', onchange: (e) => { S.limit = Number(e.target.value); reset(); load(); } }, [50, 100, 500].map((n) => el('option', { value: n, text: n, selected: n === S.limit ? true : undefined }))));
  }

  function drawAdd() {
    if (!setup.run) return;
    const ctrls = {};
    const fields = cols().filter((c) => c.type !== 'file').map((c) => {
      ctrls[c.key] = control(c, null, `add-${c.key}`);
      return el('p', { class: 'field' }, el('label', { for: `add-${c.key}`, text: heading(c) + (c.required || c.key === table.schema.primary_key ? ' *' : '') }), ctrls[c.key].input);
    });
    addBox.replaceChildren(el('details', { id: 'add-panel' }, el('summary', { text: T.add_row }), el('div', { class: 'add-fields' }, fields),
      el('button', { type: 'button', class: 'primary', id: 'add-save', text: T.add_row, onclick: async () => {
        const values = {};
        for (const c of cols()) if (ctrls[c.key]) { const v = ctrls[c.key].read(); if (v !== '' && v !== false) values[c.key] = v; }
        try {
          await call('POST', `${base}/rows`, { values });
          problems.replaceChildren();
          say(msg, T.added);
          drawAdd();
          document.getElementById('add-panel').open = true;
          await load();
        } catch (e) {
          say(msg, e.message, true);
          problems.replaceChildren(problemList(e.rows, false));
        }
      } })));
  }

  // ---- run on selected rows ----
  function runBox() {
    if (!setup.run) return null;
    if (!setup.flows.length) return el('p', { class: 'muted', id: 'run-none', text: T.run_no_flows });
    const pick = el('select', { id: 'run-flow' }, setup.flows.map((f) => el('option', { value: f.id, text: f.name })));
    return el('div', { class: 'row' }, el('label', { for: 'run-flow', text: T.run_flow }), pick,
      el('button', { type: 'button', id: 'run-selected', text: T.run_selected, onclick: async () => {
        if (!S.selected.size) { say(msg, T.run_none_selected, true); return; }
        try {
          const r = await call('POST', `${base}/run`, { flow_id: pick.value, rows: [...S.selected] });
          say(msg, fmt(T.run_started, { n: r.queued }));
        } catch (e) { say(msg, e.message, true); }
      } }));
  }

  // ---- CSV import ----
  function importBox() {
    if (!setup.run) return null;
    const file = el('input', { type: 'file', id: 'csv-file', accept: '.csv,text/csv' });
    const enc = el('select', { id: 'csv-encoding' }, [['auto', T.encoding_auto], ['utf-8', 'UTF-8'], ['shift_jis', 'Shift_JIS']].map(([v, t]) => el('option', { value: v, text: t })));
    const out = el('div', { id: 'csv-result', role: 'status', 'aria-live': 'polite' });
    let mapping = null;
    const send = async (dry) => {
      if (!file.files.length) { say(out, T.import_choose, true); return null; }
      const p = new URLSearchParams({ encoding: enc.value, dry_run: dry ? 'true' : 'false' });
      if (mapping) p.set('mapping', JSON.stringify(mapping));
      return call('POST', `${base}/import?${p}`, undefined, await file.files[0].arrayBuffer());
    };
    const showPreview = (a) => {
      mapping = a.mapping;
      const maps = a.headers.map((h, i) => el('p', { class: 'row' }, el('label', { for: `map-${i}`, text: h }),
        el('select', { id: `map-${i}`, onchange: (e) => { mapping[h] = e.target.value; } }, el('option', { value: '', text: T.import_skip }),
          cols().map((c) => el('option', { value: c.key, text: heading(c), selected: a.mapping[h] === c.key ? true : undefined })))));
      const used = cols().filter((c) => Object.values(a.mapping).includes(c.key));
      const preview = el('table', { id: 'csv-preview' }, el('thead', {}, el('tr', {}, used.map((c) => el('th', { scope: 'col', text: heading(c) })))),
        el('tbody', {}, a.preview.map((r) => el('tr', {}, used.map((c) => el('td', { text: shown(c, r[c.key]) }))))));
      out.replaceChildren(el('p', { text: fmt(T.import_preview_info, { n: a.count, enc: a.encoding }) }),
        el('fieldset', {}, el('legend', { text: T.import_mapping }), maps), preview,
        a.problems.length ? el('div', {}, el('p', { class: 'error', text: T.import_refused }), problemList(a.problems, true)) : '');
    };
    const refused = (e) => {
      out.replaceChildren(el('p', { class: 'error', id: 'csv-refused', text: e.rows.length ? T.import_refused : e.message }), e.rows.length ? problemList(e.rows, true) : '');
    };
    file.addEventListener('change', () => { mapping = null; out.replaceChildren(); });
    enc.addEventListener('change', () => { out.replaceChildren(); });
    return el('details', { id: 'import-panel' }, el('summary', { text: T.import }),
      el('p', { class: 'row' }, el('label', { for: 'csv-file', text: T.import_file }), file, el('label', { for: 'csv-encoding', text: T.encoding }), enc),
      el('p', { class: 'row' },
        el('button', { type: 'button', id: 'csv-preview-go', text: T.preview, onclick: async () => { try { const a = await send(true); if (a) showPreview(a); } catch (e) { refused(e); } } }),
        el('button', { type: 'button', class: 'primary', id: 'csv-import', text: T.import_go, onclick: async () => {
          try {
            const a = await send(false);
            if (!a) return;
            out.replaceChildren(el('p', { class: 'notice', id: 'csv-done', text: fmt(T.import_done, { n: a.written, runs: a.runs }) }));
            mapping = null;
            reset();
            await load();
          } catch (e) { refused(e); }
        } })),
      out);
  }

  // ---- columns ----
  function columnsBox() {
    if (!setup.build) return null;
    const box = el('div', {});
    const ed = columnsEditor(box, cols(), true);
    const out = el('div', { id: 'columns-result', role: 'status', 'aria-live': 'polite' });
    return el('details', { id: 'columns-panel' }, el('summary', { text: T.columns }), box,
      el('button', { type: 'button', class: 'primary', id: 'columns-save', text: T.columns_save, onclick: async () => {
        try {
          table = await call('PATCH', base, { columns: ed.columns() });
          say(out, T.columns_saved);
          fillColumns();
          drawAdd();
          await load();
        } catch (e) {
          say(out, e.message, true);
          if (e.rows.length) out.append(problemList(e.rows, false));
        }
      } }), out);
  }

  search.addEventListener('keydown', (e) => { if (e.key === 'Enter') { S.q = search.value.trim(); reset(); load(); } });
  fillColumns();
  app.replaceChildren(
    el('div', { class: 'row toolbar' },
      search, el('button', { type: 'button', id: 'grid-search-go', text: T.search, onclick: () => { S.q = search.value.trim(); reset(); load(); } }),
      el('a', { class: 'button', id: 'export', href: `${base}/export`, download: '', text: T.export })),
    el('fieldset', { class: 'row', id: 'filters' }, el('legend', { text: T.filter }), fCol, fOp, fVal,
      el('button', { type: 'button', id: 'filter-add', text: T.filter_add, onclick: () => {
        S.filters.push({ column: fCol.value, op: fOp.value, value: fVal.value });
        fVal.value = '';
        reset(); drawChips(); load();
      } }), chips),
    runBox() || '', msg, problems, grid, pager, addBox, importBox() || '', columnsBox() || '');
  drawAdd();
  load();
})();
