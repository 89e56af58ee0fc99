import type { Agent } from 'node:http';
import type { Duplex } from 'node:stream';
import { Client, type ClientChannel, type TcpConnectionDetails } from 'ssh2';
import WebSocket from 'ws';
import { errorMessage, silentLogger, type Logger } from '@knet/runtime';
import { fingerprintOfBlob } from './hostkey';
import {
  HELLO_TIMEOUT_MS,
  SUBPROTOCOL,
  TARGETS,
  TARGET_NAMES,
  decodeHelloReply,
  encodeHello,
  type TargetName,
} from './protocol';
import { SSH_ALGORITHMS } from './ssh';
import { webSocketDuplex } from './ws';

/** Serves one channel the proxy opened to a target. */
export type ChannelHandler = (channel: Duplex) => void;

/** Counters of the channels an agent serves (prom-client's Gauge and Counters fit). */
export interface AgentChannelMetrics {
  channels: { inc(labels: { target: string }): void; dec(labels: { target: string }): void };
  channelsTotal: { inc(labels: { target: string }): void };
  refusedChannels: { inc(labels: { target: string }): void };
}

export interface AgentConnectionOptions {
  url: string;
  cluster: string;
  token: string;
  agent: string;
  agentVersion: string;
  /**
   * `SHA256:…` the proxy's host key must have; several while the proxy's key is rotated (the key
   * is accepted when it has any of them).
   */
  fingerprint: string | readonly string[];
  keepaliveMs: number;
  /**
   * Time allowed for the WebSocket upgrade, and then for the SSH handshake (default 45 s and
   * 30 s): a proxy that accepts the connection and then says nothing is given up on after it.
   */
  handshakeTimeoutMs?: number;
  /**
   * The HTTP agent the WebSocket is dialled with: one that tunnels through an egress proxy
   * (HTTP CONNECT). Default: a direct connection.
   */
  httpAgent?: Agent;
  /** Extra CA for a wss:// proxy with a private certificate. */
  proxyCa?: string;
  /**
   * The targets this agent serves, each with what serves its channels: advertised to the proxy
   * (in TARGET_NAMES order), and the only channels accepted.
   */
  targets: Partial<Record<TargetName, ChannelHandler>>;
  logger?: Logger;
  metrics?: AgentChannelMetrics;
}

/** The proxy's host key is not the pinned one: never retried, the agent exits. */
export class FingerprintMismatchError extends Error {
  override readonly name = 'FingerprintMismatchError';
}

/** The proxy refused this agent (bad token, unknown cluster…): retried after a backoff. */
export class RefusedError extends Error {
  override readonly name = 'RefusedError';
  constructor(
    readonly reason: string,
    message: string,
  ) {
    super(message);
  }
}

/**
 * One connection of an agent to the proxy, from dial to close: WebSocket, SSH with the pinned host
 * key, hello, targets, then serving channels. `established` resolves once the proxy has accepted
 * the agent, and rejects when the attempt fails or the connection is over first (closed by either
 * side); `closed` resolves (with the reason) when the connection is over. Typed errors
 * (`FingerprintMismatchError`, `RefusedError`) let a supervisor tell what to retry.
 */
export class AgentConnection {
  readonly established: Promise<void>;
  readonly closed: Promise<Error | undefined>;
  private readonly ssh = new Client();
  private ws: WebSocket | undefined;
  private settle!: (err: Error | undefined) => void;

  private readonly log: Logger;
  private readonly fingerprints: readonly string[];

  constructor(private readonly o: AgentConnectionOptions) {
    this.log = o.logger ?? silentLogger;
    this.fingerprints = typeof o.fingerprint === 'string' ? [o.fingerprint] : o.fingerprint;
    if (this.fingerprints.length === 0) throw new Error('AgentConnection: no fingerprint to pin');
    this.closed = new Promise((r) => (this.settle = r));
    // Whatever step the attempt is in, it is over once the connection is (ssh2 does not fail a
    // handshake whose socket closes until its readyTimeout).
    this.established = Promise.race([
      this.run(),
      this.closed.then((e) =>
        Promise.reject(e ?? new Error('connection closed before the proxy accepted the agent')),
      ),
    ]);
    this.established.catch((e: unknown) => this.finish(e instanceof Error ? e : new Error(errorMessage(e))));
  }

  private finish(err: Error | undefined): void {
    this.settle(err);
    this.ssh.end();
    this.ws?.terminate();
  }

  close(): void {
    this.finish(undefined);
  }

  private async run(): Promise<void> {
    const stream = await this.dial();
    await this.handshake(stream);
    await this.hello();
    await this.advertise();
  }

