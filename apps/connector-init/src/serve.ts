import { errorMessage, silentLogger, sleep, type Logger } from '@knet/runtime';
import type { ConnectorApi } from './api';
import type { Handoff, TokenPair } from './handoff';
import type { AppMetrics } from './metrics';
import type { Provisioned } from './provision';

export interface ServeOptions {
  handoff: Handoff;
  api: Pick<ConnectorApi, 'getConnector'>;
  /** The first provisioning's result: its pair goes to the first reader. */
  first: Provisioned;
  /** A fresh pair for the same ordinal (provisionOrdinal again: 1 API call when the record holds). */
  reprovision: () => Promise<Provisioned>;
  signal: AbortSignal;
  metrics: AppMetrics;
  logger?: Logger;
  /** Return after the first handoff instead of serving restarts (default false). */
  once?: boolean;
  /** First and longest pause between two state checks after a handoff (default 2 s, 60 s). */
  alivePollMs?: { first: number; max: number };
  /** Stop checking for ALIVE after this long (default 10 min); the next handoff checks again. */
  aliveTimeoutMs?: number;
  /** Pause after a failed handoff (default 2 s). */
  retryMs?: number;
}

/**
 * Hands token pairs to the connector container for as long as the pod lives: the first reader
 * gets the pair provisioning generated, every later reader (the container restarted) a fresh pair
 * of the same connector. No pair is kept after it was handed over. After each handoff the
 * connector's state is polled (with a growing pause, within the API's read budget) until ALIVE.
 */
export async function serveHandoffs(o: ServeOptions): Promise<void> {
  const log = o.logger ?? silentLogger;
  let pending: TokenPair | undefined = o.first.tokens;
  let current = o.first;
  let watch: AbortController | undefined;
  try {
    while (!o.signal.aborted) {
      const writer = await o.handoff.waitForReader(o.signal);
      if (!writer) return;
      watch?.abort();
      try {
        if (!pending) {
          current = await o.reprovision();
          pending = current.tokens;
          o.metrics.tokensGenerated();
        }
        await writer.give(pending);
        pending = undefined;
        o.metrics.handedOff();
        log.info({ connector: current.name, id: current.id }, 'tokens handed to the connector container');
      } catch (e) {
        await writer.close().catch(() => undefined);
        log.warn({ error: errorMessage(e) }, 'handoff failed; waiting for the connector container again');
        await sleep(o.retryMs ?? 2000, o.signal);
        continue;
      }
      if (o.once) {
        await watchAlive(o, current, o.signal, log);
        return;
      }
      watch = new AbortController();
      const both = AbortSignal.any([o.signal, watch.signal]);
      void watchAlive(o, current, both, log);
    }
  } finally {
    watch?.abort();
  }
}

async function watchAlive(o: ServeOptions, c: Provisioned, signal: AbortSignal, log: Logger): Promise<void> {
  o.metrics.alive(false);
  const { first, max } = o.alivePollMs ?? { first: 2000, max: 60_000 };
  const deadline = Date.now() + (o.aliveTimeoutMs ?? 600_000);
  let pause = first;
  while (!signal.aborted && Date.now() < deadline) {
    if (!(await sleep(pause, signal))) return;
    pause = Math.min(max, pause * 2);
    try {
      const state = (await o.api.getConnector(c.id))?.state;
      if (state === 'ALIVE') {
        o.metrics.alive(true);
        log.info(
          { connector: c.name, id: c.id },
          'connector is ALIVE; its tokens are held by the connector process only',
        );
        return;
      }
      log.debug({ connector: c.name, state }, 'connector not ALIVE yet');
    } catch (e) {
      log.warn({ connector: c.name, error: errorMessage(e) }, 'could not read the connector state');
    }
  }
  if (!signal.aborted) log.warn({ connector: c.name, id: c.id }, 'connector did not report ALIVE in time');
}
