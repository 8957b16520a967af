// fetchText(): a small text file (a checksum list) kept in memory, with the downloader's retries.
import createDebug from 'debug';
import { kvmtestError } from '../../errors.js';
import { defaultDispatcher } from './dispatcher.js';
import { contentLength } from './headers.js';
import { withIdleTimeout } from './idle.js';
import { checkInteger, policyFrom } from './options.js';
import { checkComplete, chunksOf, get, release, statusError } from './request.js';
import { withRetries } from './retry.js';
import type { FetchTextOptions } from './types.js';

const debug = createDebug('kvmtest:download');

/** A small text file (a checksum list): same retries and 404 handling as download(), bounded in size, kept in memory. */
export async function fetchText(url: string, options: FetchTextOptions = {}): Promise<string> {
  return (await fetchBytes(url, options)).toString('utf8');
}

/** A small file as bytes (a detached signature), like fetchText. */
export async function fetchBytes(url: string, options: FetchTextOptions = {}): Promise<Buffer> {
  const maxBytes = options.maxBytes ?? 1024 * 1024;
  checkInteger('maxBytes', maxBytes, 1);
  const job = { ...policyFrom({ ...options, url }), dispatcher: options.dispatcher ?? defaultDispatcher() };
  const { value } = await withRetries(job, `Fetching ${url}`, (attempt) =>
    withIdleTimeout(job, async (signal, idle) => {
      idle.arm();
      const response = await get(job, {}, signal);
      debug('GET %s (attempt %d): HTTP %d', url, attempt, response.statusCode);
      if (response.statusCode !== 200) throw statusError(url, response);
      const declared = contentLength(response.headers);
      const tooLarge = () => kvmtestError('DOWNLOAD_FAILED', `${url} is larger than the ${maxBytes} bytes allowed for a text file (maxBytes)`);
      if (declared !== undefined && declared > maxBytes) {
        release(response.body);
        throw tooLarge();
      }
      const chunks: Buffer[] = [];
      let received = 0;
      for await (const chunk of chunksOf(response.body, idle)) {
        received += chunk.length;
        if (received > maxBytes) throw tooLarge();
        chunks.push(chunk);
      }
      checkComplete(received, declared);
      return Buffer.concat(chunks);
    }),
  );
  return value;
}
