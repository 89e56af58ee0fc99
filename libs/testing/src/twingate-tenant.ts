/**
 * FakeTwingateTenant: a Twingate tenant's admin API on loopback, for tests of clients that
 * provision connectors (apps/connector-init, libs/twingate). The vendor's service cannot run here,
 * so this hand-written fake follows what its three open-source clients (tg-cli, the Kubernetes
 * operator, the Terraform provider) and its docs show (`../shared/anchors/connector.md` §2),
 * errors and limits included. The GraphQL layer is graphql-js with an SDL of the modelled subset
 * (`TWINGATE_SDL` in twingate-schema.ts), so a wrong field, argument or variable type gets the real
 * validation error.
 *
 * Modelled:
 * - `POST /api/graphql/` with JSON `{query, variables, operationName}` (also `application/graphql`)
 *   and `X-API-KEY`; a missing or unknown key → HTTP 401 `{"error": …}`.
 * - Queries `remoteNetworks(first, after, filter: RemoteNetworkFilterInput)`,
 *   `remoteNetwork(id, name)` with nested `connectors(first, after)`, `connectors(first, after,
 *   filter: ConnectorFilterInput)` tenant-wide, `connector(id)` (null when unknown). Relay
 *   connections `{pageInfo{hasNextPage endCursor …} edges{cursor node}}` in creation order; `first`
 *   above `maxPageSize` or below 1 is a GraphQL error; without `first`, `defaultPageSize`.
 *   `StringFilterOperationInput` has the vendor's operators (eq, ne, startsWith, endsWith,
 *   contains, regexp, in), ANDed.
 * - Mutations with flat arguments returning `{ok error entity}` (`error` a String):
 *   `connectorCreate` (new connectors are `DEAD_NO_HEARTBEAT`, no heartbeat; no name → a free
 *   two-word name like `whispering-petrel`), `connectorUpdate`, `connectorDelete`,
 *   `connectorGenerateTokens(connectorId)` (a new JWT-shaped access token and a 100-character
 *   refresh token; the previous pair is dead from then on), `remoteNetworkCreate`.
 * - Ids are base64 of `Type:n`; a malformed one → GraphQL error `{'id': ['Unable to parse global
 *   ID']}` with `path` (keyed by the argument's name); a well-formed unknown one → `connector: null`
 *   or `{ok: false, error: "Field 'id' Connector with id '<id>' does not exist."}`.
 * - Scopes: `read` keys run queries only, `write` keys all mutations but `connectorGenerateTokens`,
 *   `provision` keys everything; a refused field is null with the error `You do not have
 *   permission to perform this action` (HTTP 200).
 * - The budget (60 reads, 20 writes per minute per tenant, sliding window): each authenticated
 *   POST is one read, or one write when its operation is a mutation; over budget → HTTP 429 with
 *   `Retry-After` (whole seconds until a slot frees, at least 1), which costs nothing.
 * - Shards (`shard: true`): the global listener (`url`) answers every request, `HEAD` and `POST
 *   /api/graphql/` included, with `308 Location: <shardUrl><path>`; the shard serves the API.
 * - `POST /api/v4/connector/validate_tokens` (`Authorization: Bearer <access>`, body
 *   `{"refresh_token"}`): 200 for a connector's current pair, else 401; outside the budget.
 * - HTTP status like graphene-django's view: an error without a `path` (syntax, validation,
 *   variable coercion) → 400 `{"errors": […]}` without `data`; bad JSON → 400 `POST body sent
 *   invalid JSON.`; no query → 400 `Must provide query string.`; other methods → 405.
 * - So that the fake is no hazard itself: bodies above 1 MiB → 413 and the connection closed;
 *   `@knet/runtime`'s header and request timeouts (`http` option), 127.0.0.1 only.
 *
 * Test handles (not the vendor's): `addNetwork`, `addConnector` (pre-existing, e.g. old offline
 * connectors), `setState`, `markAlive`, `heartbeat` and `POST /fake/connector/heartbeat` (same
 * request shape as validate_tokens; what a fake connector process calls to go ALIVE), `calls`,
 * `onRequest` hooks (before: after auth and budget, before executing, may delay; after: after the
 * effect, before the answer is written; a hook that throws makes the answer a 500), `failNext`
 * (faults answered before auth, outside the budget, recorded in `calls`; a 429 without
 * `retryAfterSeconds` says 60), a `now` clock for the budget and the timestamps. A call's
 * `operation` and `kind` come from the operation `operationName` selects (else the first).
 *
 * Assumptions (the vendor does not document these; each is a guess from its stack, Django and
 * Graphene, or from its clients):
 * - Permission wording and placement are Graphene's (`PERMISSION_DENIED`); mutations check scope
 *   before their arguments.
 * - A malformed id in a mutation is a GraphQL error too (not `{ok: false}`), keyed by the argument
 *   (`{'connectorId': [...]}`, `{'remoteNetworkId': [...]}`); a well-formed id of another type is
 *   an unknown id.
 * - Duplicate names: `{ok: false, error: "Connector with name '<name>' already exists."}` (connector
 *   names are unique in the tenant, deleted ones excepted) and `Remote Network with name '<name>'
 *   already exists.`; an empty name on create is treated like no name.
 * - Cursors are graphql-relay's offset cursors (base64 `arrayconnection:<offset>`), as Graphene's
 *   connection fields make them: a connector deleted between two pages shifts the next page by
 *   one, and an unreadable `after` starts from the beginning, as there.
 * - The `first` limit error is graphene-django's wording; `first < 1` is refused too (graphql-relay
 *   would give an empty page for 0).
 * - `remoteNetwork` without `id` and `name` is a GraphQL error; with both, both must match.
 * - Budget 429 body `{"error": "Rate limit exceeded…"}`; 401 body `{"error": "Invalid API key"}`.
 * - Timestamps are Graphene DateTime strings (`2024-05-01T10:00:00.123000+00:00`).
 * - `HEAD` on a listener that does not redirect → 405 (graphene-django's view serves GET and POST
 *   only); clients must take any non-308 answer to their shard probe as "no shard".
 * - Access-token payload `{typ: 'connector', connectorId, jti, iat}`, signed by nobody (a random
 *   64-byte ES256-sized signature).
 * - `hasStatusNotificationsEnabled` defaults to true; `location` OTHER, `networkType` REGULAR.
 *
 * Not modelled: GET queries, `last`/`before`, `totalCount`, any other object type (resources,
 * groups, users…) or mutation (`remoteNetworkDelete`…), key CIDR allow-lists, state changes the
 * real service makes by itself (an ALIVE connector whose tokens were revoked stays ALIVE until a
 * test calls `setState`; hostname, version and IPs stay null), the tokens' own expiry and refresh,
 * TLS, and the real host names (`<network>.twingate.com` vs `<network>.us1.twingate.com` are two
 * loopback ports here). validate_tokens and heartbeat calls are not in `calls`.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  GraphQLError,
  Kind,
  execute,
  getOperationAST,
  parse,
  validate,
  type DocumentNode,
  type OperationDefinitionNode,
  type SelectionSetNode,
} from 'graphql';
import { DEFAULT_HTTP_LIMITS, errorMessage, type HttpLimits } from '@knet/runtime';
import {
  TWINGATE_SCHEMA,
  TenantStore,
  type ConnectorState,
  type ConnectorTokens,
  type NewConnector,
  type TenantConnector,
  type TenantContext,
  type TenantKeyScope,
} from './twingate-schema';

export type { ConnectorState, NewConnector, TenantConnector, TenantKeyScope } from './twingate-schema';
/** The modelled schema, e.g. to validate a client's documents in a unit test (`buildSchema`, `validate`). */
export { TWINGATE_SDL } from './twingate-schema';

