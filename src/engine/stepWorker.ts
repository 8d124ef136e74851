// Entry module of a step worker thread; createStepWorkerPool starts one per worker.
import { runStepWorker } from './step.js';

await runStepWorker();
