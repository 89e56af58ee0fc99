import { randomBytes, randomInt, randomUUID } from 'node:crypto';
import { GraphQLError, buildSchema, type GraphQLSchema } from 'graphql';

// The data and GraphQL half of FakeTwingateTenant (twingate-tenant.ts has the HTTP half and the
// doc comment that lists what is modelled and what is assumed).

/** Twingate's `ConnectorState` enum (all four values). */
export type ConnectorState = 'ALIVE' | 'DEAD_NO_HEARTBEAT' | 'DEAD_HEARTBEAT_TOO_OLD' | 'DEAD_NO_RELAYS';

/** An API key's scope: `read` = queries; `write` = + mutations but tokens; `provision` = all. */
export type TenantKeyScope = 'read' | 'write' | 'provision';

/** A connector as a test sees it (a copy: changing it changes nothing). */
export interface TenantConnector {
  id: string;
  name: string;
  state: ConnectorState;
  networkId: string;
  networkName: string;
  createdAt: string;
  lastHeartbeatAt: string | null;
  tokenGenerations: number;
  deleted: boolean;
}

/** A connector a test puts in the tenant before the client runs (`addConnector`). */
export interface NewConnector {
  /** The remote network's name. */
  network: string;
  /** Default: a server-picked two-word name. */
  name?: string;
  /** Default DEAD_NO_HEARTBEAT. */
  state?: ConnectorState;
  createdAt?: Date;
  /** Default: null, or now when `state` is ALIVE. */
  lastHeartbeatAt?: Date | null;
}

export interface ConnectorTokens {
  accessToken: string;
  refreshToken: string;
}

/** The SDL of the modelled subset; names of types, arguments and inputs are the vendor's. */
export const TWINGATE_SDL = /* GraphQL */ `
  """
  Graphene's DateTime: Python's isoformat(), e.g. 2024-05-01T10:00:00.123000+00:00.
  """
  scalar DateTime

  enum ConnectorState {
    ALIVE
    DEAD_NO_HEARTBEAT
    DEAD_HEARTBEAT_TOO_OLD
    DEAD_NO_RELAYS
  }

  enum RemoteNetworkLocation {
    AWS
    AZURE
    GOOGLE_CLOUD
    ON_PREMISE
    OTHER
  }

  enum RemoteNetworkType {
    REGULAR
    EXIT
  }

  input StringFilterOperationInput {
    eq: String
    ne: String
    startsWith: String
    endsWith: String
    contains: String
    regexp: String
    in: [String!]
  }

  input RemoteNetworkTypeFilterOperatorInput {
    in: [RemoteNetworkType!]
  }

  input RemoteNetworkFilterInput {
    name: StringFilterOperationInput
    networkType: RemoteNetworkTypeFilterOperatorInput
  }

  input ConnectorFilterInput {
    name: StringFilterOperationInput
  }

  type PageInfo {
    hasNextPage: Boolean!
    hasPreviousPage: Boolean!
    startCursor: String
    endCursor: String
  }

  type RemoteNetwork {
    id: ID!
    name: String!
    isActive: Boolean!
    location: RemoteNetworkLocation!
    networkType: RemoteNetworkType!
    createdAt: DateTime!
    updatedAt: DateTime!
    connectors(after: String, first: Int): ConnectorConnection
  }

  type RemoteNetworkEdge {
    cursor: String!
    node: RemoteNetwork!
  }

  type RemoteNetworkConnection {
    pageInfo: PageInfo!
    edges: [RemoteNetworkEdge!]!
  }

  type Connector {
    id: ID!
    name: String!
    state: ConnectorState!
    remoteNetwork: RemoteNetwork!
    hasStatusNotificationsEnabled: Boolean!
    hostname: String
    version: String
    publicIP: String
    privateIPs: [String!]!
    lastHeartbeatAt: DateTime
    createdAt: DateTime!
    updatedAt: DateTime!
  }

  type ConnectorEdge {
    cursor: String!
    node: Connector!
  }

  type ConnectorConnection {
    pageInfo: PageInfo!
    edges: [ConnectorEdge!]!
  }

  type ConnectorTokens {
    accessToken: String!
    refreshToken: String!
  }

  type ConnectorPayload {
    ok: Boolean!
    error: String
    entity: Connector
  }

  type ConnectorTokensPayload {
    ok: Boolean!
    error: String
    connectorTokens: ConnectorTokens
  }

  type DeletePayload {
    ok: Boolean!
    error: String
  }

  type RemoteNetworkPayload {
    ok: Boolean!
    error: String
    entity: RemoteNetwork
  }

  type Query {
    remoteNetworks(after: String, first: Int, filter: RemoteNetworkFilterInput): RemoteNetworkConnection
    remoteNetwork(id: ID, name: String): RemoteNetwork
    connectors(after: String, first: Int, filter: ConnectorFilterInput): ConnectorConnection
    connector(id: ID!): Connector
  }

  type Mutation {
    connectorCreate(
      remoteNetworkId: ID!
      name: String
      hasStatusNotificationsEnabled: Boolean
    ): ConnectorPayload
    connectorUpdate(id: ID!, name: String, hasStatusNotificationsEnabled: Boolean): ConnectorPayload
    connectorDelete(id: ID!): DeletePayload
    connectorGenerateTokens(connectorId: ID!): ConnectorTokensPayload
    remoteNetworkCreate(
      name: String!
      isActive: Boolean
      location: RemoteNetworkLocation
      networkType: RemoteNetworkType
    ): RemoteNetworkPayload
  }
`;