export interface FakeTenantOptions {
  /** API keys and their scopes (default `{ 'test-key': 'provision' }`). */
  keys?: Record<string, TenantKeyScope>;
  /** Remote networks that exist at start (default `['lab']`). */
  networks?: string[];
  /** Per tenant, sliding window (default 60 reads, 20 writes per 60 s); `false` = no limit. */
  limits?: { reads: number; writes: number; windowMs: number } | false;
  /** Largest `first` (default 100). */
  maxPageSize?: number;
  /** Page size when `first` is absent (default 50, or `maxPageSize` when that is smaller). */
  defaultPageSize?: number;
  /** Two listeners: `url` redirects (308) to `shardUrl`, which serves the API. */
  shard?: boolean;
  /** Clock for the budget, timestamps and `calls[].at` (default `Date.now`). */
  now?: () => number;
  /** Timeouts and header size for hostile-client tests (default: `@knet/runtime`'s `DEFAULT_HTTP_LIMITS`). */
  http?: HttpLimits;
}

export interface TenantCall {
  key: string;
  /** The operation's first root field (`connectorGenerateTokens`), or '' when the body does not parse. */
  operation: string;
  kind: 'read' | 'write';
  status: number;
  /** When it arrived (the tenant's clock). */
  at: number;
}

export type TenantHook = (call: {
  key: string;
  operation: string;
  kind: 'read' | 'write';
  phase: 'before' | 'after';
}) => void | Promise<void>;

