// saectl dashboard: the page's whole program, hand-written, no libraries.
//
// Sections: 1 error accounting · 2 data blocks (base64 → gzip → bytes) · 3 shard decoding ·
// 4 text helpers · 5 view state in the URL hash · 6 feature list · 7 search · 8 feature page ·
// 9 histogram · 10 tooltip · 10b prompt view · 11 labels · 12 keys · 13 self-test · 14 start.
//
// Every token reaches the DOM through textContent, never innerHTML: a token such as
// `<script>` shows as text. The Content-Security-Policy of the page blocks all network
// access; the self-test counts what it would have blocked.
'use strict';

// ---- 1. Error accounting (first, so that nothing escapes it) -------------------------------
const problems = { console_errors: 0, script_errors: 0, csp_violations: 0, messages: [] };
(() => {
  const original = console.error.bind(console);
  console.error = (...args) => {
    problems.console_errors++;
    problems.messages.push('console.error: ' + args.map(String).join(' ').slice(0, 300));
    original(...args);
  };
  window.addEventListener('error', (e) => {
    problems.script_errors++;
    problems.messages.push('error: ' + (e.message || String(e.error)).slice(0, 300));
  });
  window.addEventListener('unhandledrejection', (e) => {
    problems.script_errors++;
    problems.messages.push('rejection: ' + String(e.reason && e.reason.stack || e.reason).slice(0, 300));
  });
  document.addEventListener('securitypolicyviolation', (e) => {
    problems.csp_violations++;
    problems.messages.push('csp: ' + e.violatedDirective + ' ' + e.blockedURI);
  });
})();

const $ = (id) => document.getElementById(id);
function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = text;
  return node;
}

// ---- 2. Data blocks ---------------------------------------------------------------------------
// Each block is base64 of gzip. The index is JSON; shards are binary (docs/dashboard.md).
const CONFIG = JSON.parse($('saectl-config').textContent);

function base64Bytes(text) {
  if (Uint8Array.fromBase64) return Uint8Array.fromBase64(text.trim()); // native where there is one
  const binary = atob(text.trim());
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

// Read straight from the stream's reader: half the time of going through Blob and Response
// (2 against 4 ms for a 210 KB shard in Chromium 156).
async function inflate(bytes) {
  const stream = new DecompressionStream('gzip');
  const writer = stream.writable.getWriter();
  writer.write(bytes).catch(() => {}); // a failure surfaces through the reader
  writer.close().catch(() => {});
  const reader = stream.readable.getReader();
  const chunks = [];
  let length = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    length += value.length;
  }
  if (chunks.length === 1) return chunks[0];
  const out = new Uint8Array(length);
  let at = 0;
  for (const chunk of chunks) { out.set(chunk, at); at += chunk.length; }
  return out;
}

let INDEX = null; // the parsed index block
const shardText = new Map(); // shard number → base64 (split mode: delivered by saectlShard)
const shardWaiters = new Map();
window.saectlShard = (k, text) => {
  shardText.set(k, text);
  const waiters = shardWaiters.get(k) || [];
  shardWaiters.delete(k);
  waiters.forEach((w) => w.resolve());
};

function shardSource(k) {
  if (shardText.has(k)) return Promise.resolve(shardText.get(k));
  if (!CONFIG.split) {
    const block = $('saectl-shard-' + k);
    if (!block) return Promise.reject(new Error('data block ' + k + ' is missing'));
    return Promise.resolve(block.textContent);
  }
  return new Promise((resolve, reject) => {
    const first = !shardWaiters.has(k);
    if (first) shardWaiters.set(k, []);
    shardWaiters.get(k).push({ resolve: () => resolve(shardText.get(k)), reject });
    if (!first) return;
    const script = document.createElement('script');
    script.src = CONFIG.data_dir + '/shard-' + String(k).padStart(4, '0') + '.js';
    script.onerror = () => {
      const waiters = shardWaiters.get(k) || [];
      shardWaiters.delete(k);
      waiters.forEach((w) => w.reject(new Error('cannot load ' + script.src + ' (is the ' + CONFIG.data_dir + ' folder beside the page?)')));
    };
    document.head.appendChild(script);
  });
}

// Decoded shards, least recently used first; at most SHARD_CACHE kept.
const SHARD_CACHE = 8;
const shardCache = new Map();
async function loadShard(k) {
  if (shardCache.has(k)) {
    const shard = shardCache.get(k);
    shardCache.delete(k);
    shardCache.set(k, shard);
    return shard;
  }
  const t0 = performance.now();
  const packed = base64Bytes(await shardSource(k));
  const t1 = performance.now();
  const bytes = await inflate(packed);
  const t2 = performance.now();
  const shard = decodeShard(bytes, k);
  phase('base64', t1 - t0);
  phase('inflate', t2 - t1);
  phase('decode_shard', performance.now() - t2);
  shardCache.set(k, shard);
  while (shardCache.size > SHARD_CACHE) shardCache.delete(shardCache.keys().next().value);
  return shard;
}

async function featurePage(f) {
  const shard = await loadShard(Math.floor(f / INDEX.shard_size));
  const t = performance.now();
  const page = shard.feature(f - shard.first);
  phase('decode_feature', performance.now() - t);
  return page;
}

// Where a feature switch spends its time (the self-test's breakdown): name → ms, summed
// until the self-test reads and resets it; null when nobody is measuring.
let phases = null;
function phase(name, ms) {
  if (phases) phases[name] = (phases[name] || 0) + ms;
}

// ---- 3. Shard decoding ----------------------------------------------------------------------
class Reader {
  constructor(bytes) {
    this.bytes = bytes;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.at = 0;
  }
  varint() {
    let value = 0, scale = 1, byte;
    do {
      byte = this.bytes[this.at++];
      value += (byte & 0x7f) * scale;
      scale *= 128;
    } while (byte & 0x80);
    return value;
  }
  u8() { return this.bytes[this.at++]; }
  f32() { const v = this.view.getFloat32(this.at, true); this.at += 4; return v; }
  optF32() { const v = this.f32(); return Number.isNaN(v) ? null : v; }
}

function decodeShard(bytes, k) {
  const r = new Reader(bytes);
  const poolLength = r.varint();
  const pool = new Uint32Array(poolLength);
  for (let i = 0; i < poolLength; i++) pool[i] = r.varint();
  const first = k * INDEX.shard_size;
  // Each feature's record is length-prefixed: only the features shown are decoded.
  const count = r.varint();
  const offsets = new Uint32Array(count + 1);
  for (let i = 0; i < count; i++) offsets[i + 1] = offsets[i] + r.varint();
  const base = r.at;
  const pages = new Array(count);
  const feature = (i) => {
    if (!pages[i]) {
      const record = new Reader(bytes);
      record.at = base + offsets[i];
      pages[i] = decodeFeature(record, first + i, pool);
    }
    return pages[i];
  };
  return { first, pool, count, feature };
}

function decodeFeature(r, f, pool) {
  const page = { f, pool };
  page.topShare = r.f32();
  page.sampleSize = r.varint();
  page.specialShare = r.f32();
  page.positionBin = r.varint() - 1;
  page.positionShare = r.f32();
  page.histFirst = r.varint();
  const bins = r.varint();
  page.hist = [];
  for (let i = 0; i < bins; i++) page.hist.push(r.varint());
  const max = INDEX.max[f];
  page.groups = [];
  for (let g = r.varint(); g > 0; g--) {
    const group = { kind: r.u8() === 0 ? 'top' : 'interval', examples: [] };
    if (group.kind === 'interval') {
      group.index = r.varint();
      group.lower = r.optF32();
      group.upper = r.optF32();
      group.count = r.varint();
    }
    for (let n = r.varint(); n > 0; n--) {
      const e = { offset: r.varint(), length: r.varint(), at: r.varint(), act: r.f32(),
        sequence: r.varint(), position: r.varint(), values: null };
      const pairs = r.varint();
      if (pairs > 0) {
        e.values = new Map();
        for (let p = 1; p < pairs; p++) {
          const index = r.varint();
          e.values.set(index, r.u8() / 255 * max);
        }
        e.values.set(e.at, e.act); // the marked token's value is exact
      }
      group.examples.push(e);
    }
    page.groups.push(group);
  }
  page.logits = [[], []];
  for (const side of [0, 1]) {
    for (let n = r.varint(); n > 0; n--) page.logits[side].push({ code: r.varint(), value: r.f32() });
  }
  page.similar = [];
  for (let kind = 0; kind < 3; kind++) {
    const list = [];
    for (let n = r.varint(); n > 0; n--) list.push({ f: r.varint(), score: r.f32() });
    page.similar.push(list);
  }
  return page;
}

