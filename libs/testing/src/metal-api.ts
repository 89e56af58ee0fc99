/**
 * FakeMetalApi: the Equinix Metal API (metal/v1) on loopback, for tests of clients and controllers
 * that provision devices (libs/metal, apps/capi-packet-manager). The service was sunset in June
 * 2026; its contract is the OpenAPI spec in github.com/equinix/equinix-sdk-go, and
 * test/metal-api.test.ts checks every answer of this fake against that spec (metal-openapi.ts)
 * and runs the vendor's own Go SDK against it (tools/metal-sdk). Behaviour that the spec does not
 * say comes from `../shared/anchors/capi.md` §3 and the provider's issues; the rest is listed
 * under "Assumptions".
 *
 * Modelled (paths below `<url>` = `http://127.0.0.1:PORT/metal/v1`, JSON in and out):
 * - `X-Auth-Token` must be one of `tokens`; else 401 `{"error": "Invalid authentication token"}`.
 * - `GET /projects/{id}` (projects are made by the test: `addProject`).
 * - `POST /projects/{id}/devices` → 201 Device. Required `plan`, `operating_system`, and exactly
 *   one of `metro` (a code or `any`) or `facility` (a code, a list of codes in priority order, or
 *   `any`); `billing_cycle` hourly|daily|monthly|yearly; an unknown plan, OS, metro or facility →
 *   422 `{"errors": [...]}` (every problem of the request listed). SSH keys: without
 *   `ssh_keys`/`project_ssh_keys`/`user_ssh_keys` the project's keys are added, and a project
 *   without keys → 422 unless `no_ssh_keys` (PR #788). `ip_addresses` (default public IPv4,
 *   private IPv4, public IPv6) must include private IPv4. `hardware_reservation_id` (a reservation
 *   added by the test, or `next-available`) must be free and of the plan. A plan over its
 *   `capacity` → 503 (no servers available, issue #191).
 * - Device states move on the fake's clock: `queued` → `provisioning` → `active` (durations
 *   configurable, `advance(ms)` skips ahead), or → `failed` for devices the test marks
 *   (`failNextDevices`, `failDevicesWhere`, `failDevice`). A failed device answers 403 "You are
 *   not authorized to view this device" on GET/PUT/DELETE (issues #43, #245), 404 on its `/ips`
 *   routes (the spec declares no 403 there), and is left out of project listings (it disappears
 *   from the dashboard).
 * - Addresses at create, from documentation ranges: public IPv4 /31 from 203.0.113.0/24 then
 *   192.0.2.128/25, private IPv4 /31 from 10.0.0.0/16, public IPv6 /127 from 2001:db8::/64; the
 *   device's address is the upper one of the pair, the gateway the lower (`management: true`).
 * - `GET /devices/{id}`, `PUT /devices/{id}` (hostname, description, tags, userdata, customdata,
 *   locked, always_pxe, ipxe_script_url, billing_cycle, spot_instance, network_frozen), `DELETE
 *   /devices/{id}` (`force_delete` accepted; a locked device → 422) → 204, `deprovisioning` for
 *   `deprovisioningMs`, then gone (404). Its elastic assignments are released at once.
 * - `GET /projects/{id}/devices`: filters `tag` (exact, one tag) and `hostname` (substring), in
 *   creation order; `page` (default 1) and `per_page` (default 10, at most 1000; larger is capped);
 *   `meta` as the spec's Meta: `self`, `first`, `last` always, `previous`/`next` only when there
 *   is such a page, hrefs `/metal/v1/…?…&page=N` keeping the request's other parameters,
 *   `total`, `current_page`, `last_page` (at least 1).
 * - `POST /projects/{id}/ips` (`type` public_ipv4 with `metro` or `facility`, or global_ipv4;
 *   `quantity` a power of two; `tags`, `details`, `customdata`, `fail_on_approval_required`):
 *   within the project's `ipQuota` (addresses) → 201 IPReservation `state: created`, a block of
 *   198.51.100.0/24 (global: 192.0.2.0/25); over it → 422 with `fail_on_approval_required`, else
 *   201 `state: pending` without an address until `approveReservation`. `GET /projects/{id}/ips`
 *   (`types` repeated or comma-separated; pages of 250 by default), `GET /ips/{id}` (a
 *   reservation or an assignment), `DELETE /ips/{id}` → 204 (an assignment: unassign; a
 *   reservation: it and its assignments go; a device's management address → 403).
 * - `POST /devices/{id}/ips {address}` (`a.b.c.d` or `a.b.c.d/nn` inside a created reservation of
 *   the device's project and metro, not assigned yet) → 201 IPAssignment, added to the
 *   reservation's `assignments` and the device's `ip_addresses`; `GET /devices/{id}/ips`.
 * - Rate limit, per token, fixed window: every response carries `X-RateLimit-Limit`,
 *   `X-RateLimit-Remaining` and `X-RateLimit-Reset` (Unix seconds when the window ends, as
 *   packngo parses it); each authenticated request spends one; over the limit → 429
 *   `{"errors": ["Rate limit exceeded"]}` with `Retry-After` (whole seconds, at least 1), free.
 * - Unknown routes → 404 `{"errors": ["Not found"]}` before auth (as a router would); a method the
 *   spec has on a modelled path but the fake does not serve → 501 naming it; other methods → 404.
 * - So that the fake is no hazard itself: bodies above 1 MiB → 413 and the connection closed;
 *   `@knet/runtime`'s header and request timeouts (`http` option), 127.0.0.1 only.
 *
 * Test handles (not the vendor's): `addProject`, `addHardwareReservation`, `approveReservation`,
 * `failNextDevices`, `failDevicesWhere`, `failDevice`, `advance`, `inject` (faults answered before
 * the effect, outside auth and budget — or `after: true`, once the effect happened), `calls` (a
 * request log without tokens), `devices()`, `reservations()`, `reset()`.
 *
 * Assumptions (not in the spec or the anchors): error wording; invalid JSON → 422; a malformed or
 * unknown id → 404; deleting a device already deprovisioning → 204 again; a device's elastic
 * assignments are released at delete, not when it is gone; deleting a reservation takes its
 * assignments along (the spec declares no 422 for it); the nominal budget of 5000 requests per
 * hour (Equinix did not publish one); pending reservations count against nothing; requests with
 * a bad token spend nothing; `include`/`exclude` are ignored (nested objects always come whole).
 *
 * Not modelled: project API keys' scoping, organizations, SSH key objects, BGP, VLANs, metal
 * gateways, volumes, spot market, device actions (power, reinstall), the per-project private and
 * IPv6 blocks the API lists among a project's IPs, IPv6 elastic assignments, `search`, `sort_by`.
 */
import http from 'node:http';
import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { DEFAULT_HTTP_LIMITS, errorMessage, type HttpLimits } from '@knet/runtime';

/** The spec this fake is checked against, and its validator (metal-openapi.ts). */
export * from './metal-openapi';

/** The path the API is served under, as on api.equinix.com. */
export const METAL_BASE_PATH = '/metal/v1';
/** The request body cap (larger → 413 and the connection is closed). */
export const METAL_MAX_BODY_BYTES = 1024 * 1024;
/** `billing_cycle` values the spec allows on create. */
export const METAL_BILLING_CYCLES = ['hourly', 'daily', 'monthly', 'yearly'] as const;

export type MetalDeviceState = 'queued' | 'provisioning' | 'active' | 'deprovisioning' | 'failed';
export type MetalFaultStatus = 403 | 404 | 422 | 429 | 500 | 503;

export interface FakeMetalApiOptions {
  /** Accepted `X-Auth-Token` values (default `['test-token']`). */
  tokens?: string[];
  /** Metro codes (default da, sv, ny, am, fr, sg, ch, dc, la, ld, ty, sy). */
  metros?: string[];
  /** Facility code → metro code (default a few real ones: da11, sv15, ny5, ewr1, am6, fr2, sg1…). */
  facilities?: Record<string, string>;
  /** Plan slugs (default c3.small.x86, c3.medium.x86, m3.small.x86, m3.large.x86, c1.small.x86…). */
  plans?: string[];
  /** Operating system slugs (default ubuntu_18_04 … ubuntu_24_04, debian_12, flatcar_stable, custom_ipxe). */
  operatingSystems?: string[];
  /** Live devices a plan may have at once before create answers 503 (default: no limit). */
  capacity?: Record<string, number>;
  /** How long each state lasts (defaults 1000, 4000 and 1000 ms). */
  durations?: { queuedMs?: number; provisioningMs?: number; deprovisioningMs?: number };
  /** Requests per token per window (default 5000 per hour). */
  rateLimit?: { limit: number; windowMs: number };
  /** The clock for states, timestamps, budget and `calls` (default `Date.now`; `advance` adds to it). */
  now?: () => number;
  /** Timeouts and header size for hostile-client tests (default: `@knet/runtime`'s `DEFAULT_HTTP_LIMITS`). */
  http?: HttpLimits;
  /**
   * Where project IP reservations (elastic IPs) come from (default 198.51.100.0/24). A test whose
   * elastic IP becomes a cluster's endpoint that Cluster API will dial (once a kubeconfig Secret
   * exists) sets a loopback block, e.g. 127.0.64.0/24, so nothing leaves this machine.
   */
  reservationRange?: string;
}

