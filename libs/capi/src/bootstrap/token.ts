import { randomBytes } from 'node:crypto';
import { BootstrapError } from './errors';
import type { SecretData } from './pki';

/** The group kubeadm's join RBAC (CSR creation, auto-approval, cluster-info) is bound to. */
export const BOOTSTRAP_TOKEN_GROUP = 'system:bootstrappers:kubeadm:default-node-token';
/** Bootstrap token Secret type and namespace (k8s.io/cluster-bootstrap). */
export const BOOTSTRAP_TOKEN_SECRET_TYPE = 'bootstrap.kubernetes.io/token';
export const BOOTSTRAP_TOKEN_NAMESPACE = 'kube-system';
/** Token lifetime when the config does not say (kubeadm's default). */
export const DEFAULT_BOOTSTRAP_TOKEN_TTL_MS = 24 * 3600_000;

const TOKEN_PATTERN = /^([a-z0-9]{6})\.([a-z0-9]{16})$/;
const ALPHABET = '0123456789abcdefghijklmnopqrstuvwxyz';

/** A source of random bytes (injectable for deterministic tests); the default is the OS CSPRNG. */
export type RandomBytes = (size: number) => Buffer;

/** A kubeadm bootstrap token, `[a-z0-9]{6}.[a-z0-9]{16}`, each character uniform over 36 (rejection sampling). */
export function newBootstrapToken(random: RandomBytes = randomBytes): string {
  const chars: string[] = [];
  while (chars.length < 22) {
    for (const byte of random(32)) {
      // 252 = 7 * 36: bytes above it would favour the first characters.
      if (byte < 252 && chars.length < 22) chars.push(ALPHABET[byte % 36] ?? '0');
    }
  }
  return `${chars.slice(0, 6).join('')}.${chars.slice(6).join('')}`;
}

/** The token's id and secret; throws BootstrapError `invalid-input` (without the token) when malformed. */
export function parseBootstrapToken(token: string): { id: string; secret: string } {
  const m = TOKEN_PATTERN.exec(token);
  if (!m?.[1] || !m[2])
    throw new BootstrapError(
      'invalid-input',
      'bootstrap token is not of the form [a-z0-9]{6}.[a-z0-9]{16}; generate it with newBootstrapToken()',
    );
  return { id: m[1], secret: m[2] };
}

/** The `bootstrap-token-<id>` Secret for the workload cluster's kube-system. */
export interface BootstrapTokenSecret {
  apiVersion: 'v1';
  kind: 'Secret';
  metadata: { name: string; namespace: typeof BOOTSTRAP_TOKEN_NAMESPACE };
  type: typeof BOOTSTRAP_TOKEN_SECRET_TYPE;
  data: Record<string, string>;
}

/**
 * The workload cluster's Secret for `token`, valid until `expires` (RFC 3339, whole seconds; the
 * token cleaner deletes it then), usable for authentication (TLS bootstrap) and signing
 * (cluster-info discovery), in kubeadm's default node-token group.
 */
export function bootstrapTokenSecret(
  token: string,
  expires: Date,
  description = 'bootstrap token for a Cluster API machine',
): BootstrapTokenSecret {
  const { id, secret } = parseBootstrapToken(token);
  const data: Record<string, string> = {
    'token-id': id,
    'token-secret': secret,
    expiration: rfc3339(expires),
    'usage-bootstrap-authentication': 'true',
    'usage-bootstrap-signing': 'true',
    'auth-extra-groups': BOOTSTRAP_TOKEN_GROUP,
    description,
  };
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: `bootstrap-token-${id}`, namespace: BOOTSTRAP_TOKEN_NAMESPACE },
    type: BOOTSTRAP_TOKEN_SECRET_TYPE,
    data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v).toString('base64')])),
  };
}

/**
 * Milliseconds until a bootstrap token Secret expires at `now` (≤ 0: expired, the API server
 * already refuses it); Infinity when it has no expiration. A controller refreshes (or replaces)
 * the token of a machine that has not joined yet when this falls below its margin.
 */
export function bootstrapTokenRemainingMs(secret: SecretData, now: Date): number {
  const raw = secret.data?.expiration;
  if (!raw) return Infinity;
  const text = Buffer.from(raw, 'base64').toString('utf8');
  const at = Date.parse(text);
  if (!/^\d{4}-\d\d-\d\dT/.test(text) || Number.isNaN(at))
    throw new BootstrapError(
      'invalid-input',
      `bootstrap token Secret has an expiration that is not RFC 3339 (${JSON.stringify(text)})`,
    );
  return at - now.getTime();
}

/**
 * A Go duration (`24h`, `30m`, `1h30m`, `90s`, `500ms`) in milliseconds, as kubeadm and
 * `PacketKubeadmConfig.spec.tokenTTL` write TTLs. Throws BootstrapError `invalid-input`.
 */
export function parseDuration(text: string): number {
  const units: Record<string, number> = { h: 3600_000, m: 60_000, s: 1000, ms: 1 };
  const parts = /^(?:\d+(?:\.\d+)?(?:h|ms|m|s))+$/.test(text)
    ? text.match(/\d+(?:\.\d+)?(?:h|ms|m|s)/g)
    : null;
  if (!parts)
    throw new BootstrapError(
      'invalid-input',
      `duration ${JSON.stringify(text)} is not like 24h, 30m or 1h30m`,
    );
  return parts.reduce((sum, part) => {
    const [, n = '0', unit = 's'] = /^(\d+(?:\.\d+)?)(h|ms|m|s)$/.exec(part) ?? [];
    return sum + Number(n) * (units[unit] ?? 0);
  }, 0);
}

/** RFC 3339 in UTC without fractional seconds (`2026-01-02T03:04:05Z`), as k8s.io/cluster-bootstrap writes it. */
export function rfc3339(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}
