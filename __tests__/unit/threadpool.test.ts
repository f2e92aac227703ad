import { availableParallelism } from 'node:os';
import { describe, expect, it } from 'vitest';
import { blocksInFlight, LAYERS_AT_ONCE } from '../../src/image/compress.js';
import { threadPoolSize } from '../../src/threadpool.js';

describe('thread pool size', () => {
  it('gives every compressing block a thread and keeps four for file and socket work', () => {
    expect(blocksInFlight()).toBe(availableParallelism() + 2);
    expect(Number(threadPoolSize({}))).toBe(LAYERS_AT_ONCE * (availableParallelism() + 2) + 4);
  });

  it('leaves a size the environment chose alone', () => {
    expect(threadPoolSize({ UV_THREADPOOL_SIZE: '3' })).toBe('3');
  });
});
