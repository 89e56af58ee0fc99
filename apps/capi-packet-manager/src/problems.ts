/**
 * What a Metal API failure means for a reconcile (the condition reason, the message, when to look
 * again), decided by the error's kind (its HTTP status) and never by its text; and a log that says
 * each distinct problem once — bad credentials across 100 machines are one log line, not 100 per
 * resync — and says again when it is over.
 */
import { isMetalError } from '@knet/metal';
import type { Logger } from '@knet/runtime';

export interface MetalTrouble {
  reason: string;
  message: string;
  retryAfterMs: number;
  /**
   * The API is busy or away (429, 503, no answer): nothing — not even the watch event of the
   * condition this writes — may make the object call it again before `retryAfterMs`.
   */
  holdOff: boolean;
}

/** Undefined for errors that are not the Metal API's (they go to the work queue's backoff). */
export function metalTrouble(e: unknown): MetalTrouble | undefined {
  if (!isMetalError(e)) return undefined;
  switch (e.kind) {
    case 'unauthorized':
      return {
        reason: 'CredentialsInvalid',
        message:
          "the Metal API refused the API key (401): put a valid key in the manager's credentials Secret " +
          '(PACKET_API_KEY) and restart the manager',
        retryAfterMs: 60_000,
        holdOff: false,
      };
    case 'transient':
    case 'unreachable':
      return {
        reason: 'MetalApiUnavailable',
        message: e.message,
        retryAfterMs: e.retryAfterMs ?? 10_000,
        holdOff: true,
      };
    case 'forbidden':
      return {
        reason: 'MetalApiForbidden',
        message: `${e.message} (does the API key have access to the project?)`,
        retryAfterMs: 300_000,
        holdOff: false,
      };
    case 'gone':
      return {
        reason: 'MetalApiNotFound',
        message: `${e.message} (is the projectID right?)`,
        retryAfterMs: 300_000,
        holdOff: false,
      };
    case 'invalid':
      return { reason: 'MetalApiRejected', message: e.message, retryAfterMs: 300_000, holdOff: false };
    case 'terminal':
      return { reason: 'MetalApiError', message: e.message, retryAfterMs: 60_000, holdOff: false };
  }
}

export class ProblemLog {
  /** problem (reason + message) → the objects that have it. */
  private readonly open = new Map<string, Set<string>>();
  /** object → its problem. */
  private readonly byObject = new Map<string, string>();

  constructor(private readonly logger: Logger) {}

  report(object: string, reason: string, message: string): void {
    const problem = `${reason}: ${message}`;
    if (this.byObject.get(object) === problem) return;
    this.clear(object);
    this.byObject.set(object, problem);
    let set = this.open.get(problem);
    if (!set) {
      set = new Set();
      this.open.set(problem, set);
      this.logger.error({ reason, first: object }, message);
    }
    set.add(object);
  }

  /** The object reconciled without a problem (or is gone). */
  clear(object: string): void {
    const problem = this.byObject.get(object);
    if (problem === undefined) return;
    this.byObject.delete(object);
    const set = this.open.get(problem);
    set?.delete(object);
    if (set && set.size === 0) {
      this.open.delete(problem);
      this.logger.info({ last: object }, `resolved: ${problem}`);
    }
  }

  /** Open problems and how many objects each affects. */
  summary(): Record<string, number> {
    return Object.fromEntries([...this.open].map(([p, s]) => [p, s.size]));
  }
}