export type TenantFault = { status: 429 | 500 | 502 | 503; retryAfterSeconds?: number };

/** The request body cap of every endpoint (larger → 413 and the connection is closed). */
export const TENANT_MAX_BODY_BYTES = 1024 * 1024;

const GRAPHQL_PATH = '/api/graphql/';
const VALIDATE_PATH = '/api/v4/connector/validate_tokens';
const HEARTBEAT_PATH = '/fake/connector/heartbeat';
const JSON_TYPE = 'application/json';

interface Answer {
  status: number;
  body: unknown;
  headers?: Record<string, string>;
}

/** A request's identity for the budget, hooks and `calls`. */
interface Classified {
  key: string;
  operation: string;
  kind: 'read' | 'write';
}

/** A fake Twingate tenant (admin GraphQL API and token check) on 127.0.0.1; see the file comment. */
export class FakeTwingateTenant {
  readonly url: string;
  readonly shardUrl?: string;
  private readonly store: TenantStore;
  private readonly callLog: TenantCall[] = [];
  private readonly hooks = new Set<TenantHook>();
  private readonly faults: TenantFault[] = [];
  private readonly spent: Record<'read' | 'write', number[]> = { read: [], write: [] };
  private readonly servers: http.Server[];
  private stopped: Promise<void> | undefined;

  private constructor(
    private readonly opts: {
      keys: Record<string, TenantKeyScope>;
      limits: { reads: number; writes: number; windowMs: number } | false;
      now: () => number;
    },
    store: TenantStore,
    servers: http.Server[],
    url: string,
    shardUrl: string | undefined,
  ) {
    this.store = store;
    this.servers = servers;
    this.url = url;
    if (shardUrl !== undefined) this.shardUrl = shardUrl;
  }

