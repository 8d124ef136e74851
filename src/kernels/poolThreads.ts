/**
 * How the kernel pool starts its threads and how a thread talks back, the same way on both hosts:
 * Node's worker_threads, or module Web Workers in browsers. Everything else (the shared memory, the
 * control words, the kernels) is plain WebAssembly and Atomics and does not care which host runs it.
 */

/** A started pool thread; the pool only ever stops it. */
export interface PoolThread {
  terminate(): void;
}

/** The parent as a pool thread sees it: one message in (the pool's init), 'ready' out. */
export interface PoolThreadPort {
  post(message: unknown): void;
  onFirstMessage(listener: (message: unknown) => void): void;
}

export type ThreadHost = 'worker_threads' | 'web-worker';

/** Whether this host can run pool threads, and if not, why (one readable line). */
export type ThreadSupport = { available: true; host: ThreadHost } | { available: false; reason: string };

interface NodeWorker extends PoolThread {
  postMessage(message: unknown): void;
  unref(): void;
  once(event: 'message' | 'error' | 'exit', listener: (value: unknown) => void): void;
  off(event: 'message' | 'error' | 'exit', listener: (value: unknown) => void): void;
}

interface NodeWorkerThreads {
  Worker: new (url: URL) => NodeWorker;
  parentPort: { postMessage(message: unknown): void; once(event: 'message', listener: (message: unknown) => void): void } | null;
}

interface WebWorker extends PoolThread {
  postMessage(message: unknown): void;
  onmessage: ((event: { data: unknown }) => void) | null;
  onerror: ((event: { message?: string; preventDefault?(): void }) => void) | null;
}

interface BrowserScope {
  Worker?: new (url: URL, options: { type: 'module'; name?: string }) => WebWorker;
  crossOriginIsolated?: boolean;
}

type NodeProcess = { getBuiltinModule?: (id: string) => unknown };

/** node:worker_threads without a static import, so browser bundles carry no Node module. */
function nodeWorkerThreads(): NodeWorkerThreads | null {
  const proc = (globalThis as { process?: NodeProcess }).process;
  return (proc?.getBuiltinModule?.('node:worker_threads') as NodeWorkerThreads | undefined) ?? null;
}

export function threadSupport(): ThreadSupport {
  const scope = globalThis as BrowserScope;
  const node = nodeWorkerThreads();
  if (typeof SharedArrayBuffer === 'undefined') {
    return {
      available: false,
      reason: node
        ? 'SharedArrayBuffer is unavailable in this Node process'
        : 'the page is not cross-origin isolated (serve it with Cross-Origin-Opener-Policy: same-origin and Cross-Origin-Embedder-Policy: require-corp), so SharedArrayBuffer is unavailable',
    };
  }
  if (node) return { available: true, host: 'worker_threads' };
  if (typeof scope.Worker === 'function') return { available: true, host: 'web-worker' };
  return { available: false, reason: 'this host has neither worker_threads nor Web Workers' };
}

/**
 * Starts the module at `url` as a pool thread, sends it `init` (structured-cloned: a WebAssembly
 * module, a shared memory and a SharedArrayBuffer travel by reference) and resolves once it answers.
 * Node threads are unref'd so that idle pool threads never keep a process alive.
 */
export function spawnPoolThread(url: URL, init: unknown): Promise<PoolThread> {
  const node = nodeWorkerThreads();
  if (node) {
    return new Promise((resolve, reject) => {
      const w = new node.Worker(url);
      const onError = (e: unknown) => {
        w.off('exit', onExit);
        reject(e instanceof Error ? e : new Error(String(e)));
      };
      const onExit = (code: unknown) => {
        w.off('error', onError);
        reject(new Error(`loom kernel pool: thread ${url.href} exited with code ${String(code)} before it was ready`));
      };
      w.once('error', onError);
      w.once('exit', onExit);
      w.once('message', () => {
        w.off('error', onError);
        w.off('exit', onExit);
        w.unref();
        resolve(w);
      });
      w.postMessage(init);
    });
  }
  const Worker = (globalThis as BrowserScope).Worker;
  if (typeof Worker !== 'function') return Promise.reject(new Error('loom kernel pool: this host has neither worker_threads nor Web Workers'));
  return new Promise((resolve, reject) => {
    const w = new Worker(url, { type: 'module', name: 'loom-kernel-pool' });
    w.onerror = (e) => {
      e.preventDefault?.();
      w.onerror = w.onmessage = null;
      w.terminate();
      // A script that fails to load gives an Event without a message: name the URL instead.
      reject(new Error(`loom kernel pool: Web Worker ${url.href} failed${e.message ? `: ${e.message}` : ' to load'}`));
    };
    w.onmessage = () => {
      w.onerror = w.onmessage = null;
      resolve(w);
    };
    w.postMessage(init);
  });
}

/** Inside a pool thread: the channel to the pool that started it. */
export function poolThreadPort(): PoolThreadPort {
  const parent = nodeWorkerThreads()?.parentPort;
  if (parent) return { post: (m) => parent.postMessage(m), onFirstMessage: (f) => parent.once('message', f) };
  const scope = globalThis as unknown as { onmessage: ((e: { data: unknown }) => void) | null; postMessage(m: unknown): void };
  return {
    post: (m) => scope.postMessage(m),
    onFirstMessage: (f) => {
      scope.onmessage = (e) => {
        scope.onmessage = null;
        f(e.data);
      };
    },
  };
}
