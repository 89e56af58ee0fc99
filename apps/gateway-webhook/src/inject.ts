import type { V1Container, V1EnvVar, V1Pod, V1PodDNSConfig, V1Volume } from '@kubernetes/client-node';

/**
 * The pure core of gateway-webhook: from an admission request and the configuration, whether to
 * route the pod through the gateway and the JSON patch that does it. No I/O.
 */

/** Names pod-gateway's clients and gateway-admision-controller agree on (kept for compatibility). */
export const INIT_CONTAINER = 'gateway-init';
export const SIDECAR_CONTAINER = 'gateway-sidecar';
export const CONFIG_VOLUME = 'gateway-configmap';
/**
 * An empty volume mounted over the ServiceAccount token path of the injected containers that need
 * no API access: the API server's ServiceAccount admission plugin mounts the token into every
 * container that has nothing at that path, injected ones included.
 */
export const NO_TOKEN_VOLUME = 'gateway-no-token';
/** Left on every routed pod: which gateway routes it (and the sign that it is already injected). */
export const GATEWAY_ANNOTATION = 'pod-gateway.knet.dev/gateway';
/** The chart labels the gateway's and the webhook's own pods with it; such pods are never routed. */
export const ROLE_LABEL = 'pod-gateway.knet.dev/role';
const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

/** A label or annotation that decides, with the value that selects (undefined: a Go boolean). */
export interface Selector {
  key: string;
  value?: string | undefined;
}

export interface ContainerTemplate {
  image: string;
  pullPolicy: string;
  command?: string | undefined;
  mountPoint: string;
}

export interface InjectConfig {
  setGatewayDefault: boolean;
  label?: Selector | undefined;
  annotation?: Selector | undefined;
  /** `gateway` env of the clients (settings.sh's GATEWAY_NAME when unset). */
  gateway?: string | undefined;
  /** The routed pods' nameservers (IPs); empty: DNS left alone. */
  dns: string[];
  dnsPolicy?: string | undefined;
  /** The webhook's own resolv.conf: K8S_DNS_ips, and searches/options with dnsPolicy None. */
  resolv: { nameservers: string[]; search: string[]; options: { name: string; value?: string }[] };
  init: ContainerTemplate;
  sidecar: ContainerTemplate & { asInit: boolean };
  configmapName: string;
  gatewayId: string;
  /** The gateway's (and webhook's) namespace: never routed. */
  ownNamespace?: string | undefined;
}

/** The part of an admission.k8s.io/v1 AdmissionRequest the core reads. */
export interface AdmissionRequest {
  uid: string;
  kind?: { group?: string; version?: string; kind?: string };
  operation?: string;
  namespace?: string;
  object?: unknown;
}

export type JsonPatchOp = { op: 'add'; path: string; value: unknown };

export const SKIP_REASONS = [
  'not-a-pod-create',
  'gateway-namespace',
  'gateway-pod',
  'host-network',
  'not-selected',
  'opted-out',
  'already-injected',
] as const;
export const REJECT_REASONS = ['invalid-label', 'invalid-annotation', 'other-gateway'] as const;
export const MUTATE_REASONS = ['default', 'label', 'annotation'] as const;

export type Review =
  | { result: 'mutated'; reason: (typeof MUTATE_REASONS)[number]; patch: JsonPatchOp[] }
  | { result: 'skipped'; reason: (typeof SKIP_REASONS)[number] }
  | { result: 'rejected'; reason: (typeof REJECT_REASONS)[number]; message: string };

/**
 * How loudly a review is logged: a refused pod, and a selected pod left un-routed because it is on
 * the node's network, are warnings; a routed pod is info; the rest (most pods) debug.
 */
export function reviewLogLevel(r: Review): 'warn' | 'info' | 'debug' {
  if (r.result === 'rejected' || r.reason === 'host-network') return 'warn';
  return r.result === 'mutated' ? 'info' : 'debug';
}

/** Go's strconv.ParseBool, which gateway-admision-controller uses for the label and annotation. */
export function parseGoBool(value: string): boolean | undefined {
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(value)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(value)) return false;
  return undefined;
}