  static async start(o: FakeTenantOptions = {}): Promise<FakeTwingateTenant> {
    const now = o.now ?? Date.now;
    const max = o.maxPageSize ?? 100;
    const pages = { max, default: o.defaultPageSize ?? Math.min(50, max) };
    if (!(pages.max >= 1 && pages.default >= 1 && pages.default <= pages.max))
      throw new Error(
        `page sizes: need 1 <= defaultPageSize (${pages.default}) <= maxPageSize (${pages.max})`,
      );
    const store = new TenantStore(now, pages);
    for (const name of o.networks ?? ['lab']) store.addNetwork(name);
    const limits = { ...DEFAULT_HTTP_LIMITS, ...o.http };
    const options: http.ServerOptions = {
      headersTimeout: limits.headersTimeoutMs,
      requestTimeout: Math.max(limits.requestTimeoutMs, limits.headersTimeoutMs),
      keepAliveTimeout: limits.keepAliveTimeoutMs,
      maxHeaderSize: limits.maxHeaderSize,
      connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(limits.headersTimeoutMs / 4))),
    };
    // The handlers need the tenant, which needs the URLs: servers first, routed once it exists.
    let tenant: FakeTwingateTenant | undefined;
    const serving = http.createServer(options, (req, res) =>
      tenant ? tenant.serve(req, res) : send(res, { status: 503, body: { error: 'Starting' } }),
    );
    const servers = [serving];
    let global: http.Server | undefined;
    try {
      const servingUrl = await listen(serving);
      let url = servingUrl;
      if (o.shard) {
        global = http.createServer(options, (req, res) => redirect(req, res, servingUrl));
        servers.push(global);
        url = await listen(global);
      }
      tenant = new FakeTwingateTenant(
        {
          keys: o.keys ?? { 'test-key': 'provision' },
          limits: o.limits ?? { reads: 60, writes: 20, windowMs: 60_000 },
          now,
        },
        store,
        servers,
        url,
        o.shard ? servingUrl : undefined,
      );
      return tenant;
    } catch (e) {
      await Promise.all(servers.map(close));
      throw e;
    }
  }

  get calls(): readonly TenantCall[] {
    return this.callLog;
  }

  callsByKey(key: string): TenantCall[] {
    return this.callLog.filter((c) => c.key === key);
  }

  addNetwork(name: string): { id: string; name: string } {
    return this.store.addNetwork(name);
  }

  addConnector(c: NewConnector): TenantConnector {
    return this.store.addConnector(c);
  }

  connectors(o?: { includeDeleted?: boolean }): TenantConnector[] {
    return this.store.connectors(o);
  }

  setState(id: string, state: ConnectorState): void {
    this.store.setState(id, state);
  }

  markAlive(id: string): void {
    this.store.markAlive(id);
  }

  currentTokens(id: string): ConnectorTokens | undefined {
    return this.store.currentTokens(id);
  }

  heartbeat(tokens: ConnectorTokens): string | undefined {
    return this.store.heartbeat(tokens);
  }

  /** Runs `hook` around every authenticated, budgeted GraphQL request; returns its unsubscribe. */
  onRequest(hook: TenantHook): () => void {
    const own = (call: Parameters<TenantHook>[0]) => hook(call); // the same hook twice = two entries
    this.hooks.add(own);
    return () => void this.hooks.delete(own);
  }

  /** The next `n` GraphQL POSTs are answered with `f` before auth (not counted in the budget). */
  failNext(n: number, f: TenantFault): void {
    for (let i = 0; i < n; i++) this.faults.push({ ...f });
  }

  /** Closes the listeners and cuts open connections (a hook still waiting then writes to nothing). */
  stop(): Promise<void> {
    this.stopped ??= Promise.all(this.servers.map(close)).then(() => undefined);
    return this.stopped;
  }

  private serve(req: http.IncomingMessage, res: http.ServerResponse): void {
    const path = (req.url ?? '/').split('?')[0];
    const route =
      path === GRAPHQL_PATH
        ? (body: Buffer) => this.graphql(req, body)
        : path === VALIDATE_PATH
          ? (body: Buffer) => this.tokenCheck(req, body, false)
          : path === HEARTBEAT_PATH
            ? (body: Buffer) => this.tokenCheck(req, body, true)
            : undefined;
    if (!route) {
      req.resume();
      return send(res, { status: 404, body: { error: 'Not found' } });
    }
    if (req.method !== 'POST') {
      req.resume();
      const message = 'Only POST is served here (GET queries are not modelled).';
      return send(res, { status: 405, body: { errors: [{ message }] }, headers: { Allow: 'POST' } });
    }
    readBody(req, res, (body) => {
      route(body).then(
        (answer) => send(res, answer),
        (e: unknown) => send(res, { status: 500, body: { error: errorMessage(e) } }),
      );
    });
  }

  private async tokenCheck(req: http.IncomingMessage, body: Buffer, heartbeat: boolean): Promise<Answer> {
    const auth = /^Bearer (\S+)$/.exec(req.headers.authorization ?? '');
    let refresh: unknown;
    try {
      refresh = (JSON.parse(body.toString('utf8')) as { refresh_token?: unknown } | null)?.refresh_token;
    } catch {
      return { status: 400, body: { error: 'Body is not JSON' } };
    }
    const tokens = { accessToken: auth?.[1], refreshToken: refresh };
    const id = heartbeat ? this.store.heartbeat(tokens) : this.store.holderOf(tokens);
    if (id === undefined) return { status: 401, body: { error: 'Invalid tokens' } };
    return { status: 200, body: heartbeat ? { id } : {} };
  }

  private async graphql(req: http.IncomingMessage, body: Buffer): Promise<Answer> {
    const at = this.opts.now();
    const header = req.headers['x-api-key'];
    const key = typeof header === 'string' ? header : '';
    const request = parseRequest(req.headers['content-type'], body);
    const call: Classified = { key, ...classify(request) };
    const answer = await this.answerGraphql(call, request);
    this.callLog.push({ ...call, status: answer.status, at });
    return answer;
  }

  private async answerGraphql(call: Classified, request: ParsedRequest): Promise<Answer> {
    const fault = this.faults.shift();
    if (fault) {
      const headers: Record<string, string> = {};
      if (fault.status === 429) headers['Retry-After'] = String(fault.retryAfterSeconds ?? 60);
      return { status: fault.status, body: { error: `Injected fault (HTTP ${fault.status})` }, headers };
    }
    const scope = call.key === '' ? undefined : this.opts.keys[call.key];
    if (scope === undefined) {
      return {
        status: 401,
        body: { error: call.key === '' ? 'Missing API key (X-API-KEY)' : 'Invalid API key' },
      };
    }
    const retryAfter = this.spend(call.kind);
    if (retryAfter !== undefined) {
      return {
        status: 429,
        body: { error: `Rate limit exceeded: too many ${call.kind}s, retry in ${retryAfter} s` },
        headers: { 'Retry-After': String(retryAfter) },
      };
    }
    try {
      await this.runHooks(call, 'before');
      const answer = run(request, { scope }, this.store.root);
      await this.runHooks(call, 'after');
      return answer;
    } catch (e) {
      return { status: 500, body: { error: `onRequest hook failed: ${errorMessage(e)}` } };
    }
  }

  /** Takes a slot of `kind`'s budget; when none is free, the whole seconds until one is (≥ 1). */
  private spend(kind: 'read' | 'write'): number | undefined {
    const limits = this.opts.limits;
    if (limits === false) return undefined;
    const now = this.opts.now();
    const slots = this.spent[kind];
    while ((slots[0] ?? Infinity) <= now - limits.windowMs) slots.shift();
    const max = kind === 'read' ? limits.reads : limits.writes;
    if (slots.length < max) {
      slots.push(now);
      return undefined;
    }
    const oldest = slots[slots.length - max] ?? now; // a limit of 0: a whole window
    return Math.max(1, Math.ceil((oldest + limits.windowMs - now) / 1000));
  }

  private async runHooks(call: Classified, phase: 'before' | 'after'): Promise<void> {
    for (const hook of [...this.hooks]) await hook({ ...call, phase });
  }
}

