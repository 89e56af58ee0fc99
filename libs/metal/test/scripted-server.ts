import type { IncomingHttpHeaders, ServerResponse } from 'node:http';
import { ScriptedHttpServer, inTurn as inTurnOf, sendJson as sendJsonOf } from '@knet/testing';
import { MetalApiError, MetalClient, type MetalCall, type MetalClientOptions } from '../src';

/** The token every spec client sends; no error may ever contain it. */
export const TOKEN = 'tok-7f3a9c-SECRET-e1d2';
/** Where the scripted server serves the API, like the real one. */
export const BASE_PATH = '/metal/v1';

/** A request the server received. */
export interface Seen {
  method: string;
  /** The path under `BASE_PATH`, without the query. */
  path: string;
  query: URLSearchParams;
  headers: IncomingHttpHeaders;
  body: string;
}

export type Reply = (req: Seen, res: ServerResponse) => void | Promise<void>;

interface Route {
  method: string;
  path: string;
  reply: Reply;
}

/**
 * A Metal API on 127.0.0.1 scripted per test: `on(method, path, reply)` answers requests to
 * `${BASE_PATH}${path}` (other requests get the API's 404), and every request is kept in
 * `requests`. Over https when given a certificate.
 */
export class ScriptedServer {
  readonly requests: Seen[] = [];
  private readonly routes: Route[] = [];

  private constructor(private readonly http: ScriptedHttpServer) {}

  static async start(tls?: { certPem: string; keyPem: string }): Promise<ScriptedServer> {
    // The handler runs only once `start` has returned: `self.api` is set by then.
    const self: { api?: ScriptedServer } = {};
    const http = await ScriptedHttpServer.start(
      (req, res) => {
        const { pathname } = req.url;
        const seen: Seen = {
          method: req.method,
          path: pathname.startsWith(BASE_PATH) ? pathname.slice(BASE_PATH.length) : pathname,
          query: req.url.searchParams,
          headers: req.headers,
          body: req.body,
        };
        self.api?.requests.push(seen);
        const route = self.api?.routes.find(
          (r) => r.method === seen.method && `${BASE_PATH}${r.path}` === pathname,
        );
        const reply = route?.reply ?? ((_req, r) => sendJson(r, 404, { errors: ['Not found'] }));
        return reply(seen, res);
      },
      tls ? { tls } : {},
    );
    self.api = new ScriptedServer(http);
    return self.api;
  }

  /** Answers `method` on `${BASE_PATH}${path}` with `reply` (the first matching route wins). */
  on(method: string, path: string, reply: Reply): this {
    this.routes.push({ method, path, reply });
    return this;
  }

  get port(): number {
    return this.http.port;
  }

  /** `http://127.0.0.1:<port>`. */
  get origin(): string {
    return this.http.origin;
  }

  /** `http://127.0.0.1:<port>/metal/v1`, what a client takes as `apiUrl`. */
  get apiUrl(): string {
    return `${this.origin}${BASE_PATH}`;
  }

  /** `METHOD /path?query` of every request, in order. */
  log(): string[] {
    return this.requests.map(
      (r) => `${r.method} ${r.path}${r.query.size > 0 ? `?${r.query.toString()}` : ''}`,
    );
  }

  /** Forgets the routes and requests and drops open connections: a clean server for the next test. */
  reset(): void {
    this.routes.length = 0;
    this.requests.length = 0;
    this.http.dropConnections();
  }

  close(): Promise<void> {
    return this.http.close();
  }
}

/**
 * One server for the enclosing `describe`, started before its first test and closed after the
 * last (also when a test failed), reset before each test; `use` receives it.
 */
export function withScriptedServer(use: (server: ScriptedServer) => void): void {
  let shared: ScriptedServer | undefined;
  beforeAll(async () => {
    shared = await ScriptedServer.start();
    use(shared);
  });
  beforeEach(() => shared?.reset());
  afterAll(async () => {
    await shared?.close();
  });
}

/** A JSON answer as the Metal API sends it (`application/json; charset=utf-8`). */
export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  sendJsonOf(res, status, body, { 'Content-Type': 'application/json; charset=utf-8', ...headers });
}

