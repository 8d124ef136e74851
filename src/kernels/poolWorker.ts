/**
 * One worker of the kernel pool (src/kernels/pool.ts). It instantiates the shared-memory kernel
 * module on the pool's memory, reports 'ready', then sleeps on the control word and runs its share
 * of each product. Node (worker_threads) and browsers (module Web Workers) get the same messages.
 */
import { CTL, WORKER_SPIN_MS, pollFor, runShare, type GemmShareExports, type PoolInit, type ThreadState } from './poolProtocol.js';
import { poolThreadPort, type PoolThreadPort } from './poolThreads.js';

function serve(init: PoolInit, port: PoolThreadPort): void {
  const ctl = new Int32Array(init.control);
  const x = new WebAssembly.Instance(init.module, { env: { memory: init.memory, abort: () => { throw new Error('loom kernels: abort'); } } }).exports as unknown as GemmShareExports;
  const state: ThreadState = { preparedCall: -1 };
  let seen = Atomics.load(ctl, CTL.generation);
  port.post('ready');
  for (;;) {
    // Products come in bursts (a training step): poll a while before sleeping, as waking costs far more.
    if (!pollFor(ctl, CTL.generation, seen, WORKER_SPIN_MS)) Atomics.wait(ctl, CTL.generation, seen);
    seen = Atomics.load(ctl, CTL.generation);
    if (Atomics.load(ctl, CTL.exit)) return;
    try {
      runShare(x, ctl, init.index, init.work, ctl[CTL.col] + init.index * ctl[CTL.colBytes], state);
    } catch {
      Atomics.store(ctl, CTL.failed, 1);
    }
    Atomics.add(ctl, CTL.done, 1);
    Atomics.notify(ctl, CTL.done);
  }
}

const port = poolThreadPort();
port.onFirstMessage((init) => serve(init as PoolInit, port));
