import { spawnSync } from 'node:child_process';

/**
 * glibc's dynamic mmap threshold hands every large buffer fresh pages that fault on first touch and
 * are unmapped on free (PyTorch's conv outputs ran 3–4× slower; see ../shared/research/cpu-anchors.md),
 * and V8's array buffers come from the same malloc. Every engine in a benchmark runs with the
 * thresholds raised, so no side pays the trap the other is spared.
 */
export const ALLOCATOR_TUNABLES = 'glibc.malloc.mmap_threshold=268435456:glibc.malloc.trim_threshold=1073741824';

/** On Linux, re-runs this script with GLIBC_TUNABLES set (children and peers inherit it) unless it already is; returns only in the process that runs the benchmark. */
export function raiseAllocatorThresholds(): void {
  if (process.platform !== 'linux' || process.env.GLIBC_TUNABLES === ALLOCATOR_TUNABLES) return;
  const r = spawnSync(process.execPath, [...process.execArgv, ...process.argv.slice(1)], { stdio: 'inherit', env: { ...process.env, GLIBC_TUNABLES: ALLOCATOR_TUNABLES } });
  process.exit(r.status ?? 1);
}
