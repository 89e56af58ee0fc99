import { Inspector } from '@knet/testing';
import type { CpuProfile } from './profile';

export { gcAndMeasure, type HeapAfterGc } from '@knet/testing';

/** Samples the CPU of each process (by inspector port) while `fn` runs. */
export async function profileDuring<T>(
  ports: Record<string, number>,
  fn: () => Promise<T>,
): Promise<{ result: T; profiles: Record<string, CpuProfile> }> {
  const conns: [string, Inspector][] = [];
  try {
    for (const [name, port] of Object.entries(ports)) conns.push([name, await Inspector.connect(port)]);
    for (const [, i] of conns) {
      await i.call('Profiler.enable');
      await i.call('Profiler.setSamplingInterval', { interval: 250 });
      await i.call('Profiler.start');
    }
    const result = await fn();
    const profiles: Record<string, CpuProfile> = {};
    for (const [name, i] of conns) {
      profiles[name] = (await i.call<{ profile: CpuProfile }>('Profiler.stop')).profile;
      await i.call('Profiler.disable');
    }
    return { result, profiles };
  } finally {
    for (const [, i] of conns) i.close();
  }
}
