// The upload progress line: every interval while uploads are in flight, bytes sent of those started and
// the rate; silent once nothing is in flight, and for a push that ends before the first interval.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { UploadProgress } from '../../src/registry/push.js';

describe('UploadProgress', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it('says how far the uploads are every interval, and nothing when none is in flight', () => {
    const lines: string[] = [];
    const p = new UploadProgress({ debug: () => {}, info: (m) => lines.push(m), warning: () => {} }, 10_000);
    p.start(300 * 1024 * 1024);
    p.sent(100 * 1024 * 1024);
    vi.advanceTimersByTime(9_999);
    expect(lines).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(lines).toEqual(['uploading: 100.0 MiB of 300.0 MiB sent (1 layer(s) started, 1 in flight), 10.0 MiB/s']);
    p.sent(50 * 1024 * 1024);
    vi.advanceTimersByTime(10_000);
    expect(lines[1]).toBe('uploading: 150.0 MiB of 300.0 MiB sent (1 layer(s) started, 1 in flight), 5.0 MiB/s');
    p.done(300 * 1024 * 1024);
    vi.advanceTimersByTime(30_000);
    expect(lines).toHaveLength(2);
    p.stop();
  });
});