/** Built once: resolvers are the root value and the view objects' methods (graphql-js's default resolver). */
export const TWINGATE_SCHEMA: GraphQLSchema = buildSchema(TWINGATE_SDL);

/** Graphene's wording for a permission class that refuses (assumed to be what the vendor sends). */
export const PERMISSION_DENIED = 'You do not have permission to perform this action';

/** Opaque id as graphql-relay makes it: base64 of `Type:n`. */
export function globalId(type: string, n: number): string {
  return Buffer.from(`${type}:${n}`, 'utf8').toString('base64');
}

const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;
const UTF8 = new TextDecoder('utf-8', { fatal: true });

/**
 * `Type:n` from an opaque id, or undefined when it is not one (not padded base64, not UTF-8, no
 * `:`, or an empty type or key): the ids the vendor refuses with `Unable to parse global ID`.
 */
export function parseGlobalId(id: string): { type: string; key: string } | undefined {
  if (id.length % 4 !== 0 || !BASE64.test(id)) return undefined;
  let text: string;
  try {
    text = UTF8.decode(Buffer.from(id, 'base64'));
  } catch {
    return undefined;
  }
  const colon = text.indexOf(':');
  if (colon < 1 || colon === text.length - 1) return undefined;
  return { type: text.slice(0, colon), key: text.slice(colon + 1) };
}

const CURSOR_PREFIX = 'arrayconnection:';

/** graphql-relay's offset cursor (what Graphene's connection fields hand out). */
export function offsetCursor(offset: number): string {
  return Buffer.from(`${CURSOR_PREFIX}${offset}`, 'utf8').toString('base64');
}

/** The offset in a cursor; undefined for anything else (Graphene then starts from the beginning). */
export function cursorOffset(cursor: string): number | undefined {
  const text = Buffer.from(cursor, 'base64').toString('utf8');
  if (!text.startsWith(CURSOR_PREFIX)) return undefined;
  const rest = text.slice(CURSOR_PREFIX.length);
  return /^\d+$/.test(rest) ? Number(rest) : undefined;
}

/** Python's `datetime.isoformat()` of an aware UTC time, as Graphene's DateTime serialises it. */
export function isoformat(ms: number): string {
  const iso = new Date(ms).toISOString(); // 2024-05-01T10:00:00.123Z
  return `${iso.slice(0, 19)}.${iso.slice(20, 23)}000+00:00`;
}

const ADJECTIVES = [
  'amber', 'brave', 'calm', 'dapper', 'eager', 'fluffy', 'gentle', 'hasty', 'icy', 'jolly',
  'keen', 'lively', 'merry', 'nimble', 'odd', 'proud', 'quiet', 'rapid', 'silent', 'tidy',
  'upbeat', 'vivid', 'whispering', 'young', 'zealous', 'curious', 'daring', 'fancy', 'glossy', 'humble',
]; // prettier-ignore
const BIRDS = [
  'albatross', 'bittern', 'cormorant', 'dunlin', 'egret', 'finch', 'gannet', 'heron', 'ibis', 'jay',
  'kestrel', 'lapwing', 'merlin', 'nightjar', 'oriole', 'petrel', 'quail', 'robin', 'swift', 'tern',
  'urubu', 'vireo', 'wren', 'xenops', 'yellowlegs', 'zebrafinch', 'curlew', 'dipper', 'grebe', 'hoopoe',
]; // prettier-ignore

