import { createReadStream, existsSync, statSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LoomError } from '../core/errors.js';
import { resolveInside } from '../io/safePath.js';
import { numberFlag, parseCommandArgs } from './args.js';

const REPO = fileURLToPath(new URL('../../../', import.meta.url));

/** Folders the playground is served from, first match wins: the page's own files, then the bundles. */
export const PLAYGROUND_ROOTS: readonly string[] = [join(REPO, 'playground'), join(REPO, 'dist/browser')];

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.wasm': 'application/wasm',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
  '.ts': 'text/plain; charset=utf-8',
};

// Cross-origin isolation (COOP + COEP) makes SharedArrayBuffer and thus the kernel pool's Web Workers
// available to the page; CORP lets the isolated page (and its workers) load these same-origin files.
const ISOLATION_HEADERS = {
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
  'Cross-Origin-Resource-Policy': 'same-origin',
};
const COMMON_HEADERS = {
  'X-Content-Type-Options': 'nosniff',
  'Cache-Control': 'no-store',
};

export interface ServeOptions {
  /** 0 picks a free port (default 8080). */
  port?: number;
  /** Default 127.0.0.1: the playground is for this machine only. */
  host?: string;
  roots?: readonly string[];
  /** Send the COOP/COEP headers (default true); without them pages run single-threaded. */
  crossOriginIsolation?: boolean;
}

export interface StaticServer {
  url: string;
  port: number;
  close(): Promise<void>;
}

/** A static file server with cross-origin isolation headers; GET and HEAD only, nothing outside `roots`. */
export function startStaticServer(options: ServeOptions = {}): Promise<StaticServer> {
  const roots = options.roots ?? PLAYGROUND_ROOTS;
  const host = options.host ?? '127.0.0.1';
  const headers = options.crossOriginIsolation === false ? COMMON_HEADERS : { ...ISOLATION_HEADERS, ...COMMON_HEADERS };
  const server = createServer((req, res) => handle(roots, headers, req, res));
  return new Promise((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) =>
      reject(e.code === 'EADDRINUSE' ? new LoomError(`port ${options.port} is in use (pass --port 0 for a free one)`) : e),
    );
    server.listen(options.port ?? 8080, host, () => {
      const { port } = server.address() as AddressInfo;
      resolve({
        url: `http://${host}:${port}/`,
        port,
        close: () =>
          new Promise<void>((done) => {
            server.closeAllConnections();
            server.close(() => done());
          }),
      });
    });
  });
}

function handle(roots: readonly string[], headers: Record<string, string>, req: IncomingMessage, res: ServerResponse): void {
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.writeHead(405, { ...headers, Allow: 'GET, HEAD' }).end();
    return;
  }
  let path: string;
  try {
    path = decodeURIComponent(new URL(req.url ?? '/', 'http://localhost').pathname);
  } catch {
    res.writeHead(400, headers).end('bad request');
    return;
  }
  const relative = path === '/' ? 'index.html' : path.replace(/^\/+/, '');
  const file = findFile(roots, relative);
  if (!file) {
    res.writeHead(404, { ...headers, 'Content-Type': 'text/plain; charset=utf-8' }).end(`not found: ${path}`);
    return;
  }
  res.writeHead(200, {
    ...headers,
    'Content-Type': CONTENT_TYPES[extname(file)] ?? 'application/octet-stream',
    'Content-Length': statSync(file).size,
  });
  if (req.method === 'HEAD') res.end();
  else createReadStream(file).pipe(res);
}

function findFile(roots: readonly string[], relative: string): string | null {
  for (const root of roots) {
    if (!existsSync(root)) continue;
    try {
      const file = resolveInside(root, relative);
      if (statSync(file).isFile()) return file;
    } catch {
      // Missing here, or outside this root: try the next root.
    }
  }
  return null;
}

/** `loom serve [--port N]`: serves the playground on 127.0.0.1 until interrupted. */
export async function serveCommand(argv: string[], out: (s: string) => void): Promise<void> {
  const { values } = parseCommandArgs('serve', argv, { port: { type: 'string' } });
  const port = numberFlag(values, 'port', 8080, (v) => Number.isInteger(v) && v >= 0 && v <= 65535, 'an integer port from 0 to 65535');
  if (!existsSync(join(PLAYGROUND_ROOTS[1], 'playground.js'))) {
    throw new LoomError(`${PLAYGROUND_ROOTS[1]} has no playground.js; run npm run build:browser first`);
  }
  const server = await startStaticServer({ port });
  out(`Loom playground at ${server.url} (cross-origin isolated; Ctrl+C stops)`);
}
