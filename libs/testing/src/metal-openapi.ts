/**
 * The Equinix Metal API's published contract — the metal/v1 OpenAPI 3.0 spec that ships in the Go
 * module github.com/equinix/equinix-sdk-go (pinned by tools/metal-sdk/go.mod) — loaded from the Go
 * module cache, bundled into one document, and a small validator for the subset of JSON Schema the
 * spec uses. Tests use it to check that FakeMetalApi answers what the vendor's spec declares: the
 * status codes of each operation and the shape of each body.
 *
 * Bundling: the spec is ~380 YAML files joined by relative `$ref`s. Path files are inlined; a file
 * under `components/<kind>/` becomes `#/components/<kind>/<file name>`, so recursive schemas
 * (Device → Project → Organization → …) stay finite.
 *
 * The validator covers what the spec uses for response and request bodies: `type`, `properties`,
 * `required`, `items`, `enum`, `format` (uuid, date-time, date, ipv4, int32), `nullable`,
 * `allOf`/`oneOf`/`anyOf` and `additionalProperties`. With `unknownProperties: 'reject'` an object
 * schema that lists `properties` refuses any other property even without `additionalProperties:
 * false` (properties of `allOf` siblings count as known): a fake should not send fields the spec
 * never mentions, and the Go SDK's strict models refuse some of them. Not covered: numeric and
 * length bounds, `pattern`, `discriminator`, `readOnly`/`writeOnly`, `not`.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { load as parseYaml } from 'js-yaml';
import type { GoToolRecipe } from './controlplane';
import { run } from './exec';
import { workspaceRoot } from './workspace';

/** The Go module that publishes the spec, and where in it the spec lives. */
export const METAL_SDK_MODULE = 'github.com/equinix/equinix-sdk-go';
export const METAL_SPEC_PATH = 'spec/services/metalv1/oas3.patched/openapi3.yaml';
/** The Go module that pins the SDK's version (and builds the SDK check program). */
export const METAL_SDK_TOOL_DIR = 'tools/metal-sdk';

/**
 * tools/metal-sdk as `ensureGoTool` builds it: `metal-sdk -url <base> -project <uuid>` with
 * `METAL_AUTH_TOKEN` drives an endpoint with equinix-sdk-go's own client and prints a JSON summary.
 */
export const METAL_SDK_CHECK: GoToolRecipe<'metal-sdk'> = {
  name: 'metal-sdk',
  moduleDir: METAL_SDK_TOOL_DIR,
  binaries: { 'metal-sdk': '.' },
  firstBuild: '~30–40 s on 2 cores with an empty Go build cache',
};

/** An OpenAPI 3.0 schema object, as far as the validator reads it. */
export interface SchemaObject {
  $ref?: string;
  type?: 'string' | 'number' | 'integer' | 'boolean' | 'array' | 'object';
  properties?: Record<string, SchemaObject>;
  required?: string[];
  items?: SchemaObject;
  enum?: unknown[];
  format?: string;
  nullable?: boolean;
  allOf?: SchemaObject[];
  oneOf?: SchemaObject[];
  anyOf?: SchemaObject[];
  additionalProperties?: boolean | SchemaObject;
}

interface MediaType {
  schema?: SchemaObject;
}

interface ResponseObject {
  description?: string;
  content?: Record<string, MediaType>;
}

export interface OperationObject {
  operationId?: string;
  parameters?: unknown[];
  requestBody?: { required?: boolean; content?: Record<string, MediaType> };
  responses?: Record<string, ResponseObject | null>;
}

type PathItem = Partial<Record<HttpMethod, OperationObject>>;
type HttpMethod = 'get' | 'put' | 'post' | 'delete' | 'patch' | 'head' | 'options';
const METHODS: readonly HttpMethod[] = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options'];

/** The spec as one document: paths inlined, components keyed `<kind>/<file name>`. */
export interface BundledSpec {
  openapi: string;
  servers?: { url: string }[];
  paths: Record<string, PathItem>;
  components: Record<string, Record<string, unknown>>;
}

/** An operation found for a concrete request path. */
export interface MatchedOperation {
  /** The spec's path template (`/devices/{id}`). */
  template: string;
  method: HttpMethod;
  operation: OperationObject;
}

export interface ValidateOptions {
  /** `reject`: properties an object schema does not list are errors (see the file comment). */
  unknownProperties?: 'allow' | 'reject';
}

/** One thing a body gets wrong: where (a JSON pointer, `/` for the root) and what. */
export interface SchemaProblem {
  at: string;
  message: string;
}

/**
 * The directory of the SDK module in the Go module cache, as `go mod download -json` reports it
 * when run in tools/metal-sdk (downloading it when the cache lacks it; the version is go.mod's).
 */
