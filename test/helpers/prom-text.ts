// A strict parser of the Prometheus text exposition format (version 0.0.4), for tests only:
// parse-prometheus-text-format is not installed and prom-client has no parser. It checks
// what a scraper would: HELP/TYPE before samples, one TYPE per family, samples named for
// their family (histograms: _bucket, _sum, _count), label syntax and escapes, numeric values,
// and each histogram series' buckets: cumulative, with +Inf equal to _count.

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Family {
  name: string;
  help: string;
  type: 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';
  samples: Sample[];
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

export function parsePrometheusText(text: string): Map<string, Family> {
  const families = new Map<string, Family>();
  let current: Family | null = null;
  const fail = (n: number, line: string, why: string): never => {
    throw new Error(`line ${n + 1}: ${why}: ${JSON.stringify(line)}`);
  };
  text.split('\n').forEach((line, n) => {
    if (line === '') return;
    if (line.startsWith('#')) {
      const m = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line);
      if (!m) return; // a plain comment
      const [, kind, name, rest] = m as unknown as [string, string, string, string];
      if (!NAME.test(name)) fail(n, line, 'bad metric name');
      let f = families.get(name);
      if (!f) {
        f = { name, help: '', type: 'untyped', samples: [] };
        families.set(name, f);
      } else if (f.samples.length > 0) fail(n, line, `${kind} after samples of ${name}`);
      if (kind === 'TYPE') {
        if (!['counter', 'gauge', 'histogram', 'summary', 'untyped'].includes(rest)) fail(n, line, 'unknown type');
        f.type = rest as Family['type'];
      } else f.help = rest;
      current = f;
      return;
    }
    const s = parseSample(line, (why) => fail(n, line, why));
    const fam: Family | null = current;
    if (!fam) return fail(n, line, 'sample before any HELP/TYPE');
    const suffixes = fam.type === 'histogram' ? ['_bucket', '_sum', '_count'] : fam.type === 'summary' ? ['', '_sum', '_count'] : [''];
    if (!suffixes.some((x) => s.name === fam.name + x)) fail(n, line, `sample does not belong to family ${fam.name} (${fam.type})`);
    if (fam.type === 'histogram' && s.name.endsWith('_bucket') && s.labels.le === undefined) fail(n, line, 'bucket without le');
    if (fam.type === 'counter' && s.value < 0) fail(n, line, 'negative counter');
    fam.samples.push(s);
  });
  for (const f of families.values()) if (f.type === 'histogram') checkHistogram(f);
  return families;
}

function parseSample(line: string, fail: (why: string) => never): Sample {
  const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+)( -?\d+)?$/.exec(line);
  if (!m) fail('not a sample line');
  const [, name, rawLabels, rawValue] = m!;
  const labels: Record<string, string> = {};
  if (rawLabels) {
    let rest = rawLabels.slice(1, -1);
    while (rest.length > 0) {
      const lm = /^([^=]+)="((?:[^"\\\n]|\\[\\"n])*)"(,?)/.exec(rest);
      if (!lm) fail('bad label set');
      const [all, key, val, comma] = lm!;
      if (!LABEL_NAME.test(key!)) fail(`bad label name ${key}`);
      if (key! in labels) fail(`label ${key} twice`);
      labels[key!] = val!.replace(/\\(.)/g, (_x, c: string) => (c === 'n' ? '\n' : c));
      rest = rest.slice(all.length);
      if (!comma && rest.length > 0) fail('labels not separated by commas');
    }
  }
  const value = rawValue === '+Inf' ? Infinity : rawValue === '-Inf' ? -Infinity : rawValue === 'NaN' ? NaN : Number(rawValue);
  if (Number.isNaN(value) && rawValue !== 'NaN') fail(`bad value ${rawValue}`);
  return { name: name!, labels, value };
}

/** Buckets of one series non-decreasing in le and in count, +Inf present and equal to _count. */
function checkHistogram(f: Family): void {
  const series = new Map<string, { buckets: Array<[number, number]>; count?: number; sum?: number }>();
  for (const s of f.samples) {
    const { le, ...rest } = s.labels;
    const key = JSON.stringify(Object.entries(rest).sort());
    const e = series.get(key) ?? { buckets: [] };
    series.set(key, e);
    if (s.name.endsWith('_bucket')) e.buckets.push([le === '+Inf' ? Infinity : Number(le), s.value]);
    else if (s.name.endsWith('_count')) e.count = s.value;
    else e.sum = s.value;
  }
  for (const [key, e] of series) {
    const where = `${f.name}${key}`;
    if (e.count === undefined || e.sum === undefined) throw new Error(`${where}: _count or _sum missing`);
    for (let i = 1; i < e.buckets.length; i++) {
      if (!(e.buckets[i]![0] > e.buckets[i - 1]![0])) throw new Error(`${where}: le not increasing`);
      if (e.buckets[i]![1] < e.buckets[i - 1]![1]) throw new Error(`${where}: bucket counts not cumulative`);
    }
    const inf = e.buckets.at(-1);
    if (!inf || inf[0] !== Infinity) throw new Error(`${where}: no +Inf bucket`);
    if (inf[1] !== e.count) throw new Error(`${where}: +Inf bucket ${inf[1]} != _count ${e.count}`);
  }
}

/** The value of the one sample of `name` whose labels include `labels` (throws if not exactly one). */
export function valueOf(families: Map<string, Family>, name: string, labels: Record<string, string> = {}): number {
  const family = families.get(name) ?? families.get(name.replace(/_(bucket|sum|count)$/, ''));
  if (!family) throw new Error(`no family for ${name}`);
  const hits = family.samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  if (hits.length !== 1) throw new Error(`${name}${JSON.stringify(labels)}: ${hits.length} samples`);
  return hits[0]!.value;
}

/** Every sample of `name` whose labels include `labels`. */
export function samplesOf(families: Map<string, Family>, name: string, labels: Record<string, string> = {}): Sample[] {
  const family = families.get(name) ?? families.get(name.replace(/_(bucket|sum|count)$/, ''));
  return (family?.samples ?? []).filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
}