export interface MetalProjectOptions {
  id?: string;
  name?: string;
  /** How many SSH keys the project (and its members) have (default 1); 0 → creates without keys get 422. */
  sshKeys?: number;
  /** Public IPv4 addresses the project may reserve without approval (default 16). */
  ipQuota?: number;
}

export interface MetalFault {
  /** Only this method (default: any). */
  method?: string;
  /** Only this path below the base (`/devices/<id>`; a string must be equal), query ignored. */
  path?: string | RegExp;
  status: MetalFaultStatus;
  /** How many requests it answers (default 1; `Infinity` until cancelled). */
  times?: number;
  headers?: Record<string, string>;
  /** Default `{"errors": ["<reason>"]}`. */
  body?: unknown;
  /** Let the request take effect, then answer the fault (a crash between effect and answer). */
  after?: boolean;
}

export interface MetalFaultHandle {
  /** Requests answered by it so far. */
  readonly hits: number;
  cancel(): void;
}

export interface MetalCall {
  method: string;
  /** Below the base path (`/projects/<id>/devices`). */
  path: string;
  query: Record<string, string | string[]>;
  /** The JSON request body, when there was one that parsed. */
  body?: unknown;
  status: number;
  /** Whether an injected fault answered it (and when). */
  fault?: 'before' | 'after';
  /** When it arrived (the fake's clock). */
  at: number;
}

/** A request to create a device, as `failDevicesWhere` sees it. */
export interface MetalDeviceRequest {
  projectId: string;
  body: Record<string, unknown>;
}

export interface MetalHref {
  href: string;
}

export interface MetalMetro {
  id: string;
  code: string;
  name: string;
  country: string;
}

export interface MetalIpAssignment {
  id: string;
  href: string;
  address: string;
  address_family: number;
  cidr: number;
  netmask: string;
  network: string;
  gateway: string;
  public: boolean;
  management: boolean;
  manageable: boolean;
  enabled: boolean;
  global_ip: boolean;
  assigned_to: MetalHref;
  created_at: string;
  metro: MetalMetro;
  parent_block?: { network: string; netmask: string; cidr: number; href: string };
  type: 'IPAssignment';
}

export interface MetalDevice {
  id: string;
  short_id: string;
  href: string;
  hostname: string;
  description?: string;
  state: MetalDeviceState;
  tags: string[];
  billing_cycle: string;
  created_at: string;
  updated_at: string;
  userdata: string;
  customdata: Record<string, unknown>;
  always_pxe: boolean;
  ipxe_script_url?: string;
  locked: boolean;
  spot_instance: boolean;
  network_frozen: boolean;
  termination_time?: string;
  provisioning_percentage?: number;
  facility: { id: string; code: string; name: string; metro: MetalMetro };
  metro: MetalMetro;
  plan: { id: string; slug: string; name: string; class: string };
  operating_system: { id: string; slug: string; name: string; distro: string; version: string };
  project: MetalHref;
  project_lite: MetalHref;
  ssh_keys: MetalHref[];
  ip_addresses: MetalIpAssignment[];
  hardware_reservation?: { id: string; href: string };
}

export interface MetalIpReservation {
  id: string;
  href: string;
  type: 'public_ipv4' | 'global_ipv4';
  state: 'pending' | 'created';
  address?: string;
  network?: string;
  cidr: number;
  netmask?: string;
  gateway?: string;
  address_family: number;
  public: boolean;
  management: boolean;
  manageable: boolean;
  addon: boolean;
  bill: boolean;
  global_ip: boolean;
  enabled: boolean;
  tags: string[];
  details?: string;
  customdata: Record<string, unknown>;
  metro?: MetalMetro;
  assignments: MetalIpAssignment[];
  project: MetalHref;
  project_lite: MetalHref;
  created_at: string;
}

export interface MetalMeta {
  self: MetalHref;
  first: MetalHref;
  last: MetalHref;
  previous?: MetalHref;
  next?: MetalHref;
  total: number;
  current_page: number;
  last_page: number;
}

const DEFAULT_METROS: Record<string, [name: string, country: string]> = {
  da: ['Dallas', 'US'],
  sv: ['Silicon Valley', 'US'],
  ny: ['New York', 'US'],
  am: ['Amsterdam', 'NL'],
  fr: ['Frankfurt', 'DE'],
  sg: ['Singapore', 'SG'],
  ch: ['Chicago', 'US'],
  dc: ['Washington DC', 'US'],
  la: ['Los Angeles', 'US'],
  ld: ['London', 'GB'],
  ty: ['Tokyo', 'JP'],
  sy: ['Sydney', 'AU'],
};
const DEFAULT_FACILITIES: Record<string, string> = {
  da11: 'da',
  dfw2: 'da',
  sv15: 'sv',
  sjc1: 'sv',
  ny5: 'ny',
  ewr1: 'ny',
  am6: 'am',
  ams1: 'am',
  fr2: 'fr',
  sg1: 'sg',
  ld7: 'ld',
  ty11: 'ty',
};
const DEFAULT_PLANS = [
  'c3.small.x86',
  'c3.medium.x86',
  'm3.small.x86',
  'm3.large.x86',
  's3.xlarge.x86',
  'n3.xlarge.x86',
  'c1.small.x86',
  't1.small.x86',
];
const DEFAULT_OPERATING_SYSTEMS = [
  'ubuntu_18_04',
  'ubuntu_20_04',
  'ubuntu_22_04',
  'ubuntu_24_04',
  'debian_12',
  'flatcar_stable',
  'custom_ipxe',
];
const DEVICE_PAGE = { default: 10, max: 1000 };
const IP_PAGE = { default: 250, max: 1000 };
const MAX_PAGE = 100_000;
const JSON_TYPE = 'application/json';
const FAILED_DEVICE = 'You are not authorized to view this device';

/** The spec's methods on the paths the fake serves, which it does not model (→ 501). */
const NOT_MODELLED: Record<string, string[]> = {
  '/projects/{id}': ['PUT', 'DELETE'],
  '/ips/{id}': ['PATCH'],
};

const REASONS: Record<number, string> = {
  403: 'Forbidden',
  404: 'Not found',
  422: 'Unprocessable entity',
  429: 'Rate limit exceeded',
  500: 'Internal server error',
  503: 'Service unavailable',
};

/** A status and JSON body to write; `undefined` body = none (204). */
interface Answer {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
}

/** Thrown by handlers to answer an error; caught by the dispatcher. */
class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly errors: string[],
  ) {
    super(errors.join('; '));
  }
}

const notFound = (): ApiError => new ApiError(404, ['Not found']);

interface ProjectRec {
  id: string;
  name: string;
  createdAt: number;
  sshKeys: string[];
  ipQuota: number;
}

interface AssignmentRec {
  id: string;
  deviceId: string;
  family: 4 | 6;
  /** The block: network address (IPv4 as a number, IPv6 as the pool index) and prefix. */
  network: string;
  address: string;
  gateway: string;
  cidr: number;
  public: boolean;
  management: boolean;
  globalIp: boolean;
  metro: string;
  reservationId?: string;
  /** What to give back to a pool when the block goes. */
  release?: () => void;
  createdAt: number;
}

interface DeviceRec {
  id: string;
  projectId: string;
  hostname: string;
  description?: string;
  tags: string[];
  plan: string;
  os: string;
  metro: string;
  facility: string;
  billingCycle: string;
  userdata: string;
  customdata: Record<string, unknown>;
  alwaysPxe: boolean;
  ipxeScriptUrl?: string;
  locked: boolean;
  spotInstance: boolean;
  networkFrozen: boolean;
  terminationTime?: string;
  sshKeys: string[];
  hardwareReservationId?: string;
  addresses: AssignmentRec[];
  createdAt: number;
  updatedAt: number;
  /** When it turns `failed` (the test marked it). */
  failAt?: number;
  deletedAt?: number;
}

interface ReservationRec {
  id: string;
  projectId: string;
  type: 'public_ipv4' | 'global_ipv4';
  metro?: string;
  quantity: number;
  /** Set once the block is allocated (created; pending ones have none). */
  block?: { start: number; release: () => void };
  tags: string[];
  details?: string;
  customdata: Record<string, unknown>;
  assignments: AssignmentRec[];
  createdAt: number;
}