// ---- 4. Text helpers --------------------------------------------------------------------------
const nf = new Intl.NumberFormat('en-US');
const int = (n) => nf.format(n);

function num(v, digits = 4) {
  if (v === null || v === undefined || Number.isNaN(v)) return '—';
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e5 || a < 1e-3) return v.toExponential(2);
  return Number(v.toPrecision(digits)).toString();
}

// Density as a fraction of tokens: exact, never rounded to 0.
function densityText(f) {
  const firing = INDEX.firing[f];
  if (firing === 0) return '0';
  const d = firing / INDEX.tokens_seen;
  return d >= 1e-3 ? (d * 100).toPrecision(3) + '%' : d.toExponential(2);
}

// Token text made visible: newlines, tabs, control and bidirectional characters become
// visible marks so that the row cannot be reordered or broken by what it shows.
function visible(text) {
  let out = '';
  for (const ch of text) {
    const c = ch.codePointAt(0);
    if (ch === '\n') out += '↵';
    else if (ch === '\t') out += '⇥';
    else if (ch === '\r') out += '␍';
    else if (c < 0x20) out += String.fromCodePoint(0x2400 + c);
    else if (c === 0x7f) out += '␡';
    else if ((c >= 0x200e && c <= 0x200f) || (c >= 0x202a && c <= 0x202e) || (c >= 0x2066 && c <= 0x2069) || c === 0x61c)
      out += '⟨U+' + c.toString(16).toUpperCase().padStart(4, '0') + '⟩';
    else out += ch;
  }
  return out;
}

const LONG_TOKEN = 40;
const labelCache = [];
function tokenLabel(code) {
  let label = labelCache[code];
  if (label === undefined) {
    const text = visible(INDEX.vocab[code]);
    label = labelCache[code] = text.length > LONG_TOKEN ? text.slice(0, LONG_TOKEN) + '…' : text;
  }
  return label;
}

// A token shown on its own (list, logits, similar features): spaces made visible, since
// " cat" and "cat" are different tokens.
const tokenAlone = (code) => tokenLabel(code).replace(/ /g, '␣');

// Perceptual sequential colour map (ColorBrewer OrRd): 0 is no colour, the max the darkest.
const STOPS = [[254, 232, 200], [253, 212, 158], [253, 187, 132], [252, 141, 89], [239, 101, 72], [215, 48, 31], [179, 0, 0], [127, 0, 0]];
const colourCache = new Map();
function colour(t) {
  const step = Math.round(Math.max(0, Math.min(1, t)) * 255);
  let css = colourCache.get(step);
  if (css === undefined) colourCache.set(step, (css = colourAt(step / 255)));
  return css;
}
function colourAt(t) {
  const x = t * (STOPS.length - 1);
  const i = Math.min(STOPS.length - 2, Math.floor(x));
  const w = x - i;
  const c = STOPS[i].map((v, j) => Math.round(v + (STOPS[i + 1][j] - v) * w));
  return 'rgb(' + c.join(',') + ')';
}

const FLAG_NAMES = [[1, 'dead'], [2, 'ultra-rare'], [4, 'single-token'], [8, 'position'], [16, 'BOS']];
function flagNames(f) {
  const names = FLAG_NAMES.filter(([bit]) => INDEX.flags[f] & bit).map(([, name]) => name);
  if (isDense(f)) names.push('dense');
  return names;
}
const DENSE = 0.1;
const isDense = (f) => INDEX.firing[f] > DENSE * INDEX.tokens_seen && INDEX.tokens_seen > 0;

// ---- 5. View state in the URL hash ----------------------------------------------------------
// #f=12&q=tok:cat&sort=max&filter=dead&w=5&cmp=40 (or #prompts&pf=12) — every view can be
// linked and reopened.
const state = { f: null, q: '', sort: 'index', filter: 'all', w: 'full', cmp: null, log: false, selftest: false, prompts: false, pf: null };
const WIDTHS = ['3', '8', 'full'];

function readHash() {
  const params = new URLSearchParams(location.hash.slice(1));
  const int_or_null = (v) => (v !== null && /^\d+$/.test(v) ? Number(v) : null);
  state.f = int_or_null(params.get('f'));
  state.cmp = int_or_null(params.get('cmp'));
  state.q = params.get('q') || '';
  state.sort = params.get('sort') || 'index';
  state.filter = params.get('filter') || 'all';
  state.w = WIDTHS.includes(params.get('w')) ? params.get('w') : 'full';
  state.log = params.get('log') === '1';
  state.selftest = params.has('selftest');
  state.prompts = params.has('prompts');
  state.pf = int_or_null(params.get('pf'));
}

function writeHash() {
  const params = new URLSearchParams();
  if (state.selftest) params.set('selftest', '');
  if (state.prompts) {
    params.set('prompts', '');
    if (state.pf !== null) params.set('pf', state.pf);
  } else if (state.f !== null) params.set('f', state.f);
  if (state.cmp !== null) params.set('cmp', state.cmp);
  if (state.q) params.set('q', state.q);
  if (state.sort !== 'index') params.set('sort', state.sort);
  if (state.filter !== 'all') params.set('filter', state.filter);
  if (state.w !== 'full') params.set('w', state.w);
  if (state.log) params.set('log', '1');
  const hash = '#' + params.toString().replace(/=(?=&|$)/g, '');
  if (hash !== location.hash) history.replaceState(null, '', hash);
}

// writeHash after the next frame. Chromium restyles the whole document when the URL changes
// (~10 ms), which a feature switch need not wait for; switches in quick succession (j held
// down) write it once.
let hashQueued = false;
function writeHashSoon() {
  if (hashQueued) return;
  hashQueued = true;
  const write = () => {
    if (!hashQueued) return;
    hashQueued = false;
    writeHash();
  };
  requestAnimationFrame(() => setTimeout(write, 0));
  setTimeout(write, 250); // a hidden tab gets no frames
}

// ---- 6. Feature list ------------------------------------------------------------------------
const ROW = 30;
let listed = []; // feature ids in list order
const FILTERS = [
  ['all', 'all', () => true],
  ['alive', 'alive', (f) => INDEX.firing[f] > 0],
  ['dead', 'dead', (f) => INDEX.flags[f] & 1],
  ['ultra-rare', 'ultra-rare', (f) => INDEX.flags[f] & 2],
  ['dense', 'dense >10%', isDense],
  ['single-token', 'single-token', (f) => INDEX.flags[f] & 4],
  ['position', 'position', (f) => INDEX.flags[f] & 8],
  ['bos', 'BOS', (f) => INDEX.flags[f] & 16],
  ['labelled', 'labelled', (f) => labels.has(f)],
];

function renderChips() {
  const chips = $('chips');
  chips.textContent = '';
  for (const [key, name, test] of FILTERS) {
    let n = 0;
    for (let f = 0; f < INDEX.d_sae; f++) if (test(f)) n++;
    const chip = el('button', 'chip' + (state.filter === key ? ' on' : ''), name + ' ');
    chip.type = 'button';
    chip.dataset.filter = key;
    chip.appendChild(el('span', 'n', int(n)));
    chip.onclick = () => { state.filter = state.filter === key ? 'all' : key; refreshList(); };
    chips.appendChild(chip);
  }
}

const SORTS = {
  index: null,
  density: (a, b) => INDEX.firing[b] - INDEX.firing[a] || a - b,
  'density-asc': (a, b) => INDEX.firing[a] - INDEX.firing[b] || a - b,
  max: (a, b) => INDEX.max[b] - INDEX.max[a] || a - b,
  count: (a, b) => INDEX.count[b] - INDEX.count[a] || a - b,
  flags: (a, b) => INDEX.flags[b] - INDEX.flags[a] || a - b,
};

