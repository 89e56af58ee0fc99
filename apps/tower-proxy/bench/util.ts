import { resultEmitter } from '@knet/testing';

export {
  Cleanup,
  CpuMeter,
  busy,
  cpuSeconds,
  cpuTimes,
  descendants,
  log,
  median,
  memoryMiB,
  percentile,
  sleep,
  type Result,
} from '@knet/testing';
export { until } from '../test/harness';

export const emit = resultEmitter('tower');