interface HardwareReservationRec {
  id: string;
  projectId: string;
  plan: string;
  metro: string;
  deviceId?: string;
}

interface Budget {
  windowStart: number;
  used: number;
}

interface FaultRec extends MetalFault {
  left: number;
  hits: number;
}

interface Route {
  method: string;
  template: string;
  pattern: RegExp;
  handle: (params: string[], req: ParsedRequest) => Answer;
}

interface ParsedRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  /** The parsed JSON body; `undefined` when empty. */
  body: unknown;
  bodyError?: string;
}

/** A fake Equinix Metal API on 127.0.0.1; see the file comment. */
export class FakeMetalApi {
  readonly url: string;
  private readonly opts: {
    tokens: Set<string>;
    metros: Map<string, MetalMetro>;
    facilities: Map<string, { id: string; metro: string }>;
    plans: Map<string, string>;
    operatingSystems: Map<string, string>;
    capacity: Record<string, number>;
    queuedMs: number;
    provisioningMs: number;
    deprovisioningMs: number;
    rateLimit: { limit: number; windowMs: number };
    now: () => number;
    reservationRange?: string;
  };
  private offset = 0;
  private projectsById = new Map<string, ProjectRec>();
  private devicesById = new Map<string, DeviceRec>();
  private reservationsById = new Map<string, ReservationRec>();
  private hardware = new Map<string, HardwareReservationRec>();
  private budgets = new Map<string, Budget>();
  private faults: FaultRec[] = [];
  private failNext = 0;
  private failWhere = new Set<(r: MetalDeviceRequest) => boolean>();
  private callLog: MetalCall[] = [];
  private callHook: ((call: MetalCall) => void | Promise<void>) | undefined;
  private pools: ReturnType<typeof newPools>;
  private readonly routes: Route[];
  private stopped: Promise<void> | undefined;

  private constructor(
    opts: FakeMetalApi['opts'],
    private readonly server: http.Server,
    url: string,
  ) {
    this.opts = opts;
    this.url = url;
    this.pools = newPools(opts.reservationRange);
    this.routes = this.makeRoutes();
  }

