import { z } from 'zod';

/**
 * The knet tower wire protocol (v1). Written down in apps/tower-proxy/README.md; in short:
 *
 * 1. The agent sends `GET /v1/tunnel` with `Upgrade: websocket` and
 *    `Sec-WebSocket-Protocol: knet-tower.v1` (no compression). Binary messages carry one SSH stream.
 * 2. SSH (RFC 4251–4254): the proxy is the server, with a persistent ed25519 host key that the
 *    agent pins by its SHA-256 fingerprint (`--fingerprint`). User = cluster name, auth method "none":
 *    no secret is sent before the server's identity is verified.
 * 3. Hello: the agent opens a `session` channel and sends `exec` with the command
 *    `knet-tower-hello <json Hello>`. The proxy answers one JSON `HelloReply` line on the channel and
 *    exit-status 0 (accepted) or 1 (refused, with a reason the agent logs), then closes it. One hello
 *    per connection. A connection whose hello is not accepted within 10 s of its TCP accept (upgrade,
 *    SSH handshake and hello together), or is refused, is closed.
 * 4. Targets: after hello, the agent sends `tcpip-forward` for each target it serves, as the bind
 *    address (a target *name*, e.g. `kubernetes`, port 443). That is its allow-list: the proxy only
 *    opens `forwarded-tcpip` channels to advertised targets, and the agent refuses any other.
 * 5. Liveness: both sides send `keepalive@openssh.com` every keepalive interval and drop the
 *    connection when a reply is missing: either detects a dead peer within 2× the interval. No
 *    WebSocket pings (the proxy does not answer them).
 */
export const TUNNEL_PATH = '/v1/tunnel';
export const SUBPROTOCOL = 'knet-tower.v1';
export const HELLO_COMMAND = 'knet-tower-hello';
/** The whole handshake — TCP accept to accepted hello — must fit in this (the proxy's default). */
export const HELLO_TIMEOUT_MS = 10_000;
export const PROTOCOL_VERSION = 1;
/**
 * The largest WebSocket message the proxy takes before the hello is accepted: the SSH ident, key
 * exchange and a hello (≤ ~2 KiB) fit; an unauthenticated peer can make it hold no more than this.
 */
export const PREAUTH_MAX_MESSAGE = 8 * 1024;
/**
 * The largest WebSocket message after the hello. Our agents send one SSH packet (≤ 35,000 bytes,
 * ssh2's limit) per message.
 */
export const MAX_MESSAGE = 4 * 1024 * 1024;
/** Tokens shorter than this are refused as a bad hello (the proxy generates 64 hex characters). */
export const MIN_TOKEN_LENGTH = 16;

/** Targets an agent may serve; the port is the conventional one, used in the forwarding request. */
export const TARGETS = {
  /** The member's kube-apiserver, reached through the agent's HTTP proxy (which adds the agent's credentials). */
  kubernetes: 443,
  /** ks-apiserver (plain TCP to the address given to the agent). */
  kubesphere: 80,
} as const;
export type TargetName = keyof typeof TARGETS;
export const TARGET_NAMES = Object.keys(TARGETS) as TargetName[];

const clusterName = z
  .string()
  .min(1)
  .max(253)
  .regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, 'must be a DNS subdomain name (the Cluster object name)');

export const helloSchema = z.object({
  version: z.literal(PROTOCOL_VERSION),
  cluster: clusterName,
  token: z.string().min(MIN_TOKEN_LENGTH).max(1024),
  /** Identifies the agent replica (pod name) in logs and metrics. */
  agent: z.string().min(1).max(253),
  /** Agent build, for logs. */
  agentVersion: z.string().max(64).optional(),
});
export type Hello = z.infer<typeof helloSchema>;

/**
 * Why the proxy refuses a hello, as the agent is told. `unauthorized` stands for an unknown cluster,
 * a Cluster that is not of type proxy and a wrong token alike, so that a stranger cannot learn which
 * Cluster names exist; the proxy's log and its metrics keep the detail (`AuthorizationFailure`).
 */
export const refusalReasons = ['bad-hello', 'unauthorized', 'not-serving'] as const;
export type RefusalReason = (typeof refusalReasons)[number];

/** The detail behind `unauthorized`: in the proxy's log and metrics, never on the wire. */
export const authorizationFailures = ['unknown-cluster', 'not-a-proxy-cluster', 'bad-token'] as const;
export type AuthorizationFailure = (typeof authorizationFailures)[number];

export const helloReplySchema = z.discriminatedUnion('ok', [
  z.object({ ok: z.literal(true), proxyVersion: z.string(), session: z.string() }),
  z.object({
    ok: z.literal(false),
    // Proxies before the `unauthorized` reason sent the detail: agents still understand them.
    reason: z.enum([...refusalReasons, ...authorizationFailures]),
    message: z.string(),
  }),
]);
export type HelloReply = z.infer<typeof helloReplySchema>;

/** The exec command line that carries a hello. */
export function encodeHello(h: Hello): string {
  return `${HELLO_COMMAND} ${JSON.stringify(h)}`;
}

/** Parses an exec command line into a Hello, or explains in one line why it is not one. */
export function decodeHello(command: string): { ok: true; hello: Hello } | { ok: false; message: string } {
  if (!command.startsWith(`${HELLO_COMMAND} `))
    return { ok: false, message: `expected "${HELLO_COMMAND} <json>"` };
  let json: unknown;
  try {
    json = JSON.parse(command.slice(HELLO_COMMAND.length + 1));
  } catch {
    return { ok: false, message: 'hello is not valid JSON' };
  }
  const r = helloSchema.safeParse(json);
  if (!r.success) {
    const issue = r.error.issues[0];
    return { ok: false, message: `hello ${issue?.path.join('.') || 'body'}: ${issue?.message ?? 'invalid'}` };
  }
  return { ok: true, hello: r.data };
}

export function decodeHelloReply(line: string): HelloReply {
  let json: unknown;
  try {
    json = JSON.parse(line);
  } catch {
    throw new Error(`the proxy's hello reply is not JSON: ${line.slice(0, 200)}`);
  }
  const r = helloReplySchema.safeParse(json);
  if (!r.success) throw new Error(`the proxy's hello reply is malformed: ${line.slice(0, 200)}`);
  return r.data;
}

/** ws(s):// URL of the tunnel endpoint from the agent's --proxy-server (http, https, ws or wss). */
export function tunnelUrl(proxyServer: string): string {
  let u: URL;
  try {
    u = new URL(proxyServer);
  } catch {
    throw new Error(`--proxy-server must be a URL like https://tower.example.com:8080, got "${proxyServer}"`);
  }
  const scheme = { 'http:': 'ws:', 'https:': 'wss:', 'ws:': 'ws:', 'wss:': 'wss:' }[u.protocol];
  if (!scheme)
    throw new Error(
      `--proxy-server scheme must be http, https, ws or wss, got "${u.protocol.replace(':', '')}"`,
    );
  u.protocol = scheme;
  u.pathname = u.pathname.replace(/\/+$/, '') + TUNNEL_PATH;
  u.search = '';
  u.hash = '';
  return u.toString();
}
