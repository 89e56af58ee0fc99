/**
 * The wire types of the Metal API (metal/v1), named after the schemas of the OpenAPI spec in
 * github.com/equinix/equinix-sdk-go v0.50.0 (`spec/services/metalv1/oas3.patched/components/schemas`)
 * and keeping its snake_case field names, so a value is exactly what goes over the wire: there is
 * no second model. Only the fields a Cluster API provider reads or sends are spelled out; every
 * object type keeps the others through its index signature, and the spec marks almost no field as
 * required, so nearly all are optional. The `id` of a returned resource is typed as present
 * because the client refuses an answer without one.
 */

/** `Href`: a link to another resource, e.g. `{"href": "/metal/v1/projects/…"}`. */
export interface Href {
  href: string;
}

/** `Meta`: the paging block of a list answer. `next` is absent on the last page. */
export interface Meta {
  first?: Href;
  last?: Href;
  next?: Href;
  previous?: Href;
  self?: Href;
  total?: number;
  current_page?: number;
  last_page?: number;
}

/** `Error`: the body of a 4xx/5xx answer; either `error` or `errors` is set. */
export interface ErrorBody {
  error?: string;
  errors?: string[];
}

/** `Metro`. */
export interface Metro {
  id?: string;
  code?: string;
  name?: string;
  country?: string;
  [field: string]: unknown;
}

/** `Facility` (deprecated by the API in favour of metros, still returned on devices). */
export interface Facility {
  id?: string;
  code?: string;
  name?: string;
  metro?: Metro;
  [field: string]: unknown;
}

/** `Plan`. */
export interface Plan {
  id?: string;
  slug?: string;
  name?: string;
  class?: string;
  [field: string]: unknown;
}

/** `OperatingSystem`. */
export interface OperatingSystem {
  id?: string;
  slug?: string;
  name?: string;
  distro?: string;
  version?: string;
  [field: string]: unknown;
}

/** `Device.state`: the spec's enum (CAPEM also sees `new`, `errored` and `off`, hence `string`). */
export type DeviceState =
  | 'queued'
  | 'provisioning'
  | 'deprovisioning'
  | 'reinstalling'
  | 'active'
  | 'inactive'
  | 'failed'
  | 'powering_on'
  | 'powering_off'
  | 'deleted';

/** `IPAssignment`: an address assigned to a device (its own addresses and assigned reservations). */
export interface IPAssignment {
  id: string;
  address?: string;
  address_family?: number;
  assigned_to?: Href;
  cidr?: number;
  created_at?: string;
  enabled?: boolean;
  gateway?: string;
  global_ip?: boolean;
  href?: string;
  manageable?: boolean;
  /** True for the addresses a device got at provisioning time. */
  management?: boolean;
  metro?: Metro;
  netmask?: string;
  network?: string;
  parent_block?: { network?: string; netmask?: string; cidr?: number; href?: string };
  public?: boolean;
  state?: 'pending' | 'active' | 'deleting';
  next_hop?: string;
  type?: 'IPAssignment';
  [field: string]: unknown;
}

/** `IPAddress`: one entry of `ip_addresses` when creating a device. */
export interface IPAddress {
  address_family?: 4 | 6;
  /** 28..32 for IPv4, 124..127 for IPv6. */
  cidr?: number;
  /** UUIDs of the project's IP reservations to take the addresses from. */
  ip_reservations?: string[];
  public?: boolean;
}

/** `SSHKeyInput`: a new or existing key given inline when creating a device. */
export interface SSHKeyInput {
  key?: string;
  label?: string;
  tags?: string[];
}

/** `Device`. */
export interface Device {
  id: string;
  always_pxe?: boolean;
  billing_cycle?: string;
  created_at?: string;
  customdata?: Record<string, unknown>;
  description?: string;
  facility?: Facility;
  hardware_reservation?: { id?: string; href?: string; [field: string]: unknown };
  hostname?: string;
  href?: string;
  ip_addresses?: IPAssignment[];
  ipxe_script_url?: string;
  locked?: boolean;
  metro?: Metro;
  operating_system?: OperatingSystem;
  plan?: Plan;
  project?: { id?: string; href?: string; [field: string]: unknown };
  provisioning_percentage?: number;
  short_id?: string;
  spot_instance?: boolean;
  ssh_keys?: Href[];
  state?: DeviceState | (string & NonNullable<unknown>);
  tags?: string[];
  termination_time?: string;
  updated_at?: string;
  userdata?: string;
  [field: string]: unknown;
}