  static async start(o: FakeMetalApiOptions = {}): Promise<FakeMetalApi> {
    const metros = new Map<string, MetalMetro>();
    for (const code of o.metros ?? Object.keys(DEFAULT_METROS)) {
      const [name, country] = DEFAULT_METROS[code] ?? [code.toUpperCase(), 'US'];
      metros.set(code, { id: randomUUID(), code, name, country });
    }
    const facilities = new Map<string, { id: string; metro: string }>();
    for (const [code, metro] of Object.entries(o.facilities ?? DEFAULT_FACILITIES)) {
      if (metros.has(metro)) facilities.set(code, { id: randomUUID(), metro });
      else if (o.facilities) throw new Error(`facility ${code}: metro '${metro}' is not among the metros`);
    }
    for (const code of metros.keys()) {
      const has = [...facilities.values()].some((f) => f.metro === code);
      if (!has) facilities.set(`${code}1`, { id: randomUUID(), metro: code });
    }
    const rateLimit = o.rateLimit ?? { limit: 5000, windowMs: 3_600_000 };
    if (!(rateLimit.limit >= 0 && rateLimit.windowMs > 0))
      throw new Error(
        `rateLimit: need limit >= 0 and windowMs > 0 (got ${rateLimit.limit}, ${rateLimit.windowMs})`,
      );
    const limits = { ...DEFAULT_HTTP_LIMITS, ...o.http };
    // The handler needs the instance, which needs the port: listen first, route once it exists.
    const ready: { api?: FakeMetalApi } = {};
    const server = http.createServer(
      {
        headersTimeout: limits.headersTimeoutMs,
        requestTimeout: Math.max(limits.requestTimeoutMs, limits.headersTimeoutMs),
        keepAliveTimeout: limits.keepAliveTimeoutMs,
        maxHeaderSize: limits.maxHeaderSize,
        connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(limits.headersTimeoutMs / 4))),
      },
      (req, res) =>
        ready.api ? ready.api.serve(req, res) : write(res, { status: 503, body: { errors: ['Starting'] } }),
    );
    const port = await new Promise<number>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => {
        server.off('error', reject);
        resolve((server.address() as AddressInfo).port);
      });
    });
    ready.api = new FakeMetalApi(
      {
        tokens: new Set(o.tokens ?? ['test-token']),
        metros,
        facilities,
        plans: new Map((o.plans ?? DEFAULT_PLANS).map((p) => [p, randomUUID()])),
        operatingSystems: new Map(
          (o.operatingSystems ?? DEFAULT_OPERATING_SYSTEMS).map((s) => [s, randomUUID()]),
        ),
        capacity: { ...o.capacity },
        queuedMs: o.durations?.queuedMs ?? 1000,
        provisioningMs: o.durations?.provisioningMs ?? 4000,
        deprovisioningMs: o.durations?.deprovisioningMs ?? 1000,
        rateLimit,
        now: o.now ?? Date.now,
        reservationRange: o.reservationRange,
      },
      server,
      `http://127.0.0.1:${port}${METAL_BASE_PATH}`,
    );
    return ready.api;
  }

  /** The fake's clock: `now()` plus everything `advance` added. */
  now(): number {
    return this.opts.now() + this.offset;
  }

  /** Moves the fake's clock forward (device states, budget windows, timestamps). */
  advance(ms: number): void {
    if (!(ms >= 0)) throw new Error(`advance: ms must be >= 0 (got ${ms})`);
    this.offset += ms;
  }

  get calls(): readonly MetalCall[] {
    return this.callLog;
  }

  /**
   * Runs `hook` after each request took effect and before its answer is written (undefined: none).
   * A test that kills its client in the hook crashes it between two calls: the effect happened,
   * the client never saw the answer, and it cannot have sent the next call.
   */
  onCall(hook: ((call: MetalCall) => void | Promise<void>) | undefined): void {
    this.callHook = hook;
  }

  /**
   * The operations of the spec on the paths the fake serves: the ones it models, and the ones it
   * answers with 501 (test/metal-api.test.ts holds this list against the spec).
   */
  get operations(): readonly { method: string; template: string; modelled: boolean }[] {
    const served = this.routes.map((r) => ({ method: r.method, template: r.template, modelled: true }));
    const unmodelled = Object.entries(NOT_MODELLED).flatMap(([template, methods]) =>
      methods.map((method) => ({ method, template, modelled: false })),
    );
    return [...served, ...unmodelled];
  }

  /** Makes a project the tokens can use; returns its id. */
  addProject(p: MetalProjectOptions = {}): string {
    const id = p.id ?? randomUUID();
    if (this.projectsById.has(id)) throw new Error(`project ${id} exists already`);
    this.projectsById.set(id, {
      id,
      name: p.name ?? `project-${id.slice(0, 8)}`,
      createdAt: this.now(),
      sshKeys: Array.from({ length: p.sshKeys ?? 1 }, () => randomUUID()),
      ipQuota: p.ipQuota ?? 16,
    });
    return id;
  }

  /** A hardware reservation of `plan` in `metro` for the project; returns its id. */
  addHardwareReservation(projectId: string, r: { plan: string; metro: string }): string {
    if (!this.projectsById.has(projectId)) throw new Error(`no project ${projectId}`);
    if (!this.opts.plans.has(r.plan)) throw new Error(`no plan ${r.plan}`);
    if (!this.opts.metros.has(r.metro)) throw new Error(`no metro ${r.metro}`);
    const id = randomUUID();
    this.hardware.set(id, { id, projectId, plan: r.plan, metro: r.metro });
    return id;
  }

  /** Grants a pending reservation (as Equinix's review would): it gets its block and `state: created`. */
  approveReservation(id: string): MetalIpReservation {
    const r = this.reservationsById.get(id);
    if (!r) throw new Error(`no IP reservation ${id}`);
    if (!r.block) {
      const block = this.allocateReservation(r.type, r.quantity);
      if (!block) throw new Error(`no free block of ${r.quantity} addresses for reservation ${id}`);
      r.block = block;
    }
    return this.reservationView(r);
  }

  /** The next `n` devices created fail to provision. */
  failNextDevices(n: number): void {
    this.failNext += n;
  }

  /** Devices whose create request matches fail to provision; returns the unsubscribe. */
  failDevicesWhere(predicate: (r: MetalDeviceRequest) => boolean): () => void {
    const own = (r: MetalDeviceRequest) => predicate(r); // the same predicate twice = two entries
    this.failWhere.add(own);
    return () => void this.failWhere.delete(own);
  }

  /** An existing device fails now (e.g. mid-provisioning). */
  failDevice(id: string): void {
    const d = this.devicesById.get(id);
    if (!d) throw new Error(`no device ${id}`);
    d.failAt = Math.min(d.failAt ?? Infinity, this.now());
  }

  /** Answers matching requests with a fault; see {@link MetalFault}. */
  inject(f: MetalFault): MetalFaultHandle {
    const rec: FaultRec = { ...f, left: f.times ?? 1, hits: 0 };
    if (!(rec.left >= 1)) throw new Error(`inject: times must be >= 1 (got ${rec.left})`);
    this.faults.push(rec);
    return {
      get hits() {
        return rec.hits;
      },
      cancel: () => {
        this.faults = this.faults.filter((x) => x !== rec);
      },
    };
  }

  /** Every device as the API would show it, failed and deprovisioning ones included. */
  devices(): MetalDevice[] {
    this.sweep();
    return [...this.devicesById.values()].map((d) => this.deviceView(d));
  }

  reservations(): MetalIpReservation[] {
    return [...this.reservationsById.values()].map((r) => this.reservationView(r));
  }

  /** Back to just after `start`: no projects, devices, reservations, faults, calls or budgets. */
  reset(): void {
    this.projectsById.clear();
    this.devicesById.clear();
    this.reservationsById.clear();
    this.hardware.clear();
    this.budgets.clear();
    this.faults = [];
    this.failNext = 0;
    this.failWhere.clear();
    this.callLog = [];
    this.pools = newPools(this.opts.reservationRange);
  }

  /** Closes the listener and cuts open connections. */
  close(): Promise<void> {
    this.stopped ??= new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
    return this.stopped;
  }

  // ---- HTTP ----

  private serve(req: http.IncomingMessage, res: http.ServerResponse): void {
    // Split by hand: URL() would throw on some request targets and read `//x/…` as a host.
    const target = req.url ?? '/';
    const cut = target.indexOf('?');
    const url = {
      pathname: cut < 0 ? target : target.slice(0, cut),
      searchParams: new URLSearchParams(cut < 0 ? '' : target.slice(cut + 1)),
    };
    readBounded(req, res, (raw) => {
      const method = (req.method ?? 'GET').toUpperCase();
      const path = url.pathname.startsWith(`${METAL_BASE_PATH}/`)
        ? url.pathname.slice(METAL_BASE_PATH.length)
        : '';
      const parsed: ParsedRequest = { method, path, query: url.searchParams, body: undefined };
      if (raw.length > 0) {
        try {
          parsed.body = JSON.parse(raw.toString('utf8'));
        } catch {
          parsed.bodyError = 'Request body is not valid JSON';
        }
      }
      const header = req.headers['x-auth-token'];
      const token = typeof header === 'string' ? header : '';
      const at = this.now();
      let answer: Answer & { fault?: 'before' | 'after' };
      try {
        answer = this.answer(parsed, token);
      } catch (e) {
        answer = { status: 500, body: { errors: [`FakeMetalApi: ${errorMessage(e)}`] } };
      }
      const call: MetalCall = {
        method,
        path: path || url.pathname,
        query: queryRecord(url.searchParams),
        ...(parsed.body !== undefined ? { body: parsed.body } : {}),
        status: answer.status,
        ...(answer.fault ? { fault: answer.fault } : {}),
        at,
      };
      this.callLog.push(call);
      const hook = this.callHook;
      if (!hook) write(res, answer);
      else
        void Promise.resolve()
          .then(() => hook(call))
          .catch(() => undefined)
          .finally(() => write(res, answer));
    });
  }

  private answer(req: ParsedRequest, token: string): Answer & { fault?: 'before' | 'after' } {
    this.sweep();
    const found = this.route(req);
    const budget = this.rateHeaders(token, false);
    const early = this.takeFault(req, false);
    if (early) return { ...this.faultAnswer(early, budget), fault: 'before' };
    if (!found) return { status: 404, body: { errors: ['Not found'] }, headers: budget };
    if ('unmodelled' in found) {
      const what = `${req.method} ${found.unmodelled}`;
      return {
        status: 501,
        body: { errors: [`${what} is in the Metal API but not modelled by FakeMetalApi`] },
        headers: budget,
      };
    }
    if (!this.opts.tokens.has(token)) {
      return { status: 401, body: { error: 'Invalid authentication token' }, headers: budget };
    }
    const spent = this.rateHeaders(token, true);
    if (!spent) {
      const headers = this.rateHeaders(token, false);
      const retry = Math.max(1, Math.ceil((Number(headers['X-RateLimit-Reset']) * 1000 - this.now()) / 1000));
      return {
        status: 429,
        body: { errors: ['Rate limit exceeded'] },
        headers: { ...headers, 'Retry-After': String(retry) },
      };
    }
    let answer: Answer;
    try {
      if (req.bodyError) throw new ApiError(422, [req.bodyError]);
      answer = found.route.handle(found.params, req);
    } catch (e) {
      if (!(e instanceof ApiError)) throw e;
      answer = { status: e.status, body: { errors: e.errors } };
    }
    const late = this.takeFault(req, true);
    if (late) return { ...this.faultAnswer(late, spent), fault: 'after' };
    return { ...answer, headers: { ...spent, ...answer.headers } };
  }

  private route(req: ParsedRequest): { route: Route; params: string[] } | { unmodelled: string } | undefined {
    let template: string | undefined;
    for (const r of this.routes) {
      const m = r.pattern.exec(req.path);
      if (!m) continue;
      template = r.template;
      if (r.method === req.method) return { route: r, params: m.slice(1) };
    }
    if (template && NOT_MODELLED[template]?.includes(req.method)) return { unmodelled: template };
    return undefined;
  }

  /** The first fault of its phase (`after` or not) matching the request, counted as used. */
  private takeFault(req: ParsedRequest, after: boolean): FaultRec | undefined {
    const f = this.faults.find(
      (x) =>
        Boolean(x.after) === after &&
        (!x.method || x.method.toUpperCase() === req.method) &&
        (x.path === undefined || (typeof x.path === 'string' ? x.path === req.path : x.path.test(req.path))),
    );
    if (!f) return undefined;
    f.hits++;
    if (--f.left <= 0) this.faults = this.faults.filter((x) => x !== f);
    return f;
  }

  private faultAnswer(f: FaultRec, budget: Record<string, string>): Answer {
    const headers: Record<string, string> = { ...budget };
    if (f.status === 429) Object.assign(headers, { 'X-RateLimit-Remaining': '0', 'Retry-After': '1' });
    return {
      status: f.status,
      body: f.body ?? { errors: [REASONS[f.status] ?? 'Injected fault'] },
      headers: { ...headers, ...f.headers },
    };
  }

  /**
   * The rate-limit headers for `token`'s window; with `spend`, takes one request from it and
   * returns undefined when none is left.
   */
  private rateHeaders(token: string, spend: true): Record<string, string> | undefined;
  private rateHeaders(token: string, spend: false): Record<string, string>;
  private rateHeaders(token: string, spend: boolean): Record<string, string> | undefined {
    const { limit, windowMs } = this.opts.rateLimit;
    const now = this.now();
    let b = this.budgets.get(token);
    if (!b || now >= b.windowStart + windowMs) {
      b = { windowStart: now, used: 0 };
      if (spend) this.budgets.set(token, b);
    }
    if (spend) {
      if (b.used >= limit) return undefined;
      b.used++;
    }
    return {
      'X-RateLimit-Limit': String(limit),
      'X-RateLimit-Remaining': String(Math.max(0, limit - b.used)),
      'X-RateLimit-Reset': String(Math.ceil((b.windowStart + windowMs) / 1000)),
    };
  }

  private makeRoutes(): Route[] {
    const id = '([^/]+)';
    const r = (method: string, template: string, handle: Route['handle']): Route => ({
      method,
      template,
      pattern: new RegExp(`^${template.replace(/\{[^}]+\}/g, id)}$`),
      handle,
    });
    return [
      r('GET', '/projects/{id}', ([p]) => ({ status: 200, body: this.projectView(this.project(p)) })),
      r('GET', '/projects/{id}/devices', ([p], q) => this.listDevices(this.project(p), q)),
      r('POST', '/projects/{id}/devices', ([p], q) => this.createDevice(this.project(p), q)),
      r('GET', '/devices/{id}', ([d]) => ({ status: 200, body: this.deviceView(this.device(d, 403)) })),
      r('PUT', '/devices/{id}', ([d], q) => this.updateDevice(this.device(d, 403), q)),
      r('DELETE', '/devices/{id}', ([d]) => this.deleteDevice(this.device(d, 403))),
      r('GET', '/devices/{id}/ips', ([d]) => ({
        status: 200,
        body: { ip_addresses: this.device(d, 404).addresses.map((a) => this.assignmentView(a)) },
      })),
      r('POST', '/devices/{id}/ips', ([d], q) => this.assign(this.device(d, 404), q)),
      r('GET', '/projects/{id}/ips', ([p], q) => this.listReservations(this.project(p), q)),
      r('POST', '/projects/{id}/ips', ([p], q) => this.reserve(this.project(p), q)),
      r('GET', '/ips/{id}', ([i]) => ({ status: 200, body: this.ipView(i) })),
      r('DELETE', '/ips/{id}', ([i]) => this.deleteIp(i)),
    ];
  }

  // ---- lookups ----

  private project(id: string | undefined): ProjectRec {
    const p = this.projectsById.get(id ?? '');
    if (!p) throw notFound();
    return p;
  }

  /** The device; a failed one answers `failedStatus` (403 where the spec declares it, else 404). */
  private device(id: string | undefined, failedStatus: 403 | 404): DeviceRec {
    const d = this.devicesById.get(id ?? '');
    if (!d) throw notFound();
    if (this.stateOf(d) === 'failed')
      throw failedStatus === 403 ? new ApiError(403, [FAILED_DEVICE]) : notFound();
    return d;
  }

  private stateOf(d: DeviceRec): MetalDeviceState {
    const now = this.now();
    if (d.deletedAt !== undefined) return 'deprovisioning';
    if (d.failAt !== undefined && now >= d.failAt) return 'failed';
    const age = now - d.createdAt;
    if (age < this.opts.queuedMs) return 'queued';
    if (age < this.opts.queuedMs + this.opts.provisioningMs) return 'provisioning';
    return 'active';
  }

  /** Devices whose deprovisioning is over are gone: their blocks and hardware go back. */
  private sweep(): void {
    const now = this.now();
    for (const d of this.devicesById.values()) {
      if (d.deletedAt === undefined || now < d.deletedAt + this.opts.deprovisioningMs) continue;
      for (const a of d.addresses) a.release?.();
      const hw = d.hardwareReservationId ? this.hardware.get(d.hardwareReservationId) : undefined;
      if (hw) delete hw.deviceId;
      this.devicesById.delete(d.id);
    }
  }

  // ---- devices ----

  private listDevices(p: ProjectRec, req: ParsedRequest): Answer {
    const tag = req.query.get('tag');
    const hostname = req.query.get('hostname');
    const items = [...this.devicesById.values()].filter(
      (d) =>
        d.projectId === p.id &&
        this.stateOf(d) !== 'failed' &&
        (tag === null || d.tags.includes(tag)) &&
        (hostname === null || d.hostname.includes(hostname)),
    );
    const { slice, meta } = paginate(items, req, DEVICE_PAGE);
    return { status: 200, body: { devices: slice.map((d) => this.deviceView(d)), meta } };
  }

  private createDevice(p: ProjectRec, req: ParsedRequest): Answer {
    const body = objectBody(req);
    const v = new Checker(body);
    const plan = v.string('plan', { required: true });
    const os = v.string('operating_system', { required: true });
    if (plan !== undefined && !this.opts.plans.has(plan)) v.fail(`plan '${plan}' is not a valid plan`);
    if (os !== undefined && !this.opts.operatingSystems.has(os))
      v.fail(`operating_system '${os}' is not a valid operating system`);
    const where = this.location(v);
    const billingCycle = v.oneOf('billing_cycle', METAL_BILLING_CYCLES) ?? 'hourly';
    const hostname = v.string('hostname');
    const description = v.string('description');
    const tags = v.strings('tags') ?? [];
    const userdata = v.string('userdata') ?? '';
    const customdata = v.object('customdata') ?? {};
    const alwaysPxe = v.boolean('always_pxe') ?? false;
    const ipxeScriptUrl = v.string('ipxe_script_url');
    const locked = v.boolean('locked') ?? false;
    const spotInstance = v.boolean('spot_instance') ?? false;
    const networkFrozen = v.boolean('network_frozen') ?? false;
    const terminationTime = v.dateTime('termination_time');
    const sshKeys = this.deviceKeys(p, v);
    const wanted = this.addressRequest(v);
    const hw = this.hardwareFor(p, v, plan, where?.metro);
    v.done();
    const metro = (where as { metro: string; facility: string }).metro;
    const limit = this.opts.capacity[plan as string];
    const live = [...this.devicesById.values()].filter((d) => d.plan === plan && d.deletedAt === undefined);
    if (limit !== undefined && live.length >= limit) {
      throw new ApiError(503, [
        `There are no ${plan} servers available in ${metro}; try another metro or plan`,
      ]);
    }
    const now = this.now();
    const id = randomUUID();
    const addresses = this.allocateDeviceAddresses(id, metro, wanted, now);
    const d: DeviceRec = {
      id,
      projectId: p.id,
      hostname: hostname ?? `device-${id.slice(0, 8)}`,
      ...(description !== undefined ? { description } : {}),
      tags,
      plan: plan as string,
      os: os as string,
      metro,
      facility: (where as { facility: string }).facility,
      billingCycle,
      userdata,
      customdata,
      alwaysPxe,
      ...(ipxeScriptUrl !== undefined ? { ipxeScriptUrl } : {}),
      locked,
      spotInstance,
      networkFrozen,
      ...(terminationTime !== undefined ? { terminationTime } : {}),
      sshKeys: sshKeys.keys,
      ...(hw ? { hardwareReservationId: hw.id } : {}),
      addresses,
      createdAt: now,
      updatedAt: now,
    };
    const request: MetalDeviceRequest = { projectId: p.id, body };
    if (this.failNext > 0 || [...this.failWhere].some((f) => f(request))) {
      if (this.failNext > 0) this.failNext--;
      d.failAt = now + this.opts.queuedMs + this.opts.provisioningMs;
    }
    if (hw) hw.deviceId = id;
    p.sshKeys.push(...sshKeys.created);
    this.devicesById.set(id, d);
    return { status: 201, body: this.deviceView(d) };
  }

  /** Resolves `metro` or `facility` (exactly one) to a metro and a facility in it. */
  private location(v: Checker): { metro: string; facility: string } | undefined {
    const body = v.body;
    const hasMetro = body['metro'] !== undefined;
    const hasFacility = body['facility'] !== undefined;
    if (hasMetro === hasFacility) {
      v.fail(hasMetro ? 'metro and facility are mutually exclusive' : 'metro or facility is required');
      return undefined;
    }
    if (hasMetro) {
      const code = v.string('metro');
      if (code === undefined) return undefined;
      const metro = code === 'any' ? [...this.opts.metros.keys()][0] : code;
      if (!metro || !this.opts.metros.has(metro)) {
        v.fail(`metro '${code}' is not a valid metro`);
        return undefined;
      }
      return { metro, facility: this.facilityIn(metro) };
    }
    const raw = body['facility'];
    const codes = typeof raw === 'string' ? [raw] : raw;
    if (!Array.isArray(codes) || codes.length === 0 || !codes.every((c) => typeof c === 'string')) {
      v.fail('facility must be a facility code or a list of them');
      return undefined;
    }
    for (const code of codes as string[]) {
      const f = code === 'any' ? [...this.opts.facilities.keys()][0] : code;
      const known = f === undefined ? undefined : this.opts.facilities.get(f);
      if (f !== undefined && known) return { metro: known.metro, facility: f };
    }
    v.fail(`facility ${JSON.stringify(raw)}: none is a valid facility`);
    return undefined;
  }

  /** The metro's first facility (`start` gives every metro one). */
  private facilityIn(metro: string): string {
    for (const [code, f] of this.opts.facilities) if (f.metro === metro) return code;
    throw new Error(`metro ${metro} has no facility`);
  }

  /**
   * The SSH keys a new device gets, and the new ones (`ssh_keys`) the project gains once the
   * device is created; none at all (and no `no_ssh_keys`) → 422 (PR #788).
   */
  private deviceKeys(p: ProjectRec, v: Checker): { keys: string[]; created: string[] } {
    const projectKeys = v.uuids('project_ssh_keys') ?? [];
    const userKeys = v.uuids('user_ssh_keys') ?? [];
    const newKeys = v.list(
      'ssh_keys',
      (k) => isObject(k) && (k['key'] === undefined || typeof k['key'] === 'string'),
    );
    const noKeys = v.boolean('no_ssh_keys') ?? false;
    for (const k of projectKeys)
      if (!p.sshKeys.includes(k)) v.fail(`project_ssh_keys: ${k} is not a key of the project`);
    const created = (newKeys ?? []).map(() => randomUUID());
    const given = [...projectKeys, ...userKeys, ...created];
    if (noKeys) return { keys: [], created: [] };
    if (given.length > 0) return { keys: given, created };
    if (p.sshKeys.length === 0) {
      v.fail(
        'No SSH keys: the project and its members have none; pass ssh_keys, project_ssh_keys or user_ssh_keys, or no_ssh_keys: true',
      );
    }
    return { keys: [...p.sshKeys], created: [] };
  }

  /** `ip_addresses` of a create request (default: public v4, private v4, public v6). */
  private addressRequest(v: Checker): { family: 4 | 6; public: boolean }[] {
    const list = v.list(
      'ip_addresses',
      (a) =>
        isObject(a) &&
        (a['address_family'] === 4 || a['address_family'] === 6) &&
        (a['public'] === undefined || typeof a['public'] === 'boolean'),
    );
    if (!list) {
      return [
        { family: 4, public: true },
        { family: 4, public: false },
        { family: 6, public: true },
      ];
    }
    const wanted = list.map((a) => {
      const o = a as Record<string, unknown>;
      return { family: o['address_family'] as 4 | 6, public: o['public'] !== false };
    });
    if (!wanted.some((w) => w.family === 4 && !w.public))
      v.fail('ip_addresses: a private IPv4 address is required');
    if (wanted.some((w) => w.family === 6 && !w.public))
      v.fail('ip_addresses: private IPv6 addresses are not available');
    return wanted;
  }

  private hardwareFor(
    p: ProjectRec,
    v: Checker,
    plan: string | undefined,
    metro: string | undefined,
  ): HardwareReservationRec | undefined {
    const want = v.string('hardware_reservation_id');
    if (!want) return undefined;
    const free = (h: HardwareReservationRec) =>
      h.projectId === p.id && !h.deviceId && h.plan === plan && (metro === undefined || h.metro === metro);
    const hw = want === 'next-available' ? [...this.hardware.values()].find(free) : this.hardware.get(want);
    if (!hw || !free(hw)) {
      v.fail(
        want === 'next-available'
          ? `no available hardware reservation of plan ${plan} in the project`
          : `hardware reservation ${want} is not available for plan ${plan} in this project`,
      );
      return undefined;
    }
    return hw;
  }

  private allocateDeviceAddresses(
    deviceId: string,
    metro: string,
    wanted: { family: 4 | 6; public: boolean }[],
    now: number,
  ): AssignmentRec[] {
    const out: AssignmentRec[] = [];
    for (const w of wanted) {
      const pool = w.family === 6 ? this.pools.v6 : w.public ? this.pools.publicV4 : this.pools.privateV4;
      const start = pool.take(2);
      if (start === undefined) {
        for (const a of out) a.release?.();
        throw new ApiError(503, [
          `No ${w.public ? 'public' : 'private'} IPv${w.family} addresses left in ${metro}`,
        ]);
      }
      const fmt = (n: number) => (w.family === 6 ? v6(n) : v4(n));
      out.push({
        id: randomUUID(),
        deviceId,
        family: w.family,
        network: fmt(start),
        address: fmt(start + 1),
        gateway: fmt(start),
        cidr: w.family === 6 ? 127 : 31,
        public: w.public,
        management: true,
        globalIp: false,
        metro,
        release: () => pool.give(start, 2),
        createdAt: now,
      });
    }
    return out;
  }

  private updateDevice(d: DeviceRec, req: ParsedRequest): Answer {
    const v = new Checker(objectBody(req));
    const hostname = v.string('hostname');
    const description = v.string('description');
    const tags = v.strings('tags');
    const userdata = v.string('userdata');
    const customdata = v.object('customdata');
    const locked = v.boolean('locked');
    const alwaysPxe = v.boolean('always_pxe');
    const ipxeScriptUrl = v.string('ipxe_script_url');
    const billingCycle = v.oneOf('billing_cycle', METAL_BILLING_CYCLES);
    const spotInstance = v.boolean('spot_instance');
    const networkFrozen = v.boolean('network_frozen');
    v.done();
    if (hostname !== undefined) d.hostname = hostname;
    if (description !== undefined) d.description = description;
    if (tags !== undefined) d.tags = tags;
    if (userdata !== undefined) d.userdata = userdata;
    if (customdata !== undefined) d.customdata = customdata;
    if (locked !== undefined) d.locked = locked;
    if (alwaysPxe !== undefined) d.alwaysPxe = alwaysPxe;
    if (ipxeScriptUrl !== undefined) d.ipxeScriptUrl = ipxeScriptUrl;
    if (billingCycle !== undefined) d.billingCycle = billingCycle;
    if (spotInstance !== undefined) d.spotInstance = spotInstance;
    if (networkFrozen !== undefined) d.networkFrozen = networkFrozen;
    d.updatedAt = this.now();
    return { status: 200, body: this.deviceView(d) };
  }

  private deleteDevice(d: DeviceRec): Answer {
    if (d.deletedAt !== undefined) return { status: 204 };
    if (d.locked)
      throw new ApiError(422, ['Device is locked; unlock it (PUT locked: false) before deleting it']);
    d.deletedAt = this.now();
    for (const a of d.addresses.filter((x) => x.reservationId)) this.unassign(a);
    return { status: 204 };
  }

  // ---- IP reservations and assignments ----

  private listReservations(p: ProjectRec, req: ParsedRequest): Answer {
    const types = new Set(
      req.query
        .getAll('types')
        .flatMap((t) => t.split(','))
        .filter(Boolean),
    );
    const items = [...this.reservationsById.values()].filter(
      (r) => r.projectId === p.id && (types.size === 0 || types.has(r.type)),
    );
    const { slice, meta } = paginate(items, req, IP_PAGE);
    return { status: 200, body: { ip_addresses: slice.map((r) => this.reservationView(r)), meta } };
  }

  private reserve(p: ProjectRec, req: ParsedRequest): Answer {
    const v = new Checker(objectBody(req));
    const type = v.string('type', { required: true });
    const quantity = v.integer('quantity', { required: true });
    const tags = v.strings('tags') ?? [];
    const details = v.string('details');
    v.string('comments');
    const customdata = v.object('customdata') ?? {};
    const failOnApproval = v.boolean('fail_on_approval_required') ?? false;
    if (type !== undefined && type !== 'public_ipv4' && type !== 'global_ipv4') {
      v.fail(
        type === 'private_ipv4' || type === 'public_ipv6' || type === 'vrf'
          ? `type ${type}: such blocks are not requestable here (FakeMetalApi models public_ipv4 and global_ipv4)`
          : `type '${type}' is not one of public_ipv4, global_ipv4, private_ipv4, public_ipv6, vrf`,
      );
    }
    if (quantity !== undefined && !(quantity >= 1 && quantity <= 256 && (quantity & (quantity - 1)) === 0)) {
      v.fail(`quantity ${quantity} must be a power of two from 1 to 256`);
    }
    let metro: string | undefined;
    if (type === 'public_ipv4') metro = this.location(v)?.metro;
    v.done();
    const used = [...this.reservationsById.values()]
      .filter((r) => r.projectId === p.id && r.block)
      .reduce((n, r) => n + r.quantity, 0);
    const overQuota = used + (quantity as number) > p.ipQuota;
    if (overQuota && failOnApproval) {
      throw new ApiError(422, [
        `Requesting ${quantity} addresses exceeds the project's quota (${used} of ${p.ipQuota} used) and fail_on_approval_required is set`,
      ]);
    }
    const r: ReservationRec = {
      id: randomUUID(),
      projectId: p.id,
      type: type as ReservationRec['type'],
      ...(metro !== undefined ? { metro } : {}),
      quantity: quantity as number,
      tags,
      ...(details !== undefined ? { details } : {}),
      customdata,
      assignments: [],
      createdAt: this.now(),
    };
    if (!overQuota) {
      const block = this.allocateReservation(r.type, r.quantity);
      if (!block) throw new ApiError(422, [`No free block of ${quantity} addresses left`]);
      r.block = block;
    }
    this.reservationsById.set(r.id, r);
    return { status: 201, body: this.reservationView(r) };
  }

  private allocateReservation(type: ReservationRec['type'], quantity: number): ReservationRec['block'] {
    const pool = type === 'global_ipv4' ? this.pools.global : this.pools.reserved;
    const start = pool.take(quantity);
    return start === undefined ? undefined : { start, release: () => pool.give(start, quantity) };
  }

  private assign(d: DeviceRec, req: ParsedRequest): Answer {
    if (d.deletedAt !== undefined) throw new ApiError(422, ['The device is being deprovisioned']);
    const v = new Checker(objectBody(req));
    const raw = v.string('address', { required: true });
    v.object('customdata');
    v.done();
    const m = /^(\d{1,3}(?:\.\d{1,3}){3})(?:\/(\d{1,2}))?$/.exec(raw as string);
    const ip = m ? parseV4(m[1] as string) : undefined;
    const prefix = m?.[2] === undefined ? 32 : Number(m[2]);
    if (!m || ip === undefined || prefix > 32) {
      throw new ApiError(422, [
        `address '${raw}' is not an IPv4 address or CIDR (FakeMetalApi assigns IPv4 only)`,
      ]);
    }
    const size = 2 ** (32 - prefix);
    const start = ip - (ip % size);
    const r = [...this.reservationsById.values()].find(
      (x) =>
        x.projectId === d.projectId &&
        x.block &&
        start >= x.block.start &&
        start + size <= x.block.start + x.quantity,
    );
    if (!r) throw new ApiError(422, [`${raw} is not inside an IP reservation of the device's project`]);
    if (r.type === 'public_ipv4' && r.metro !== d.metro) {
      throw new ApiError(422, [`${raw} is reserved in metro ${r.metro}; the device is in ${d.metro}`]);
    }
    const taken = r.assignments.find((a) => {
      const s = parseV4(a.network) as number;
      return start < s + 2 ** (32 - a.cidr) && s < start + size;
    });
    if (taken) throw new ApiError(422, [`${raw} overlaps ${taken.network}/${taken.cidr}, already assigned`]);
    const block = r.block as NonNullable<ReservationRec['block']>;
    const a: AssignmentRec = {
      id: randomUUID(),
      deviceId: d.id,
      family: 4,
      network: v4(start),
      address: v4(start),
      gateway: v4(block.start),
      cidr: prefix,
      public: true,
      management: false,
      globalIp: r.type === 'global_ipv4',
      metro: d.metro,
      reservationId: r.id,
      createdAt: this.now(),
    };
    r.assignments.push(a);
    d.addresses.push(a);
    return { status: 201, body: this.assignmentView(a) };
  }

  /** GET /ips/{id}: a reservation, or an assignment (elastic or a device's own). */
  private ipView(id: string | undefined): MetalIpReservation | MetalIpAssignment {
    const r = this.reservationsById.get(id ?? '');
    if (r) return this.reservationView(r);
    const a = this.findAssignment(id);
    if (!a) throw notFound();
    return this.assignmentView(a);
  }

  private findAssignment(id: string | undefined): AssignmentRec | undefined {
    for (const d of this.devicesById.values()) {
      if (this.stateOf(d) === 'failed') continue;
      const a = d.addresses.find((x) => x.id === id);
      if (a) return a;
    }
    return undefined;
  }

  private deleteIp(id: string | undefined): Answer {
    const r = this.reservationsById.get(id ?? '');
    if (r) {
      for (const a of [...r.assignments]) this.unassign(a);
      r.block?.release();
      this.reservationsById.delete(r.id);
      return { status: 204 };
    }
    const a = this.findAssignment(id);
    if (!a) throw notFound();
    if (a.management) throw new ApiError(403, ["A device's management addresses cannot be unassigned"]);
    this.unassign(a);
    return { status: 204 };
  }

  private unassign(a: AssignmentRec): void {
    const d = this.devicesById.get(a.deviceId);
    if (d) d.addresses = d.addresses.filter((x) => x !== a);
    const r = a.reservationId ? this.reservationsById.get(a.reservationId) : undefined;
    if (r) r.assignments = r.assignments.filter((x) => x !== a);
  }

  // ---- views (the JSON the API answers) ----

  private projectView(p: ProjectRec): Record<string, unknown> {
    const devices = [...this.devicesById.values()].filter((d) => d.projectId === p.id);
    return {
      id: p.id,
      name: p.name,
      href: `${METAL_BASE_PATH}/projects/${p.id}`,
      created_at: iso(p.createdAt),
      updated_at: iso(p.createdAt),
      type: 'default',
      backend_transfer_enabled: false,
      customdata: {},
      tags: [],
      devices: devices.map((d) => ({ href: `${METAL_BASE_PATH}/devices/${d.id}` })),
      ssh_keys: p.sshKeys.map((k) => ({ href: `${METAL_BASE_PATH}/ssh-keys/${k}` })),
    };
  }

  private metroView(code: string): MetalMetro {
    return { ...(this.opts.metros.get(code) as MetalMetro) };
  }

  private deviceView(d: DeviceRec): MetalDevice {
    const state = this.stateOf(d);
    const facility = this.opts.facilities.get(d.facility);
    const [distro = d.os, ...rest] = d.os.split('_');
    const href = (kind: string, id: string) => `${METAL_BASE_PATH}/${kind}/${id}`;
    const view: MetalDevice = {
      id: d.id,
      short_id: d.id.slice(0, 8),
      href: href('devices', d.id),
      hostname: d.hostname,
      ...(d.description !== undefined ? { description: d.description } : {}),
      state,
      tags: [...d.tags],
      billing_cycle: d.billingCycle,
      created_at: iso(d.createdAt),
      updated_at: iso(d.updatedAt),
      userdata: d.userdata,
      customdata: { ...d.customdata },
      always_pxe: d.alwaysPxe,
      ...(d.ipxeScriptUrl !== undefined ? { ipxe_script_url: d.ipxeScriptUrl } : {}),
      locked: d.locked,
      spot_instance: d.spotInstance,
      network_frozen: d.networkFrozen,
      ...(d.terminationTime !== undefined ? { termination_time: d.terminationTime } : {}),
      facility: {
        id: (facility as { id: string }).id,
        code: d.facility,
        name: `${this.metroView(d.metro).name} ${d.facility}`,
        metro: this.metroView(d.metro),
      },
      metro: this.metroView(d.metro),
      plan: { id: this.opts.plans.get(d.plan) as string, slug: d.plan, name: d.plan, class: d.plan },
      operating_system: {
        id: this.opts.operatingSystems.get(d.os) as string,
        slug: d.os,
        name: d.os,
        distro,
        version: rest.join('.'),
      },
      project: { href: href('projects', d.projectId) },
      project_lite: { href: href('projects', d.projectId) },
      ssh_keys: d.sshKeys.map((k) => ({ href: href('ssh-keys', k) })),
      ip_addresses: d.addresses.map((a) => this.assignmentView(a)),
      ...(d.hardwareReservationId
        ? {
            hardware_reservation: {
              id: d.hardwareReservationId,
              href: href('hardware-reservations', d.hardwareReservationId),
            },
          }
        : {}),
    };
    if (state === 'provisioning') {
      const done = (this.now() - d.createdAt - this.opts.queuedMs) / this.opts.provisioningMs;
      view.provisioning_percentage = Math.round(Math.min(1, Math.max(0, done)) * 1000) / 10;
    }
    return view;
  }

  private assignmentView(a: AssignmentRec): MetalIpAssignment {
    const r = a.reservationId ? this.reservationsById.get(a.reservationId) : undefined;
    const netmask =
      a.family === 4
        ? v4Netmask(a.cidr)
        : `ffff:ffff:ffff:ffff:ffff:ffff:ffff:${a.cidr === 128 ? 'ffff' : 'fffe'}`;
    return {
      id: a.id,
      href: `${METAL_BASE_PATH}/ips/${a.id}`,
      address: a.address,
      address_family: a.family,
      cidr: a.cidr,
      netmask,
      network: a.network,
      gateway: a.gateway,
      public: a.public,
      management: a.management,
      manageable: !a.management,
      enabled: true,
      global_ip: a.globalIp,
      assigned_to: { href: `${METAL_BASE_PATH}/devices/${a.deviceId}` },
      created_at: iso(a.createdAt),
      metro: this.metroView(a.metro),
      ...(r?.block
        ? {
            parent_block: {
              network: v4(r.block.start),
              netmask: v4Netmask(32 - Math.log2(r.quantity)),
              cidr: 32 - Math.log2(r.quantity),
              href: `${METAL_BASE_PATH}/ips/${r.id}`,
            },
          }
        : {}),
      type: 'IPAssignment',
    };
  }

  private reservationView(r: ReservationRec): MetalIpReservation {
    const cidr = 32 - Math.log2(r.quantity);
    const block = r.block
      ? {
          address: v4(r.block.start),
          network: v4(r.block.start),
          netmask: v4Netmask(cidr),
          gateway: v4(r.block.start),
        }
      : {};
    const project = { href: `${METAL_BASE_PATH}/projects/${r.projectId}` };
    return {
      id: r.id,
      href: `${METAL_BASE_PATH}/ips/${r.id}`,
      type: r.type,
      state: r.block ? 'created' : 'pending',
      ...block,
      cidr,
      address_family: 4,
      public: true,
      management: false,
      manageable: true,
      addon: true,
      bill: true,
      global_ip: r.type === 'global_ipv4',
      enabled: true,
      tags: [...r.tags],
      ...(r.details !== undefined ? { details: r.details } : {}),
      customdata: { ...r.customdata },
      ...(r.metro !== undefined ? { metro: this.metroView(r.metro) } : {}),
      assignments: r.assignments.map((a) => this.assignmentView(a)),
      project,
      project_lite: project,
      created_at: iso(r.createdAt),
    };
  }
}

