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
  demo                                   train, evaluate, save, reload and quantize a model on built-in data
  train <spec.json> --data <path>        train a network (see --help of the command in README.md)
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
                                          --repetition-window W --seed S --stop <text> --dtype q4_0|int8|float32 --stats]
  chat <model-dir> [--system <text>]     multi-turn chat on stdin (terminal or pipe; /exit ends), same flags
  convert <in> <out>                     safetensors ↔ Loom JSON by extension (a model folder converts too)
  serve [--port N]                       the web playground on http://127.0.0.1:N/ (default 8080)
  api [name] [--entry ./node] [--json]   the public API with signatures (exports whose name contains <name>)`;

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
        demoCommand(rest, out);
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