// Rebuilds `listed` from the search, the filter chip and the sort; renders what is visible.
function refreshList() {
  const filter = (FILTERS.find(([key]) => key === state.filter) || FILTERS[0])[2];
  const result = searchResult;
  let ids;
  if (result && result.ranked) {
    ids = result.ranked.filter((f) => filter(f));
    if (SORTS[state.sort]) ids.sort(SORTS[state.sort]); // an explicit sort wins over the rank
  }
  else {
    ids = [];
    for (let f = 0; f < INDEX.d_sae; f++) if (filter(f) && (!result || result.accepts(f))) ids.push(f);
    if (SORTS[state.sort]) ids.sort(SORTS[state.sort]);
  }
  listed = ids;
  $('list-count').textContent = int(ids.length) + ' of ' + int(INDEX.d_sae) + ' features';
  $('list-spacer').style.height = ids.length * ROW + 'px';
  $('sort').value = state.sort;
  for (const chip of $('chips').children) chip.classList.toggle('on', chip.dataset.filter === state.filter);
  renderRows(true);
  writeHash();
}

const rowPool = [];
function renderRows(force) {
  const list = $('list');
  const first = Math.max(0, Math.floor(list.scrollTop / ROW) - 5);
  const last = Math.min(listed.length, Math.ceil((list.scrollTop + list.clientHeight) / ROW) + 5);
  if (!force && renderRows.range && renderRows.range[0] === first && renderRows.range[1] === last) return;
  renderRows.range = [first, last];
  let used = 0;
  for (let i = first; i < last; i++, used++) {
    if (used >= rowPool.length) {
      const row = el('div', 'row');
      row.setAttribute('role', 'option');
      row.append(el('span', 'id'), el('span', 'tok'), el('span', 'num'), el('span', 'badges'));
      row.onclick = (e) => {
        const f = Number(row.dataset.f);
        if (e.shiftKey && state.f !== null && f !== state.f) showCompare(state.f, f);
        else showFeature(f);
      };
      rowPool.push(row);
      list.appendChild(row);
    }
    fillRow(rowPool[used], listed[i], i);
  }
  for (let i = used; i < rowPool.length; i++) rowPool[i].hidden = true;
}

// Highlights the open feature's row. Unlike renderRows it reads no geometry, so a switch does
// not force the layout of the page it just built.
function markCurrentRow() {
  for (const row of rowPool) row.classList.toggle('current', Number(row.dataset.f) === state.f);
}

function fillRow(row, f, i) {
  row.hidden = false;
  row.style.transform = 'translateY(' + i * ROW + 'px)';
  row.dataset.f = f;
  row.classList.toggle('current', f === state.f);
  const [id, tok, value, badges] = row.children;
  id.textContent = '#' + f;
  const label = labels.get(f);
  const top = INDEX.top_token[f];
  tok.textContent = label ? label : top >= 0 ? tokenAlone(top) : '';
  tok.classList.toggle('label', Boolean(label));
  value.textContent = densityText(f);
  value.title = 'density; max ' + num(INDEX.max[f]);
  badges.textContent = flagNames(f).map((n) => n[0].toUpperCase()).join('');
  badges.title = flagNames(f).join(', ');
}

// ---- 7. Search --------------------------------------------------------------------------------
// A query is terms joined by AND. Scored terms (tok:, logit:, text:, label:, bare words)
// rank the result; numeric terms and #id only filter.
let searchResult = null; // null: no query; else { accepts(f), ranked?: [f] }
let vocabNormal = null; // lower-cased, trimmed vocabulary, built on first use

function terms(query) {
  const out = [];
  const re = /(\S+?:)?"([^"]*)"?|(\S+)/g;
  let m;
  while ((m = re.exec(query))) out.push(m[3] !== undefined ? m[3] : (m[1] || '') + '\u0000' + m[2]);
  return out; // a quoted value is marked with NUL after its prefix
}

function codesMatching(value, exact) {
  if (!vocabNormal) vocabNormal = INDEX.vocab.map((t) => t.trim().toLowerCase());
  const codes = [];
  const wanted = exact ? value : value.trim().toLowerCase();
  const table = exact ? INDEX.vocab : vocabNormal;
  for (let c = 0; c < table.length; c++) if (table[c] === wanted) codes.push(c);
  return codes;
}

function postingScores(post, codes, weight) {
  const scores = new Map();
  for (const code of codes) {
    const list = post[code];
    if (!list) continue;
    for (let i = 0; i < list.length; i += 2) scores.set(list[i], (scores.get(list[i]) || 0) + weight(list[i + 1]));
  }
  return scores;
}

const NUMERIC = {
  density: (f) => (INDEX.tokens_seen ? INDEX.firing[f] / INDEX.tokens_seen : 0),
  max: (f) => INDEX.max[f], mean: (f) => INDEX.mean[f], std: (f) => INDEX.std[f], count: (f) => INDEX.count[f],
};

// Returns { accepts, ranked } or throws a readable message.
async function evaluate(query) {
  const filters = [];
  let scores = null; // Map f → score, intersected over scored terms
  const combine = (next) => {
    if (scores === null) scores = next;
    else for (const f of [...scores.keys()]) next.has(f) ? scores.set(f, scores.get(f) + next.get(f)) : scores.delete(f);
  };
  for (const term of terms(query)) {
    const quoted = term.includes('\u0000');
    const [prefix, value] = quoted ? term.split('\u0000') : [(term.match(/^[a-z]+:/) || [''])[0], term.replace(/^[a-z]+:/, '')];
    const numeric = !quoted && term.match(/^(density|max|mean|std|count)(<=|>=|<|>|=)(-?[\d.]+(?:e-?\d+)?)$/i);
    if (numeric) {
      const get = NUMERIC[numeric[1].toLowerCase()], op = numeric[2], x = Number(numeric[3]);
      filters.push((f) => { const v = get(f); return op === '<' ? v < x : op === '>' ? v > x : op === '<=' ? v <= x : op === '>=' ? v >= x : v === x; });
    } else if (/^#\d+$/.test(term)) {
      const id = Number(term.slice(1));
      if (id >= INDEX.d_sae) throw new Error('feature ' + id + ' does not exist (the SAE has ' + int(INDEX.d_sae) + ')');
      combine(new Map([[id, 1]]));
    } else if (prefix === 'tok:') {
      combine(postingScores(INDEX.tok_post, codesMatching(value, quoted), (c) => c));
    } else if (prefix === 'logit:') {
      if (!INDEX.has_logits) throw new Error('this folder has no logit effects (collect with the model to get them)');
      combine(postingScores(INDEX.logit_post, codesMatching(value, quoted), (rank) => 10 - rank));
    } else if (prefix === 'text:') {
      // One or two letters match nearly every example: wait for a third.
      if (value.length < 3) throw new Error('text: needs at least 3 characters');
      combine(await textSearch(value));
    } else if (prefix === 'label:') {
      combine(labelScores(value));
    } else if (prefix) {
      throw new Error('unknown search prefix ' + prefix + ' (tok:, logit:, text:, label:)');
    } else {
      const either = postingScores(INDEX.tok_post, codesMatching(value, quoted), (c) => c);
      for (const [f, s] of labelScores(value)) either.set(f, (either.get(f) || 0) + s);
      combine(either);
    }
  }
  const accepts = (f) => filters.every((p) => p(f)) && (scores === null || scores.has(f));
  if (scores === null) return { accepts, ranked: null };
  const ranked = [...scores.keys()].filter(accepts).sort((a, b) => scores.get(b) - scores.get(a) || a - b);
  return { accepts, ranked };
}

function labelScores(value) {
  const wanted = value.toLowerCase();
  const out = new Map();
  for (const [f, label] of labels) if (label.toLowerCase().includes(wanted)) out.set(f, 1);
  return out;
}

