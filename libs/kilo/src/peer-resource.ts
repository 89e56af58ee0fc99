import { goParseCIDR, goParseIP } from './ip';
import { isDns1123Subdomain } from './wireguard';

/**
 * Kilo's `peers.kilo.squat.ai/v1alpha1` custom resource (pkg/k8s/apis/kilo/v1alpha1/types.go),
 * cluster-scoped, plus knet's status (Kilo has none).
 */

export const PEER_GROUP = 'kilo.squat.ai';
export const PEER_VERSION = 'v1alpha1';
export const PEER_PLURAL = 'peers';
export const PEER_KIND = 'Peer';
/** `kilo.squat.ai/v1alpha1`. */
export const PEER_API_VERSION = `${PEER_GROUP}/${PEER_VERSION}`;

/** Kilo's `DNSOrIP`: a DNS name or an IP; in translation the name wins. */
export interface PeerDnsOrIP {
  dns?: string;
  ip?: string;
}

/** Kilo's `PeerEndpoint`. */
export interface PeerEndpointSpec {
  dnsOrIP: PeerDnsOrIP;
  port: number;
}

/** Kilo's `PeerSpec`. */
export interface PeerSpec {
  /** CIDRs routed to the peer (required). */
  allowedIPs: string[];
  /** WireGuard public key, base64 of 32 bytes (required). */
  publicKey: string;
  endpoint?: PeerEndpointSpec;
  /** Seconds, ≥ 0; 0 or absent = off. */
  persistentKeepalive?: number;
  presharedKey?: string;
}

/**
 * knet's Peer status (Kilo has no status subresource): what the observing leader's device shows
 * for the peer.
 */
export interface PeerStatus {
  /** RFC 3339 time of the latest handshake. */
  latestHandshake?: string;
  receiveBytes?: number;
  transmitBytes?: number;
  /** The endpoint the device last saw (`ip:port`). */
  endpoint?: string;
  /** Name of the node whose device this was read from. */
  observedBy?: string;
}

export interface PeerMetadata {
  name: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  creationTimestamp?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

/** A `Peer` object as the API server returns it. */
export interface PeerResource {
  apiVersion?: string;
  kind?: string;
  metadata: PeerMetadata;
  spec: PeerSpec;
  status?: PeerStatus;
}

/**
 * Kilo's `Peer.Validate()`: every allowed IP a CIDR; an endpoint has a DNS-1123 name or an IP
 * (each valid when given) and a port 1–65535; keepalive ≥ 0; the public key is base64 of 32 bytes.
 * Kilo stops at the first error; this returns all of them, one line each, in Kilo's order (the
 * first is Kilo's). Like Kilo it checks neither that allowedIPs is non-empty (a Peer without any
 * is valid but never Ready) nor the preshared key. Empty = valid.
 */
export function validatePeer(spec: PeerSpec): string[] {
  const errors: string[] = [];
  for (const ip of spec.allowedIPs) {
    if (goParseCIDR(ip) === undefined)
      errors.push(`spec.allowedIPs: ${JSON.stringify(ip)} is not a CIDR such as 10.5.0.1/32`);
  }
  const endpoint = spec.endpoint;
  if (endpoint) {
    const dns = endpoint.dnsOrIP.dns ?? '';
    const ip = endpoint.dnsOrIP.ip ?? '';
    if (dns === '' && ip === '') errors.push('spec.endpoint.dnsOrIP: set dns or ip');
    if (dns !== '' && !isDns1123Subdomain(dns)) {
      errors.push(`spec.endpoint.dnsOrIP.dns: ${JSON.stringify(dns)} is not a lower-case RFC 1123 subdomain`);
    }
    if (ip !== '' && goParseIP(ip) === undefined) {
      errors.push(`spec.endpoint.dnsOrIP.ip: ${JSON.stringify(ip)} is not an IP address`);
    }
    if (!Number.isInteger(endpoint.port) || endpoint.port < 1 || endpoint.port > 65535) {
      errors.push(`spec.endpoint.port: must be a UDP port 1–65535, got ${endpoint.port}`);
    }
  }
  if ((spec.persistentKeepalive ?? 0) < 0) {
    errors.push(`spec.persistentKeepalive: must be ≥ 0, got ${spec.persistentKeepalive ?? 0}`);
  }
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(spec.publicKey) || spec.publicKey.length % 4 !== 0) {
    errors.push('spec.publicKey: not base64 (use the output of wg pubkey)');
  } else if (Buffer.from(spec.publicKey, 'base64').length !== 32) {
    errors.push('spec.publicKey: not 32 bytes (use the output of wg pubkey)');
  }
  return errors;
}
