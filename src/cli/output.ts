// What a command prints: JSON when asked (--json, --format json) or when stdout is not a
// terminal (hooks and scripts parse it), tables and key: value lines on a terminal.

import type { TableSpec } from './context.js';

function cell(v: unknown): string {
  if (Array.isArray(v)) return v.map((x) => (typeof x === 'object' && x !== null ? JSON.stringify(x) : String(x))).join(',');
  if (v === null || v === undefined) return '';
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

function heading(c: string): string {
  if (c === 'agent_id') return 'Agent ID';
  const words = c.split('_').join(' ');
  return words.charAt(0).toUpperCase() + words.slice(1);
}

/** Fixed-width table, as the spec prints `agent list`. */
export function formatTable(rows: Array<Record<string, unknown>>, cols: string[]): string {
  const header = cols.map(heading);
  const widths = cols.map((c, i) => Math.max(header[i]!.length, ...rows.map((r) => cell(r[c]).length)));
  const line = (vals: string[]) => vals.map((v, i) => (i === vals.length - 1 ? v : v.padEnd(widths[i]!))).join(' | ');
  return [line(header), ...rows.map((r) => line(cols.map((c) => cell(r[c]))))].join('\n');
}

/**
 * A result for a terminal: its row sets as tables (columns from the command table), every other
 * field as `key: value`. Nothing is dropped: fields not in a table's columns stay in --json.
 */
export function formatHuman(data: Record<string, unknown>, tables: TableSpec[] = []): string {
  const out: string[] = [];
  const asTable = new Set(tables.filter((t) => Array.isArray(data[t.rows])).map((t) => t.rows));
  for (const [k, v] of Object.entries(data)) {
    if (asTable.has(k)) continue;
    out.push(`${k}: ${cell(v)}`);
  }
  for (const t of tables) {
    if (!asTable.has(t.rows)) continue;
    const rows = data[t.rows] as Array<Record<string, unknown>>;
    if (out.length > 0) out.push('');
    if (tables.length > 1 || out.length > 0) out.push(`${t.rows} (${rows.length}):`);
    out.push(rows.length > 0 ? formatTable(rows, t.columns) : '  (none)');
  }
  return out.join('\n');
}

/** Print a command's result. */
export function printResult(data: Record<string, unknown>, json: boolean, tables?: TableSpec[]): void {
  process.stdout.write(`${json || !tables ? JSON.stringify(data, null, 2) : formatHuman(data, tables)}\n`);
}

/** JSON unless asked for a table on a terminal. */
export function wantsJson(flags: Record<string, string | boolean>, isTty = process.stdout.isTTY === true): boolean {
  if (flags.json === true || flags.format === 'json') return true;
  if (flags.format === 'table') return false;
  return !isTty;
}
