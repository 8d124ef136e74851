#!/usr/bin/env node
import { writeSync } from 'node:fs';
import { isatty } from 'node:tty';
import { LoomError, UsageError } from '../core/errors.js';
import { apiCommand } from './apiCommand.js';
import { demoCommand } from './demo.js';
import { dnaCommand, evolveCommand } from './evolveCommands.js';
import { liveCommand } from './liveCommand.js';
import { chatCommand, convertCommand, generateCommand, runAsyncCommand } from './llmCommands.js';
import { infoCommand, morphCommand, runCommand } from './modelCommands.js';
import { serveCommand } from './serveCommand.js';
import { trainCommand } from './trainCommand.js';

const USAGE = `usage: loom <command> [options]

commands:
  demo [--epochs N --threads N --out DIR] train, evaluate, save, reload and quantize a model on built-in data
                                         (--threads: default every core, at most 8; same results on any)
  train <spec.json> --data <path>        train a network (loom train --help lists the options)
  run <model.json> --input <in.json>     run a saved model on {"shape":[...],"data":[...]} and print the output
  info <model.json> [--json]             layers, coordinates, dtypes, parameters and bytes
                                         (or a .safetensors file / model folder: tensors, architecture, config)
  morph <model.json> --dtype <name> --out <file>
                                         convert every layer to another numeric type
  live <spec.json> --task <name>         stream a task-switching task through the mesh and watch it adapt
                                         [--mode StepTweenChain --steps N --window W --seed S --lr LR --input-size N]
  dna <a.json> <b.json> [--json]         compare two networks' DNA: overlaps and logic shifts
  evolve [spec.json] --task <name>       evolve a network (xor, cartpole, spirals)
                                         [--population N --generations G --seed S --scale σ --out best.json --json]
  generate <model-dir> --prompt <text>   stream a Hugging Face Llama/Qwen2/SmolLM model's continuation
                                         [--max-tokens N --temperature T --top-k K --top-p P --repetition-penalty R
                                          --repetition-window W --seed S --stop <text> --dtype q4_0|int8|float32 --threads N --stats --gpu]
                                         (--threads: default every core, at most 8; the same tokens on any)
  chat <model-dir> [--system <text>]     multi-turn chat on stdin (terminal or pipe; /exit ends), same flags
  convert <in> <out>                     safetensors ↔ Loom JSON by extension (a model folder converts too)
  serve [--port N]                       the web playground on http://127.0.0.1:N/ (default 8080)
  api [name] [--entry ./node] [--json]   the public API with signatures (exports whose name contains <name>)`;

const TRAIN_HELP = `usage: loom train <spec.json> --data <path> [options]

  --data <path>          CSV (features…, label), JSON ({inputs, targets}), IDX file, or an MNIST-style directory
  --epochs N             epochs to train (default 5)
  --batch N              mini-batch size (default 32)
  --optimizer NAME       sgd | adamw | rmsprop (default adamw; sgd is plain SGD unless --momentum is given)
  --lr X                 learning rate (default 0.001; 0.01 for sgd)
  --momentum X           momentum for sgd and rmsprop (default 0)
  --weight-decay X       decoupled for adamw (default 0.01), L2 for sgd/rmsprop (default 0)
  --loss NAME            cross_entropy | mse (default cross_entropy)
  --scheduler NAME[:k=v,...]
                         constant | step | exponential | cosine | warmup | onecycle | plateau (default constant)
  --clip X               clip the global gradient norm to X
  --seed N               seed of initialisation and shuffling (default 1)
  --validation F         hold out this fraction of the training data for validation (default 0)
  --out <model.json>     save the trained model (atomically)
  --plot <loss.svg>      write the loss and accuracy curves as SVG
  --save-optimizer       keep the optimizer state in the saved model, so --resume continues exactly
  --resume               continue from the optimizer state saved in <spec.json>
  --gpu                  train on the GPU through WebGPU (falls back to the CPU with a message)
  --threads N            CPU threads for the large products (default 1; the same results, bit for bit)`;

