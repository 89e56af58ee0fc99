import { listAllPages } from './pagination';
import { MetalTransport, type HttpMethod, type MetalClientOptions } from './transport';
import type {
  Device,
  DeviceCreateRequest,
  DeviceUpdateInput,
  IncludeOptions,
  IPAssignment,
  IPAssignmentInput,
  IPReservation,
  IPReservationRequestInput,
  IPReservationsQuery,
  Project,
  ProjectDevicesQuery,
} from './types';

/** Query parameters sent once per value (`types=a&types=b`, the SDK's "multi"); other arrays go comma-separated. */
const MULTI_VALUED = new Set(['types', 'categories']);

/**
 * The Metal API (metal/v1) operations a Cluster API provider needs, each named after what it
 * does, with the spec's operationId in its doc (that name is also what `onCall` reports). Inputs
 * and outputs are the spec's wire types. Every failure is a `MetalApiError` whose `kind` comes from
 * the HTTP status; lists follow every page.
 *
 * Creating is not idempotent on the API's side: when a POST fails without an answer (timeout,
 * reset) it is not sent again, it throws `unreachable`, and the caller looks the object up (a
 * device by its tags, `findDevicesByTags`) before it creates again.
 */
export class MetalClient {
  private readonly t: MetalTransport;

  /** Throws (one line) on an invalid API URL, an empty token or a bad number. */
  constructor(o: MetalClientOptions) {
    this.t = new MetalTransport(o);
  }

  /** The API URL calls go to, without a trailing slash. */
  get apiUrl(): string {
    return this.t.apiUrl;
  }

  /** Releases kept-alive connections; later calls open new ones. */
  close(): void {
    this.t.close();
  }

  /**
   * `findProjectById`: `GET /projects/{id}`. Cheap, so it also checks credentials: a bad token
   * throws `unauthorized`, a project the token cannot see `gone` or `forbidden`.
   */
  async getProject(id: string, opts: IncludeOptions = {}): Promise<Project> {
    return this.resource<Project>('findProjectById', 'GET', `/projects/${segment('project', id)}`, opts);
  }

  /**
   * `createDevice`: `POST /projects/{id}/devices` with a metro or a facility list (exactly one).
   * 201 with the device, usually `queued`. Not retried after a failure without an answer.
   */
  async createDevice(
    projectId: string,
    input: DeviceCreateRequest,
    opts: IncludeOptions = {},
  ): Promise<Device> {
    const hasMetro = typeof input.metro === 'string' && input.metro !== '';
    const hasFacility = Array.isArray(input.facility) && input.facility.length > 0;
    if (hasMetro === hasFacility) {
      throw new Error(
        `Metal API createDevice: give a metro or a facility list, ${hasMetro ? 'not both' : 'neither is set'} (the spec's DeviceCreateInMetroInput or DeviceCreateInFacilityInput)`,
      );
    }
    return this.resource<Device>(
      'createDevice',
      'POST',
      `/projects/${segment('project', projectId)}/devices`,
      opts,
      input,
    );
  }

  /**
   * `findDeviceById`: `GET /devices/{id}`. A device whose provisioning failed answers 403
   * (`forbidden`); a deleted one 404 (`gone`).
   */
  async getDevice(id: string, opts: IncludeOptions = {}): Promise<Device> {
    return this.resource<Device>('findDeviceById', 'GET', `/devices/${segment('device', id)}`, opts);
  }

  /** `updateDevice`: `PUT /devices/{id}` (hostname, description, tags, userdata, locked…). */
  async updateDevice(id: string, input: DeviceUpdateInput, opts: IncludeOptions = {}): Promise<Device> {
    return this.resource<Device>('updateDevice', 'PUT', `/devices/${segment('device', id)}`, opts, input);
  }

  /**
   * `deleteDevice`: `DELETE /devices/{id}`, with `force_delete=true` to detach storage still
   * attached. 204; a device already gone throws `gone`, which a caller deleting may take as done.
   */
  async deleteDevice(id: string, opts: { force_delete?: boolean } = {}): Promise<void> {
    await this.t.request({
      operation: 'deleteDevice',
      method: 'DELETE',
      path: `/devices/${segment('device', id)}`,
      query: toQuery(opts),
    });
  }

  /**
   * `findProjectDevices`: `GET /projects/{id}/devices` with the server-side filters (`tag`,
   * `hostname`, `metro`, `search`…), every page (`per_page` sets the page size).
   */
  async listProjectDevices(projectId: string, query: ProjectDevicesQuery = {}): Promise<Device[]> {
    return listAllPages<Device>(this.t, {
      operation: 'findProjectDevices',
      path: `/projects/${segment('project', projectId)}/devices`,
      query: toQuery(query),
      property: 'devices',
    });
  }

  /**
   * The project's devices carrying every one of `tags`: the API filters by the first (its `tag`
   * takes one), every page, and the others are checked here. Put the most selective tag first.
   */
  async findDevicesByTags(
    projectId: string,
    tags: readonly string[],
    query: Omit<ProjectDevicesQuery, 'tag'> = {},
  ): Promise<Device[]> {
    const [first] = tags;
    if (first === undefined || tags.some((t) => t === '')) {
      throw new Error('Metal API findDevicesByTags: give at least one tag, none of them empty');
    }
    const devices = await this.listProjectDevices(projectId, { ...query, tag: first });
    return devices.filter((d) => tags.every((t) => d.tags?.includes(t)));
  }