/** `DeviceCreateInput`: what both location variants share. */
export interface DeviceCreateInput {
  /** The plan slug, e.g. `c3.small.x86`. */
  plan: string;
  /** The operating system slug, e.g. `ubuntu_22_04`. */
  operating_system: string;
  always_pxe?: boolean;
  billing_cycle?: 'hourly' | 'daily' | 'monthly' | 'yearly';
  customdata?: Record<string, unknown>;
  description?: string;
  features?: string[];
  /** A reservation UUID, or `next-available`. */
  hardware_reservation_id?: string;
  hostname?: string;
  /** Default: public IPv4, private IPv4 and public IPv6. One entry must be private IPv4. */
  ip_addresses?: IPAddress[];
  ipxe_script_url?: string;
  locked?: boolean;
  network_frozen?: boolean;
  /** With no keys given, every project and member key is added; true adds none. */
  no_ssh_keys?: boolean;
  /** UUIDs of project SSH keys. */
  project_ssh_keys?: string[];
  spot_instance?: boolean;
  spot_price_max?: number;
  ssh_keys?: SSHKeyInput[];
  storage?: Record<string, unknown>;
  tags?: string[];
  termination_time?: string;
  /** UUIDs of users whose keys go on the device. */
  user_ssh_keys?: string[];
  userdata?: string;
}

/** `DeviceCreateInMetroInput`: a metro code (`sv`, `da`…) or `any`. */
export interface DeviceCreateInMetroInput extends DeviceCreateInput {
  metro: string;
  facility?: never;
}

/** `DeviceCreateInFacilityInput`: facility codes in order of preference; `any` allowed. */
export interface DeviceCreateInFacilityInput extends DeviceCreateInput {
  facility: string[];
  metro?: never;
}

/** The body of `POST /projects/{id}/devices` (the spec's `oneOf`). */
export type DeviceCreateRequest = DeviceCreateInMetroInput | DeviceCreateInFacilityInput;

/** `DeviceUpdateInput`: the body of `PUT /devices/{id}`. */
export interface DeviceUpdateInput {
  always_pxe?: boolean;
  billing_cycle?: string;
  customdata?: Record<string, unknown>;
  description?: string;
  hostname?: string;
  firmware_set_id?: string;
  ipxe_script_url?: string;
  locked?: boolean;
  network_frozen?: boolean;
  spot_instance?: boolean;
  tags?: string[];
  userdata?: string;
}

/** `IPReservation`: a block of addresses held by a project (an elastic IP is a /32 of one). */
export interface IPReservation {
  id: string;
  address?: string;
  address_family?: number;
  assignments?: IPAssignment[];
  cidr?: number;
  created_at?: string;
  customdata?: Record<string, unknown>;
  details?: string;
  enabled?: boolean;
  facility?: Facility;
  gateway?: string;
  global_ip?: boolean;
  href?: string;
  management?: boolean;
  metro?: Metro;
  netmask?: string;
  network?: string;
  public?: boolean;
  /** `pending` while a request over the quota waits for review. */
  state?: string;
  tags?: string[];
  type?: IPReservationType | 'vrf';
  [field: string]: unknown;
}

/** The `type` of an IP reservation request, and the values of the list's `types` filter. */
export type IPReservationType = 'global_ipv4' | 'public_ipv4' | 'private_ipv4' | 'public_ipv6';

/** `IPReservationRequestInput`: the body of `POST /projects/{id}/ips`. */
export interface IPReservationRequestInput {
  type: IPReservationType;
  quantity: number;
  comments?: string;
  customdata?: Record<string, unknown>;
  details?: string;
  facility?: string;
  /** True: over the quota, answer 422 instead of a `pending` reservation awaiting review. */
  fail_on_approval_required?: boolean;
  metro?: string;
  tags?: string[];
}

/** `IPAssignmentInput`: the body of `POST /devices/{id}/ips`. */
export interface IPAssignmentInput {
  address: string;
  customdata?: Record<string, unknown>;
}

/** `Project`. */
export interface Project {
  id: string;
  name?: string;
  href?: string;
  created_at?: string;
  updated_at?: string;
  customdata?: Record<string, unknown>;
  organization?: { id?: string; href?: string; [field: string]: unknown };
  tags?: string[];
  type?: string;
  [field: string]: unknown;
}

/** `include`/`exclude`: nested resources to expand or to reduce to their href (sent comma-separated). */
export interface IncludeOptions {
  include?: string[];
  exclude?: string[];
}

/** The query of `findProjectDevices` (`GET /projects/{id}/devices`), every page followed. */
export interface ProjectDevicesQuery extends IncludeOptions {
  /** Search by hostname, description, short_id, tags, plan, facility, OS, IP addresses. */
  search?: string;
  categories?: ('compute' | 'storage' | 'vmce' | 'legacy_gen' | 'current_gen')[];
  facility?: string;
  metro?: string;
  /** Partial hostname. */
  hostname?: string;
  reserved?: boolean;
  /** One tag: only devices carrying it. */
  tag?: string;
  /** `ondemand`, `spot` or `reserved`. */
  type?: string;
  has_termination_time?: boolean;
  mac_address?: string;
  /** Devices per page: 1..1000, the API's default is 10. */
  per_page?: number;
}

/** The query of `findIPReservations` (`GET /projects/{id}/ips`), every page followed. */
export interface IPReservationsQuery extends IncludeOptions {
  types?: (IPReservationType | 'vrf')[];
  /** Reservations per page: 1..1000, the API's default is 250. */
  per_page?: number;
}
