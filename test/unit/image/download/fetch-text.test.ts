import { describe, expect, it } from 'vitest';
import { fetchText } from '../../../../src/image/download/index.js';
import { sha256 } from '../../fixtures/digest.js';
import { failure, useDownloadScene } from '../../fixtures/download-scene.js';

const scene = useDownloadScene();
const { files } = scene;

describe('fetchText', () => {
  it('returns the text of a small file', async () => {
    expect(await fetchText(files.url('/SHA256SUMS'), { dispatcher: scene.dispatcher })).toBe(`${sha256(files.data)}  file.img\n`);
  });

  it('fails at once with DOWNLOAD_NOT_FOUND on 404', async () => {
    files.plan = [404];
    const error = await failure(fetchText(files.url('/SHA256SUMS'), { dispatcher: scene.dispatcher }));
    expect(error).toMatchObject({ code: 'DOWNLOAD_NOT_FOUND' });
    expect(error.message).toContain('/SHA256SUMS');
    expect(files.requests).toHaveLength(1);
  });

  it('retries 5xx, and refuses a body over maxBytes', async () => {
    files.plan = [502];
    expect(await fetchText(files.url('/SHA256SUMS'), { dispatcher: scene.dispatcher, backoffMs: 5 })).toContain('file.img');
    expect(files.requests).toHaveLength(2);

    const error = await failure(fetchText(files.url(), { dispatcher: scene.dispatcher, maxBytes: 1024 }));
    expect(error).toMatchObject({ code: 'DOWNLOAD_FAILED' });
    expect(error.message).toContain('1024');
  });
});