// ---- request checking ----

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function objectBody(req: ParsedRequest): Record<string, unknown> {
  if (req.body === undefined) throw new ApiError(422, ['A JSON request body is required']);
  if (!isObject(req.body)) throw new ApiError(422, ['The request body must be a JSON object']);
  return req.body;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Reads a request body's fields, collecting every problem; `done()` answers 422 with all of them. */
class Checker {
  private readonly problems: string[] = [];
  constructor(readonly body: Record<string, unknown>) {}

  fail(message: string): void {
    this.problems.push(message);
  }

  done(): void {
    if (this.problems.length > 0) throw new ApiError(422, this.problems);
  }

  private field<T>(key: string, ok: (v: unknown) => boolean, what: string, required = false): T | undefined {
    const v = this.body[key];
    if (v === undefined || v === null) {
      if (required) this.fail(`${key} is required`);
      return undefined;
    }
    if (!ok(v)) {
      this.fail(`${key} must be ${what}`);
      return undefined;
    }
    return v as T;
  }

  string(key: string, o: { required?: boolean } = {}): string | undefined {
    return this.field<string>(
      key,
      (v) => typeof v === 'string' && (!o.required || v !== ''),
      'a string',
      o.required,
    );
  }

  integer(key: string, o: { required?: boolean } = {}): number | undefined {
    return this.field<number>(key, (v) => Number.isInteger(v), 'an integer', o.required);
  }

  boolean(key: string): boolean | undefined {
    return this.field<boolean>(key, (v) => typeof v === 'boolean', 'true or false');
  }

  object(key: string): Record<string, unknown> | undefined {
    return this.field<Record<string, unknown>>(key, isObject, 'a JSON object');
  }

  oneOf<T extends string>(key: string, values: readonly T[]): T | undefined {
    return this.field<T>(key, (v) => values.includes(v as T), `one of ${values.join(', ')}`);
  }

  dateTime(key: string): string | undefined {
    return this.field<string>(
      key,
      (v) => typeof v === 'string' && !Number.isNaN(Date.parse(v)),
      'a date-time (RFC 3339)',
    );
  }

  list(key: string, item: (v: unknown) => boolean): unknown[] | undefined {
    return this.field<unknown[]>(
      key,
      (v) => Array.isArray(v) && v.every(item),
      'a list of the documented shape',
    );
  }

  strings(key: string): string[] | undefined {
    return this.list(key, (s) => typeof s === 'string') as string[] | undefined;
  }

  uuids(key: string): string[] | undefined {
    return this.list(key, (s) => typeof s === 'string' && UUID.test(s)) as string[] | undefined;
  }
}

// ---- pages ----

/** One page of `items` and the spec's Meta for it (hrefs keep the request's other parameters). */
function paginate<T>(
  items: T[],
  req: ParsedRequest,
  limits: { default: number; max: number },
): { slice: T[]; meta: MetalMeta } {
  const int = (name: string, fallback: number, max: number) => {
    const n = Number.parseInt(req.query.get(name) ?? '', 10);
    return Number.isFinite(n) && n >= 1 ? Math.min(n, max) : fallback;
  };
  const perPage = int('per_page', limits.default, limits.max);
  const page = int('page', 1, MAX_PAGE);
  const lastPage = Math.max(1, Math.ceil(items.length / perPage));
  const href = (n: number): MetalHref => {
    const q = new URLSearchParams(req.query);
    q.set('page', String(n));
    return { href: `${METAL_BASE_PATH}${req.path}?${q.toString()}` };
  };
  return {
    slice: items.slice((page - 1) * perPage, page * perPage),
    meta: {
      self: href(page),
      first: href(1),
      last: href(lastPage),
      ...(page > 1 ? { previous: href(Math.min(page - 1, lastPage)) } : {}),
      ...(page < lastPage ? { next: href(page + 1) } : {}),
      total: items.length,
      current_page: page,
      last_page: lastPage,
    },
  };
}

function queryRecord(q: URLSearchParams): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const key of new Set(q.keys())) {
    const all = q.getAll(key);
    out[key] = all.length === 1 ? (all[0] as string) : all;
  }
  return out;
}

