/**
 * The chart's CRD files (charts/capi-packet-manager/crds/<name>.yaml, which helm installs and the
 * clusterctl bundle carries) are exactly the objects `infrastructureCrds()` and `bootstrapCrds()`
 * build: one file per CRD, nothing else in the folder. After a change to crds.ts, rewrite them:
 *
 *   UPDATE_CRDS=1 npx jest -c libs/capi/jest.config.cjs crds
 *
 * (the API server's own validation of the files runs in apps/capi-packet-manager/test/chart.test.ts).
 */
import { readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadAll } from 'js-yaml';
import { workspaceRoot } from '@knet/testing';
import { bootstrapCrds, infrastructureCrds } from './crds';
import { toYaml } from './templates';

const DIR = join(workspaceRoot(), 'charts', 'capi-packet-manager', 'crds');
const UPDATE = process.env['UPDATE_CRDS'] === '1';
const HEADER = [
  'Generated from libs/capi/src/crds.ts by libs/capi/src/crds.spec.ts; do not edit.',
  'Rewrite: UPDATE_CRDS=1 npx jest -c libs/capi/jest.config.cjs crds',
];

const crds = [...infrastructureCrds(), ...bootstrapCrds()];
const fileOf = (name: string) => `${name}.yaml`;

if (UPDATE) {
  for (const f of readdirSync(DIR)) if (f.endsWith('.yaml')) rmSync(join(DIR, f));
  for (const crd of crds) writeFileSync(join(DIR, fileOf(crd.metadata.name)), toYaml([crd], HEADER));
}

describe('charts/capi-packet-manager/crds', () => {
  it('holds one file per CRD and nothing else', () => {
    expect(readdirSync(DIR).sort()).toEqual(crds.map((c) => fileOf(c.metadata.name)).sort());
  });

  it.each(crds.map((c) => [c.metadata.name, c] as const))(
    '%s equals the generated CRD (UPDATE_CRDS=1 rewrites it)',
    (name, crd) => {
      const docs = loadAll(readFileSync(join(DIR, fileOf(name)), 'utf8'));
      expect(docs).toEqual([JSON.parse(JSON.stringify(crd))]);
    },
  );

  it('names each CRD as Cluster API computes it (<plural>.<group>) and labels its provider and contracts', () => {
    for (const c of crds) {
      expect(c.metadata.name).toBe(`${c.spec.names.plural}.${c.spec.group}`);
      expect(c.spec.names.plural).toBe(`${c.spec.names.kind.toLowerCase()}s`);
      expect(Object.keys(c.metadata.labels).sort()).toEqual([
        'cluster.x-k8s.io/provider',
        'cluster.x-k8s.io/v1beta1',
        'cluster.x-k8s.io/v1beta2',
      ]);
    }
  });
});