/** A reply with a status, an optional JSON body and headers. */
export function answer(status: number, body?: unknown, headers: Record<string, string> = {}): Reply {
  return (_req, res) => {
    if (body === undefined) {
      res.writeHead(status, headers);
      res.end();
    } else {
      sendJson(res, status, body, headers);
    }
  };
}

/** Each request gets the next reply; the last one repeats. */
export const inTurn: (...replies: Reply[]) => Reply = inTurnOf;

/** Drops the connection without an answer (a reset as the client sees it). */
export const resetConnection: Reply = (_req, res) => {
  res.socket?.destroy();
};

/** Never answers (until the server closes). */
export const noAnswer: Reply = () => undefined;

/**
 * A clock for `now` and `sleep`. In auto mode a sleep returns at once and moves the clock on by
 * its length; in manual mode it waits until `advance` moves the clock past its end. Every sleep's
 * length is kept in `waits`.
 */
export class TestClock {
  t = Date.parse('2026-03-02T10:00:00Z');
  readonly waits: number[] = [];
  private sleepers: { until: number; wake: () => void }[] = [];

  constructor(private readonly auto = true) {}

  readonly now = (): number => this.t;

  readonly sleep = async (ms: number): Promise<void> => {
    this.waits.push(ms);
    const until = this.t + ms;
    if (this.auto) {
      await Promise.resolve();
      this.t = Math.max(this.t, until);
      return;
    }
    await new Promise<void>((wake) => this.sleepers.push({ until, wake }));
  };

  /** Sleepers right now (manual mode). */
  get sleeping(): number {
    return this.sleepers.length;
  }

  /** Moves the clock on and wakes the sleepers whose end has come (manual mode). */
  advance(ms: number): void {
    this.t += ms;
    const due = this.sleepers.filter((s) => s.until <= this.t);
    this.sleepers = this.sleepers.filter((s) => s.until > this.t);
    for (const s of due) s.wake();
  }
}

/** Every error a spec client threw, for the suite-wide check that none holds the token. */
export const thrown: unknown[] = [];

/** A client of `server` with the spec token, a test clock and a record of `onCall`. */
export function clientOf(
  server: ScriptedServer,
  overrides: Partial<MetalClientOptions> & { clock?: TestClock } = {},
): { client: MetalClient; clock: TestClock; calls: MetalCall[] } {
  const { clock = new TestClock(), ...rest } = overrides;
  const calls: MetalCall[] = [];
  const client = new MetalClient({
    token: TOKEN,
    apiUrl: server.apiUrl,
    sleep: clock.sleep,
    now: clock.now,
    random: () => 0,
    onCall: (c) => calls.push(c),
    ...rest,
  });
  return { client, clock, calls };
}

/** The error `promise` rejects with (a `MetalApiError`, kept in `thrown`), or a failure. */
export async function failureOf(promise: Promise<unknown>): Promise<MetalApiError> {
  try {
    await promise;
  } catch (e) {
    thrown.push(e);
    if (e instanceof MetalApiError) return e;
    throw e;
  }
  throw new Error('expected the call to fail, it succeeded');
}

/** Places in `e` (message, stack, fields, causes) that hold `secret`. */
export function leaksOf(e: unknown, secret: string = TOKEN): string[] {
  const found: string[] = [];
  const visit = (value: unknown, where: string, depth: number): void => {
    if (depth > 4 || value === undefined || value === null) return;
    if (typeof value === 'string') {
      if (value.includes(secret)) found.push(where);
      return;
    }
    if (typeof value !== 'object') return;
    const o = value as Record<string, unknown>;
    for (const key of new Set([...Object.keys(o), 'message', 'stack', 'cause'])) {
      visit(o[key], `${where}.${key}`, depth + 1);
    }
  };
  visit(e, 'error', 0);
  return found;
}

/** A device as the API returns it (the fields the specs look at). */
export function device(id: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    id,
    href: `/metal/v1/devices/${id}`,
    hostname: `host-${id}`,
    state: 'active',
    tags: [],
    ...extra,
  };
}
