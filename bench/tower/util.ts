import { request, type RequestOptions } from 'node:https';
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

/**
 * One HTTPS GET (`options.path`) that must answer 200 within `options.timeout` ms; resolves once the
 * whole body has arrived, with the body, or with '' when `discardBody` (nothing kept: for timing).
 * `what` names the request in errors.
 */
export function httpsGet(
  what: string,
  options: RequestOptions & { path: string; timeout: number },
  discardBody = false,
): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request(options, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (b: Buffer) => {
        if (!discardBody) chunks.push(b);
      });
      res.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        if (res.statusCode === 200) resolve(body);
        else reject(new Error(`${what}: HTTP ${res.statusCode}${body ? `: ${body}` : ''}`));
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`${what} timed out`)));
    req.on('error', reject);
    req.end();
  });
}
