/**
 * One worker of the kernel pool (src/kernels/pool.ts). It instantiates the shared-memory kernel
 * module on the pool's memory, reports 'ready', then sleeps on the control word and runs its share
 * of each product. Node (worker_threads) and browsers (module Web Workers) get the same messages.
 */
import { CTL, SPIN, convBackwardShare, convForwardShare, gemmTiles, type GemmShareExports, type PoolInit } from './poolProtocol.js';
import { poolThreadPort, type PoolThreadPort } from './poolThreads.js';

function serve(init: PoolInit, port: PoolThreadPort): void {
  const ctl = new Int32Array(init.control);
  const x = new WebAssembly.Instance(init.module, { env: { memory: init.memory, abort: () => { throw new Error('loom kernels: abort'); } } }).exports as unknown as GemmShareExports;
  let seen = Atomics.load(ctl, CTL.generation);
  port.post('ready');
  for (;;) {
    // Products come in bursts (a training step): spin briefly before sleeping, as waking costs far more.
    for (let i = 0; i < SPIN && Atomics.load(ctl, CTL.generation) === seen; i++);
    Atomics.wait(ctl, CTL.generation, seen);
    seen = Atomics.load(ctl, CTL.generation);
    if (Atomics.load(ctl, CTL.exit)) return;
    const r = CTL.ranges + 4 * init.index;
    try {
      run(x, ctl, r, init);
    } catch {
      Atomics.store(ctl, CTL.failed, 1);
    }
    Atomics.add(ctl, CTL.done, 1);
    Atomics.notify(ctl, CTL.done);
  }
}

function run(x: GemmShareExports, ctl: Int32Array, r: number, init: PoolInit): void {
  if (ctl[CTL.op] === 2) {
    convBackwardShare(x, ctl, ctl[r], ctl[r + 1], ctl[r + 2], ctl[r + 3], init.work, ctl[CTL.col] + init.index * ctl[CTL.colBytes]);
  } else if (ctl[CTL.op] === 1) {
    convForwardShare(x, ctl, ctl[r], ctl[r + 1], init.work, ctl[CTL.col] + init.index * ctl[CTL.colBytes]);
  } else {
    gemmTiles(x, ctl, init.work);
  }
}

const port = poolThreadPort();
port.onFirstMessage((init) => serve(init as PoolInit, port));
