import type { IncomingHttpHeaders, ServerResponse } from 'node:http';
import { ScriptedHttpServer, inTurn as inTurnOf, sendJson } from '@knet/testing';
import { TwingateClient, TwingateError, type TwingateClientOptions } from '../src';

/**
 * A scripted Twingate API on 127.0.0.1 for the specs: each test sets `onPost` (and `onHead`) and
 * answers with payloads shaped like the real API's; every request is kept in `requests`, and the
 * server counts requests in flight.
 */
export class ApiServer {
  readonly requests: SeenRequest[] = [];
  onPost: Reply = (_req, res) => sendJson(res, 404, { detail: 'Not found.' });
  /** Default: the real API's answer to HEAD on the GraphQL path when there is no shard (405). */
  onHead: Reply = (_req, res) => {
    res.writeHead(405, { Allow: 'GET, POST, OPTIONS' });
    res.end();
  };

  private constructor(private readonly http: ScriptedHttpServer) {}

  static async start(): Promise<ApiServer> {
    // The handler runs only once `start` has returned: `self.api` is set by then.
    const self: { api?: ApiServer } = {};
    const http = await ScriptedHttpServer.start((req, res) => {
      const seen: SeenRequest = {
        method: req.method,
        path: req.url.pathname + req.url.search,
        headers: req.headers,
        body: req.body,
      };
      if (req.headers['content-type'] === 'application/json' && req.body) {
        const json = JSON.parse(req.body) as { query?: string; variables?: Record<string, unknown> };
        if (typeof json.query === 'string') {
          seen.query = json.query;
          seen.variables = json.variables ?? {};
          seen.operation = /^\s*(?:query|mutation)\s+(\w+)/.exec(json.query)?.[1];
        }
      }
      self.api?.requests.push(seen);
      return (req.method === 'HEAD' ? self.api?.onHead : self.api?.onPost)?.(seen, res);
    });
    self.api = new ApiServer(http);
    return self.api;
  }

  /** Requests being answered now, and the most there ever were at once. */
  get inFlight(): number {
    return this.http.inFlight;
  }

  get maxInFlight(): number {
    return this.http.maxInFlight;
  }

  /** The port it listens on (kept after `close`, to test a refused connection). */
  get port(): number {
    return this.http.port;
  }

  /** `http://127.0.0.1:<port>` (what a client takes as `apiUrl`). */
  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** The POSTs received (GraphQL and validate_tokens), in order. */
  posts(): SeenRequest[] {
    return this.requests.filter((r) => r.method === 'POST');
  }

  close(): Promise<void> {
    return this.http.close();
  }
}

/**
 * Starts a fresh server before each test of the enclosing `describe` (handing it to `use`) and
 * closes it after the test, failed or not.
 */
export function withApiServer(use: (server: ApiServer) => void): void {
  let current: ApiServer | undefined;
  beforeEach(async () => {
    current = await ApiServer.start();
    use(current);
  });
  afterEach(async () => {
    await current?.close();
    current = undefined;
  });
}

export interface SeenRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
  /** For GraphQL requests: the document, its variables and its operation name (= root field). */
  query?: string;
  variables?: Record<string, unknown>;
  operation?: string;
}

export type Reply = (req: SeenRequest, res: ServerResponse) => void | Promise<void>;

export { sendJson };

/** A GraphQL success: HTTP 200 `{data}`. */
export function sendData(res: ServerResponse, data: Record<string, unknown>): void {
  sendJson(res, 200, { data });
}

/** Error shape 2: HTTP 200 with `errors` and `data.<field>: null`, as the real API sends it. */
export function sendGraphqlError(res: ServerResponse, field: string, message: string): void {
  sendJson(res, 200, {
    errors: [{ message, locations: [{ line: 2, column: 3 }], path: [field] }],
    data: { [field]: null },
  });
}

/** Error shape 1: HTTP 200, `data.<mutation> = {ok: false, error}`. */
export function sendMutationRefused(res: ServerResponse, mutation: string, error: string): void {
  sendData(res, { [mutation]: { ok: false, error, entity: null } });
}

/** A redirect to `location` (the shard answer: 308, or 307). */
export function redirectTo(location: string, status = 308): Reply {
  return (_req, res) => {
    res.writeHead(status, { Location: location });
    res.end();
  };
}

/** The TwingateError `p` rejects with (anything else, or success, fails the test). */
export async function failure(p: Promise<unknown>): Promise<TwingateError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof TwingateError) return e;
    throw e;
  }
  throw new Error('expected a TwingateError, the call succeeded');
}

/** Answers the requests in turn with `replies`; later requests get the last one. */
export const inTurn: (...replies: Reply[]) => Reply = inTurnOf;

/** An opaque global id, as the API makes them: base64 of `Type:n` (`Q29ubmVjdG9yOjE=`). */
export function globalId(type: string, n: number): string {
  return Buffer.from(`${type}:${n}`).toString('base64');
}

export const NETWORK = { id: globalId('RemoteNetwork', 7), name: 'k8s-prod' };

/** A connector node with every field, as the API returns it. */
export function connectorNode(n: number, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    id: globalId('Connector', n),
    name: `connector-${n}`,
    state: 'ALIVE',
    remoteNetwork: NETWORK,
    hasStatusNotificationsEnabled: true,
    hostname: `connector-${n}-7d9f8`,
    version: '1.72.0',
    publicIP: '203.0.113.10',
    privateIPs: [`10.244.1.${n}`],
    lastHeartbeatAt: '2024-05-02T10:11:12.345678+00:00',
    createdAt: '2024-04-01T08:00:00.000000+00:00',
    updatedAt: '2024-05-02T10:11:12.345678+00:00',
    ...overrides,
  };
}

/** A Relay connection page. `endCursor: undefined` leaves the field out (the last page may). */
export function page(nodes: unknown[], hasNextPage: boolean, endCursor?: string): Record<string, unknown> {
  const pageInfo: Record<string, unknown> = { hasNextPage };
  if (endCursor !== undefined) pageInfo['endCursor'] = endCursor;
  return { pageInfo, edges: nodes.map((node) => ({ node })) };
}

/** A `sleep` that returns at once and records what it was asked to wait. */
export function recordingSleep(): { waits: number[]; sleep: (ms: number) => Promise<void> } {
  const waits: number[] = [];
  return {
    waits,
    sleep: async (ms: number) => {
      waits.push(ms);
    },
  };
}

export const API_KEY = 'tgk_live_9f8e7d6c5b4a3928170f6e5d4c3b2a19';

/** A client of `server` with the test key, recorded sleeps and no jitter (backoff waits are 500, 1000, 2000… ms). */
export function clientOf(
  server: ApiServer,
  options: Partial<TwingateClientOptions> = {},
): { client: TwingateClient; waits: number[] } {
  const { waits, sleep } = recordingSleep();
  const client = new TwingateClient({
    apiKey: API_KEY,
    apiUrl: server.url,
    sleep,
    random: () => 0,
    ...options,
  });
  return { client, waits };
}