interface NetworkRecord {
  n: number;
  id: string;
  name: string;
  isActive: boolean;
  location: string;
  networkType: string;
  createdAt: number;
  updatedAt: number;
}

interface ConnectorRecord {
  n: number;
  id: string;
  name: string;
  state: ConnectorState;
  networkId: string;
  hasStatusNotificationsEnabled: boolean;
  createdAt: number;
  updatedAt: number;
  lastHeartbeatAt: number | null;
  tokens: ConnectorTokens | undefined;
  tokenGenerations: number;
  deleted: boolean;
}

/** What resolvers see of the request: the caller's scope. */
export interface TenantContext {
  scope: TenantKeyScope;
}

interface PageArgs {
  first?: number | null;
  after?: string | null;
}

interface StringFilter {
  eq?: string | null;
  ne?: string | null;
  startsWith?: string | null;
  endsWith?: string | null;
  contains?: string | null;
  regexp?: string | null;
  in?: string[] | null;
}

interface Edge<T> {
  cursor: string;
  node: T;
}

interface Connection<T> {
  pageInfo: {
    hasNextPage: boolean;
    hasPreviousPage: boolean;
    startCursor: string | null;
    endCursor: string | null;
  };
  edges: Edge<T>[];
}

type Payload = { ok: boolean; error: string | null } & Record<string, unknown>;

/**
 * The tenant's state (remote networks, connectors, token pairs) and the GraphQL root value that
 * reads and changes it. Synchronous, so one request's mutations never interleave with another's.
 */
export class TenantStore {
  private readonly networks: NetworkRecord[] = [];
  private readonly connectorList: ConnectorRecord[] = [];
  private readonly byAccessToken = new Map<string, ConnectorRecord>();
  private networkSeq = 0;
  private connectorSeq = 0;
  /** The GraphQL root value (Query and Mutation fields). */
  readonly root: Record<string, (args: never, ctx: TenantContext) => unknown>;

  constructor(
    private readonly now: () => number,
    private readonly pages: { max: number; default: number },
  ) {
    this.root = {
      remoteNetworks: (
        a: PageArgs & {
          filter?: { name?: StringFilter | null; networkType?: { in?: string[] | null } | null } | null;
        },
      ) =>
        this.page(
          this.networks.filter(
            (n) => matches(n.name, a.filter?.name) && inList(n.networkType, a.filter?.networkType?.in),
          ),
          a,
          'remoteNetworks',
          (n) => this.networkView(n),
        ),
      remoteNetwork: (a: { id?: string | null; name?: string | null }) => {
        if (a.id !== undefined && a.id !== null) {
          const net = this.networkById(a.id, 'id');
          if (!net || (a.name !== undefined && a.name !== null && net.name !== a.name)) return null;
          return this.networkView(net);
        }
        if (a.name !== undefined && a.name !== null) {
          const net = this.networks.find((n) => n.name === a.name);
          return net ? this.networkView(net) : null;
        }
        throw new GraphQLError("Either 'id' or 'name' must be given.");
      },
      connectors: (a: PageArgs & { filter?: { name?: StringFilter | null } | null }) =>
        this.page(
          this.live().filter((c) => matches(c.name, a.filter?.name)),
          a,
          'connectors',
          (c) => this.connectorView(c),
        ),
      connector: (a: { id: string }) => {
        const c = this.connectorById(a.id, 'id');
        return c ? this.connectorView(c) : null;
      },
      connectorCreate: (
        a: { remoteNetworkId: string; name?: string | null; hasStatusNotificationsEnabled?: boolean | null },
        ctx: TenantContext,
      ) => {
        allow(ctx, 'write');
        const net = this.networkById(a.remoteNetworkId, 'remoteNetworkId');
        if (!net) return failed(notFound('remoteNetworkId', 'RemoteNetwork', a.remoteNetworkId), 'entity');
        const name = a.name || this.pickName();
        if (this.nameTaken(name)) return failed(duplicateName(name), 'entity');
        const c = this.insertConnector({
          networkId: net.id,
          name,
          hasStatusNotificationsEnabled: a.hasStatusNotificationsEnabled ?? true,
        });
        return { ok: true, error: null, entity: this.connectorView(c) };
      },
      connectorUpdate: (
        a: { id: string; name?: string | null; hasStatusNotificationsEnabled?: boolean | null },
        ctx: TenantContext,
      ) => {
        allow(ctx, 'write');
        const c = this.connectorById(a.id, 'id');
        if (!c) return failed(notFound('id', 'Connector', a.id), 'entity');
        if (a.name && this.nameTaken(a.name, c)) return failed(duplicateName(a.name), 'entity');
        if (a.name) c.name = a.name;
        if (a.hasStatusNotificationsEnabled !== undefined && a.hasStatusNotificationsEnabled !== null)
          c.hasStatusNotificationsEnabled = a.hasStatusNotificationsEnabled;
        c.updatedAt = this.now();
        return { ok: true, error: null, entity: this.connectorView(c) };
      },
      connectorDelete: (a: { id: string }, ctx: TenantContext) => {
        allow(ctx, 'write');
        const c = this.connectorById(a.id, 'id');
        if (!c) return failed(notFound('id', 'Connector', a.id));
        c.deleted = true;
        c.updatedAt = this.now();
        this.revoke(c);
        return { ok: true, error: null };
      },
      connectorGenerateTokens: (a: { connectorId: string }, ctx: TenantContext) => {
        allow(ctx, 'provision');
        const c = this.connectorById(a.connectorId, 'connectorId');
        if (!c) return failed(notFound('connectorId', 'Connector', a.connectorId), 'connectorTokens');
        return { ok: true, error: null, connectorTokens: { ...this.generateTokens(c) } };
      },
      remoteNetworkCreate: (
        a: { name: string; isActive?: boolean | null; location?: string | null; networkType?: string | null },
        ctx: TenantContext,
      ) => {
        allow(ctx, 'write');
        if (this.networks.some((n) => n.name === a.name))
          return failed(`Remote Network with name '${a.name}' already exists.`, 'entity');
        const net = this.insertNetwork(a.name, a);
        return { ok: true, error: null, entity: this.networkView(net) };
      },
    };
  }

