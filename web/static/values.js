// Obtained values, shown to people: a step's result as a labelled table (nested values
// fold, `raw` answers start folded, each value can be copied as it is or as the reference a
// later step would use), and the picker of the values a step may use, grouped by step with
// the nearest step first, folding, and a search over labels, keys and samples.
window.FlowbotValues = (() => {
  const el = (tag, attrs = {}, ...kids) => {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'text') e.textContent = v;
      else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? '' : v);
    }
    for (const k of kids.flat()) if (k !== null && k !== undefined) e.append(k);
    return e;
  };
  const text = (v) => (typeof v === 'string' ? v : JSON.stringify(v));
  // Values this long, or answers kept whole (`raw`), start folded.
  const LONG = 160;
  const isLong = (key, v) => key === 'raw' || text(v).length > LONG;
  const copy = async (btn, s, done) => {
    try {
      await navigator.clipboard.writeText(s);
      btn.textContent = done;
    } catch { btn.textContent = '✕'; }
  };

  // `value` as rows of key / label / value; `base` is the reference of the value itself
  // (`customer`, `customer.address`), so a row's reference is `base.key`.
  function table(value, T, labels = {}, base = '', depth = 0) {
    if (value === null || typeof value !== 'object') return el('span', { class: 'wrap', text: text(value ?? '') });
    const entries = Array.isArray(value) ? value.map((v, i) => [String(i), v]) : Object.entries(value);
    if (!entries.length) return el('span', { class: 'muted', text: Array.isArray(value) ? '[]' : '{}' });
    const t = el('table', { class: 'values' },
      el('thead', {}, el('tr', {}, el('th', { scope: 'col', text: T.col_field }), el('th', { scope: 'col', text: T.value }))));
    const body = el('tbody');
    for (const [k, v] of entries) {
      const ref = Array.isArray(value) ? `${base}[${k}]` : base ? `${base}.${k}` : k;
      const label = depth === 0 ? labels[k] : undefined;
      const head = el('th', { scope: 'row' }, label ? `${label} ` : null, el('span', { class: label ? 'muted key' : 'key', text: k }));
      const cell = el('td');
      if (v !== null && typeof v === 'object') {
        const n = Array.isArray(v) ? v.length : Object.keys(v).length;
        const d = el('details', { open: k !== 'raw' && depth < 2 ? true : undefined },
          el('summary', { text: Array.isArray(v) ? T.n_items.replace('{n}', n) : `{ ${Object.keys(v).slice(0, 4).join(', ')}${n > 4 ? ', …' : ''} }` }));
        // Nested tables are drawn when opened: a big `raw` answer costs nothing folded.
        const fill = () => { if (d.children.length === 1) d.append(depth < 4 ? table(v, T, {}, ref, depth + 1) : el('pre', { text: JSON.stringify(v, null, 2) })); };
        if (d.open) fill();
        d.addEventListener('toggle', fill);
        cell.append(d);
      } else if (isLong(k, v)) {
        cell.append(el('details', {}, el('summary', { text: `${text(v).slice(0, 60)}…` }), el('span', { class: 'wrap', text: text(v) })));
      } else {
        cell.append(el('span', { class: 'wrap', text: text(v ?? '') }));
      }
      if (base) {
        const tools = el('span', { class: 'copy-tools' },
          el('button', { type: 'button', class: 'small', 'aria-label': `${T.copy_value}: ${ref}`, onclick: (e) => copy(e.currentTarget, text(v ?? ''), T.copied), text: T.copy_value }),
          el('button', { type: 'button', class: 'small', 'aria-label': `${T.copy_chip}: ${ref}`, onclick: (e) => copy(e.currentTarget, `{{ ${ref} }}`, T.copied), text: T.copy_chip }));
        cell.append(tools);
      }
      body.append(el('tr', {}, head, cell));
    }
    t.append(body);
    return t;
  }

  // A result with its JSON one click away.
  function result(title, value, T, labels, base) {
    return el('section', { class: 'result' },
      el('h4', { text: title }),
      table(value, T, labels, base),
      el('details', { class: 'json' }, el('summary', { text: T.show_json }), el('pre', { text: JSON.stringify(value, null, 2) })));
  }

  // The picker. `groups` come in flow order (the trigger first); the nearest step is the
  // one a person most often wants, so it comes first.
  function picker(groups, T, onPick) {
    const box = el('div', { class: 'picker' });
    [...groups].reverse().forEach((g) => {
      const d = el('details', { class: 'group', open: true, 'data-group': g.id },
        el('summary', {}, el('span', { text: g.label }), ' ', el('span', { class: 'muted key', text: `${g.id} · ${g.values.length}` })));
      if (!g.values.length) d.append(el('p', { class: 'muted', text: T.no_values }));
      const long = el('details', { class: 'long' }, el('summary', { text: T.long_values }));
      for (const v of g.values) {
        const sample = v.sample === undefined || v.sample === null ? '' : text(v.sample);
        const last = v.expr.split('.').pop();
        const b = el('button', { type: 'button', class: 'val', 'data-insert': v.expr, onclick: () => onPick(v),
          'data-hay': `${v.expr} ${v.label || ''} ${sample.slice(0, 400)}`.toLowerCase() },
        el('span', { class: 'val-label', text: v.label || last }), ' ', el('code', { class: 'key', text: v.expr }),
        sample ? el('span', { class: 'sample', text: ` = ${sample.slice(0, 60)}${sample.length > 60 ? '…' : ''}` }) : null);
        (isLong(last, v.sample ?? '') ? long : d).append(b);
      }
      if (long.children.length > 1) d.append(long);
      box.append(d);
    });
    return box;
  }

  // Show only what matches every word; groups and folds with a match open.
  function filter(box, q) {
    const words = q.toLowerCase().split(/\s+/).filter(Boolean);
    box.querySelectorAll('details.group').forEach((g) => {
      let any = false;
      g.querySelectorAll('button.val').forEach((b) => {
        const ok = words.every((w) => b.dataset.hay.includes(w));
        b.hidden = !ok;
        any ||= ok;
      });
      g.hidden = !any && words.length > 0;
      if (words.length && any) {
        g.open = true;
        const long = g.querySelector('details.long');
        if (long) long.open = [...long.querySelectorAll('button.val')].some((b) => !b.hidden);
      }
    });
  }

  return { el, table, result, picker, filter };
})();