type ParsedRequest =
  | {
      query: string;
      variables: Record<string, unknown> | undefined;
      operationName: string | undefined;
      document?: DocumentNode;
    }
  | { error: string };

/** The body as graphene-django's view reads it; the document parsed when it parses. */
function parseRequest(contentType: string | undefined, body: Buffer): ParsedRequest {
  const type = (contentType ?? '').split(';', 1)[0]?.trim().toLowerCase();
  let data: Record<string, unknown> = {};
  if (type === 'application/graphql') data = { query: body.toString('utf8') };
  else if (type === JSON_TYPE) {
    try {
      const parsed: unknown = JSON.parse(body.toString('utf8'));
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
        return { error: 'The received data is not a valid JSON query.' };
      data = parsed as Record<string, unknown>;
    } catch {
      return { error: 'POST body sent invalid JSON.' };
    }
  }
  const query = data['query'];
  if (typeof query !== 'string' || query === '') return { error: 'Must provide query string.' };
  let variables = data['variables'];
  if (typeof variables === 'string' && variables !== '') {
    try {
      variables = JSON.parse(variables);
    } catch {
      return { error: 'Variables are invalid JSON.' };
    }
  }
  if (variables === null || variables === '') variables = undefined;
  if (variables !== undefined && (typeof variables !== 'object' || Array.isArray(variables)))
    return { error: 'Variables are invalid JSON.' };
  const name = data['operationName'];
  const operationName = typeof name === 'string' && name !== '' && name !== 'null' ? name : undefined;
  const request = { query, variables: variables as Record<string, unknown> | undefined, operationName };
  try {
    return { ...request, document: parse(query) };
  } catch {
    return request; // run() reports the syntax error
  }
}

/** The operation's kind and first root field; a document that does not parse is a read named ''. */
function classify(request: ParsedRequest): Omit<Classified, 'key'> {
  if ('error' in request || !request.document) return { operation: '', kind: 'read' };
  const doc = request.document;
  const op = getOperationAST(doc, request.operationName);
  const ops = doc.definitions.filter(
    (d): d is OperationDefinitionNode => d.kind === Kind.OPERATION_DEFINITION,
  );
  const mutation = op ? op.operation === 'mutation' : ops.some((d) => d.operation === 'mutation');
  return {
    operation: firstField((op ?? ops[0])?.selectionSet, doc) ?? '',
    kind: mutation ? 'write' : 'read',
  };
}

