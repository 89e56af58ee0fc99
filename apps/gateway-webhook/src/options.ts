import { z } from 'zod';
import { UsageError, createProgram, daemonOptions, kubeconfigOption, option, schemas } from '@knet/runtime';
import { VERSION } from './version';

/** Kubernetes names the flags below take. */
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
/** A label or annotation key: an optional DNS-subdomain prefix and a name of up to 63 characters. */
const QUALIFIED_NAME =
  /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;

const name = (re: RegExp, what: string) => z.string().regex(re, `must be ${what}`);
const optionalName = (re: RegExp, what: string) =>
  z.union([z.literal('').transform(() => undefined), name(re, what)]).optional();
const PULL_POLICY = z.enum(['Always', 'IfNotPresent', 'Never'], 'must be Always, IfNotPresent or Never');
const DNS_POLICY = z
  .enum(
    ['', 'None', 'ClusterFirst', 'ClusterFirstWithHostNet', 'Default'],
    'must be None, ClusterFirst, ClusterFirstWithHostNet or Default',
  )
  .transform((v) => v || undefined);

/**
 * The flags of gateway-admision-controller keep their names (`--setGatewayLabel`, `--DNS`,
 * `--initImage`…), so its users' manifests work unchanged; the env fallbacks are ours
 * (PODGW_WEBHOOK_*). What is new is kebab-case, as in the other apps.
 */