/** Reviews one admission request: route the pod (with the patch), leave it, or refuse it. */
export function review(req: AdmissionRequest, cfg: InjectConfig): Review {
  const isPod = req.kind?.group === '' && req.kind.kind === 'Pod';
  if (!isPod || req.operation !== 'CREATE' || !isObject(req.object)) {
    return { result: 'skipped', reason: 'not-a-pod-create' };
  }
  const pod = req.object as V1Pod;
  const namespace = req.namespace || pod.metadata?.namespace || '';
  if (cfg.ownNamespace && namespace === cfg.ownNamespace)
    return { result: 'skipped', reason: 'gateway-namespace' };
  const role = pod.metadata?.labels?.[ROLE_LABEL];
  if (role === 'gateway' || role === 'webhook') return { result: 'skipped', reason: 'gateway-pod' };

  const selection = select(pod, cfg);
  if ('rejected' in selection) return selection.rejected;
  if (!selection.route)
    return { result: 'skipped', reason: selection.by === 'default' ? 'not-selected' : 'opted-out' };

  // A pod on the node's network would have the node's default route replaced.
  if (pod.spec?.hostNetwork) return { result: 'skipped', reason: 'host-network' };
  const mark = pod.metadata?.annotations?.[GATEWAY_ANNOTATION];
  if (mark !== undefined && mark !== cfg.gatewayId) {
    return {
      result: 'rejected',
      reason: 'other-gateway',
      message: `pod is already routed through gateway "${mark}" (annotation ${GATEWAY_ANNOTATION}) and gateway "${cfg.gatewayId}" selects it too: give each gateway its own label value (--setGatewayLabelValue) or namespace label`,
    };
  }
  // The containers (or the volume), not the annotation alone: a pod that only carries the
  // annotation (copied from a routed pod's manifest) would otherwise be left un-routed.
  if (alreadyInjected(pod)) return { result: 'skipped', reason: 'already-injected' };
  return { result: 'mutated', reason: selection.by, patch: injectionPatch(pod, namespace, cfg) };
}

type Selection =
  | { route: boolean; by: 'default' | 'label' | 'annotation' }
  | { rejected: Extract<Review, { result: 'rejected' }> };

/**
 * gateway-admision-controller's decision: the default, then the label, then the annotation, each
 * overriding the one before. With a configured value, a present key selects on an exact match
 * (anything else does not route); without one, the value must be a Go boolean or the pod is
 * refused.
 */
function select(pod: V1Pod, cfg: InjectConfig): Selection {
  let decision: { route: boolean; by: 'default' | 'label' | 'annotation' } = {
    route: cfg.setGatewayDefault,
    by: 'default',
  };
  const sources = [
    { by: 'label' as const, selector: cfg.label, values: pod.metadata?.labels },
    { by: 'annotation' as const, selector: cfg.annotation, values: pod.metadata?.annotations },
  ];
  for (const { by, selector, values } of sources) {
    const value = selector ? values?.[selector.key] : undefined;
    if (!selector || value === undefined) continue;
    if (selector.value) {
      decision = { route: value === selector.value, by };
      continue;
    }
    const route = parseGoBool(value);
    if (route === undefined) {
      return {
        rejected: {
          result: 'rejected',
          reason: by === 'label' ? 'invalid-label' : 'invalid-annotation',
          message: `${by} ${selector.key}=${JSON.stringify(value)} is not a boolean: set it to "true" or "false" (or remove it) to choose whether the pod is routed through the gateway`,
        },
      };
    }
    decision = { route, by };
  }
  return decision;
}

function alreadyInjected(pod: V1Pod): boolean {
  const names = [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])].map((c) => c.name);
  return (
    names.includes(INIT_CONTAINER) ||
    names.includes(SIDECAR_CONTAINER) ||
    (pod.spec?.volumes ?? []).some((v) => v.name === CONFIG_VOLUME)
  );
}

/** The JSON patch (RFC 6902) that routes `pod`; each op valid on the pod as the API server holds it. */
export function injectionPatch(pod: V1Pod, namespace: string, cfg: InjectConfig): JsonPatchOp[] {
  const ops: JsonPatchOp[] = [];
  const init = clientContainer(INIT_CONTAINER, cfg.init, cfg, false);
  const sidecar = clientContainer(SIDECAR_CONTAINER, cfg.sidecar, cfg, true);
  const token = serviceAccountTokenVolume(pod);
  const noToken = { name: NO_TOKEN_VOLUME, mountPath: SERVICE_ACCOUNT_DIR, readOnly: true };
  init.volumeMounts?.push(noToken);
  if (!cfg.sidecar.asInit) {
    // A classic sidecar ends with a Job by reading its own pod: it gets the pod's token, if any.
    if (token) sidecar.volumeMounts?.push({ name: token, mountPath: SERVICE_ACCOUNT_DIR, readOnly: true });
    sidecar.env?.push(fieldEnv('POD_NAME', 'metadata.name'));
  } else {
    sidecar.restartPolicy = 'Always';
    sidecar.volumeMounts?.push(noToken);
  }
  // client-init first: user init containers run routed too (gateway-admision-controller appends).
  const first = cfg.sidecar.asInit ? [init, sidecar] : [init];
  if (!pod.spec?.initContainers?.length) ops.push({ op: 'add', path: '/spec/initContainers', value: first });
  else first.forEach((c, i) => ops.push({ op: 'add', path: `/spec/initContainers/${i}`, value: c }));
  if (!cfg.sidecar.asInit) ops.push({ op: 'add', path: '/spec/containers/-', value: sidecar });

  const volumes: V1Volume[] = [
    { name: CONFIG_VOLUME, configMap: { name: cfg.configmapName, defaultMode: 0o444 } },
    // No sizeLimit: every mount of it is read-only, and the kubelet counts the empty directory's
    // own block (4 KiB) against a limit, so 1Ki evicted every routed pod on a real node.
    { name: NO_TOKEN_VOLUME, emptyDir: {} },
  ];
  if (!pod.spec?.volumes?.length) ops.push({ op: 'add', path: '/spec/volumes', value: volumes });
  else for (const v of volumes) ops.push({ op: 'add', path: '/spec/volumes/-', value: v });

  if (cfg.dns.length > 0)
    ops.push({ op: 'add', path: '/spec/dnsConfig', value: dnsConfig(pod, namespace, cfg) });
  if (cfg.dnsPolicy) ops.push({ op: 'add', path: '/spec/dnsPolicy', value: cfg.dnsPolicy });

  if (!pod.metadata?.annotations) {
    ops.push({ op: 'add', path: '/metadata/annotations', value: { [GATEWAY_ANNOTATION]: cfg.gatewayId } });
  } else {
    ops.push({
      op: 'add',
      path: `/metadata/annotations/${pointer(GATEWAY_ANNOTATION)}`,
      value: cfg.gatewayId,
    });
  }
  return ops;
}