  private dial(): Promise<Duplex> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(this.o.url, SUBPROTOCOL, {
        perMessageDeflate: false,
        handshakeTimeout: this.o.handshakeTimeoutMs ?? 45_000,
        maxPayload: 4 * 1024 * 1024,
        // RFC 6455 masking protects intermediaries from attacker-chosen plaintext; ours is SSH
        // ciphertext. An all-zero key lets both ends skip the XOR pass over every byte (ws skips
        // unmasking a zero key), which about doubles agent→proxy throughput.
        generateMask: (mask: Buffer) => void mask.fill(0),
        ...(this.o.proxyCa ? { ca: this.o.proxyCa } : {}),
        ...(this.o.httpAgent ? { agent: this.o.httpAgent } : {}),
      });
      this.ws = ws;
      ws.once('unexpected-response', (_req, res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()).length > 2048 && res.destroy());
        res.on('end', () =>
          reject(new Error(`proxy answered HTTP ${res.statusCode}: ${body.trim() || res.statusMessage}`)),
        );
        res.on('error', () => reject(new Error(`proxy answered HTTP ${res.statusCode}`)));
      });
      ws.once('error', (e) => reject(new Error(`cannot reach the proxy at ${this.o.url}: ${e.message}`)));
      ws.once('open', () => resolve(webSocketDuplex(ws)));
    });
  }

  private handshake(sock: Duplex): Promise<void> {
    return new Promise((resolve, reject) => {
      let seen: string | undefined;
      this.ssh.once('ready', () => resolve());
      this.ssh.on('error', (e: Error & { level?: string }) => {
        if (seen && !this.fingerprints.includes(seen)) {
          const pinned =
            this.fingerprints.length === 1
              ? `the pinned --fingerprint ${this.fingerprints[0]}`
              : `one of the pinned --fingerprint ${this.fingerprints.join(', ')}`;
          const err = new FingerprintMismatchError(
            `the proxy's SSH host key is ${seen}, not ${pinned}: refusing to connect ` +
              '(another proxy, a rotated key, or a man in the middle; check the fingerprint the proxy logs)',
          );
          reject(err);
          this.finish(err);
          return;
        }
        const err = new Error(`SSH with the proxy failed: ${e.message}`);
        reject(err);
        this.finish(err);
      });
      this.ssh.on('close', () => this.finish(new Error('connection to the proxy closed')));
      this.ssh.on('tcp connection', (details, accept, reject) => this.onChannel(details, accept, reject));
      this.ssh.connect({
        sock: sock as never,
        username: this.o.cluster,
        authHandler: [{ type: 'none', username: this.o.cluster }] as never,
        hostVerifier: (key: Buffer) => {
          seen = fingerprintOfBlob(key);
          return this.fingerprints.includes(seen);
        },
        keepaliveInterval: this.o.keepaliveMs,
        keepaliveCountMax: 1,
        readyTimeout: this.o.handshakeTimeoutMs ?? 30_000,
        algorithms: SSH_ALGORITHMS as never,
      });
    });
  }

  private hello(): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error('the proxy did not answer the hello in time')),
        HELLO_TIMEOUT_MS,
      );
      const hello = encodeHello({
        version: 1,
        cluster: this.o.cluster,
        token: this.o.token,
        agent: this.o.agent,
        agentVersion: this.o.agentVersion,
      });
      this.ssh.exec(hello, (err, ch: ClientChannel) => {
        if (err) {
          clearTimeout(timer);
          reject(new Error(`the proxy refused the hello channel: ${err.message}`));
          return;
        }
        let out = '';
        ch.on('data', (c: Buffer) => {
          if (out.length < 64 * 1024) out += c.toString('utf8');
        });
        ch.stderr.resume();
        ch.on('close', () => {
          clearTimeout(timer);
          try {
            const reply = decodeHelloReply(out.trim());
            if (reply.ok) {
              this.log.info(
                { session: reply.session, proxyVersion: reply.proxyVersion },
                'connected to the proxy',
              );
              resolve();
            } else {
              reject(
                new RefusedError(
                  reply.reason,
                  `the proxy refused this agent (${reply.reason}): ${reply.message}`,
                ),
              );
            }
          } catch (e) {
            reject(e);
          }
        });
      });
    });
  }

  /** Sends one tcpip-forward per target we serve: the proxy may open channels to these and no other. */
  private async advertise(): Promise<void> {
    const targets = TARGET_NAMES.filter((t) => this.handler(t));
    for (const t of targets) {
      await new Promise<void>((resolve, reject) =>
        this.ssh.forwardIn(t, TARGETS[t], (err) =>
          err ? reject(new Error(`the proxy refused target ${t}: ${err.message}`)) : resolve(),
        ),
      );
    }
    this.log.info({ targets }, 'serving targets');
  }

  /** The handler of a target this agent serves (never one inherited from Object). */
  private handler(target: string): ChannelHandler | undefined {
    return Object.hasOwn(this.o.targets, target) ? this.o.targets[target as TargetName] : undefined;
  }

  private onChannel(details: TcpConnectionDetails, accept: () => ClientChannel, reject: () => void): void {
    const target = details.destIP as TargetName;
    const handler = this.handler(target);
    if (!handler || TARGETS[target] !== details.destPort) {
      this.o.metrics?.refusedChannels.inc({ target: String(details.destIP).slice(0, 64) });
      this.log.warn(
        { target: details.destIP, port: details.destPort },
        'proxy asked for a target this agent does not serve; refused',
      );
      reject();
      return;
    }
    const ch = accept();
    this.o.metrics?.channels.inc({ target });
    this.o.metrics?.channelsTotal.inc({ target });
    ch.once('close', () => this.o.metrics?.channels.dec({ target }));
    handler(ch);
  }
}