  addNetwork(name: string): { id: string; name: string } {
    if (this.networks.some((n) => n.name === name))
      throw new Error(`remote network "${name}" already exists`);
    const net = this.insertNetwork(name, {});
    return { id: net.id, name: net.name };
  }

  addConnector(c: NewConnector): TenantConnector {
    const net = this.networks.find((n) => n.name === c.network);
    if (!net) throw new Error(`no remote network "${c.network}" (addNetwork first)`);
    const name = c.name ?? this.pickName();
    if (this.nameTaken(name)) throw new Error(`connector "${name}" already exists`);
    const state = c.state ?? 'DEAD_NO_HEARTBEAT';
    const rec = this.insertConnector({ networkId: net.id, name, hasStatusNotificationsEnabled: true });
    rec.state = state;
    if (c.createdAt) rec.createdAt = rec.updatedAt = c.createdAt.getTime();
    if (c.lastHeartbeatAt !== undefined) rec.lastHeartbeatAt = c.lastHeartbeatAt?.getTime() ?? null;
    else if (state === 'ALIVE') rec.lastHeartbeatAt = this.now();
    return this.snapshot(rec);
  }

  connectors(o: { includeDeleted?: boolean } = {}): TenantConnector[] {
    return this.connectorList.filter((c) => o.includeDeleted || !c.deleted).map((c) => this.snapshot(c));
  }

  setState(id: string, state: ConnectorState): void {
    const c = this.mustGet(id);
    c.state = state;
    c.updatedAt = this.now();
  }

  markAlive(id: string): void {
    const c = this.mustGet(id);
    c.state = 'ALIVE';
    c.lastHeartbeatAt = c.updatedAt = this.now();
  }

  currentTokens(id: string): ConnectorTokens | undefined {
    const t = this.connectorList.find((c) => c.id === id && !c.deleted)?.tokens;
    return t && { ...t };
  }

  /** The live connector whose current pair this is, or undefined. */
  holderOf(tokens: { accessToken?: unknown; refreshToken?: unknown }): string | undefined {
    if (typeof tokens.accessToken !== 'string' || typeof tokens.refreshToken !== 'string') return undefined;
    const c = this.byAccessToken.get(tokens.accessToken);
    if (!c || c.deleted || c.tokens?.refreshToken !== tokens.refreshToken) return undefined;
    return c.id;
  }

