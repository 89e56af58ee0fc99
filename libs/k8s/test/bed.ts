import { join } from 'node:path';
import type { KubeConfig } from '@kubernetes/client-node';
import { bundleScript, ControlPlane } from '@knet/testing';
import { loadKubeConfig } from '../src';

export interface ControlPlaneBed {
  /** The control plane (from `beforeAll` on). */
  cp: ControlPlane;
  /** Its admin kubeconfig, loaded as the apps load theirs. */
  kc: KubeConfig;
  /** The bundle of the fixture script that `script` named (run it with `node`). */
  script: string;
}

/**
 * The control plane of one test file: started in `beforeAll` (with a fixture script under test/
 * bundled alongside, when `script` names one; then `setUp`), stopped in `afterAll`, also when the
 * start failed half-way. Read its fields in the tests, not before.
 */
export function controlPlaneBed(
  options: { script?: string; setUp?: (bed: ControlPlaneBed) => Promise<void> } = {},
): ControlPlaneBed {
  const bed = {} as ControlPlaneBed;
  let started: ControlPlane | undefined;
  beforeAll(async () => {
    const [cp, script] = await Promise.allSettled([
      ControlPlane.start(),
      options.script ? bundleScript(join(__dirname, options.script)) : Promise.resolve(''),
    ]);
    if (cp.status === 'fulfilled') started = cp.value;
    if (cp.status === 'rejected') throw cp.reason;
    if (script.status === 'rejected') throw script.reason;
    Object.assign(bed, {
      cp: cp.value,
      kc: loadKubeConfig({ kubeconfig: cp.value.kubeconfigPath }).kc,
      script: script.value,
    });
    await options.setUp?.(bed);
  }, 120_000);
  afterAll(async () => {
    await started?.stop();
  });
  return bed;
}
