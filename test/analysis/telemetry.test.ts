import assert from 'node:assert/strict';
import { test } from 'node:test';
import { networkBlueprint, networksBlueprint } from '../../src/analysis/telemetry.js';
import { apiJson, describeApi } from '../../src/analysis/introspection.js';
import { buildNetwork } from '../../src/grid/spec.js';
import * as api from '../../src/index.js';

test('blueprint: structure, parameters, nesting and probe shapes as JSON', () => {
  const net = buildNetwork({
    id: 'bp', layers_per_cell: 2,
    layers: [
      { l: 0, type: 'Dense', activation: 'ReLU', input_height: 3, output_height: 4, use_bias: true },
      { l: 1, type: 'Parallel', combine_mode: 'concat', parallel_branches: [
        { type: 'Dense', input_height: 4, output_height: 2 },
        { type: 'Sequential', sequential_layers: [{ type: 'RMSNorm', input_height: 4 }] },
      ] },
    ],
  });
  const bp = networkBlueprint(net, 'model-a', [5, 3]);
  assert.equal(bp.id, 'model-a');
  assert.equal(bp.totalLayers, 2);
  assert.equal(bp.totalParameters, 16 + 8 + 4);
  assert.equal(bp.layers[0].parameters, 16);
  assert.equal(bp.layers[1].parameters, 12);
  assert.equal(bp.layers[1].combineMode, 'concat');
  assert.deepEqual(bp.layers[1].branches!.map((b) => b.type), ['Dense', 'Sequential']);
  assert.deepEqual(bp.layers[1].branches![1].branches!.map((b) => b.type), ['RMSNorm']);
  assert.deepEqual(bp.layers[0].inputShape, [5, 3]);
  assert.deepEqual(bp.layers[1].outputShape, [5, 6]);
  assert.deepEqual(JSON.parse(JSON.stringify(bp)), bp);
  assert.equal(networksBlueprint({ a: net, b: net }).models.length, 2);
  assert.equal(networkBlueprint(net).layers[0].inputShape, undefined);
});

test('introspection lists every public export with its kind and parameters', () => {
  const entries = describeApi(api as Record<string, unknown>);
  assert.deepEqual(entries.map((e) => e.name), Object.keys(api).sort());
  const byName = new Map(entries.map((e) => [e.name, e]));
  assert.deepEqual(byName.get('spliceNetworks'), { name: 'spliceNetworks', kind: 'function', parameters: ['a', 'b', 'cfg = {}'] });
  assert.deepEqual(byName.get('buildNetwork')!.parameters, ['document', 'options = {}']);
  const pop = byName.get('Population')!;
  assert.equal(pop.kind, 'class');
  assert.deepEqual(pop.parameters, ['seedNetwork', 'config']);
  assert.ok(pop.methods!.some((m) => m.name === 'evaluate' && m.parameters[0] === 'fitness'));
  assert.equal(byName.get('Activation')!.kind, 'enum');
  assert.ok(byName.get('Activation')!.keys!.includes('ReLU'));
  assert.equal(byName.get('LOGIC_SHIFT_THRESHOLD')!.value, '0.8');
  assert.ok(JSON.parse(apiJson(api as Record<string, unknown>)).length === entries.length);
});