  heartbeat(tokens: { accessToken?: unknown; refreshToken?: unknown }): string | undefined {
    const id = this.holderOf(tokens);
    if (id !== undefined) this.markAlive(id);
    return id;
  }

  private insertNetwork(
    name: string,
    o: { isActive?: boolean | null; location?: string | null; networkType?: string | null },
  ): NetworkRecord {
    const n = ++this.networkSeq;
    const at = this.now();
    const net: NetworkRecord = {
      n,
      id: globalId('RemoteNetwork', n),
      name,
      isActive: o.isActive ?? true,
      location: o.location ?? 'OTHER',
      networkType: o.networkType ?? 'REGULAR',
      createdAt: at,
      updatedAt: at,
    };
    this.networks.push(net);
    return net;
  }

  private insertConnector(o: {
    networkId: string;
    name: string;
    hasStatusNotificationsEnabled: boolean;
  }): ConnectorRecord {
    const n = ++this.connectorSeq;
    const at = this.now();
    const rec: ConnectorRecord = {
      n,
      id: globalId('Connector', n),
      name: o.name,
      state: 'DEAD_NO_HEARTBEAT',
      networkId: o.networkId,
      hasStatusNotificationsEnabled: o.hasStatusNotificationsEnabled,
      createdAt: at,
      updatedAt: at,
      lastHeartbeatAt: null,
      tokens: undefined,
      tokenGenerations: 0,
      deleted: false,
    };
    this.connectorList.push(rec);
    return rec;
  }

  private generateTokens(c: ConnectorRecord): ConnectorTokens {
    this.revoke(c);
    const b64url = (o: object) => Buffer.from(JSON.stringify(o), 'utf8').toString('base64url');
    const accessToken = [
      b64url({ alg: 'ES256', typ: 'JWT' }),
      b64url({ typ: 'connector', connectorId: c.id, jti: randomUUID(), iat: Math.floor(this.now() / 1000) }),
      randomBytes(64).toString('base64url'),
    ].join('.');
    c.tokens = { accessToken, refreshToken: randomBytes(75).toString('base64url') };
    c.tokenGenerations++;
    c.updatedAt = this.now();
    this.byAccessToken.set(accessToken, c);
    return c.tokens;
  }

  private revoke(c: ConnectorRecord): void {
    if (c.tokens) this.byAccessToken.delete(c.tokens.accessToken);
    c.tokens = undefined;
  }

  /** Connector names are unique in the tenant (deleted connectors excepted). */
  private nameTaken(name: string, except?: ConnectorRecord): boolean {
    return this.connectorList.some((c) => !c.deleted && c !== except && c.name === name);
  }

  private live(): ConnectorRecord[] {
    return this.connectorList.filter((c) => !c.deleted);
  }

  private mustGet(id: string): ConnectorRecord {
    const c = this.connectorList.find((o) => o.id === id && !o.deleted);
    if (!c) throw new Error(`no connector ${id}`);
    return c;
  }

  /** A well-formed id of another type, or of nothing, is an unknown one (undefined); a malformed one throws. */
  private connectorById(id: string, arg: string): ConnectorRecord | undefined {
    const key = parseOrThrow(id, arg);
    if (key.type !== 'Connector') return undefined;
    return this.connectorList.find((c) => !c.deleted && String(c.n) === key.key);
  }

  private networkById(id: string, arg: string): NetworkRecord | undefined {
    const key = parseOrThrow(id, arg);
    if (key.type !== 'RemoteNetwork') return undefined;
    return this.networks.find((n) => String(n.n) === key.key);
  }

  /** A server-picked two-word name, unused in the tenant. */
  private pickName(): string {
    for (let i = 0; ; i++) {
      const name = `${ADJECTIVES[randomInt(ADJECTIVES.length)]}-${BIRDS[randomInt(BIRDS.length)]}`;
      const free = i < 50 ? name : `${name}-${i}`; // a crowded tenant gets a number
      if (!this.nameTaken(free)) return free;
    }
  }

