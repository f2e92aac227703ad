// Sizes libuv's thread pool for the push. zlib, file reads and writes all run on that pool, which has 4
// threads unless UV_THREADPOOL_SIZE says otherwise, read once when the pool first starts. With 4 threads
// a runner with more cores would compress on 4 of them, and file reads for uploads would queue behind
// compressing blocks. Imported first by main.ts, before anything has touched the pool.
import { blocksInFlight, LAYERS_AT_ONCE } from './image/compress.js';

/** Threads left for file and socket work while every compressing block has a thread. */
const IO_THREADS = 4;

/** The pool size this action wants, unless the environment already chose one. */
export function threadPoolSize(env: NodeJS.ProcessEnv): string {
  return env.UV_THREADPOOL_SIZE || String(LAYERS_AT_ONCE * blocksInFlight() + IO_THREADS);
}

process.env.UV_THREADPOOL_SIZE = threadPoolSize(process.env);