  /**
   * `requestIPReservation`: `POST /projects/{id}/ips` (type, quantity, metro or facility, tags…).
   * Over the quota the API answers 422 when `fail_on_approval_required`, else a `pending`
   * reservation awaiting review. Not retried after a failure without an answer.
   */
  async requestIpReservation(
    projectId: string,
    input: IPReservationRequestInput,
    opts: IncludeOptions = {},
  ): Promise<IPReservation> {
    return this.resource<IPReservation>(
      'requestIPReservation',
      'POST',
      `/projects/${segment('project', projectId)}/ips`,
      opts,
      input,
    );
  }

  /** `findIPReservations`: `GET /projects/{id}/ips`, filtered by `types`, every page. */
  async listIpReservations(projectId: string, query: IPReservationsQuery = {}): Promise<IPReservation[]> {
    return listAllPages<IPReservation>(this.t, {
      operation: 'findIPReservations',
      path: `/projects/${segment('project', projectId)}/ips`,
      query: toQuery(query),
      property: 'ip_addresses',
    });
  }

  /** `findIPAddressById`: `GET /ips/{id}`, a reservation or an assignment (tell them by `assignments`/`assigned_to`). */
  async getIpAddress(id: string, opts: IncludeOptions = {}): Promise<IPReservation | IPAssignment> {
    return this.resource<IPReservation | IPAssignment>(
      'findIPAddressById',
      'GET',
      `/ips/${segment('IP address', id)}`,
      opts,
    );
  }

  /** `deleteIPAddress` on a reservation: `DELETE /ips/{id}` gives its addresses back. */
  async deleteIpReservation(reservationId: string): Promise<void> {
    await this.deleteIpAddress(reservationId);
  }

  /** `deleteIPAddress` on an assignment: `DELETE /ips/{id}` takes the address off its device. */
  async unassignIpAddress(assignmentId: string): Promise<void> {
    await this.deleteIpAddress(assignmentId);
  }

  /** `createIPAssignment`: `POST /devices/{id}/ips {address}`, 201 with the assignment. */
  async assignIpAddress(
    deviceId: string,
    input: IPAssignmentInput,
    opts: IncludeOptions = {},
  ): Promise<IPAssignment> {
    return this.resource<IPAssignment>(
      'createIPAssignment',
      'POST',
      `/devices/${segment('device', deviceId)}/ips`,
      opts,
      input,
    );
  }

  /** `findIPAssignments`: `GET /devices/{id}/ips`, the device's addresses and assigned reservations. */
  async listIpAssignments(deviceId: string, opts: IncludeOptions = {}): Promise<IPAssignment[]> {
    return listAllPages<IPAssignment>(this.t, {
      operation: 'findIPAssignments',
      path: `/devices/${segment('device', deviceId)}/ips`,
      query: toQuery(opts),
      property: 'ip_addresses',
    });
  }

  private async deleteIpAddress(id: string): Promise<void> {
    await this.t.request({
      operation: 'deleteIPAddress',
      method: 'DELETE',
      path: `/ips/${segment('IP address', id)}`,
    });
  }

  /** One call whose answer is a resource: a JSON object with a string `id` (else `terminal`). */
  private async resource<T>(
    operation: string,
    method: HttpMethod,
    path: string,
    opts: IncludeOptions,
    body?: unknown,
  ): Promise<T> {
    const { status, json } = await this.t.request({
      operation,
      method,
      path,
      query: toQuery(opts),
      ...(body !== undefined ? { body } : {}),
    });
    const id = typeof json === 'object' && json !== null ? (json as { id?: unknown }).id : undefined;
    if (typeof id !== 'string' || id === '') {
      throw this.t.error({
        kind: 'terminal',
        status,
        method,
        path,
        detail: `${status} answer is not a resource with an id: is ${this.t.apiUrl} the Metal API?`,
      });
    }
    return json as T;
  }
}

/** An id as one path segment; empty is a caller's bug. */
function segment(what: string, id: string): string {
  if (typeof id !== 'string' || id.trim() === '') throw new Error(`Metal API: the ${what} id is empty`);
  return encodeURIComponent(id);
}

/**
 * The query string of an options object with the spec's parameter names: undefined values left
 * out, booleans and numbers as text, `types`/`categories` once per value, other arrays (`include`,
 * `exclude`) comma-separated; `per_page` must be 1..1000.
 */
function toQuery(params: object): URLSearchParams {
  const q = new URLSearchParams();
  for (const [key, value] of Object.entries(params) as [string, unknown][]) {
    if (value === undefined || value === null) continue;
    if (
      key === 'per_page' &&
      (!Number.isInteger(value) || (value as number) < 1 || (value as number) > 1000)
    ) {
      throw new Error(`Metal API: per_page must be an integer from 1 to 1000, got ${String(value)}`);
    }
    if (Array.isArray(value)) {
      if (value.length === 0) continue;
      if (MULTI_VALUED.has(key)) for (const v of value) q.append(key, String(v));
      else q.set(key, value.map(String).join(','));
    } else {
      q.set(key, String(value));
    }
  }
  return q;
}
