/**
 * The `kilo.squat.ai/*` Node annotations, spelled exactly as Kilo's pkg/k8s/backend.go does, so
 * that kilo-agent and kg can read each other's nodes.
 */

const PREFIX = 'kilo.squat.ai/';

/** kg-written: the detected endpoint `ip:port` (`[v6]:port`); sticky until clean-up. */
export const ENDPOINT_ANNOTATION = `${PREFIX}endpoint`;
/** User: `host:port` (IP or DNS) that overrides `endpoint`; its port becomes the ListenPort. */
export const FORCE_ENDPOINT_ANNOTATION = `${PREFIX}force-endpoint`;
/** User: CIDR overriding `internal-ip`; `""` or `"-"` means "no internal IP". */
export const FORCE_INTERNAL_IP_ANNOTATION = `${PREFIX}force-internal-ip`;
/** kg-written: the detected internal IP as a CIDR with the interface mask, or `""`. */
export const INTERNAL_IP_ANNOTATION = `${PREFIX}internal-ip`;
/** kg-written: the node's WireGuard public key. */
export const KEY_ANNOTATION = `${PREFIX}key`;
/** kg-written: unix seconds of the last check-in. */
export const LAST_SEEN_ANNOTATION = `${PREFIX}last-seen`;
/** User: presence only; a leader hint. */
export const LEADER_ANNOTATION = `${PREFIX}leader`;
/** User: the location, overriding the topology label. */
export const LOCATION_ANNOTATION = `${PREFIX}location`;
/** User: seconds of persistent keepalive for all of the node's peers; non-zero = behind NAT. */
export const PERSISTENT_KEEPALIVE_ANNOTATION = `${PREFIX}persistent-keepalive`;
/** kg-written: `10.4.0.N/16` on segment leaders, `""` elsewhere. */
export const WIREGUARD_IP_ANNOTATION = `${PREFIX}wireguard-ip`;
/** kg-written: JSON map public key → `{"IP","Port","Zone"}` seen on the device. */
export const DISCOVERED_ENDPOINTS_ANNOTATION = `${PREFIX}discovered-endpoints`;
/** User: comma-separated CIDRs routable from other locations. */
export const ALLOWED_LOCATION_IPS_ANNOTATION = `${PREFIX}allowed-location-ips`;
/** kg-written: the mesh granularity the node's agent runs with (kgctl auto-detects it). */
export const GRANULARITY_ANNOTATION = `${PREFIX}granularity`;
/** kg-written: the `cilium_host` IPv4 (compatibility mode), or `""`. */
export const CNI_COMPATIBILITY_IP_ANNOTATION = `${PREFIX}cni-compatibility-ip`;

/** Every `kilo.squat.ai/*` key Kilo knows. */
export const KILO_ANNOTATIONS: readonly string[] = [
  ENDPOINT_ANNOTATION,
  FORCE_ENDPOINT_ANNOTATION,
  FORCE_INTERNAL_IP_ANNOTATION,
  INTERNAL_IP_ANNOTATION,
  KEY_ANNOTATION,
  LAST_SEEN_ANNOTATION,
  LEADER_ANNOTATION,
  LOCATION_ANNOTATION,
  PERSISTENT_KEEPALIVE_ANNOTATION,
  WIREGUARD_IP_ANNOTATION,
  DISCOVERED_ENDPOINTS_ANNOTATION,
  ALLOWED_LOCATION_IPS_ANNOTATION,
  GRANULARITY_ANNOTATION,
  CNI_COMPATIBILITY_IP_ANNOTATION,
];

/**
 * The keys kg removes from its Node on clean-up, in Kilo's order (`nodeBackend.CleanUp`): the
 * first seven kg-written keys. `cni-compatibility-ip` is written but, as in Kilo, not removed.
 */
export const KG_CLEANUP_ANNOTATIONS: readonly string[] = [
  ENDPOINT_ANNOTATION,
  INTERNAL_IP_ANNOTATION,
  KEY_ANNOTATION,
  LAST_SEEN_ANNOTATION,
  WIREGUARD_IP_ANNOTATION,
  DISCOVERED_ENDPOINTS_ANNOTATION,
  GRANULARITY_ANNOTATION,
];

/**
 * knet's one extension (Kilo ignores it): this node's verdict on its leader's datapath, as JSON
 * `{"leader","healthy","since"}` (see `LeaderProbe`). kilo-agent writes and removes it with the
 * kg-written keys.
 */
export const LEADER_PROBE_ANNOTATION = 'kilo-agent.knet.dev/leader-probe';