// ---- addresses ----

/** Address blocks from fixed ranges; a block of `size` starts at a multiple of `size`. */
class BlockPool {
  private readonly used = new Set<number>();
  constructor(private readonly ranges: [start: number, size: number][]) {}

  take(size: number): number | undefined {
    for (const [first, length] of this.ranges) {
      for (let s = first; s + size <= first + length; s += size) {
        let free = true;
        for (let i = 0; i < size && free; i++) free = !this.used.has(s + i);
        if (!free) continue;
        for (let i = 0; i < size; i++) this.used.add(s + i);
        return s;
      }
    }
    return undefined;
  }

  give(start: number, size: number): void {
    for (let i = 0; i < size; i++) this.used.delete(start + i);
  }
}

function newPools(reservationRange = '198.51.100.0/24') {
  const block = (cidr: string): [number, number] => {
    const [ip, prefix] = cidr.split('/');
    return [parseV4(ip as string) as number, 2 ** (32 - Number(prefix))];
  };
  return {
    publicV4: new BlockPool([block('203.0.113.0/24'), block('192.0.2.128/25')]),
    privateV4: new BlockPool([block('10.0.0.0/16')]),
    /** IPv6 as an offset into 2001:db8::/64 (the low 32 bits are plenty for a test). */
    v6: new BlockPool([[2, 2 ** 20]]),
    reserved: new BlockPool([block(reservationRange)]),
    global: new BlockPool([block('192.0.2.0/25')]),
  };
}