// text: decodes every shard once into lower-cased text with token offsets, kept apart from
// the shard cache, then finds the substring and maps each hit back to the examples holding it.
const textIndex = new Map(); // shard → { text, starts, spans: [[start, end, f]] }
async function textSearch(value) {
  const wanted = value.toLowerCase();
  const scores = new Map();
  if (!wanted) return scores;
  const shards = Math.ceil(INDEX.d_sae / INDEX.shard_size);
  for (let k = 0; k < shards; k++) {
    if (!textIndex.has(k)) {
      if (k % 4 === 0) $('search-status').textContent = 'decoding examples for text search… ' + Math.round(100 * k / shards) + '%';
      textIndex.set(k, buildTextIndex(await loadShardUncached(k)));
    }
    const { text, starts, spans } = textIndex.get(k);
    const hits = [];
    for (let at = text.indexOf(wanted); at >= 0; at = text.indexOf(wanted, at + 1)) hits.push(at);
    if (!hits.length) continue;
    for (const [start, end, f] of spans) {
      // Any hit starting inside the example's text counts.
      const a = starts[start], b = starts[end];
      let lo = 0, hi = hits.length;
      while (lo < hi) { const mid = (lo + hi) >> 1; if (hits[mid] < a) lo = mid + 1; else hi = mid; }
      if (lo < hits.length && hits[lo] < b) scores.set(f, (scores.get(f) || 0) + 1);
    }
  }
  $('search-status').textContent = '';
  return scores;
}

async function loadShardUncached(k) {
  if (shardCache.has(k)) return shardCache.get(k);
  return decodeShard(await inflate(base64Bytes(await shardSource(k))), k);
}

function buildTextIndex(shard) {
  const starts = new Int32Array(shard.pool.length + 1);
  const parts = [];
  let length = 0;
  for (let i = 0; i < shard.pool.length; i++) {
    starts[i] = length;
    const t = INDEX.vocab[shard.pool[i]].toLowerCase();
    parts.push(t);
    length += t.length;
  }
  starts[shard.pool.length] = length;
  const spans = [];
  for (let i = 0; i < shard.count; i++)
    for (const group of shard.feature(i).groups)
      for (const e of group.examples) spans.push([e.offset, e.offset + e.length, shard.first + i]);
  return { text: parts.join(''), starts, spans };
}

