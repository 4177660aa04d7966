/* graphsurgeon view: draws the graph data embedded in the page with dagre; no network, no server. */
(function () {
  'use strict';
  const DATA = JSON.parse(document.getElementById('gs-data').textContent);
  const BUDGET = 250;   // items laid out at once when the page opens; larger scopes start collapsed
  const CHUNK = 60;     // a scope with more direct nodes than this is split into parts, in graph order
  const GROUP_ALL = 250; // graphs with more nodes than this (and no scopes) are split into parts too
  const $ = (id) => document.getElementById(id);
  const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
  const CATEGORY = {
    conv: /^(Conv|ConvTranspose|Gemm|MatMul|MatMulInteger|QLinearConv|QLinearMatMul|Einsum|Attention)$/,
    act: /^(Relu|LeakyRelu|PRelu|Sigmoid|Tanh|Softmax|LogSoftmax|Gelu|Elu|Selu|HardSigmoid|HardSwish|Softplus|Mish|Clip)$/,
    norm: /(Norm|Dropout|Pool)/,
    shape: /^(Reshape|Transpose|Shape|Gather|GatherElements|Slice|Concat|Split|Squeeze|Unsqueeze|Flatten|Expand|Cast|Identity|Constant|ConstantOfShape|Resize|Pad|Tile)$/,
    math: /^(Add|Sub|Mul|Div|Pow|Sqrt|Exp|Log|Neg|Abs|ReduceMean|ReduceSum|ReduceMax|Max|Min|Erf|Where|Equal|Less|Greater|And|Or|Not)$/,
    ctrl: /^(If|Loop|Scan)$/,
  };
  const state = { stack: [0], expanded: new Map(), selected: null, hits: new Set(), view: { x: 0, y: 0, k: 1 } };
  const api = { ready: false, firstPaint: null, lastRenderMs: null, renders: 0 };
  window.gsView = api;

  // -- scopes: a tree of groups per graph ---------------------------------------------------------------------
  function prepare(g) {
    if (g.root) return g;
    const root = { path: '', name: '', parent: null, kids: [], groups: [], size: 0, flags: '' };
    const byPath = new Map([['', root]]);
    const ensure = (path) => {
      let grp = byPath.get(path);
      if (grp) return grp;
      const cut = path.lastIndexOf('/');
      const parent = ensure(cut < 0 ? '' : path.slice(0, cut));
      grp = { path, name: path.slice(cut + 1), parent, kids: [], groups: [], size: 0, flags: '' };
      byPath.set(path, grp); parent.groups.push(grp); parent.kids.push(grp);
      return grp;
    };
    const scoped = g.nodes.some((n) => n.g);
    g.owner = new Array(g.nodes.length);
    g.nodes.forEach((n, i) => {
      const grp = n.k === 'n' && n.g ? ensure(n.g) : root;
      g.owner[i] = grp; grp.kids.push(i);
    });
    for (const grp of Array.from(byPath.values())) {
      const direct = grp.kids.filter((k) => typeof k === 'number' && g.nodes[k].k === 'n');
      const limit = grp === root && !scoped && direct.length <= GROUP_ALL ? Infinity : CHUNK;
      if (direct.length <= limit) continue;
      const keep = grp.kids.filter((k) => typeof k !== 'number' || g.nodes[k].k !== 'n');
      grp.kids = keep;
      for (let start = 0; start < direct.length; start += CHUNK) {
        const part = direct.slice(start, start + CHUNK);
        const path = (grp.path ? grp.path + '/' : '') + `#${start / CHUNK + 1}`;
        const sub = { path, name: `nodes ${start + 1}–${start + part.length}`, parent: grp, kids: part, groups: [], size: 0, flags: '' };
        byPath.set(path, sub); grp.groups.push(sub); grp.kids.push(sub);
        for (const i of part) g.owner[i] = sub;
      }
    }
    g.nodes.forEach((n, i) => {
      for (let grp = g.owner[i]; grp; grp = grp.parent) {
        grp.size += 1;
        if (n.s && !grp.flags.includes(n.s)) grp.flags += n.s;
      }
    });
    g.root = root; g.byPath = byPath;
    return g;
  }

  function expandedOf(g) {
    let set = state.expanded.get(g.id);
    if (set) return set;
    set = new Set(['']);
    state.expanded.set(g.id, set);
    let count = g.root.kids.length;
    const changed = g.nodes.map((n, i) => (n.s ? i : -1)).filter((i) => i >= 0);
    for (const i of changed) {  // in a diff, open the scopes holding changes first
      const chain = [];
      for (let grp = g.owner[i]; grp && !set.has(grp.path); grp = grp.parent) chain.unshift(grp);
      for (const grp of chain) {
        if (count + grp.kids.length - 1 > BUDGET * 2) break;
        set.add(grp.path); count += grp.kids.length - 1;
      }
    }
    const queue = g.root.groups.slice();
    while (queue.length) {
      const grp = queue.shift();
      if (set.has(grp.path)) { queue.push(...grp.groups); continue; }
      if (count + grp.kids.length - 1 <= BUDGET) { set.add(grp.path); count += grp.kids.length - 1; queue.push(...grp.groups); }
    }
    return set;
  }

  // -- what is visible: nodes and collapsed groups, each held by an open group (the root included) -----------------
  function visible(g) {
    const open = expandedOf(g);
    const rep = new Array(g.nodes.length);
    const items = new Map();
    for (let i = 0; i < g.nodes.length; i++) {
      let top = null;
      for (let grp = g.owner[i]; grp && grp.path !== ''; grp = grp.parent) if (!open.has(grp.path)) top = grp;
      const key = top ? 'g:' + top.path : 'n:' + i;
      rep[i] = key;
      if (!items.has(key)) items.set(key, top ? { group: top, parent: top.parent } : { node: i, parent: g.owner[i] });
    }
    const edges = new Map();
    for (const [s, t, tensor, st] of g.edges) {
      const a = rep[s], b = rep[t];
      if (a === b) continue;
      const both = a[0] === 'n' && b[0] === 'n';
      const key = both ? `${a}>${b}>${tensor}` : `${a}>${b}`;
      const e = edges.get(key);
      if (e) { e.count += 1; if (st && e.s !== st) e.s = e.s ? 'c' : st; } else edges.set(key, { v: a, w: b, tensor, s: st || '', count: 1, agg: !both });
    }
    return { items, edges };
  }

  // -- layout: each open group is laid out on its own (small graphs, cached), then placed in its parent -----------
  const PAD = 10, HEAD = 18, TOP = '⊤', BOTTOM = '⊥';
  const layoutCache = new Map();
  const textWidth = (s, px) => Math.ceil(String(s).length * px * 0.6);
  const cut = (s, n) => (s.length > n ? s.slice(0, n - 1) + '…' : s);
  function category(op) { for (const c in CATEGORY) if (CATEGORY[c].test(op)) return c; return ''; }
  const chainOf = (grp) => { if (!grp.chain) grp.chain = grp.parent ? chainOf(grp.parent).concat([grp]) : [grp]; return grp.chain; };

  function size(g, item) {
    if (item.group) return { width: Math.max(110, textWidth(cut(item.group.name, 36), 11) + 28), height: 40 };
    const n = g.nodes[item.node];
    if (n.k !== 'n') return { width: Math.max(60, textWidth(cut(n.n, 32), 11) + 20), height: 26 };
    return { width: Math.max(70, textWidth(n.op, 11.5), textWidth(cut(n.n, 30), 10)) + 20, height: n.n ? 38 : 26 };
  }

  function layoutAll(g, vis) {
    if (!vis.items.size) return { boxes: new Map(), clusters: [], width: 200, height: 100 };
    const levels = new Map();
    const level = (grp) => { let l = levels.get(grp); if (!l) levels.set(grp, (l = { grp, kids: new Set(), edges: new Map() })); return l; };
    const childKey = (chain, k, itemKey) => (k < chain.length ? 'c:' + chain[k].path : itemKey);
    const add = (grp, a, b) => { level(grp).edges.set(a + '>' + b, [a, b]); return [grp, a, b]; };
    for (const [key, item] of vis.items) {
      const chain = chainOf(item.parent);
      level(item.parent).kids.add(key);
      for (let k = 1; k < chain.length; k++) level(chain[k - 1]).kids.add('c:' + chain[k].path);
    }
    for (const e of vis.edges.values()) {
      const cv = chainOf(vis.items.get(e.v).parent), cw = chainOf(vis.items.get(e.w).parent);
      let k = 0;
      while (k < cv.length && k < cw.length && cv[k] === cw[k]) k++;
      e.route = [];
      for (let i = cv.length - 1; i >= k; i--) e.route.push(add(cv[i], childKey(cv, i + 1, e.v), BOTTOM));
      e.mid = e.route.length;
      e.route.push(add(cv[k - 1], childKey(cv, k, e.v), childKey(cw, k, e.w)));
      for (let i = k; i < cw.length; i++) e.route.push(add(cw[i], TOP, childKey(cw, i + 1, e.w)));
    }
    const order = Array.from(levels.values()).sort((x, y) => chainOf(y.grp).length - chainOf(x.grp).length);
    const sizes = new Map();
    for (const l of order) {  // innermost first: a group's size is known before its parent is laid out
      const kidSize = (key) => (key[0] === 'c' ? sizes.get(key) : size(g, vis.items.get(key)));
      const kids = Array.from(l.kids);
      const sig = kids.map((key) => { const z = kidSize(key); return `${key}:${z.width}x${z.height}`; }).join('|') + '#' + Array.from(l.edges.keys()).join('|');
      let cached = layoutCache.get(g.id + ':' + l.grp.path);
      if (!cached || cached.sig !== sig) {
        const G = new dagre.graphlib.Graph();
        G.setGraph({ rankdir: 'TB', nodesep: 18, ranksep: 28, edgesep: 6, marginx: 0, marginy: 0 });
        G.setDefaultEdgeLabel(() => ({}));
        for (const key of kids) G.setNode(key, Object.assign({}, kidSize(key)));
        for (const [a, b] of l.edges.values()) {
          for (const d of [a, b]) if (d === TOP || d === BOTTOM) G.setNode(d, { width: 1, height: 1 });
          G.setEdge(a, b);
        }
        dagre.layout(G);
        cached = { sig, G };
        layoutCache.set(g.id + ':' + l.grp.path, cached);
      }
      l.G = cached.G;
      const box = l.G.graph();
      sizes.set('c:' + l.grp.path, { width: box.width + 2 * PAD, height: box.height + HEAD + PAD });
    }
    // place top-down: every group's offset, then boxes, clusters and edge polylines in page coordinates
    const offsets = new Map([[g.root, { x: PAD, y: PAD }]]);
    const boxes = new Map(), clusters = [];
    for (const l of order.slice().reverse()) {
      const off = offsets.get(l.grp);
      for (const key of l.kids) {
        const n = l.G.node(key);
        const box = { x: off.x + n.x - n.width / 2, y: off.y + n.y - n.height / 2, width: n.width, height: n.height };
        if (key[0] === 'c') {
          const child = g.byPath.get(key.slice(2));
          offsets.set(child, { x: box.x + PAD, y: box.y + HEAD });
          clusters.push({ grp: child, box });
        } else boxes.set(key, box);
      }
    }
    for (const e of vis.edges.values()) {
      e.points = [];
      e.route.forEach(([grp, a, b], j) => {
        const off = offsets.get(grp), pts = levels.get(grp).G.edge(a, b).points;
        for (const p of pts) e.points.push({ x: p.x + off.x, y: p.y + off.y });
        if (j === e.mid) e.label = { x: pts[Math.floor(pts.length / 2)].x + off.x, y: pts[Math.floor(pts.length / 2)].y + off.y };
      });
    }
    const root = levels.get(g.root).G.graph();
    return { boxes, clusters, width: root.width + 2 * PAD, height: root.height + 2 * PAD };
  }

  function render(fit) {
    const started = performance.now();
    const g = prepare(DATA.graphs[current()]);
    const vis = visible(g);
    const laid = layoutAll(g, vis);
    draw(g, laid, vis);
    api.lastRenderMs = performance.now() - started;
    api.renders += 1;
    $('status').textContent = `${vis.items.size} shown of ${g.nodes.length} · ${vis.edges.size} edges · laid out in ${Math.round(api.lastRenderMs)} ms`;
    if (fit) fitView(laid);
    return laid;
  }

  function draw(g, laid, vis) {
    const parts = [];
    for (const { grp, box } of laid.clusters) {
      const flags = grp.flags.split('').map((f) => ' has-' + f).join('');
      parts.push(`<g class="cluster${flags}" data-p="${esc(grp.path)}"><rect x="${box.x}" y="${box.y}" width="${box.width}" height="${box.height}" rx="6"/>` +
        `<text x="${box.x + 6}" y="${box.y + 12}">▾ ${esc(cut(grp.name, 40))}</text></g>`);
    }
    for (const e of vis.edges.values()) {
      const pts = e.points;
      let d = `M${pts[0].x.toFixed(1)},${pts[0].y.toFixed(1)}`;
      for (let i = 1; i < pts.length; i++) d += `L${pts[i].x.toFixed(1)},${pts[i].y.toFixed(1)}`;
      const label = e.agg && e.count > 1 ? `${e.count} tensors` : g.types[e.tensor] || '';
      parts.push(`<g class="edge${e.s ? ' s-' + e.s : ''}${e.agg ? ' agg' : ''}" data-v="${e.v}" data-w="${e.w}" data-t="${esc(e.tensor)}">` +
        `<path d="${d}" marker-end="url(#arrow${e.s || ''})"/>` + (label ? `<text x="${(e.label.x + 4).toFixed(1)}" y="${(e.label.y - 2).toFixed(1)}">${esc(cut(label, 40))}</text>` : '') + '</g>');
    }
    for (const [key, item] of vis.items) {
      const box = laid.boxes.get(key), x = box.x, y = box.y, cx = x + box.width / 2, cy = y + box.height / 2;
      if (item.group) {
        const grp = item.group;
        const flags = grp.flags.split('').map((f) => ' has-' + f).join('');
        parts.push(`<g class="group${flags}${state.hits.has(key) ? ' hit' : ''}" data-p="${esc(grp.path)}"><rect x="${x}" y="${y}" width="${box.width}" height="${box.height}" rx="4"/>` +
          `<text x="${cx}" y="${y + 16}" text-anchor="middle">▸ ${esc(cut(grp.name, 36))}</text>` +
          `<text class="cnt" x="${cx}" y="${y + 31}" text-anchor="middle">${grp.size} nodes</text></g>`);
        continue;
      }
      const n = g.nodes[item.node];
      const cls = ['node', 'k-' + n.k, n.k === 'n' ? 'c-' + category(n.op) : '', n.s ? 's-' + n.s : '', n.sub || n.fn !== undefined ? 'has-sub' : '',
        state.selected === item.node ? 'sel' : '', state.hits.has(key) ? 'hit' : ''].filter(Boolean).join(' ');
      let text;
      if (n.k !== 'n') text = `<text x="${cx}" y="${cy + 4}" text-anchor="middle">${esc(cut(n.n, 32))}</text>`;
      else if (n.n) text = `<text class="op" x="${cx}" y="${y + 15}" text-anchor="middle">${esc(n.op)}</text><text class="nm" x="${cx}" y="${y + 30}" text-anchor="middle">${esc(cut(n.n, 30))}</text>`;
      else text = `<text class="op" x="${cx}" y="${cy + 4}" text-anchor="middle">${esc(n.op)}</text>`;
      parts.push(`<g class="${cls}" data-i="${item.node}" data-op="${esc(n.op)}" data-name="${esc(n.n)}"><rect x="${x}" y="${y}" width="${box.width}" height="${box.height}" rx="${n.k === 'n' ? 4 : 13}"/>${text}</g>`);
    }
    $('scene').innerHTML = parts.join('');
  }

  // -- pan and zoom --------------------------------------------------------------------------------------------
  function applyView() { const v = state.view; $('scene').setAttribute('transform', `translate(${v.x},${v.y}) scale(${v.k})`); }
  function fitView(box) {  // the whole graph if it reads at that size, else its top at a readable size
    const area = $('canvas').getBoundingClientRect();
    const k = Math.max(0.6, Math.min(1.1, area.width / (box.width || 1), area.height / (box.height || 1)));
    state.view = { k, x: (area.width - box.width * k) / 2, y: box.height * k < area.height ? (area.height - box.height * k) / 2 : 10 };
    applyView();
  }
  function centerOn(key) {
    const el = document.querySelector(key[0] === 'n' ? `[data-i="${key.slice(2)}"]` : `.group[data-p="${CSS.escape(key.slice(2))}"]`);
    if (!el) return;
    const r = el.getBBox(), area = $('canvas').getBoundingClientRect(), v = state.view;
    v.x = area.width / 2 - (r.x + r.width / 2) * v.k; v.y = area.height / 2 - (r.y + r.height / 2) * v.k;
    applyView();
  }
  function setupPanZoom() {
    const canvas = $('canvas');
    let drag = null;
    canvas.addEventListener('wheel', (ev) => {
      ev.preventDefault();
      const r = canvas.getBoundingClientRect(), v = state.view, px = ev.clientX - r.left, py = ev.clientY - r.top;
      const k = Math.min(4, Math.max(0.05, v.k * Math.exp(-ev.deltaY * 0.0015)));
      v.x = px - ((px - v.x) * k) / v.k; v.y = py - ((py - v.y) * k) / v.k; v.k = k;
      applyView();
    }, { passive: false });
    canvas.addEventListener('mousedown', (ev) => { drag = { x: ev.clientX, y: ev.clientY, vx: state.view.x, vy: state.view.y, moved: false }; canvas.classList.add('panning'); });
    window.addEventListener('mousemove', (ev) => {
      if (!drag) return;
      const dx = ev.clientX - drag.x, dy = ev.clientY - drag.y;
      if (Math.abs(dx) + Math.abs(dy) > 3) drag.moved = true;
      state.view.x = drag.vx + dx; state.view.y = drag.vy + dy; applyView();
    });
    window.addEventListener('mouseup', () => { canvas.classList.remove('panning'); setTimeout(() => { drag = null; }, 0); });
    canvas.addEventListener('click', (ev) => {
      if (drag && drag.moved) return;
      const node = ev.target.closest('.node'), group = ev.target.closest('.group'), cluster = ev.target.closest('.cluster');
      if (node) select(+node.dataset.i);
      else if (group) expand(group.dataset.p);
      else if (cluster && ev.target.tagName === 'text') collapse(cluster.dataset.p);
    });
    canvas.addEventListener('dblclick', (ev) => {
      const node = ev.target.closest('.node');
      if (!node) return;
      const n = DATA.graphs[current()].nodes[+node.dataset.i];
      if (n.sub) openGraph(n.sub[0][1]); else if (n.fn !== undefined) openGraph(n.fn);
    });
  }

  // -- navigation ------------------------------------------------------------------------------------------------
  const current = () => state.stack[state.stack.length - 1];
  function chainTo(gid) {
    const chain = [];
    for (let id = gid; id !== undefined && id !== null;) {
      chain.unshift(id);
      const g = DATA.graphs[id];
      id = g.parent ? g.parent[0] : (id === 0 ? null : 0);
    }
    return chain;
  }
  function crumbs() {
    $('crumbs').innerHTML = state.stack.map((id, i) => (i ? '<span>›</span>' : '') + `<button data-depth="${i}">${esc(DATA.graphs[id].title)}</button>`).join('');
  }
  function openGraph(gid, key) {
    state.stack = chainTo(gid); state.selected = null; crumbs();
    render(!key);
    if (key) centerOn(key);
    showOverview();
  }
  function expand(path) { expandedOf(prepare(DATA.graphs[current()])).add(path); render(false); centerOn('g:' + path); }
  function collapse(path) {
    const set = expandedOf(prepare(DATA.graphs[current()]));
    for (const p of Array.from(set)) if (p === path || p.startsWith(path + '/')) set.delete(p);
    render(false); centerOn('g:' + path);
  }
  function reveal(gid, i) {
    const g = prepare(DATA.graphs[gid]);
    const set = expandedOf(g);
    if (i >= 0) for (let grp = g.owner[i]; grp && grp.path !== ''; grp = grp.parent) set.add(grp.path);
    if (current() !== gid || state.stack.length !== chainTo(gid).length) { state.stack = chainTo(gid); crumbs(); }
    state.selected = i >= 0 ? i : null;
    render(false);
    if (i >= 0) { centerOn('n:' + i); showNode(i); }
  }

  // -- the side panel ---------------------------------------------------------------------------------------------
  function tensorRow(g, name) {
    if (!name) return '<span class="muted">(none)</span>';
    const init = g.inits[name];
    let text = esc(name) + (g.types[name] ? ` <span class="muted">${esc(g.types[name])}</span>` : '');
    if (init) {
      text += `<div class="muted init">initializer ${esc(init.t)}` + (init.b !== undefined && init.b !== null ? `, ${init.b.toLocaleString()} bytes` : '') +
        (init.x ? `, external in ${esc(init.x)}` : '') + (init.v ? ` = ${esc(init.v)}` : '') + (init.s ? `<span class="tag s-${init.s}">${statusWord(init.s)}</span>` : '') + '</div>';
    }
    return text;
  }
  const statusWord = (s) => ({ a: 'added', r: 'removed', c: 'changed' }[s] || '');
  function showNode(i) {
    const g = DATA.graphs[current()], n = g.nodes[i];
    state.selected = i;
    document.querySelectorAll('.node.sel').forEach((el) => el.classList.remove('sel'));
    const el = document.querySelector(`.node[data-i="${i}"]`); if (el) el.classList.add('sel');
    let html = `<h2>${n.k === 'n' ? 'node' : n.k === 'i' ? 'graph input' : 'graph output'}${n.s ? `<span class="tag s-${n.s}">${statusWord(n.s)}</span>` : ''}</h2>`;
    html += `<h3 id="panel-title">${esc(n.k === 'n' ? n.op : n.n)}</h3><table>`;
    if (n.k === 'n') {
      html += `<tr><td>name</td><td>${esc(n.n) || '<span class="muted">(unnamed)</span>'}</td></tr>`;
      if (n.dom) html += `<tr><td>domain</td><td>${esc(n.dom)}</td></tr>`;
      if (n.g) html += `<tr><td>scope</td><td>${esc(n.g)}</td></tr>`;
    } else html += `<tr><td>type</td><td>${esc(g.types[n.n] || '?')}</td></tr>`;
    html += '</table>';
    if (n.dd) html += '<h2>changes</h2><div class="list">' + n.dd.map((d) => `<div><span class="sign s-c">~</span>${esc(d)}</div>`).join('') + '</div>';
    if (n.at) html += '<h2>attributes</h2><table id="panel-attrs">' + n.at.map(([k, v]) => `<tr><td>${esc(k)}</td><td>${esc(v)}</td></tr>`).join('') + '</table>';
    if (n.k === 'n') {
      html += '<h2>inputs</h2><table id="panel-inputs">' + n.in.map((t, j) => `<tr><td>${j}</td><td>${tensorRow(g, t)}</td></tr>`).join('') + '</table>';
      if (n.was) html += '<h2>inputs before</h2><table>' + n.was.in.map((t, j) => `<tr><td>${j}</td><td>${tensorRow(g, t)}</td></tr>`).join('') + '</table>';
      html += '<h2>outputs</h2><table id="panel-outputs">' + n.out.map((t, j) => `<tr><td>${j}</td><td>${tensorRow(g, t)}</td></tr>`).join('') + '</table>';
    }
    if (n.sub) html += '<h2>bodies</h2>' + n.sub.map(([a, id]) => `<button class="open" data-open="${id}">open ${esc(a)}</button>`).join('');
    if (n.fn !== undefined) html += `<h2>function</h2><button class="open" data-open="${n.fn}">open function body</button>`;
    html += '<h2></h2><button class="open" id="back-overview">back to overview</button>';
    $('side').innerHTML = html;
  }
  function showOverview() {
    const g = DATA.graphs[current()];
    const ops = g.nodes.filter((n) => n.k === 'n').length;
    let html = `<h2>${esc(g.kind === 'main' ? 'model' : g.kind)}</h2><h3>${esc(g.title)}</h3>`;
    html += `<div>${ops} nodes, ${g.edges.length} edges, ${Object.keys(g.inits).length} initializers</div>`;
    if (DATA.mode === 'diff') {
      html += `<h2>changes: ${esc(DATA.a)} → ${esc(DATA.b)}</h2><div class="legend"><span class="la">added</span><span class="lr">removed</span><span class="lc">changed</span></div>`;
      html += '<div class="list" id="changes">' + (DATA.changes.length ? DATA.changes.map((c, k) =>
        `<div data-change="${k}"><span class="sign s-${c.s}">${{ a: '+', r: '-', c: '~' }[c.s]}</span>${esc(c.sec)} <b>${esc(c.n)}</b> <span class="muted">${esc(c.d)}</span></div>`).join('') : '<div class="muted">no structural differences</div>') + '</div>';
    }
    const fns = DATA.graphs.filter((x) => x.kind === 'function');
    if (fns.length) html += '<h2>functions</h2>' + fns.map((f) => `<button class="open" data-open="${f.id}">${esc(f.title)}</button>`).join('');
    html += '<h2>search</h2><div class="list" id="results"><div class="muted">type a name or op type above</div></div>';
    $('side').innerHTML = html;
  }
  function setupSide() {
    $('side').addEventListener('click', (ev) => {
      const t = ev.target.closest('[data-open],[data-change],[data-hit],#back-overview');
      if (!t) return;
      if (t.id === 'back-overview') showOverview();
      else if (t.dataset.open !== undefined) openGraph(+t.dataset.open);
      else if (t.dataset.change !== undefined) { const c = DATA.changes[+t.dataset.change]; if (c.t) reveal(c.t[0], c.t[1]); }
      else if (t.dataset.hit !== undefined) { const [gid, i] = t.dataset.hit.split(':').map(Number); reveal(gid, i); }
    });
    $('crumbs').addEventListener('click', (ev) => {
      const b = ev.target.closest('button'); if (!b) return;
      state.stack = state.stack.slice(0, +b.dataset.depth + 1); crumbs(); render(true); showOverview();
    });
  }

  // -- search --------------------------------------------------------------------------------------------------------
  function search(query) {
    const q = query.trim().toLowerCase();
    const hits = [];
    if (q) {
      for (const g of DATA.graphs) {
        g.nodes.forEach((n, i) => {
          if (hits.length < 200 && (n.n.toLowerCase().includes(q) || n.op.toLowerCase() === q || (q.length > 2 && n.op.toLowerCase().includes(q)))) hits.push([g.id, i]);
        });
      }
    }
    if (!$('results')) showOverview();
    $('results').innerHTML = !q ? '<div class="muted">type a name or op type above</div>' : hits.length ? hits.map(([gid, i]) => {
      const n = DATA.graphs[gid].nodes[i];
      return `<div data-hit="${gid}:${i}"><b>${esc(n.k === 'n' ? n.op : n.k === 'i' ? 'input' : 'output')}</b> ${esc(n.n)}${gid ? ` <span class="muted">in ${esc(DATA.graphs[gid].title)}</span>` : ''}</div>`;
    }).join('') : '<div class="muted">no match</div>';
    const g = prepare(DATA.graphs[current()]);
    state.hits = new Set();
    const vis = visible(g);
    for (const [gid, i] of hits) {
      if (gid !== current()) continue;
      for (const [key, item] of vis.items) if (item.node === i || (item.group && isInside(g, i, item.group))) state.hits.add(key);
    }
    document.querySelectorAll('.hit').forEach((el) => el.classList.remove('hit'));
    for (const key of state.hits) {
      const el = document.querySelector(key[0] === 'n' ? `.node[data-i="${key.slice(2)}"]` : `.group[data-p="${CSS.escape(key.slice(2))}"]`);
      if (el) el.classList.add('hit');
    }
    return hits.length;
  }
  function isInside(g, i, group) { for (let grp = g.owner[i]; grp; grp = grp.parent) if (grp === group) return true; return false; }

  // -- start --------------------------------------------------------------------------------------------------------
  function start() {
    document.body.classList.toggle('diff', DATA.mode === 'diff');
    $('title').textContent = DATA.title;
    setupPanZoom(); setupSide(); crumbs();
    let timer = null;
    $('search').addEventListener('input', (ev) => { clearTimeout(timer); timer = setTimeout(() => search(ev.target.value), 80); });
    $('search').addEventListener('keydown', (ev) => {
      if (ev.key !== 'Enter') return;
      clearTimeout(timer); search(ev.target.value);
      const first = document.querySelector('#results [data-hit]'); if (first) first.click();
    });
    $('expand-all').addEventListener('click', () => api.expandAll());
    $('collapse-all').addEventListener('click', () => api.collapseAll());
    $('fit').addEventListener('click', () => render(true));
    showOverview();
    render(true);
    requestAnimationFrame(() => setTimeout(() => { api.firstPaint = performance.now(); api.ready = true; document.body.dataset.ready = '1'; }, 0));
  }

  Object.assign(api, {
    current, search, reveal, openGraph, expand, collapse, centerOn,
    select: (i) => showNode(i),
    expandAll() { const g = prepare(DATA.graphs[current()]); const s = expandedOf(g); for (const p of g.byPath.keys()) s.add(p); return render(true), true; },
    collapseAll() { const g = prepare(DATA.graphs[current()]); state.expanded.set(g.id, new Set([''])); return render(true), true; },
    counts() {
      return { nodes: document.querySelectorAll('#scene .node').length, groups: document.querySelectorAll('#scene .group').length, edges: document.querySelectorAll('#scene .edge').length };
    },
  });
  function select(i) { showNode(i); }
  start();
})();