function parseV4(s: string): number | undefined {
  const parts = s.split('.').map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) return undefined;
  return parts.reduce((n, p) => n * 256 + p, 0);
}

function v4(n: number): string {
  return [24, 16, 8, 0].map((shift) => Math.floor(n / 2 ** shift) % 256).join('.');
}

function v4Netmask(cidr: number): string {
  return v4(2 ** 32 - 2 ** (32 - cidr));
}

/** An offset into 2001:db8::/64, written compressed (`2001:db8::1:a`). */
function v6(n: number): string {
  const hi = Math.floor(n / 65536);
  return `2001:db8::${hi > 0 ? `${hi.toString(16)}:` : ''}${(n % 65536).toString(16)}`;
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

// ---- the wire ----

/** Reads the body up to {@link METAL_MAX_BODY_BYTES}; over it → 413 and the connection is closed. */
function readBounded(
  req: http.IncomingMessage,
  res: http.ServerResponse,
  then: (body: Buffer) => void,
): void {
  const refuse = () => {
    res.shouldKeepAlive = false;
    write(res, {
      status: 413,
      body: { errors: [`Request body larger than ${METAL_MAX_BODY_BYTES} bytes`] },
      headers: { Connection: 'close' },
    });
    res.once('finish', () => req.socket.destroy());
  };
  if (Number(req.headers['content-length'] ?? 0) > METAL_MAX_BODY_BYTES) {
    req.resume();
    return refuse();
  }
  const chunks: Buffer[] = [];
  let size = 0;
  let state: 'reading' | 'refused' | 'ended' = 'reading';
  req.on('data', (chunk: Buffer) => {
    if (state !== 'reading') return;
    size += chunk.length;
    if (size <= METAL_MAX_BODY_BYTES) return void chunks.push(chunk);
    state = 'refused';
    chunks.length = 0;
    refuse();
  });
  req.on('end', () => {
    if (state !== 'reading') return;
    state = 'ended';
    then(Buffer.concat(chunks, size));
  });
  req.on('close', () => {
    if (state === 'reading') state = 'ended'; // aborted or cut by a timeout: nothing to answer
    chunks.length = 0;
  });
}

function write(res: http.ServerResponse, a: Answer): void {
  if (res.headersSent || res.destroyed) return;
  const text = a.body === undefined ? '' : JSON.stringify(a.body);
  res.statusCode = a.status;
  if (text !== '') res.setHeader('Content-Type', JSON_TYPE);
  res.setHeader('Content-Length', Buffer.byteLength(text));
  res.setHeader('Cache-Control', 'no-store');
  for (const [k, v] of Object.entries(a.headers ?? {})) res.setHeader(k, v);
  res.end(text === '' ? undefined : text);
}