  private page<R, V>(items: R[], a: PageArgs, field: string, view: (r: R) => V): Connection<V> {
    const first = a.first ?? this.pages.default;
    if (first > this.pages.max)
      throw new GraphQLError(
        `Requesting ${first} records on the \`${field}\` connection exceeds the \`first\` limit of ${this.pages.max} records.`,
      );
    if (first < 1) throw new GraphQLError(`Argument 'first' must be a positive integer, got ${first}.`);
    const after = a.after === undefined || a.after === null ? undefined : cursorOffset(a.after);
    const start = after === undefined ? 0 : after + 1;
    const edges = items
      .slice(start, start + first)
      .map((r, i) => ({ cursor: offsetCursor(start + i), node: view(r) }));
    return {
      pageInfo: {
        hasNextPage: start + first < items.length,
        hasPreviousPage: false, // graphql-relay: only with `last`
        startCursor: edges[0]?.cursor ?? null,
        endCursor: edges[edges.length - 1]?.cursor ?? null,
      },
      edges,
    };
  }

  private networkView(n: NetworkRecord) {
    return {
      id: n.id,
      name: n.name,
      isActive: n.isActive,
      location: n.location,
      networkType: n.networkType,
      createdAt: isoformat(n.createdAt),
      updatedAt: isoformat(n.updatedAt),
      connectors: (a: PageArgs) =>
        this.page(
          this.live().filter((c) => c.networkId === n.id),
          a,
          'connectors',
          (c) => this.connectorView(c),
        ),
    };
  }

  private connectorView(c: ConnectorRecord) {
    return {
      id: c.id,
      name: c.name,
      state: c.state,
      hasStatusNotificationsEnabled: c.hasStatusNotificationsEnabled,
      hostname: null,
      version: null,
      publicIP: null,
      privateIPs: [],
      lastHeartbeatAt: c.lastHeartbeatAt === null ? null : isoformat(c.lastHeartbeatAt),
      createdAt: isoformat(c.createdAt),
      updatedAt: isoformat(c.updatedAt),
      remoteNetwork: () => {
        const net = this.networks.find((n) => n.id === c.networkId);
        return net && this.networkView(net);
      },
    };
  }

  private snapshot(c: ConnectorRecord): TenantConnector {
    return {
      id: c.id,
      name: c.name,
      state: c.state,
      networkId: c.networkId,
      networkName: this.networks.find((n) => n.id === c.networkId)?.name ?? '',
      createdAt: isoformat(c.createdAt),
      lastHeartbeatAt: c.lastHeartbeatAt === null ? null : isoformat(c.lastHeartbeatAt),
      tokenGenerations: c.tokenGenerations,
      deleted: c.deleted,
    };
  }
}

const RANK: Record<TenantKeyScope, number> = { read: 0, write: 1, provision: 2 };

function allow(ctx: TenantContext, needed: TenantKeyScope): void {
  if (RANK[ctx.scope] < RANK[needed]) throw new GraphQLError(PERMISSION_DENIED);
}

function parseOrThrow(id: string, arg: string): { type: string; key: string } {
  const key = parseGlobalId(id);
  if (!key) throw new GraphQLError(`{'${arg}': ['Unable to parse global ID']}`);
  return key;
}

function notFound(arg: string, type: string, id: string): string {
  return `Field '${arg}' ${type} with id '${id}' does not exist.`;
}

function duplicateName(name: string): string {
  return `Connector with name '${name}' already exists.`;
}

function failed(error: string, entityField?: string): Payload {
  return entityField ? { ok: false, error, [entityField]: null } : { ok: false, error };
}

function inList(value: string, list: string[] | null | undefined): boolean {
  return !list || list.includes(value);
}

/** Every operator given must hold (Django lookups ANDed). */
function matches(value: string, f: StringFilter | null | undefined): boolean {
  if (!f) return true;
  if (f.eq !== undefined && f.eq !== null && value !== f.eq) return false;
  if (f.ne !== undefined && f.ne !== null && value === f.ne) return false;
  if (f.startsWith !== undefined && f.startsWith !== null && !value.startsWith(f.startsWith)) return false;
  if (f.endsWith !== undefined && f.endsWith !== null && !value.endsWith(f.endsWith)) return false;
  if (f.contains !== undefined && f.contains !== null && !value.includes(f.contains)) return false;
  if (f.in !== undefined && f.in !== null && !f.in.includes(value)) return false;
  if (f.regexp !== undefined && f.regexp !== null) {
    let re: RegExp;
    try {
      re = new RegExp(f.regexp);
    } catch {
      throw new GraphQLError(`Invalid regular expression: ${f.regexp}`);
    }
    if (!re.test(value)) return false;
  }
  return true;
}