let searchSerial = 0;
async function runSearch(query) {
  const serial = ++searchSerial;
  state.q = query;
  const status = $('search-status');
  if (!query.trim()) {
    searchResult = null;
    status.textContent = '';
    refreshList();
    return;
  }
  try {
    const result = await evaluate(query);
    if (serial !== searchSerial) return; // a newer keystroke won
    searchResult = result;
    status.textContent = result.ranked ? int(result.ranked.length) + ' matching features, best first' : '';
    status.classList.remove('error');
  } catch (err) {
    if (serial !== searchSerial) return;
    searchResult = { accepts: () => false, ranked: [] };
    status.textContent = err.message;
    status.classList.add('error');
  }
  refreshList();
  $('list').scrollTop = 0;
  renderRows(true);
  const jump = query.trim().match(/^#(\d+)$/);
  if (jump && Number(jump[1]) < INDEX.d_sae && Number(jump[1]) !== state.f) await showFeature(Number(jump[1]));
}

// ---- 8. Feature page ------------------------------------------------------------------------
let renderSerial = 0;

async function showFeature(f, options = {}) {
  if (f === null || f < 0 || f >= INDEX.d_sae) return;
  state.f = f;
  state.cmp = null;
  state.prompts = false;
  const serial = ++renderSerial;
  const page = await featurePage(f);
  if (serial !== renderSerial) return;
  const main = $('main');
  let t = performance.now();
  const built = renderPage(page, false);
  phase('build', performance.now() - t);
  t = performance.now();
  // Scrolled to the top while the old page is still laid out: setting scrollTop after the
  // swap would force a layout of the new page inside this task.
  if (!options.keepScroll) main.scrollTop = 0;
  main.classList.remove('compare');
  main.replaceChildren(built);
  markCurrentRow();
  writeHashSoon();
  phase('attach', performance.now() - t);
}

async function showCompare(a, b) {
  state.prompts = false;
  state.f = a;
  state.cmp = b;
  const serial = ++renderSerial;
  const pages = await Promise.all([featurePage(a), featurePage(b)]);
  if (serial !== renderSerial) return;
  const main = $('main');
  main.textContent = '';
  main.classList.add('compare');
  for (const page of pages) main.appendChild(renderPage(page, true));
  markCurrentRow();
  writeHashSoon();
}

function renderPage(page, compact) {
  const f = page.f;
  const root = el('article', 'feature');
  root.dataset.f = f;
  root.appendChild(renderHeader(page, compact));
  root.appendChild(renderStats(page));
  const panels = el('div', 'panels');
  panels.appendChild(histogramPanel(page));
  if (INDEX.has_logits) panels.appendChild(logitPanel(page));
  root.appendChild(panels);
  root.appendChild(renderExamples(page));
  root.appendChild(renderSimilar(page));
  return root;
}

function renderHeader(page, compact) {
  const f = page.f;
  const head = el('div', 'head');
  const title = el('h1', null, 'Feature ' + f);
  head.appendChild(title);
  for (const name of flagNames(f)) head.appendChild(el('span', 'flag flag-' + name.toLowerCase(), name));
  const label = el('input', 'label-input');
  label.placeholder = 'your label for this feature';
  label.value = labels.get(f) || '';
  label.setAttribute('aria-label', 'label of feature ' + f);
  label.oninput = () => setLabel(f, label.value);
  head.appendChild(label);
  const tools = el('span', 'tools');
  if (compact) {
    const close = el('button', null, 'only this');
    close.type = 'button';
    close.onclick = () => showFeature(f);
    tools.appendChild(close);
  } else {
    const cmp = el('input', 'cmp-input');
    cmp.placeholder = 'compare with #';
    cmp.setAttribute('aria-label', 'compare with feature');
    cmp.onkeydown = (e) => {
      const other = Number(cmp.value.replace('#', ''));
      if (e.key === 'Enter' && Number.isInteger(other) && other >= 0 && other < INDEX.d_sae) showCompare(f, other);
    };
    tools.appendChild(cmp);
  }
  head.appendChild(tools);
  return head;
}

function stat(name, value, title) {
  const box = el('div', 'stat');
  box.append(el('div', 'k', name), el('div', 'v', value));
  if (title) box.title = title;
  return box;
}

function renderStats(page) {
  const f = page.f;
  const stats = el('div', 'stats');
  const firing = INDEX.firing[f];
  stats.appendChild(stat('density', densityText(f), 'fires (> 0) on ' + int(firing) + ' of ' + int(INDEX.tokens_seen) + ' tokens'));
  stats.appendChild(stat('firing tokens', int(firing) + ' / ' + int(INDEX.tokens_seen)));
  stats.appendChild(stat('activations > ' + num(INDEX.threshold), int(INDEX.count[f])));
  stats.appendChild(stat('max', num(INDEX.max[f])));
  stats.appendChild(stat('mean', num(INDEX.mean[f])));
  stats.appendChild(stat('std', num(INDEX.std[f])));
  const top = INDEX.top_token[f];
  if (top >= 0) stats.appendChild(stat('top token', tokenAlone(top) + ' · ' + Math.round(INDEX.top_share[f] * 100) + '%',
    'share of a uniform sample of ' + page.sampleSize + ' activations'));
  if (page.specialShare > 0) stats.appendChild(stat('on special tokens', Math.round(page.specialShare * 100) + '%'));
  return stats;
}

function logitPanel(page) {
  const panel = el('section', 'panel logits');
  panel.appendChild(el('h2', null, 'Logit effects'));
  const table = el('div', 'logit-table');
  for (const [side, name] of [[0, 'promotes'], [1, 'suppresses']]) {
    const col = el('div', 'logit-col');
    col.appendChild(el('h3', null, name));
    for (const { code, value } of page.logits[side]) {
      const row = el('div', 'logit ' + (side ? 'neg' : 'pos'));
      row.append(el('span', 'tok-text', tokenAlone(code)), el('span', 'num', (value > 0 ? '+' : '') + num(value, 3)));
      col.appendChild(row);
    }
    table.appendChild(col);
  }
  panel.appendChild(table);
  return panel;
}

function groupTitle(group, page) {
  if (group.kind === 'top') return 'Top activations';
  const total = INDEX.count[page.f];
  const range = group.lower === null ? 'empty' : num(group.lower, 3) + ' – ' + num(group.upper, 3);
  const share = total ? (100 * group.count / total).toPrecision(2) + '% of active tokens' : '';
  return 'Interval ' + (group.index + 1) + ': ' + range + ' · ' + share;
}

function renderExamples(page) {
  const section = el('section', 'examples');
  const bar = el('div', 'examples-bar');
  bar.appendChild(el('h2', null, 'Examples'));
  const widths = el('span', 'widths');
  widths.appendChild(el('span', 'k', 'context '));
  for (const w of WIDTHS) {
    const b = el('button', state.w === w ? 'on' : null, w === 'full' ? 'full window' : '±' + w);
    b.type = 'button';
    b.onclick = () => { state.w = w; rerender(); };
    widths.appendChild(b);
  }
  bar.appendChild(widths);
  if (!INDEX.has_token_activations) bar.appendChild(el('span', 'note', 'only the marked token is coloured: this collection did not record per-token activations'));
  section.appendChild(bar);
  let any = false;
  for (const group of page.groups) {
    if (!group.examples.length && group.kind === 'top') continue;
    any = true;
    const details = el('details', 'group');
    details.open = true;
    details.appendChild(el('summary', null, groupTitle(group, page) + ' (' + group.examples.length + ')'));
    for (const e of group.examples) details.appendChild(exampleRow(page, e));
    section.appendChild(details);
  }
  if (!any) section.appendChild(el('p', 'empty', INDEX.firing[page.f] === 0
    ? 'This feature never fired on the ' + int(INDEX.tokens_seen) + ' tokens collected.'
    : 'No activation passed the threshold ' + num(INDEX.threshold) + '.'));
  return section;
}

// One element per token (a switch lays out some 1,000 of them): the token's core in a
// `span.c`, its leading spaces as a bare text node before it, outside the colour, so a marked
// word does not look glued to the one before it. A token's index is its place among the
// row's spans, counted from the first one shown.
function exampleRow(page, e) {
  const row = el('div', 'ex');
  row.appendChild(el('span', 'act', num(e.act, 3)));
  const text = el('span', 'ctx');
  const radius = state.w === 'full' ? Infinity : Number(state.w);
  const first = Math.max(0, e.at - radius);
  const last = Math.min(e.length - 1, e.at + radius);
  const max = INDEX.max[page.f] || 1;
  for (let i = first; i <= last; i++) {
    const label = tokenLabel(page.pool[e.offset + i]);
    const core = label.trimStart();
    if (core.length < label.length && core.length) text.append(label.slice(0, label.length - core.length));
    const span = el('span', 'c', core || label);
    const value = e.values ? e.values.get(i) || 0 : i === e.at ? e.act : null;
    if (value) {
      span.style.background = colour(value / max);
      if (value / max > 0.6) span.classList.add('dark');
    }
    if (i === e.at) span.classList.add('mark');
    text.appendChild(span);
  }
  text.onmouseover = (ev) => {
    const span = ev.target.closest('.c');
    if (span) showTooltip(span, page, e, first + Array.prototype.indexOf.call(text.children, span));
  };
  text.onmouseleave = hideTooltip;
  row.appendChild(text);
  row.appendChild(el('span', 'where', e.sequence + ':' + e.position));
  row.lastChild.title = 'sequence : position of the marked token';
  return row;
}

const SIMILAR_NAMES = [
  ['same tokens', 'overlap of the tokens the two features fire on'],
  ['same passages', 'Jaccard index of the passages (sequence, window) their examples come from'],
  ['decoder cosine', 'cosine of the decoder directions'],
];

function renderSimilar(page) {
  const section = el('section', 'similar');
  section.appendChild(el('h2', null, 'Similar features'));
  const cols = el('div', 'similar-cols');
  page.similar.forEach((list, kind) => {
    if (kind === 2 && !INDEX.has_decoder) return;
    const col = el('div', 'similar-col');
    const h = el('h3', null, SIMILAR_NAMES[kind][0]);
    h.title = SIMILAR_NAMES[kind][1];
    col.appendChild(h);
    if (!list.length) col.appendChild(el('p', 'empty', 'none'));
    for (const { f, score } of list) {
      const row = el('a', 'sim');
      row.href = '#f=' + f;
      row.onclick = (ev) => { ev.preventDefault(); ev.shiftKey ? showCompare(page.f, f) : showFeature(f); };
      row.title = 'click: open · shift-click: compare side by side';
      const barBox = el('span', 'bar');
      const fill = el('span', 'fill');
      fill.style.width = Math.round(Math.max(0, Math.min(1, score)) * 100) + '%';
      barBox.appendChild(fill);
      const top = INDEX.top_token[f];
      row.append(el('span', 'id', '#' + f), barBox, el('span', 'num', num(score, 2)),
        el('span', 'tok-text', labels.get(f) || (top >= 0 ? tokenAlone(top) : '')));
      col.appendChild(row);
    }
    cols.appendChild(col);
  });
  section.appendChild(cols);
  return section;
}

function rerender() {
  if (state.cmp !== null) showCompare(state.f, state.cmp);
  else if (state.f !== null) showFeature(state.f, { keepScroll: true });
  writeHash();
}

// ---- 9. Histogram ---------------------------------------------------------------------------
// The collector's fixed bins: 8 per octave from 2^-8 to 2^12, so on a log2 activation axis
// every bin has the same width and bar heights compare honestly. Bin 0 holds values below
// 2^-8, the last bin values from 2^12 up.
const SVG = 'http://www.w3.org/2000/svg';
function svg(tag, attrs) {
  const node = document.createElementNS(SVG, tag);
  for (const k in attrs) node.setAttribute(k, attrs[k]);
  return node;
}
function binLower(b) { return b === 0 ? 0 : Math.pow(2, -8 + Math.floor((b - 1) / 8)) * (1 + ((b - 1) % 8) / 8); }
// Fractional bin position of an activation (inverse of binLower within a bin).
function binPosition(v) {
  if (v < Math.pow(2, -8)) return 0.5;
  const e = Math.floor(Math.log2(v));
  return 1 + 8 * (e + 8) + (v / Math.pow(2, e) - 1) * 8;
}

function histogramPanel(page) {
  const panel = el('section', 'panel histogram');
  const head = el('div', 'panel-head');
  head.appendChild(el('h2', null, 'Activations above ' + num(INDEX.threshold)));
  const toggle = el('button', null, state.log ? 'log count' : 'linear count');
  toggle.type = 'button';
  toggle.title = 'switch the count axis between linear and log';
  toggle.onclick = () => { state.log = !state.log; rerender(); };
  head.appendChild(toggle);
  panel.appendChild(head);
  if (!page.hist.length) {
    panel.appendChild(el('p', 'empty', 'no activations above the threshold'));
    return panel;
  }
  const W = 420, H = 150, L = 44, B = 28, T = 8;
  const chart = svg('svg', { viewBox: '0 0 ' + W + ' ' + H, class: 'hist', role: 'img' });
  chart.appendChild(svg('title', {})).textContent = 'histogram of the activations, log-spaced bins';
  const n = page.hist.length;
  const bw = (W - L - 6) / n;
  const peak = Math.max(...page.hist);
  const scale = (c) => (state.log ? Math.log10(1 + c) / Math.log10(1 + peak) : c / peak) * (H - B - T);
  page.hist.forEach((c, i) => {
    if (!c) return;
    const h = Math.max(1, scale(c));
    const b = page.histFirst + i;
    const rect = svg('rect', { x: L + i * bw, y: H - B - h, width: Math.max(1, bw - 0.5), height: h, class: 'bar' });
    const lower = b === 0 ? INDEX.min[page.f] : binLower(b);
    const upper = b === 161 ? INDEX.max[page.f] : binLower(b + 1);
    rect.appendChild(svg('title', {})).textContent = num(lower, 3) + ' – ' + num(upper, 3) + ': ' + int(c) + ' activations';
    chart.appendChild(rect);
  });
  // y axis: the peak count; x axis: powers of two that fall inside the range.
  chart.appendChild(svg('line', { x1: L, y1: H - B, x2: W - 4, y2: H - B, class: 'axis' }));
  const label = (x, y, text, anchor) => { const t = svg('text', { x, y, 'text-anchor': anchor || 'middle', class: 'tick' }); t.textContent = text; chart.appendChild(t); };
  label(L - 4, T + 8, int(peak), 'end');
  label(L - 4, H - B, '0', 'end');
  const firstBin = page.histFirst, lastBin = page.histFirst + n;
  const step = n > 48 ? 16 : 8;
  for (let b = Math.ceil((firstBin - 1) / step) * step + 1; b <= lastBin; b += step) {
    if (b < firstBin) continue;
    const x = L + (b - firstBin) * bw;
    chart.appendChild(svg('line', { x1: x, y1: H - B, x2: x, y2: H - B + 4, class: 'axis' }));
    label(x, H - B + 16, num(binLower(b), 3));
  }
  label(W - 4, H - 2, 'activation (log scale)', 'end');
  const marker = svg('line', { x1: 0, y1: T, x2: 0, y2: H - B, class: 'marker', visibility: 'hidden' });
  chart.appendChild(marker);
  chart.moveMarker = (v) => {
    if (v === null) { marker.setAttribute('visibility', 'hidden'); return; }
    const x = L + (binPosition(v) - firstBin) * bw;
    marker.setAttribute('x1', x); marker.setAttribute('x2', x);
    marker.setAttribute('visibility', 'visible');
  };
  page.chart = chart;
  panel.appendChild(chart);
  return panel;
}

// Share of the feature's activations at or above v, from the histogram (within a bin:
// linear interpolation).
function rankOf(page, v) {
  const total = page.hist.reduce((a, b) => a + b, 0);
  if (!total) return null;
  let above = 0;
  page.hist.forEach((c, i) => {
    const b = page.histFirst + i;
    const lo = b === 0 ? 0 : binLower(b), hi = b === 161 ? Infinity : binLower(b + 1);
    if (lo >= v) above += c;
    else if (hi > v) above += c * (hi === Infinity ? 1 : (hi - v) / (hi - lo));
  });
  return { above: Math.max(1, Math.round(above)), total };
}

// ---- 10. Tooltip ------------------------------------------------------------------------------
function showTooltip(span, page, e, i) {
  const code = page.pool[e.offset + i];
  const tip = $('tooltip');
  tip.textContent = '';
  const text = visible(INDEX.vocab[code]).replace(/ /g, '␣');
  tip.appendChild(el('div', 'tip-token', text.length > 200 ? text.slice(0, 200) + '…' : text));
  const value = e.values ? e.values.get(i) || 0 : i === e.at ? e.act : null;
  const lines = ['token id ' + INDEX.vocab_ids[code]];
  if (value === null) lines.push('activation not recorded (only the marked token)');
  else {
    lines.push('activation ' + (i === e.at ? num(value) : value ? '≈ ' + num(value, 3) : '0'));
    const rank = value ? rankOf(page, value) : null;
    if (rank) lines.push('rank ≈ ' + int(rank.above) + ' of ' + int(rank.total) + ' (top ' + (100 * rank.above / rank.total).toPrecision(2) + '%)');
  }
  lines.push('sequence ' + e.sequence + ', position ' + (e.position - e.at + i) + (i === e.at ? ' (marked)' : ''));
  for (const line of lines) tip.appendChild(el('div', null, line));
  tip.hidden = false;
  const box = span.getBoundingClientRect();
  tip.style.left = Math.min(window.innerWidth - tip.offsetWidth - 8, Math.max(8, box.left)) + 'px';
  tip.style.top = (box.bottom + 6 + tip.offsetHeight > window.innerHeight ? box.top - tip.offsetHeight - 6 : box.bottom + 6) + 'px';
  const chart = span.closest('.feature') && span.closest('.feature').querySelector('svg.hist');
  if (chart && chart.moveMarker) chart.moveMarker(value || null);
}

function hideTooltip() {
  $('tooltip').hidden = true;
  document.querySelectorAll('svg.hist').forEach((c) => c.moveMarker && c.moveMarker(null));
}

// ---- 10b. Prompt view ---------------------------------------------------------------------------
// `saectl dashboard … --prompts FILE`: the texts the model and the SAE ran on, each coloured by
// one feature (#prompts&pf=12, else each text's strongest), every token's features on hover
// and, on click, as links into the feature pages.
let PROMPTS = null;

async function loadPrompts() {
  const block = $('saectl-prompts');
  if (!block) return;
  PROMPTS = JSON.parse(new TextDecoder().decode(await inflate(base64Bytes(block.textContent))));
  const button = el('button', null, 'Prompts');
  button.id = 'prompts-open';
  button.type = 'button';
  button.title = 'The texts given with --prompts: which features fire on each token';
  button.onclick = () => showPrompts(state.pf);
  $('bar').insertBefore(button, $('labels-export'));
}

// What a feature is called beside its id: the reader's label, else its top token.
function featureName(f) {
  const top = f < INDEX.d_sae ? INDEX.top_token[f] : -1;
  return labels.get(f) || (top >= 0 ? tokenAlone(top) : '');
}

function featureLink(f, text) {
  const a = el('a', 'flink', text || '#' + f);
  a.href = '#f=' + f;
  a.title = 'open feature ' + f;
  a.onclick = (ev) => { ev.preventDefault(); ev.stopPropagation(); hideTooltip(); showFeature(f); };
  return a;
}

function showPrompts(pf) {
  state.prompts = true;
  state.cmp = null;
  state.pf = pf === undefined || pf === null || pf >= INDEX.d_sae ? null : pf;
  ++renderSerial;
  hideTooltip();
  const main = $('main');
  main.textContent = '';
  main.classList.remove('compare');
  if (!PROMPTS) {
    main.appendChild(el('p', 'empty', 'This dashboard has no prompt view: build it with `saectl dashboard DIR --checkpoint SAE --prompts FILE`.'));
  } else main.appendChild(renderPrompts());
  main.scrollTop = 0;
  renderRows(true);
  writeHash();
}

function renderPrompts() {
  const root = el('article', 'prompts');
  const head = el('div', 'head');
  head.appendChild(el('h1', null, 'Prompts'));
  head.appendChild(el('span', 'note', PROMPTS.texts.length + ' texts · ' + PROMPTS.hook + ' · ' + PROMPTS.model));
  root.appendChild(head);
  const hint = el('p', 'note');
  if (state.pf === null) hint.textContent = 'Each text is coloured by its strongest feature. Click a feature row to colour every text by it; hover a token for its features, click it to list them.';
  else {
    hint.append('Every text coloured by ');
    hint.appendChild(featureLink(state.pf, '#' + state.pf + ' ' + featureName(state.pf)));
    hint.append(' (white: it does not fire) ');
    const back = el('button', null, 'strongest per text');
    back.type = 'button';
    back.onclick = () => showPrompts(null);
    hint.appendChild(back);
  }
  root.appendChild(hint);
  PROMPTS.texts.forEach((p, i) => root.appendChild(promptSection(p, i)));
  return root;
}

function promptSection(p, i) {
  const section = el('section', 'prompt');
  section.dataset.p = i;
  const f = state.pf !== null ? state.pf : p.top.length ? p.top[0].f : null;
  const values = new Map(); // position → activation of f
  if (f !== null) p.acts.forEach((list, t) => { for (const [g, a] of list) if (g === f) values.set(t, a); });
  section.dataset.f = f === null ? '' : f;
  // The feature's max over the collection, so colours mean what they mean on its page.
  const scale = f !== null && INDEX.max[f] > 0 ? INDEX.max[f] : Math.max(1e-9, ...values.values());
  const h = el('h2', null, 'Text ' + (i + 1) + ' · ' + p.tokens.length + ' tokens');
  if (f !== null && state.pf === null) {
    h.append(' · coloured by ');
    h.appendChild(featureLink(f, '#' + f + ' ' + featureName(f)));
  }
  section.appendChild(h);
  const ctx = el('div', 'ctx');
  const special = new Set(p.special);
  p.tokens.forEach((token, t) => {
    const label = visible(token);
    const core = label.trimStart();
    const span = el('span', 't', label.slice(0, label.length - core.length) || null);
    const inner = el('span', 'c', core || label);
    span.appendChild(inner);
    const v = values.get(t);
    if (v) {
      inner.style.background = colour(v / scale);
      if (v / scale > 0.6) inner.classList.add('dark');
    }
    if (special.has(t)) inner.classList.add('special');
    span.dataset.t = t;
    ctx.appendChild(span);
  });
  const pinned = el('div', 'token-features');
  ctx.onmouseover = (ev) => { const span = ev.target.closest('.t'); if (span) showPromptTooltip(span, p, Number(span.dataset.t)); };
  ctx.onmouseleave = hideTooltip;
  ctx.onclick = (ev) => { const span = ev.target.closest('.t'); if (span) pinTokenFeatures(pinned, p, Number(span.dataset.t)); };
  section.append(ctx, pinned);
  section.appendChild(promptTable(p, f));
  return section;
}

function promptTable(p, current) {
  const table = el('table', 'prompt-top');
  const head = el('tr');
  for (const name of ['feature', '', 'sum', 'max', 'tokens', 'strongest on']) head.appendChild(el('th', null, name));
  table.appendChild(head);
  for (const g of p.top) {
    const row = el('tr', g.f === current ? 'current' : null);
    row.title = 'click: colour every text by feature ' + g.f;
    row.onclick = () => showPrompts(g.f);
    const id = el('td');
    id.appendChild(featureLink(g.f));
    row.append(id, el('td', 'tok-text', featureName(g.f)), el('td', 'num', num(g.sum, 3)), el('td', 'num', num(g.max, 3)),
      el('td', 'num', String(g.tokens)), el('td', 'tok-text', visible(p.tokens[g.at] || '').replace(/ /g, '␣')));
    table.appendChild(row);
  }
  if (!p.top.length) {
    const row = el('tr');
    const cell = el('td', 'empty', 'no feature fires on this text');
    cell.colSpan = 6;
    row.appendChild(cell);
    table.appendChild(row);
  }
  return table;
}

const TIP_FEATURES = 8;
function showPromptTooltip(span, p, t) {
  const tip = $('tooltip');
  tip.textContent = '';
  const text = visible(p.tokens[t]).replace(/ /g, '␣');
  tip.appendChild(el('div', 'tip-token', text.length > 200 ? text.slice(0, 200) + '…' : text));
  const lines = ['position ' + t];
  if (p.special.includes(t)) lines.push('special token: its activations are left out');
  else if (!p.acts[t].length) lines.push('no feature fires');
  else {
    lines.push(p.acts[t].length + ' features fire' + (p.acts[t].length > TIP_FEATURES ? '; the strongest:' : ':'));
    for (const [f, a] of p.acts[t].slice(0, TIP_FEATURES)) lines.push('#' + f + '  ' + num(a, 3) + '  ' + featureName(f));
  }
  for (const line of lines) tip.appendChild(el('div', null, line));
  tip.hidden = false;
  const box = span.getBoundingClientRect();
  tip.style.left = Math.min(window.innerWidth - tip.offsetWidth - 8, Math.max(8, box.left)) + 'px';
  tip.style.top = (box.bottom + 6 + tip.offsetHeight > window.innerHeight ? box.top - tip.offsetHeight - 6 : box.bottom + 6) + 'px';
}

function pinTokenFeatures(box, p, t) {
  box.textContent = '';
  box.appendChild(el('span', 'note', visible(p.tokens[t]).replace(/ /g, '␣') + ' (position ' + t + '): '));
  if (!p.acts[t].length) box.appendChild(el('span', 'note', p.special.includes(t) ? 'special token' : 'no feature fires'));
  for (const [f, a] of p.acts[t]) {
    const link = featureLink(f, '#' + f + ' ' + num(a, 3));
    link.title = featureName(f) + ' — open feature ' + f;
    box.appendChild(link);
  }
}

function describePrompts() {
  const article = $('main').querySelector('article.prompts');
  if (!article) return null;
  return [...article.querySelectorAll('section.prompt')].map((section) => ({
    coloured_by: section.dataset.f === '' ? null : Number(section.dataset.f),
    tokens: section.querySelectorAll('.ctx .t').length,
    coloured_tokens: [...section.querySelectorAll('.ctx .c')].filter((c) => c.style.background).length,
    top: [...section.querySelectorAll('table.prompt-top .flink')].map((a) => Number(a.textContent.slice(1))),
  }));
}

// ---- 11. Labels -------------------------------------------------------------------------------
// Kept in localStorage under the SAE's identity; exported as {"labels": {"12": "…"}} for
// `saectl report --labels FILE`.
let labels = new Map();
const labelKey = () => 'saectl-labels:' + INDEX.provenance.label_key;

function loadLabels() {
  try {
    const stored = JSON.parse(localStorage.getItem(labelKey()) || '{}');
    labels = new Map(Object.entries(stored).map(([k, v]) => [Number(k), String(v)]));
  } catch (err) {
    labels = new Map(); // storage unavailable (private mode): labels live for this visit
  }
}

function saveLabels() {
  try { localStorage.setItem(labelKey(), JSON.stringify(Object.fromEntries(labels))); } catch (err) { /* see loadLabels */ }
}

let chipTimer = null;
function setLabel(f, text) {
  if (text.trim()) labels.set(f, text); else labels.delete(f);
  saveLabels();
  renderRows(true);
  clearTimeout(chipTimer);
  chipTimer = setTimeout(renderChips, 300);
}

function exportLabels() {
  const body = { format: 'saectl-labels', version: 1, sae: INDEX.provenance.label_key,
    title: INDEX.provenance.title, labels: Object.fromEntries([...labels].sort((a, b) => a[0] - b[0])) };
  const link = document.createElement('a');
  link.href = 'data:application/json;charset=utf-8,' + encodeURIComponent(JSON.stringify(body, null, 2) + '\n');
  link.download = 'labels.json';
  document.body.appendChild(link);
  link.click();
  link.remove();
}

function importLabels(file) {
  const reader = new FileReader();
  reader.onload = () => {
    try {
      const body = JSON.parse(reader.result);
      for (const [k, v] of Object.entries(body.labels || {})) if (/^\d+$/.test(k) && String(v).trim()) labels.set(Number(k), String(v));
      saveLabels();
      renderChips();
      refreshList();
      rerender();
    } catch (err) {
      $('search-status').textContent = file.name + ' is not a labels file: ' + err.message;
    }
  };
  reader.readAsText(file);
}

// ---- 12. Keys ---------------------------------------------------------------------------------
function step(delta) {
  if (!listed.length) return;
  const at = listed.indexOf(state.f);
  const next = listed[Math.max(0, Math.min(listed.length - 1, at < 0 ? 0 : at + delta))];
  showFeature(next);
  const list = $('list');
  const i = listed.indexOf(next);
  if (i * ROW < list.scrollTop || (i + 1) * ROW > list.scrollTop + list.clientHeight) list.scrollTop = i * ROW - list.clientHeight / 2;
}

function onKey(e) {
  const typing = /INPUT|SELECT|TEXTAREA/.test(document.activeElement.tagName);
  if (e.key === 'Escape') { $('help').hidden = true; hideTooltip(); if (typing) document.activeElement.blur(); return; }
  if (typing || e.ctrlKey || e.metaKey || e.altKey) return;
  const actions = {
    '/': () => $('search').focus(),
    j: () => step(1), k: () => step(-1),
    r: () => showFeature(listed.length ? listed[Math.floor(Math.random() * listed.length)] : Math.floor(Math.random() * INDEX.d_sae)),
    '[': () => { state.w = WIDTHS[Math.max(0, WIDTHS.indexOf(state.w) - 1)]; rerender(); },
    ']': () => { state.w = WIDTHS[Math.min(WIDTHS.length - 1, WIDTHS.indexOf(state.w) + 1)]; rerender(); },
    l: () => { const input = document.querySelector('.label-input'); if (input) input.focus(); },
    '?': () => { $('help').hidden = !$('help').hidden; },
  };
  if (actions[e.key]) { e.preventDefault(); actions[e.key](); }
}

// ---- 13. Self-test ------------------------------------------------------------------------------
// #selftest&f=7&q=tok:cat renders the view, measures, and writes a JSON summary into
// <pre id="selftest"> (read by the tests with --dump-dom). The data blocks are removed first so
// that the dump stays small.
const timings = {};

function median(xs) { const s = [...xs].sort((a, b) => a - b); return s.length ? s[Math.floor(s.length / 2)] : null; }

// A token of an example row as it reads: its leading spaces are the text node before it.
function withLeadingSpace(span) {
  const before = span.previousSibling;
  return (before && before.nodeType === Node.TEXT_NODE ? before.data : '') + span.textContent;
}

function describeView() {
  const main = $('main');
  const pages = [...main.querySelectorAll('article.feature')];
  return pages.map((article) => ({
    feature: Number(article.dataset.f),
    flags: [...article.querySelectorAll('.head .flag')].map((n) => n.textContent),
    groups: [...article.querySelectorAll('details.group')].map((d) => d.querySelectorAll('.ex').length),
    coloured_tokens: [...article.querySelectorAll('.ctx .c')].filter((t) => t.style.background).length,
    marked_tokens: [...article.querySelectorAll('.ctx .c.mark')].map(withLeadingSpace),
    max_shown: Math.max(0, ...[...article.querySelectorAll('.ex .act')].map((n) => Number(n.textContent))),
    stats: Object.fromEntries([...article.querySelectorAll('.stat')].map((s) => [s.firstChild.textContent, s.lastChild.textContent])),
    logits: [...article.querySelectorAll('.logit.pos .tok-text')].map((n) => n.textContent),
    similar: [...article.querySelectorAll('.similar-col')].map((c) => [...c.querySelectorAll('.sim .id')].map((n) => Number(n.textContent.slice(1)))),
    histogram_bars: article.querySelectorAll('svg.hist rect.bar').length,
  }));
}

async function selftest(scriptsAtStart) {
  const out = { d_sae: INDEX.d_sae, shards: Math.ceil(INDEX.d_sae / INDEX.shard_size), split: CONFIG.split };
  out.view = describeView();
  out.prompts = describePrompts();
  out.search = { query: state.q, results: listed.slice(0, 100), result_count: listed.length, status: $('search-status').textContent };
  out.chips = Object.fromEntries([...$('chips').children].map((c) => [c.dataset.filter, Number(c.lastChild.textContent.replace(/,/g, ''))]));
  out.list_rows = [...$('list').querySelectorAll('.row')].filter((r) => !r.hidden).length;
  out.scripts = { at_start: scriptsAtStart, now: document.scripts.length, executable: [...document.scripts].filter((s) => !s.type || s.type === 'text/javascript').length };
  out.timings = { ...timings };
  // Switching feature: 50 features spread over the shards (a fixed sequence), each awaited.
  const picks = [];
  for (let i = 0; i < 50 && INDEX.d_sae > 0; i++) picks.push((i * 7919 + 13) % INDEX.d_sae);
  const switches = [];
  // Each switch includes the layout of the new page (forced by reading its height).
  // A switch is measured from the click to the new page laid out (forced by reading its
  // height), and to the first frame after it (its paint: requestAnimationFrame runs before
  // the frame, a task queued there runs after it). Each starts after the previous page's frame,
  // as a reader's clicks do, so no switch pays for the one before.
  // Frames are waited for only when asked (`&frames`, the wall-clock benchmark): under the
  // tests' virtual time they come too seldom for the page to finish; a plain task stands in.
  const framed = new URLSearchParams(requestedHash.slice(1)).has('frames');
  const nextFrame = () => new Promise((done) => (framed ? requestAnimationFrame(() => setTimeout(done, 0)) : setTimeout(done, 0)));
  const painted = [];
  const split = [];
  for (const f of picks) {
    await nextFrame();
    phases = {};
    const t = performance.now();
    await showFeature(f);
    const laidOut = performance.now();
    void $('main').scrollHeight;
    phases.layout = performance.now() - laidOut;
    switches.push(performance.now() - t);
    await nextFrame();
    painted.push(performance.now() - t);
    split.push(phases);
  }
  phases = null;
  // Switching to the next feature (j): the same shard, already inflated.
  const adjacent = [];
  for (let i = 1; i <= 20 && picks.length && picks[0] + i < INDEX.d_sae; i++) {
    await nextFrame();
    const t = performance.now();
    await showFeature(picks[0] + i);
    void $('main').scrollHeight;
    adjacent.push(performance.now() - t);
  }
  out.timings.switch_next_median_ms = median(adjacent);
  out.timings.switch_median_ms = median(switches);
  out.timings.switch_painted_median_ms = median(painted);
  out.timings.switch_phases_median_ms = Object.fromEntries(['base64', 'inflate', 'decode_shard', 'decode_feature', 'build', 'attach', 'layout']
    .map((name) => [name, median(split.map((p) => p[name] || 0))]));
  out.timings.switch_max_ms = switches.length ? Math.max(...switches) : null;
  // Search keystrokes: each prefix of a few queries, as if typed.
  const keystrokes = [];
  const word = INDEX.top_token.find((c) => c >= 0);
  const typed = [word !== undefined ? 'tok:' + INDEX.vocab[word].trim() : 'tok:a', 'max>1', 'density<1e-3'];
  for (const query of typed) for (let n = 1; n <= query.length; n++) {
    const t = performance.now(); await runSearch(query.slice(0, n)); keystrokes.push(performance.now() - t);
  }
  out.timings.keystroke_median_ms = median(keystrokes);
  out.timings.keystroke_max_ms = keystrokes.length ? Math.max(...keystrokes) : null;
  // Text search: the first decodes every shard, later ones search what is decoded.
  if (word !== undefined) {
    let t = performance.now();
    await runSearch('text:' + INDEX.vocab[word].trim());
    out.timings.text_search_first_ms = performance.now() - t;
    t = performance.now();
    await runSearch('text:' + INDEX.vocab[word].trim().slice(0, 3));
    out.timings.text_search_ms = performance.now() - t;
  }
  // Leave the requested view on screen for a screenshot of the same run.
  history.replaceState(null, '', requestedHash);
  readHash();
  await applyState();
  out.problems = problems;
  document.querySelectorAll('script[type="application/octet-stream"]').forEach((s) => s.remove());
  const pre = $('selftest');
  pre.textContent = JSON.stringify(out);
  pre.dataset.done = '1';
}

// ---- 14. Start ----------------------------------------------------------------------------------
async function applyState() {
  $('search').value = state.q;
  await runSearch(state.q);
  if (state.prompts) return showPrompts(state.pf);
  if (state.f === null && listed.length) state.f = listed[0];
  if (state.cmp !== null && state.f !== null) await showCompare(state.f, state.cmp);
  else if (state.f !== null) await showFeature(state.f);
  else $('main').textContent = 'No feature to show.';
}

const requestedHash = location.hash;

async function start() {
  const scriptsAtStart = document.scripts.length;
  const t0 = performance.now();
  const bytes = await inflate(base64Bytes($('saectl-index').textContent));
  INDEX = JSON.parse(new TextDecoder().decode(bytes));
  timings.index_ms = performance.now() - t0;
  if (INDEX.format !== 1) throw new Error('this page cannot read data format ' + INDEX.format);
  document.title = INDEX.provenance.title;
  $('title').textContent = INDEX.provenance.title;
  const src = INDEX.provenance.source;
  $('facts').textContent = int(INDEX.tokens_seen) + ' tokens' + (src.model ? ' · ' + src.model : '') + (src.hook_point ? ' · ' + src.hook_point : '');
  $('facts').title = Object.entries(src).map(([k, v]) => k + ': ' + (typeof v === 'string' ? v : JSON.stringify(v))).join('\n');
  loadLabels();
  await loadPrompts();
  readHash();
  renderChips();
  $('sort').onchange = () => { state.sort = $('sort').value; refreshList(); };
  $('search').oninput = () => runSearch($('search').value);
  $('list').onscroll = () => renderRows(false);
  $('labels-export').onclick = exportLabels;
  $('labels-import').onchange = (e) => e.target.files[0] && importLabels(e.target.files[0]);
  $('help-toggle').onclick = () => { $('help').hidden = !$('help').hidden; };
  $('home').onclick = (e) => { e.preventDefault(); $('search').value = ''; state.filter = 'all'; runSearch(''); };
  document.addEventListener('keydown', onKey);
  window.addEventListener('hashchange', () => { readHash(); applyState(); });
  window.addEventListener('resize', () => renderRows(true));
  await applyState();
  void $('main').scrollHeight; // laid out, as a switch is measured
  timings.first_feature_ms = performance.now(); // since navigation start
  timings.script_start_ms = t0;
  if (state.selftest) await selftest(scriptsAtStart);
}

start().catch((err) => {
  console.error(err && err.stack ? err.stack : String(err));
  $('main').textContent = 'The dashboard could not start: ' + err.message;
  if (state.selftest) {
    $('selftest').textContent = JSON.stringify({ fatal: String(err), problems });
    $('selftest').dataset.done = '1';
  }
});