function clientContainer(
  name: string,
  t: ContainerTemplate,
  cfg: InjectConfig,
  sidecar: boolean,
): V1Container {
  const env: V1EnvVar[] = [];
  // gateway-admision-controller's env, read by pod-gateway's scripts and by our settings loader.
  if (cfg.gateway) env.push({ name: 'gateway', value: cfg.gateway });
  if (cfg.dns.length > 0)
    env.push({ name: 'DNS', value: cfg.dns.join(',') }, { name: 'DNS_ips', value: cfg.dns.join(',') });
  if (cfg.resolv.nameservers.length > 0)
    env.push({ name: 'K8S_DNS_ips', value: cfg.resolv.nameservers.join(' ') });
  env.push(fieldEnv('POD_NAMESPACE', 'metadata.namespace'));
  if (sidecar) env.push({ name: 'PODGW_CONTAINER_NAME', value: name });
  return {
    name,
    image: t.image,
    imagePullPolicy: t.pullPolicy,
    ...(t.command ? { command: [t.command] } : {}),
    env,
    // Root with only what routing needs: capabilities of a non-root process are dropped at exec.
    securityContext: {
      runAsUser: 0,
      runAsNonRoot: false,
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      privileged: false,
      capabilities: { drop: ['ALL'], add: ['NET_ADMIN', 'NET_RAW', 'NET_BIND_SERVICE'] },
      seccompProfile: { type: 'RuntimeDefault' },
    },
    volumeMounts: [{ name: CONFIG_VOLUME, mountPath: t.mountPoint, readOnly: true }],
  };
}

/**
 * The routed pod's DNS: the gateway as nameserver. With dnsPolicy None, the webhook's own searches
 * (a `<ns>.svc.…` entry moved to the pod's namespace, empty and "." entries dropped, gac#54) and
 * options; the pod's own searches follow, and its own options win by name (pod-gateway#26: ndots
 * was lost).
 */
export function dnsConfig(pod: V1Pod, namespace: string, cfg: InjectConfig): V1PodDNSConfig {
  const own = pod.spec?.dnsConfig;
  if (cfg.dnsPolicy !== 'None') return { ...own, nameservers: [...cfg.dns] };
  const searches = cfg.resolv.search
    .filter((s) => s !== '' && s !== '.')
    .map((s) => {
      const parts = s.split('.');
      if (parts.length > 2 && parts[1] === 'svc' && namespace) parts[0] = namespace;
      return parts.join('.');
    });
  for (const s of own?.searches ?? []) if (!searches.includes(s)) searches.push(s);
  const options = cfg.resolv.options
    .filter((o) => !(own?.options ?? []).some((p) => p.name === o.name))
    .map((o) => (o.value === undefined ? { name: o.name } : { name: o.name, value: o.value }));
  for (const o of own?.options ?? [])
    if (o.name) options.push(o.value === undefined ? { name: o.name } : { name: o.name, value: o.value });
  return {
    nameservers: [...cfg.dns],
    ...(searches.length > 0 ? { searches } : {}),
    ...(options.length > 0 ? { options } : {}),
  };
}

/** The projected volume the ServiceAccount admission plugin added (kube-api-access-…), if any. */
function serviceAccountTokenVolume(pod: V1Pod): string | undefined {
  return pod.spec?.volumes?.find((v) => v.projected?.sources?.some((s) => s.serviceAccountToken))?.name;
}

function fieldEnv(name: string, fieldPath: string): V1EnvVar {
  return { name, valueFrom: { fieldRef: { fieldPath } } };
}

/** RFC 6901: `~` → `~0`, `/` → `~1`. */
function pointer(key: string): string {
  return key.replace(/~/g, '~0').replace(/\//g, '~1');
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