export async function metalSdkModuleDir(): Promise<string> {
  const cwd = join(workspaceRoot(), METAL_SDK_TOOL_DIR);
  const r = await run('go', ['mod', 'download', '-json', METAL_SDK_MODULE], {
    cwd,
    env: { ...process.env, GOTOOLCHAIN: 'local', GOFLAGS: '-mod=mod' },
    timeoutMs: 300_000,
  });
  let info: { Dir?: string; Error?: string } = {};
  try {
    info = JSON.parse(r.stdout) as { Dir?: string; Error?: string };
  } catch {
    /* reported below */
  }
  if (r.exitCode !== 0 || !info.Dir) {
    const why = info.Error ?? (r.stderr.trim() || `exit ${r.exitCode}`);
    throw new Error(
      `go mod download ${METAL_SDK_MODULE} in ${cwd} failed (${why}); check that go is on PATH and the module proxy is reachable`,
    );
  }
  return info.Dir;
}

/** Loads and bundles the spec from the SDK module at `moduleDir` (see {@link metalSdkModuleDir}). */
export function loadMetalSpec(moduleDir: string): MetalSpec {
  const rootFile = join(moduleDir, METAL_SPEC_PATH);
  if (!existsSync(rootFile)) {
    throw new Error(`no Metal OpenAPI spec at ${rootFile}: is ${moduleDir} the ${METAL_SDK_MODULE} module?`);
  }
  return new MetalSpec(bundle(rootFile));
}

/** Reads the multi-file spec at `rootFile` into one document (see the file comment). */
function bundle(rootFile: string): BundledSpec {
  const specDir = dirname(rootFile);
  const files = new Map<string, unknown>();
  const components: Record<string, Record<string, unknown>> = {};
  const read = (file: string): unknown => {
    if (!files.has(file)) files.set(file, parseYaml(readFileSync(file, 'utf8')));
    return files.get(file);
  };
  /** The component a file is (kind and name) when it lies under components/<kind>/. */
  const componentOf = (file: string): [string, string] | undefined => {
    const parts = relative(specDir, file).split(sep);
    if (parts.length !== 3 || parts[0] !== 'components' || !parts[2]?.endsWith('.yaml')) return undefined;
    return [parts[1] as string, parts[2].slice(0, -'.yaml'.length)];
  };
  const addComponent = (file: string, kind: string, name: string): void => {
    const table = (components[kind] ??= {});
    if (name in table) return;
    table[name] = {}; // placeholder first: a schema may reach itself
    table[name] = walk(read(file), file);
  };
  const walk = (node: unknown, file: string): unknown => {
    if (Array.isArray(node)) return node.map((n) => walk(n, file));
    if (node === null || typeof node !== 'object') return node;
    const obj = node as Record<string, unknown>;
    const ref = obj['$ref'];
    if (typeof ref === 'string') {
      if (ref.includes('#'))
        throw new Error(`${file}: $ref '${ref}' has a fragment; the bundler reads whole files only`);
      const target = resolve(dirname(file), ref);
      const component = componentOf(target);
      if (!component) return walk(read(target), target); // a path item or other piece: inline it
      addComponent(target, ...component);
      return { $ref: `#/components/${component[0]}/${component[1]}` };
    }
    return Object.fromEntries(Object.entries(obj).map(([k, v]) => [k, walk(v, file)]));
  };
  const root = read(rootFile) as {
    openapi: string;
    servers?: { url: string }[];
    paths: Record<string, unknown>;
    components?: Record<string, Record<string, { $ref?: string }>>;
  };
  for (const entries of Object.values(root.components ?? {})) {
    for (const entry of Object.values(entries)) {
      const target = typeof entry.$ref === 'string' ? resolve(specDir, entry.$ref) : undefined;
      const component = target && componentOf(target);
      if (target && component) addComponent(target, ...component);
    }
  }
  const paths = walk(root.paths, rootFile) as Record<string, PathItem>;
  return { openapi: root.openapi, ...(root.servers ? { servers: root.servers } : {}), paths, components };
}

/** The bundled spec: operations by method and path, and response/request validation. */
export class MetalSpec {
  constructor(readonly document: BundledSpec) {}

  /** The server path prefix (`/metal/v1` from `https://api.equinix.com/metal/v1`). */
  get basePath(): string {
    const url = this.document.servers?.[0]?.url;
    return url ? new URL(url).pathname.replace(/\/$/, '') : '';
  }

