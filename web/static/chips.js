// Inputs that hold templates show each `{{ step.field }}` as a chip labelled with the
// step's name and the field's label; the text around the chips stays editable. The input
// still reads and writes the same template text (`value`), so the flow file does not
// change format. Typing `{{` offers the obtained values to complete with.
window.FlowbotChips = (() => {
  const { el } = window.FlowbotValues;
  const CHIP = /\{\{\s*([A-Za-z_][\w]*(?:(?:\.[A-Za-z_][\w]*)|(?:\[\d+\]))*)\s*\}\}/g;

  // The template text of an editable box: chips as `{{ expr }}`, text as it is.
  function serialize(box) {
    let out = '';
    for (const n of box.childNodes) {
      if (n.nodeType === Node.TEXT_NODE) out += n.textContent.replace(/\u00a0/g, ' ');
      else if (n.dataset?.expr) out += `{{ ${n.dataset.expr} }}`;
      else if (n.nodeName !== 'BR') out += n.textContent;
    }
    return out;
  }
  function chip(expr, labelOf) {
    const label = labelOf(expr);
    return el('span', { class: 'chip', contenteditable: 'false', 'data-expr': expr, title: `{{ ${expr} }}`, text: label });
  }
  function draw(box, text, labelOf) {
    const kids = [];
    let last = 0;
    for (const m of text.matchAll(CHIP)) {
      if (m.index > last) kids.push(document.createTextNode(text.slice(last, m.index)));
      kids.push(chip(m[1], labelOf));
      last = m.index + m[0].length;
    }
    if (last < text.length) kids.push(document.createTextNode(text.slice(last)));
    box.replaceChildren(...kids);
  }

  // The completion list under a box: values whose key or label contains what was typed
  // after `{{`.
  function completer(box, opts) {
    const list = el('ul', { class: 'complete', role: 'listbox', id: `${box.id}-complete`, hidden: true });
    let items = [], active = 0, typed = null;
    const close = () => { list.hidden = true; typed = null; box.setAttribute('aria-expanded', 'false'); box.removeAttribute('aria-activedescendant'); };
    const mark = () => list.querySelectorAll('li').forEach((li, i) => {
      li.setAttribute('aria-selected', i === active ? 'true' : 'false');
      if (i === active) box.setAttribute('aria-activedescendant', li.id);
    });
    function pick(v) {
      // Replace `{{query` before the caret with the chip.
      const sel = getSelection();
      if (!sel.rangeCount || !typed) return close();
      const r = sel.getRangeAt(0);
      const node = r.startContainer;
      if (node.nodeType === Node.TEXT_NODE) {
        const start = r.startOffset - typed.length - 2;
        const range = document.createRange();
        range.setStart(node, Math.max(0, start));
        range.setEnd(node, r.startOffset);
        range.deleteContents();
        insertAt(box, range, v.expr, opts.labelOf);
      }
      close();
    }
    function update() {
      const sel = getSelection();
      if (!sel.rangeCount) return close();
      const r = sel.getRangeAt(0);
      if (r.startContainer.nodeType !== Node.TEXT_NODE) return close();
      const before = r.startContainer.textContent.slice(0, r.startOffset);
      const m = before.match(/\{\{([\w.\u3000-\u9fff\u30a0-\u30ff]*)$/);
      if (!m) return close();
      typed = m[1];
      const q = typed.toLowerCase();
      items = opts.values().filter((v) => !q || v.expr.toLowerCase().includes(q) || (v.label || '').toLowerCase().includes(q)).slice(0, 12);
      if (!items.length) return close();
      active = 0;
      list.replaceChildren(...items.map((v, i) => {
        const li = el('li', { role: 'option', id: `${box.id}-opt-${i}` }, el('span', { text: opts.labelOf(v.expr) }), ' ', el('code', { class: 'key', text: v.expr }));
        li.addEventListener('mousedown', (e) => { e.preventDefault(); pick(v); });
        return li;
      }));
      list.hidden = false;
      box.setAttribute('aria-expanded', 'true');
      mark();
    }
    box.addEventListener('keydown', (e) => {
      if (list.hidden) return;
      if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
        e.preventDefault();
        active = (active + (e.key === 'ArrowDown' ? 1 : items.length - 1)) % items.length;
        mark();
      } else if (e.key === 'Enter' || e.key === 'Tab') {
        e.preventDefault();
        pick(items[active]);
      } else if (e.key === 'Escape') {
        e.preventDefault();
        close();
      }
    });
    box.addEventListener('input', update);
    box.addEventListener('blur', () => setTimeout(close, 150));
    return list;
  }

  // A chip at `range` (the caret), then the caret after it.
  function insertAt(box, range, expr, labelOf) {
    const c = chip(expr, labelOf);
    range.insertNode(c);
    const after = document.createRange();
    after.setStartAfter(c);
    after.collapse(true);
    const sel = getSelection();
    sel.removeAllRanges();
    sel.addRange(after);
    box.dispatchEvent(new Event('input', { bubbles: true }));
  }

  // An editable box that reads and writes template text through `value`.
  function input(id, value, onchange, opts) {
    const box = el('div', { id, class: `chip-input ${opts.class || ''}`.trim(), contenteditable: 'true', role: 'combobox',
      'aria-autocomplete': 'list', 'aria-controls': `${id}-complete`, 'aria-expanded': 'false',
      'aria-label': opts['aria-label'], spellcheck: 'false' });
    Object.defineProperty(box, 'value', {
      get: () => serialize(box),
      set: (v) => draw(box, v === undefined || v === null ? '' : (typeof v === 'string' ? v : JSON.stringify(v)), opts.labelOf),
    });
    box.value = value;
    // Where a value from the picker goes: the caret as it was when the box lost focus.
    const keep = () => {
      const sel = getSelection();
      if (sel.rangeCount && box.contains(sel.getRangeAt(0).startContainer)) box.savedRange = sel.getRangeAt(0).cloneRange();
    };
    box.addEventListener('keyup', keep);
    box.addEventListener('mouseup', keep);
    box.addEventListener('input', () => { keep(); onchange(serialize(box)); });
    box.addEventListener('keydown', (e) => { if (e.key === 'Enter' && !e.defaultPrevented) e.preventDefault(); });
    // Typed templates become chips once the box is left.
    box.addEventListener('blur', () => {
      keep();
      const v = serialize(box);
      const typedTemplate = [...box.childNodes].some((n) => n.nodeType === Node.TEXT_NODE && /\{\{[^}]*\}\}/.test(n.textContent));
      if (typedTemplate) draw(box, v, opts.labelOf);
    });
    // Pasted text comes in as text, never as markup.
    box.addEventListener('paste', (e) => {
      e.preventDefault();
      document.execCommand('insertText', false, e.clipboardData.getData('text/plain').replace(/\s*\n\s*/g, ' '));
    });
    const list = completer(box, opts);
    return el('div', { class: 'chip-wrap' }, box, list);
  }

  // Put `{{ expr }}` where the box's caret was (or at its end).
  function insert(box, expr, labelOf) {
    box.focus();
    let range = box.savedRange;
    if (!range || !box.contains(range.startContainer)) {
      range = document.createRange();
      range.selectNodeContents(box);
      range.collapse(false);
    }
    insertAt(box, range, expr, labelOf);
  }

  return { input, insert, serialize };
})();