/** Help for one command: train's full option list, or that command's lines of the overview. */
export function commandHelp(command: string): string | undefined {
  if (command === 'train') return TRAIN_HELP;
  const lines = USAGE.split('\n');
  const start = lines.findIndex((l) => l.startsWith(`  ${command} `) || l === `  ${command}`);
  if (start < 0) return undefined;
  let end = start + 1;
  while (end < lines.length && /^ {20,}/.test(lines[end])) end++;
  return `usage: loom ${lines.slice(start, end).map((l) => l.trim()).join('\n    ')}`;
}

/** Exit status when stdout's reader has gone (`loom info … | head -1`): what a shell reports for a SIGPIPE death, 128 + 13. */
export const CLOSED_STDOUT_STATUS = 141;

const sleepCell = new Int32Array(new SharedArrayBuffer(4));
let stderrClosed = false;

/**
 * Writes all of `text` to fd 1 or 2 synchronously, so a closed reader (EPIPE) is seen at the write
 * that hit it, even inside a long synchronous command, rather than as a later stream 'error' event.
 * Closed stdout: the process exits at once, silently, with CLOSED_STDOUT_STATUS. Closed stderr:
 * diagnostics are dropped and the command's own exit status stands. A non-blocking pipe that is full
 * (EAGAIN) is waited on.
 */
function writeToFd(fd: 1 | 2, text: string): void {
  if (fd === 2 && stderrClosed) return;
  const bytes = Buffer.from(text, 'utf8');
  let offset = 0;
  while (offset < bytes.length) {
    try {
      offset += writeSync(fd, bytes, offset);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EAGAIN') {
        Atomics.wait(sleepCell, 0, 0, 1);
        continue;
      }
      if (code !== 'EPIPE') throw e;
      if (fd === 1) process.exit(CLOSED_STDOUT_STATUS);
      stderrClosed = true;
      return;
    }
  }
}

export function main(argv: string[]): number {
  const write = (s: string) => writeToFd(1, s);
  const out = (s: string) => writeToFd(1, s + '\n');
  const err = (s: string) => writeToFd(2, s + '\n');
  const [command, ...rest] = argv;
  try {
    const help = command && (rest.includes('--help') || rest.includes('-h')) ? commandHelp(command) : undefined;
    if (help) {
      out(help);
      return 0;
    }
    switch (command) {
      case 'run':
        runCommand(rest, out);
        break;
      case 'info':
        infoCommand(rest, out);
        break;
      case 'morph':
        morphCommand(rest, out);
        break;
      case 'train': {
        const pending = trainCommand(rest, out, err);
        if (pending) runAsyncCommand(pending, err);
        break;
      }
      case 'demo':
        runAsyncCommand(demoCommand(rest, out), err);
        break;
      case 'live':
        liveCommand(rest, { out, tty: isatty(1), write });
        break;
      case 'dna':
        dnaCommand(rest, out);
        break;
      case 'evolve':
        evolveCommand(rest, out);
        break;
      case 'generate':
        runAsyncCommand(generateCommand(rest, write, err), err);
        break;
      case 'chat':
        runAsyncCommand(chatCommand(rest, write, process.stdin.isTTY === true), err);
        break;
      case 'convert':
        convertCommand(rest, out);
        break;
      case 'serve':
        runAsyncCommand(serveCommand(rest, out), err);
        break;
      case 'api':
        runAsyncCommand(apiCommand(rest, out), err);
        break;
      case undefined:
      case 'help':
      case '--help':
      case '-h':
        out(USAGE);
        return command === undefined ? 2 : 0;
      default:
        throw new UsageError(`unknown command ${JSON.stringify(command)} (commands: demo, train, run, info, morph, live, dna, evolve, generate, chat, convert, serve, api)`);
    }
    return 0;
  } catch (e) {
    if (e instanceof LoomError) {
      err(`loom: ${e.message}`);
      return e instanceof UsageError ? 2 : 1;
    }
    err(`loom: internal error: ${(e as Error)?.message ?? String(e)}${process.env.LOOM_DEBUG ? `\n${(e as Error).stack}` : ' (set LOOM_DEBUG=1 for the stack)'}`);
    return 70;
  }
}

process.exitCode = main(process.argv.slice(2));