function firstField(
  set: SelectionSetNode | undefined,
  doc: DocumentNode,
  seen = new Set<string>(),
): string | undefined {
  for (const s of set?.selections ?? []) {
    if (s.kind === Kind.FIELD) return s.name.value;
    if (s.kind === Kind.INLINE_FRAGMENT) {
      const f = firstField(s.selectionSet, doc, seen);
      if (f) return f;
    } else if (!seen.has(s.name.value)) {
      seen.add(s.name.value);
      const frag = doc.definitions.find(
        (d) => d.kind === Kind.FRAGMENT_DEFINITION && d.name.value === s.name.value,
      );
      const f =
        frag?.kind === Kind.FRAGMENT_DEFINITION ? firstField(frag.selectionSet, doc, seen) : undefined;
      if (f) return f;
    }
  }
  return undefined;
}

/** Validates and executes as graphene-django does: any error without a path → 400 without data. */
function run(request: ParsedRequest, ctx: TenantContext, root: unknown): Answer {
  if ('error' in request) return { status: 400, body: { errors: [{ message: request.error }] } };
  let document = request.document;
  if (!document) {
    try {
      document = parse(request.query);
    } catch (e) {
      return badRequest([e instanceof GraphQLError ? e : new GraphQLError(errorMessage(e))]);
    }
  }
  const invalid = validate(TWINGATE_SCHEMA, document);
  if (invalid.length > 0) return badRequest(invalid);
  const result = execute({
    schema: TWINGATE_SCHEMA,
    document,
    rootValue: root,
    contextValue: ctx,
    variableValues: request.variables ?? null,
    operationName: request.operationName ?? null,
  });
  if (result instanceof Promise) throw new Error('resolvers of the fake tenant must be synchronous');
  const errors = result.errors ?? [];
  if (errors.some((e) => !e.path)) return badRequest(errors);
  return {
    status: 200,
    body:
      errors.length > 0
        ? { errors: errors.map((e) => e.toJSON()), data: result.data }
        : { data: result.data },
  };
}

function badRequest(errors: readonly GraphQLError[]): Answer {
  return { status: 400, body: { errors: errors.map((e) => e.toJSON()) } };
}

/** Reads the whole body up to the cap; over it → 413 and the connection is closed. */
function readBody(req: http.IncomingMessage, res: http.ServerResponse, then: (body: Buffer) => void): void {
  const tooLarge = () => {
    res.shouldKeepAlive = false;
    send(res, {
      status: 413,
      body: { error: `Request body larger than ${TENANT_MAX_BODY_BYTES} bytes` },
      headers: { Connection: 'close' },
    });
    res.once('finish', () => req.socket.destroy());
  };
  if (Number(req.headers['content-length'] ?? 0) > TENANT_MAX_BODY_BYTES) return tooLarge();
  const chunks: Buffer[] = [];
  let size = 0;
  let done = false;
  req.on('data', (chunk: Buffer) => {
    if (done) return;
    size += chunk.length;
    if (size > TENANT_MAX_BODY_BYTES) {
      done = true;
      chunks.length = 0;
      return tooLarge();
    }
    chunks.push(chunk);
  });
  req.on('end', () => {
    if (done) return;
    done = true;
    then(Buffer.concat(chunks, size));
  });
  req.on('close', () => {
    done = true; // aborted or cut by a timeout: nothing to answer
    chunks.length = 0;
  });
}

/** The global listener of a sharded tenant: everything goes to the shard, path kept. */
function redirect(req: http.IncomingMessage, res: http.ServerResponse, shardUrl: string): void {
  send(res, {
    status: 308,
    body: { error: 'Moved to shard' },
    headers: { Location: `${shardUrl}${req.url ?? '/'}` },
  });
}

function send(res: http.ServerResponse, a: Answer): void {
  if (res.headersSent || res.destroyed) return;
  const text = JSON.stringify(a.body);
  res.statusCode = a.status;
  res.setHeader('Content-Type', JSON_TYPE);
  res.setHeader('Content-Length', Buffer.byteLength(text));
  res.setHeader('Cache-Control', 'no-store');
  for (const [k, v] of Object.entries(a.headers ?? {})) res.setHeader(k, v);
  res.end(res.req.method === 'HEAD' ? undefined : text);
}

function listen(server: http.Server): Promise<string> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    });
  });
}

function close(server: http.Server): Promise<void> {
  if (!server.listening) return Promise.resolve();
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}
