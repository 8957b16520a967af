// Reading response headers: single values, Content-Length, Content-Range.
import type { IncomingHttpHeaders } from 'node:http';

export function parseContentRange(value: string | string[] | undefined): { start: number; total: number | undefined } | undefined {
  const match = typeof value === 'string' ? /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(value.trim()) : null;
  if (!match) return undefined;
  return { start: Number(match[1]), total: match[3] === '*' ? undefined : Number(match[3]) };
}

export function contentLength(headers: IncomingHttpHeaders): number | undefined {
  const value = header(headers, 'content-length');
  return value !== undefined && /^\d+$/.test(value) ? Number(value) : undefined;
}

export function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}