  /**
   * The operation for `method` on a concrete `path` (below the server base, query ignored); a
   * template with more literal segments wins (`/devices/{id}/ips` over `/devices/{id}/{x}`).
   */
  operation(method: string, path: string): MatchedOperation | undefined {
    const m = method.toLowerCase() as HttpMethod;
    const segments = path.split('?')[0]?.split('/') ?? [];
    let best: (MatchedOperation & { literals: number }) | undefined;
    for (const [template, item] of Object.entries(this.document.paths)) {
      const op = item[m];
      if (!op) continue;
      const parts = template.split('/');
      if (parts.length !== segments.length) continue;
      let literals = 0;
      const fits = parts.every((p, i) => {
        const s = segments[i] ?? '';
        if (/^\{[^}]+\}$/.test(p)) return s !== '';
        literals++;
        return p === s;
      });
      if (fits && (!best || literals > best.literals))
        best = { template, method: m, operation: op, literals };
    }
    if (!best) return undefined;
    const { literals: _, ...found } = best;
    return found;
  }

  /** The methods the spec declares for a path template, upper-case (`['GET', 'PUT', 'DELETE']`). */
  methodsOf(template: string): string[] {
    const item = this.document.paths[template] ?? {};
    return METHODS.filter((m) => item[m]).map((m) => m.toUpperCase());
  }

  /** The statuses the spec declares for an operation, as numbers (`default` left out). */
  declaredStatuses(method: string, path: string): number[] {
    const op = this.operation(method, path);
    return Object.keys(op?.operation.responses ?? {})
      .filter((s) => /^\d{3}$/.test(s))
      .map(Number);
  }

  /**
   * What is wrong with a response: the status is not one the operation declares, or the JSON body
   * does not fit the declared schema (a declared response without content must have no body).
   * An empty list means the response is what the spec says.
   */
  checkResponse(
    method: string,
    path: string,
    status: number,
    body: unknown,
    opts: ValidateOptions = {},
  ): SchemaProblem[] {
    const found = this.operation(method, path);
    if (!found) return [{ at: '/', message: `the spec has no operation ${method.toUpperCase()} ${path}` }];
    const name = `${found.operation.operationId ?? found.template} (${found.method.toUpperCase()} ${found.template})`;
    const responses = found.operation.responses ?? {};
    const response = String(status) in responses ? responses[String(status)] : responses['default'];
    if (response === undefined) {
      const declared = Object.keys(responses).join(', ');
      return [{ at: '/', message: `status ${status} is not declared for ${name} (declared: ${declared})` }];
    }
    const schema = response?.content?.['application/json']?.schema;
    if (!schema) {
      return body === undefined || body === ''
        ? []
        : [{ at: '/', message: `${name} declares no body for ${status}, got one` }];
    }
    if (body === undefined)
      return [{ at: '/', message: `${name} declares a JSON body for ${status}, got none` }];
    return this.validate(schema, body, opts);
  }

  /** What is wrong with a JSON request body for the operation (its `requestBody` schema). */
  checkRequest(method: string, path: string, body: unknown, opts: ValidateOptions = {}): SchemaProblem[] {
    const found = this.operation(method, path);
    if (!found) return [{ at: '/', message: `the spec has no operation ${method.toUpperCase()} ${path}` }];
    const schema = found.operation.requestBody?.content?.['application/json']?.schema;
    if (!schema) return [{ at: '/', message: `${found.template} takes no JSON body` }];
    return this.validate(schema, body, opts);
  }

  /** A named component schema, e.g. `schema('Device')`. */
  schema(name: string): SchemaObject {
    const s = this.document.components['schemas']?.[name];
    if (!s) throw new Error(`the spec has no schema '${name}'`);
    return s as SchemaObject;
  }

  /** Validates `value` against `schema` (refs resolved in this spec); an empty list means valid. */
  validate(schema: SchemaObject, value: unknown, opts: ValidateOptions = {}): SchemaProblem[] {
    return validateSchema(schema, value, (ref) => this.resolveRef(ref), opts);
  }

  private resolveRef(ref: string): SchemaObject {
    const m = /^#\/components\/([^/]+)\/([^/]+)$/.exec(ref);
    const s = m ? this.document.components[m[1] as string]?.[m[2] as string] : undefined;
    if (!s) throw new Error(`unresolvable $ref '${ref}'`);
    return s as SchemaObject;
  }
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const DATE_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/i;
const DATE = /^\d{4}-\d{2}-\d{2}$/;
const IPV4 = /^((25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;

/** Whether a string fits a `format` the validator knows; unknown formats (float, double…) pass. */
function formatOk(format: string, s: string): boolean {
  switch (format) {
    case 'uuid':
      return UUID.test(s);
    case 'date-time':
      return DATE_TIME.test(s) && !Number.isNaN(Date.parse(s));
    case 'date':
      return DATE.test(s) && !Number.isNaN(Date.parse(`${s}T00:00:00Z`));
    case 'ipv4':
      return IPV4.test(s);
    default:
      return true;
  }
}

function typeOf(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number';
  return typeof v;
}

function typeOk(type: NonNullable<SchemaObject['type']>, v: unknown): boolean {
  const t = typeOf(v);
  return t === type || (type === 'number' && t === 'integer');
}

/**
 * Validates `value` against an OpenAPI 3.0 `schema` (the subset in the file comment); `resolve`
 * turns a `$ref` into its schema. Returns every problem found (empty: valid).
 */
export function validateSchema(
  schema: SchemaObject,
  value: unknown,
  resolveRef: (ref: string) => SchemaObject,
  opts: ValidateOptions = {},
): SchemaProblem[] {
  const strict = opts.unknownProperties === 'reject';
  const deref = (s: SchemaObject): SchemaObject => {
    const seen = new Set<string>();
    while (s.$ref !== undefined) {
      if (seen.has(s.$ref)) throw new Error(`$ref cycle at '${s.$ref}'`);
      seen.add(s.$ref);
      s = resolveRef(s.$ref);
    }
    return s;
  };
  /** The property names a schema declares, through `$ref` and `allOf`. */
  const declared = (s: SchemaObject, into = new Set<string>()): Set<string> => {
    const d = deref(s);
    for (const k of Object.keys(d.properties ?? {})) into.add(k);
    for (const part of d.allOf ?? []) declared(part, into);
    return into;
  };
  const check = (s0: SchemaObject, v: unknown, at: string, known: ReadonlySet<string>): SchemaProblem[] => {
    const s = deref(s0);
    const where = at || '/';
    if (v === null) {
      const constrained = s.type || s.properties || s.items || s.enum || s.allOf || s.oneOf || s.anyOf;
      return s.nullable || !constrained
        ? []
        : [{ at: where, message: 'null where the schema is not nullable' }];
    }
    const problems: SchemaProblem[] = [];
    if (s.type && !typeOk(s.type, v)) {
      return [{ at: where, message: `expected ${s.type}, got ${typeOf(v)}` }];
    }
    if (s.enum && !s.enum.some((e) => e === v)) {
      problems.push({
        at: where,
        message: `${JSON.stringify(v)} is not one of ${s.enum.map((e) => JSON.stringify(e)).join(', ')}`,
      });
    }
    if (s.format && typeof v === 'string' && !formatOk(s.format, v)) {
      problems.push({ at: where, message: `${JSON.stringify(v)} is not a valid ${s.format}` });
    }
    if (s.format === 'int32' && typeof v === 'number' && (v < -(2 ** 31) || v >= 2 ** 31)) {
      problems.push({ at: where, message: `${v} is out of the int32 range` });
    }
    if (Array.isArray(v) && s.items) {
      const items = s.items;
      v.forEach((item, i) => problems.push(...check(items, item, `${at}/${i}`, new Set())));
    }
    const isObject = typeOf(v) === 'object';
    // Names this level knows: its own properties, its allOf parts', and those of the level above.
    const here = new Set([...known, ...declared(s)]);
    if (isObject) {
      const obj = v as Record<string, unknown>;
      for (const r of s.required ?? []) {
        if (!(r in obj)) problems.push({ at: where, message: `missing required property '${r}'` });
      }
      for (const [k, item] of Object.entries(obj)) {
        const prop = s.properties?.[k];
        const path = `${at}/${k}`;
        if (prop) problems.push(...check(prop, item, path, new Set()));
        else if (typeof s.additionalProperties === 'object') {
          problems.push(...check(s.additionalProperties, item, path, new Set()));
        } else if (here.has(k)) continue;
        else if (
          s.additionalProperties === false ||
          (strict && s.properties && s.additionalProperties !== true)
        ) {
          problems.push({ at: path, message: `property '${k}' is not in the schema` });
        }
      }
    }
    for (const part of s.allOf ?? []) problems.push(...check(part, v, at, here));
    const alternatives = (parts: SchemaObject[]) =>
      parts.map((p) => check(p, v, at, new Set([...known, ...Object.keys(s.properties ?? {})])));
    if (s.oneOf) {
      const results = alternatives(s.oneOf);
      const fits = results.filter((r) => r.length === 0).length;
      if (fits === 0) problems.push(...closest(results, where, 'oneOf'));
      else if (fits > 1)
        problems.push({ at: where, message: `matches ${fits} of the oneOf schemas, must match exactly one` });
    }
    if (s.anyOf) {
      const results = alternatives(s.anyOf);
      if (!results.some((r) => r.length === 0)) problems.push(...closest(results, where, 'anyOf'));
    }
    return problems;
  };
  return check(schema, value, '', new Set());
}

/** For a value no alternative accepts: the problems of the alternative that came closest. */
function closest(results: SchemaProblem[][], at: string, kind: string): SchemaProblem[] {
  const best = results.reduce((a, b) => (b.length < a.length ? b : a));
  return [
    { at, message: `matches none of the ${kind} schemas; the closest (${best.length} problems) says:` },
    ...best,
  ];
}
