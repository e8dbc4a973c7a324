import type http from 'node:http';

/**
 * A request body parsed as JSON, read up to maxBytes: undefined when it is longer (reading
 * stops there, so a huge body costs at most maxBytes of memory) or not JSON. An empty body
 * is `emptyAs`.
 */
export async function readJsonBody(req: http.IncomingMessage, maxBytes: number, emptyAs?: unknown): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > maxBytes) return undefined;
    chunks.push(c as Buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (text === '' && emptyAs !== undefined) return emptyAs;
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
