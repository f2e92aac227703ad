// Sizes libuv's thread pool for the push. zlib, file reads and writes all run on that pool, which has 4
// threads unless UV_THREADPOOL_SIZE says otherwise, read once when the pool first starts. With 4 threads
// a runner with more cores would compress on 4 of them, and file reads for uploads would queue behind
// compressing blocks. Imported first by main.ts, before anything has touched the pool.
//
// Honoured on Node 24, the runtime action.yml names: its ESM loader reads the entry without the pool, so
// the pool starts after this line. Not on Node 20, whose ESM loader reads the entry file through the pool
// (it has 4 threads before any of the action's code runs): there only a UV_THREADPOOL_SIZE set in the
// environment sizes it (__tests__/unit/threadpool.test.ts measures both).
import { blocksInFlight, LAYERS_AT_ONCE } from './image/compress.js';

/** Threads left for file and socket work while every compressing block has a thread. */
const IO_THREADS = 4;

/** The pool size this action wants, unless the environment already chose one. */
export function threadPoolSize(env: NodeJS.ProcessEnv): string {
  return env.UV_THREADPOOL_SIZE || String(LAYERS_AT_ONCE * blocksInFlight() + IO_THREADS);
}

process.env.UV_THREADPOOL_SIZE = threadPoolSize(process.env);
