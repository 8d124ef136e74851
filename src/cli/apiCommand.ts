import { apiManifest, type ApiExport } from '../analysis/introspection.js';
import { UsageError } from '../core/errors.js';
import { parseCommandArgs, stringFlag } from './args.js';

/** loom api [name] [--entry <entry point>] [--json]: the public API with signatures, from the build's API manifest. */
export async function apiCommand(argv: string[], out: (s: string) => void): Promise<void> {
  const { positionals, values } = parseCommandArgs('api', argv, { entry: { type: 'string' }, json: { type: 'boolean' } });
  if (positionals.length > 1) throw new UsageError(`api: unexpected extra argument ${JSON.stringify(positionals[1])} (usage: loom api [name] [--entry ./node] [--json])`);
  const manifest = await apiManifest();
  const entry = stringFlag(values, 'entry');
  const entries = entry === undefined ? Object.keys(manifest.entryPoints) : [entry];
  const unknown = entries.find((e) => !manifest.entryPoints[e]);
  if (unknown !== undefined) throw new UsageError(`--entry: expected one of ${Object.keys(manifest.entryPoints).join(', ')}, got ${JSON.stringify(unknown)}`);
  const filter = positionals[0]?.toLowerCase();
  const selected = Object.fromEntries(entries.map((e) => [e, manifest.entryPoints[e].filter((x) => filter === undefined || x.name.toLowerCase().includes(filter))]));
  const count = Object.values(selected).reduce((n, list) => n + list.length, 0);
  if (filter !== undefined && count === 0) throw new UsageError(`api: no export matches ${JSON.stringify(positionals[0])}`);
  if (values.json) {
    out(JSON.stringify(filter === undefined && entry === undefined ? manifest : { ...manifest, entryPoints: selected }, null, 2));
    return;
  }
  for (const [name, list] of Object.entries(selected)) {
    if (list.length === 0) continue;
    out(`${manifest.package}${name === '.' ? '' : name.slice(1)} (${list.length} exports)`);
    for (const e of list) for (const line of describe(e)) out(`  ${line}`);
  }
}

/** One line per signature, constructor or definition, the doc summary after the first. */
function describe(e: ApiExport): string[] {
  const lines =
    e.kind === 'function' ? e.signatures!.map((s) => `function ${s.text}`)
    : e.kind === 'class' ? (e.constructors!.length ? e.constructors!.map((s) => `class ${e.name} ${s.text}`) : [`class ${e.name}`])
    : e.kind === 'const' ? [`const ${e.name}: ${e.type}`]
    : e.kind === 'enum' ? [`enum ${e.name} { ${e.members!.map((m) => m.name).join(', ')} }`]
    : [e.definition === 'interface' ? `interface ${e.name} { ${e.members!.map((m) => `${m.name}${m.optional ? '?' : ''}`).join(', ')} }` : `type ${e.name} = ${e.definition}`];
  if (e.doc) lines[0] += `  — ${e.doc}`;
  return lines;
}