export const program = createProgram({
  name: 'gateway-webhook',
  version: VERSION,
  description:
    'The pod-gateway sidecar-injection webhook: a mutating admission webhook (admission.k8s.io/v1) that routes ' +
    "opted-in pods through the gateway. For each Pod CREATE in a routed namespace it decides from the pod's label " +
    'and annotation (or the default) whether to route it, and if so adds client-init as the first init container, ' +
    'client-sidecar (as a container or a native sidecar), the settings ConfigMap and a DNS config pointing at the ' +
    'gateway. It serves HTTPS with a certificate it issues from a CA kept in a Secret, and keeps that CA in the ' +
    "MutatingWebhookConfiguration's caBundle (or serves --tls-cert-file-path/--tls-key-file-path as given).",
  options: {
    ...daemonOptions({
      envPrefix: 'PODGW_WEBHOOK',
      defaultPort: 8080,
      zero: 'any',
      readiness: 'ready once the HTTPS server serves a certificate the caBundle trusts',
    }),
    debug: option({
      flag: '--debug [bool]',
      env: 'PODGW_WEBHOOK_DEBUG',
      description: "log at level debug (gateway-admision-controller's flag; same as --log-level=debug)",
      schema: schemas.bool(),
      default: false,
    }),
    listen: option({
      flag: '--webhook-listen-address <address>',
      env: 'PODGW_WEBHOOK_LISTEN_ADDRESS',
      description: 'host:port of the HTTPS server (POST /wh/mutating/setgateway, GET /wh/health, /healthz)',
      schema: z
        .string()
        .transform((s) => (s.startsWith(':') ? `0.0.0.0${s}` : s))
        .pipe(schemas.hostPort()),
      default: ':8443',
    }),
    tlsCertFile: option({
      flag: '--tls-cert-file-path <file>',
      env: 'PODGW_WEBHOOK_TLS_CERT_FILE',
      description:
        'serving certificate (PEM), e.g. from cert-manager; re-read when it changes. Unset: the webhook issues its own from --ca-secret',
      schema: z.string().min(1).optional(),
    }),
    tlsKeyFile: option({
      flag: '--tls-key-file-path <file>',
      env: 'PODGW_WEBHOOK_TLS_KEY_FILE',
      description: 'its private key (PEM), with --tls-cert-file-path',
      schema: z.string().min(1).optional(),
      secret: true,
    }),
    caSecret: option({
      flag: '--ca-secret <name>',
      env: 'PODGW_WEBHOOK_CA_SECRET',
      description:
        "Secret in --namespace that holds the webhook's CA (ca.crt, ca.key): filled at the first start, shared by all replicas; delete its data to rotate the CA",
      schema: optionalName(DNS_SUBDOMAIN, 'a Secret name'),
    }),
    webhookConfiguration: option({
      flag: '--webhook-configuration <name>',
      env: 'PODGW_WEBHOOK_CONFIGURATION',
      description:
        "MutatingWebhookConfiguration whose webhooks' caBundle is kept equal to the CA (patched at start and re-checked every --ca-bundle-check-interval)",
      schema: optionalName(DNS_SUBDOMAIN, 'a MutatingWebhookConfiguration name'),
    }),
    tlsHosts: option({
      flag: '--tls-hosts <names>',
      env: 'PODGW_WEBHOOK_TLS_HOSTS',
      description:
        "comma-separated DNS names and IP addresses of the issued serving certificate (the Service's <name>.<namespace>.svc)",
      schema: schemas.list(),
      default: [],
    }),
    certValidity: option({
      flag: '--cert-validity <duration>',
      env: 'PODGW_WEBHOOK_CERT_VALIDITY',
      description:
        'lifetime of an issued serving certificate; a new one is issued and served after two thirds of it, without a restart',
      schema: schemas.duration({ min: 60_000 }),
      default: '2160h',
    }),
    caBundleCheckInterval: option({
      flag: '--ca-bundle-check-interval <duration>',
      env: 'PODGW_WEBHOOK_CA_BUNDLE_CHECK_INTERVAL',
      description: "how often the MutatingWebhookConfiguration's caBundle is compared and repaired",
      schema: schemas.duration({ min: 1000 }),
      default: '1m',
    }),
    namespace: option({
      flag: '--namespace <name>',
      env: 'POD_NAMESPACE',
      description:
        "the webhook's own namespace (downward API): where --ca-secret lives; its pods (the gateway's) are never routed",
      schema: optionalName(DNS_LABEL, 'a namespace name'),
    }),
    kubeconfig: {
      ...kubeconfigOption,
      description:
        "credentials for --ca-secret and --webhook-configuration (default: the pod's service account)",
    },
    resolvConf: option({
      flag: '--resolv-conf <file>',
      env: 'PODGW_WEBHOOK_RESOLV_CONF',
      description:
        "the webhook's own resolv.conf: its nameservers become the clients' K8S_DNS_IPS, its searches and options their dnsConfig with --DNSPolicy=None",
      schema: z.string().min(1),
      default: '/etc/resolv.conf',
    }),
    gateway: option({
      flag: '--gateway <name>',
      env: 'PODGW_WEBHOOK_GATEWAY',
      description:
        "the gateway's DNS name or IP, given to the clients as env `gateway` (overrides settings.sh GATEWAY_NAME). Unset: settings.sh's",
      schema: z.string().optional(),
    }),
    dns: option({
      flag: '--DNS <addresses>',
      env: 'PODGW_WEBHOOK_DNS',
      description:
        "comma-separated nameservers of routed pods (the gateway's overlay address, e.g. 172.16.0.1); IPs, or names resolved at start. Unset: the pod's DNS is not changed",
      schema: schemas.list(),
      default: [],
    }),
    dnsPolicy: option({
      flag: '--DNSPolicy <policy>',
      env: 'PODGW_WEBHOOK_DNS_POLICY',
      description:
        "dnsPolicy of routed pods; None also gives them the webhook's searches (namespace fixed) and options (the pod's own options win). Unset: unchanged",
      schema: DNS_POLICY.optional(),
    }),
    setGatewayDefault: option({
      flag: '--setGatewayDefault [bool]',
      env: 'PODGW_WEBHOOK_SET_GATEWAY_DEFAULT',
      description: 'route pods that have neither the label nor the annotation',
      schema: schemas.bool(),
      default: false,
    }),
    setGatewayLabel: option({
      flag: '--setGatewayLabel <key>',
      env: 'PODGW_WEBHOOK_SET_GATEWAY_LABEL',
      description:
        'pod label that decides: "true"/"false" (any Go boolean; anything else rejects the pod), or equal to --setGatewayLabelValue',
      schema: optionalName(QUALIFIED_NAME, 'a label key'),
    }),
    setGatewayLabelValue: option({
      flag: '--setGatewayLabelValue <value>',
      env: 'PODGW_WEBHOOK_SET_GATEWAY_LABEL_VALUE',
      description: 'route only pods whose label has this value (several gateways in one cluster)',
      schema: z.string().optional(),
    }),
    setGatewayAnnotation: option({
      flag: '--setGatewayAnnotation <key>',
      env: 'PODGW_WEBHOOK_SET_GATEWAY_ANNOTATION',
      description: 'pod annotation that decides like the label, and overrides it',
      schema: optionalName(QUALIFIED_NAME, 'an annotation key'),
    }),
    setGatewayAnnotationValue: option({
      flag: '--setGatewayAnnotationValue <value>',
      env: 'PODGW_WEBHOOK_SET_GATEWAY_ANNOTATION_VALUE',
      description: 'route only pods whose annotation has this value',
      schema: z.string().optional(),
    }),
    initImage: option({
      flag: '--initImage <image>',
      env: 'PODGW_WEBHOOK_INIT_IMAGE',
      description: 'image of the injected init container "gateway-init" (client-init)',
      schema: z.string().min(1),
      default: 'ghcr.io/knet/client-init',
    }),
    initImagePullPol: option({
      flag: '--initImagePullPol <policy>',
      env: 'PODGW_WEBHOOK_INIT_IMAGE_PULL_POLICY',
      description: 'its imagePullPolicy',
      schema: PULL_POLICY,
      default: 'IfNotPresent',
    }),
    initCmd: option({
      flag: '--initCmd <command>',
      env: 'PODGW_WEBHOOK_INIT_CMD',
      description: "its command (one path). Unset: the image's entrypoint",
      schema: z.string().optional(),
    }),
    initMountPoint: option({
      flag: '--initMountPoint <dir>',
      env: 'PODGW_WEBHOOK_INIT_MOUNT_POINT',
      description: 'where it mounts the ConfigMap (settings.sh, nat.conf)',
      schema: z.string().regex(/^\//, 'must be an absolute path'),
      default: '/config',
    }),
    sidecarImage: option({
      flag: '--sidecarImage <image>',
      env: 'PODGW_WEBHOOK_SIDECAR_IMAGE',
      description: 'image of the injected sidecar "gateway-sidecar" (client-sidecar)',
      schema: z.string().min(1),
      default: 'ghcr.io/knet/client-sidecar',
    }),
    sidecarImagePullPol: option({
      flag: '--sidecarImagePullPol <policy>',
      env: 'PODGW_WEBHOOK_SIDECAR_IMAGE_PULL_POLICY',
      description: 'its imagePullPolicy',
      schema: PULL_POLICY,
      default: 'IfNotPresent',
    }),
    sidecarCmd: option({
      flag: '--sidecarCmd <command>',
      env: 'PODGW_WEBHOOK_SIDECAR_CMD',
      description: "its command (one path). Unset: the image's entrypoint",
      schema: z.string().optional(),
    }),
    sidecarMountPoint: option({
      flag: '--sidecarMountPoint <dir>',
      env: 'PODGW_WEBHOOK_SIDECAR_MOUNT_POINT',
      description: 'where it mounts the ConfigMap',
      schema: z.string().regex(/^\//, 'must be an absolute path'),
      default: '/config',
    }),
    sidecarAsInit: option({
      flag: '--sidecarAsInit [bool]',
      env: 'PODGW_WEBHOOK_SIDECAR_AS_INIT',
      description:
        'inject the sidecar as a native sidecar (an init container with restartPolicy Always, Kubernetes 1.29+): Jobs complete and it needs no API access',
      schema: schemas.bool(),
      default: false,
    }),
    configmapName: option({
      flag: '--configmapName <name>',
      env: 'PODGW_WEBHOOK_CONFIGMAP_NAME',
      description: 'the pod-gateway ConfigMap (settings.sh, nat.conf) in each routed namespace',
      schema: name(DNS_SUBDOMAIN, 'a ConfigMap name'),
      default: 'pod-gateway',
    }),
    gatewayId: option({
      flag: '--gateway-id <id>',
      env: 'PODGW_WEBHOOK_GATEWAY_ID',
      description:
        "names this gateway in the annotation it leaves on routed pods (pod-gateway.knet.dev/gateway), so that a second gateway's webhook does not route them again. Default: --configmapName",
      schema: optionalName(DNS_SUBDOMAIN, 'a DNS subdomain'),
    }),
    handshakeTimeout: option({
      flag: '--handshake-timeout <duration>',
      env: 'PODGW_WEBHOOK_HANDSHAKE_TIMEOUT',
      description:
        'time a client has for its TLS handshake, and then for its request head (the API server needs milliseconds)',
      schema: schemas.duration({ min: 100, max: 60_000 }),
      default: '5s',
    }),
    requestTimeout: option({
      flag: '--request-timeout <duration>',
      env: 'PODGW_WEBHOOK_REQUEST_TIMEOUT',
      description: 'time a client has for a whole request, body included',
      schema: schemas.duration({ min: 100, max: 120_000 }),
      default: '10s',
    }),
    maxConnections: option({
      flag: '--max-connections <n>',
      env: 'PODGW_WEBHOOK_MAX_CONNECTIONS',
      description: 'open connections the HTTPS server accepts at once (the API servers keep a few each)',
      schema: schemas.integer({ min: 1, max: 100_000 }),
      default: 256,
    }),
  },
  validate(opts, { name: flag }) {
    if ((opts.tlsCertFile === undefined) !== (opts.tlsKeyFile === undefined)) {
      throw new UsageError(
        `${flag('tlsCertFile')} and ${flag('tlsKeyFile')} go together: give both or neither`,
      );
    }
    if (opts.tlsCertFile === undefined && opts.caSecret === undefined) {
      throw new UsageError(
        `no serving certificate: give ${flag('caSecret')} (with ${flag('namespace')}) so the webhook issues its own, or ${flag('tlsCertFile')} and ${flag('tlsKeyFile')}`,
      );
    }
    if (opts.caSecret !== undefined && opts.tlsCertFile !== undefined) {
      throw new UsageError(
        `${flag('caSecret')} and ${flag('tlsCertFile')} exclude each other: pick one source of the serving certificate`,
      );
    }
    if (opts.caSecret !== undefined && opts.namespace === undefined) {
      throw new UsageError(
        `${flag('caSecret')} needs ${flag('namespace')} (the downward API's metadata.namespace)`,
      );
    }
    if (opts.caSecret !== undefined && opts.tlsHosts.length === 0) {
      throw new UsageError(
        `${flag('caSecret')} needs ${flag('tlsHosts')}: the Service's DNS name(s) the API server calls`,
      );
    }
    if (opts.dnsPolicy === 'None' && opts.dns.length === 0) {
      throw new UsageError(
        `${flag('dnsPolicy')}=None needs ${flag('dns')}: a pod with dnsPolicy None must list its nameservers`,
      );
    }
    if (opts.setGatewayLabelValue && !opts.setGatewayLabel) {
      throw new UsageError(`${flag('setGatewayLabelValue')} needs ${flag('setGatewayLabel')}`);
    }
    if (opts.setGatewayAnnotationValue && !opts.setGatewayAnnotation) {
      throw new UsageError(`${flag('setGatewayAnnotationValue')} needs ${flag('setGatewayAnnotation')}`);
    }
  },
});
