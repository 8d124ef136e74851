import type { LayerKind } from './layer.js';

const kinds = new Map<string, LayerKind>();
const canonical: LayerKind[] = [];

export function registerLayerKind(kind: LayerKind): void {
  for (const name of [kind.name, ...kind.aliases]) {
    const key = name.toUpperCase();
    if (kinds.has(key)) throw new Error(`layer kind ${name} registered twice`);
    kinds.set(key, kind);
  }
  canonical.push(kind);
}

/** Case-insensitive lookup by name or alias. */
export function findLayerKind(name: string): LayerKind | undefined {
  return kinds.get(name.trim().toUpperCase());
}

export function layerKindNames(): string[] {
  return canonical.map((k) => k.name);
}
