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
  until,
  type Result,
} from '@knet/testing';

export const emit = resultEmitter('tower');
