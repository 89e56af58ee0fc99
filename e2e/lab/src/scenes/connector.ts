/**
 * Scene `connector`: a 3-replica release of charts/connector on the host cluster, installed for
 * real with helm (ServiceAccount, Role, the claims ConfigMap, the API key's Secret), whose pods are
 * processes (`ConnectorRelease`): connector-init's bundle with the sidecar's args and env as the
 * chart renders them, as the chart's ServiceAccount, then the connector container — the launcher the
 * sidecar installed in the pod's handoff dir, running a fake connector that heartbeats a fake
 * Twingate tenant (`FakeTwingateTenant`, on loopback) with the pair it was handed.
 *
 * Each ordinal's row proves, live: the tenant reports its connector ALIVE and the pod's own fake
 * connector heartbeats as that connector (a pair revoked by a sibling would end it); the claims
 * ConfigMap records that connector for the ordinal; and neither token of the connector's current
 * pair is readable in any Secret or ConfigMap of the cluster, in the pod's handoff dir or in
 * connector-init's log (see `../token-scan.ts`). The teardown stops the pods, runs what the chart's
 * pre-delete hook runs (`gc --replicas 0`: the release's connectors are deleted in the tenant) and
 * `helm uninstall`s, then stops the tenant.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import {
  ConnectorRelease,
  FakeTwingateTenant,
  appBundle,
  oneLine,
  until,
  type ConnectorPod,
  type TenantConnector,
} from '@knet/testing';
import { formatAge } from '../display';
import { registerScene, type Row } from '../scene';
import { fileHaystacks, objectHaystacks, tokensFound, type KubeObjectList } from '../token-scan';

/** The release (the chart's fullname): pods, connectors and the claims ConfigMap are named after it. */
const RELEASE = 'lab-connector';
const NAMESPACE = 'twingate';
/** The fake tenant's remote network (it exists at start). */
const NETWORK = 'lab';
const REPLICAS = 3;
/** The fake connector heartbeats every 300 ms: a heartbeat older than this means it stopped. */
const HEARTBEAT_STALE_MS = 5_000;

/** A record of the claims ConfigMap (`ordinal.<n>`), the fields the scene reads. */
interface ClaimRecord {
  name?: string;
  id?: string;
  origin?: string;
}

/** `connector-init status -o json`, the fields the scene reads. */
interface StatusReport {
  network: { name: string };
  connectors: { ordinal: number; name: string; id: string; origin: string; state: string }[];
}

registerScene({
  name: 'connector',
  title: `a ${REPLICAS}-replica release of charts/connector on the host, its pods processes against a fake Twingate tenant`,
  needs: ['clusters'],
  bundles: ['connector-init'],
  async up(ctx) {
    const { host } = ctx.clusters();
    const kubectl = `kubectl --kubeconfig ${ctx.shownDir}/host.kubeconfig -n ${NAMESPACE}`;
    const dir = join(ctx.dir, 'connector');
    mkdirSync(dir, { recursive: true });
    const shown = (path: string) => join(ctx.shownDir, relative(ctx.dir, path));

    ctx.progress('starting the fake Twingate tenant (remote network lab) on loopback');
    const tenant = await FakeTwingateTenant.start({ networks: [NETWORK] });
    ctx.defer('the fake Twingate tenant', () => tenant.stop());
    const bundle = await appBundle('connector-init');

    ctx.progress(
      `helm install ${RELEASE} charts/connector (${REPLICAS} replicas) in ${NAMESPACE} on the host`,
    );
    const rel = await ConnectorRelease.install({
      cp: host,
      tenant,
      bundle,
      release: RELEASE,
      namespace: NAMESPACE,
      network: NETWORK,
      replicas: REPLICAS,
      dir,
      // The pods' ServiceAccount token must outlive a long lab session (a container restart re-reads the claims).
      tokenSeconds: 7 * 24 * 3600,
    });
    ctx.defer(`release ${RELEASE} (gc --replicas 0, helm uninstall)`, async () => {
      const gc = await rel.uninstall();
      if (gc.exitCode !== 0) {
        throw new Error(`connector-init gc exited ${gc.exitCode}: ${oneLine(gc.stderr).slice(-300)}`);
      }
      const left = rel.connectors().map((c) => c.name);
      if (left.length > 0) throw new Error(`gc left connectors in the tenant: ${left.join(', ')}`);
    });

    ctx.progress(`starting pods ${RELEASE}-0…${REPLICAS - 1} at once: connector-init, then the connector`);
    const ordinals = [...Array(REPLICAS).keys()];
    const started = await Promise.allSettled(
      ordinals.map(async (n) => {
        const pod = rel.startSidecar(n);
        ctx.defer(`pod ${RELEASE}-${n}`, () => rel.stopPods((p) => p.ordinal === n));
        // The launcher the connector container runs is in the handoff dir once connector-init has
        // claimed the ordinal's connector; it waits on the FIFO for the pair.
        const ready = await until(
          () =>
            `${RELEASE}-${n}'s connector-init to install its launcher; its log: ${oneLine(pod.sidecar.tail(5))}`,
          () => exited(pod) ?? (existsSync(join(pod.handoffDir, 'launch')) && 'launcher'),
          60_000,
        );
        if (ready !== 'launcher') throw new Error(`${RELEASE}-${n}: ${ready}`);
        rel.startConnector(pod);
      }),
    );
    for (const r of started) if (r.status === 'rejected') throw r.reason;

    ctx.progress(`waiting for ${REPLICAS} connectors ALIVE in the tenant`);
    const dead = await until(
      () =>
        `${REPLICAS} ${RELEASE} connectors ALIVE (now: ${rel
          .connectors()
          .map((c) => `${c.name} ${c.state}`)
          .join(', ')})`,
      () => {
        for (const p of rel.pods) {
          const why = exited(p);
          if (why) return `${RELEASE}-${p.ordinal}: ${why}`;
        }
        return rel.connectors().filter((c) => c.state === 'ALIVE').length === REPLICAS && 'alive';
      },
      60_000,
    );
    if (dead !== 'alive') throw new Error(dead);

    const claims = await rel.claims();
    const ids = ordinals.map((n) => {
      const id = record(claims, n).id;
      if (!id) throw new Error(`the claims ConfigMap records no connector id for ordinal ${n}`);
      return id;
    });

    /** Every Secret and ConfigMap of the host, as the admin reads them. */
    const clusterObjects = async () =>
      JSON.parse(await host.kubectlOk(['get', 'secrets,configmaps', '-A', '-o', 'json'])) as KubeObjectList;

    const ordinalRow = (n: number, id: string): Row => {
      const name = `${RELEASE}-${n}`;
      const pod = rel.pods.find((p) => p.ordinal === n) as ConnectorPod;
      return {
        component: `connector-${n}`,
        proof: `${name} (${id}, the claim of ordinal.${n}) ALIVE, its own process heartbeating with its own token pair; no token in Secrets/ConfigMaps/handoff dir/log`,
        command: `${kubectl} get configmap ${RELEASE}-connectors -o jsonpath='{.data.ordinal\\.${n}}'; ls -l ${shown(pod.handoffDir)}`,
        async check() {
          const why = exited(pod);
          if (why) throw new Error(`${name}: ${why}`);
          const connector = pod.connector as NonNullable<ConnectorPod['connector']>;

          const recorded = record(await rel.claims(), n);
          if (recorded.id !== id) {
            throw new Error(`claims ordinal.${n} records ${recorded.id ?? 'no connector'}, not ${id}`);
          }
          const c = tenant.connectors().find((x) => x.id === id);
          if (!c) throw new Error(`the tenant has no connector ${id} (deleted?)`);
          if (c.state !== 'ALIVE') throw new Error(`${c.name} (${id}) is ${c.state}, not ALIVE`);
          const age = heartbeatAge(c);
          if (age > HEARTBEAT_STALE_MS) {
            throw new Error(`${c.name}'s last heartbeat was ${formatAge(age)}: the connector stopped`);
          }
          // The pod's own fake connector authenticated as this connector with its current pair.
          const as = lastHeartbeatId(connector.tail(3));
          if (as !== id) {
            throw new Error(
              `${name}'s connector last heartbeat as ${as ?? 'nobody'}, not ${id}: not its own pair`,
            );
          }

          const pair = tenant.currentTokens(id);
          if (!pair) throw new Error(`the tenant has no token pair for ${id}`);
          const objects = await clusterObjects();
          const kinds = (k: string) => objects.items.filter((o) => o.kind === k).length;
          const claimsSeen = objects.items.some(
            (o) => o.kind === 'ConfigMap' && o.metadata?.name === `${RELEASE}-connectors`,
          );
          if (!claimsSeen) throw new Error(`the scan did not see ConfigMap ${RELEASE}-connectors`);
          const files = fileHaystacks(pod.handoffDir, shown(pod.handoffDir));
          if (!files.files.includes('launch')) throw new Error(`no launcher in ${shown(pod.handoffDir)}`);
          const found = tokensFound(
            [
              ...objectHaystacks(objects),
              ...files.haystacks,
              { where: `${name}'s connector-init log`, text: rel.log(pod.sidecar) },
            ],
            { 'access token': pair.accessToken, 'refresh token': pair.refreshToken },
          );
          if (found.length > 0) throw new Error(`TOKEN READABLE: ${found.join('; ')}`);
          // Short enough for a 150-column table; the claim and the heartbeating process are in the proof.
          return `${id} ALIVE, heartbeat ${formatAge(age)}; no token in ${kinds('Secret')} Secrets, ${kinds('ConfigMap')} ConfigMaps, handoff dir, log`;
        },
      };
    };

    const rows: Row[] = [
      {
        component: 'connector status',
        proof: `connector-init status: ordinals 0–${REPLICAS - 1} each hold their own connector, created by the release, ALIVE`,
        command: `${kubectl} get configmap ${RELEASE}-connectors -o yaml`,
        async check() {
          // As the admin: the ServiceAccount's token the pods got lasts an hour, the live table longer.
          const r = await rel.runCommand('status', {
            extra: ['-o', 'json'],
            env: { KUBECONFIG: host.kubeconfigPath },
          });
          if (r.exitCode !== 0) {
            throw new Error(`connector-init status exited ${r.exitCode}: ${oneLine(r.stderr).slice(-300)}`);
          }
          const report = JSON.parse(r.stdout) as StatusReport;
          const got = report.connectors.map((c) => `${c.ordinal} ${c.name} ${c.id} ${c.origin} ${c.state}`);
          const want = ordinals.map((n) => `${n} ${RELEASE}-${n} ${ids[n] ?? ''} created ALIVE`);
          if (got.join('\n') !== want.join('\n')) {
            throw new Error(`status: ${got.join('; ') || 'no ordinals'} (expected ${want.join('; ')})`);
          }
          const own = rel.connectors();
          if (own.length !== REPLICAS) {
            throw new Error(
              `the tenant has ${own.length} ${RELEASE}-* connectors: ${own.map((c) => c.name).join(', ')}`,
            );
          }
          return `${REPLICAS} ordinals, ${REPLICAS} distinct connectors created by ${RELEASE}, all ALIVE, remote network ${report.network.name}`;
        },
      },
      ...ordinals.map((n) => ordinalRow(n, ids[n] as string)),
    ];
    return rows;
  },
});

/** Why the pod is not running (a container exited), or undefined. */
function exited(pod: ConnectorPod): string | undefined {
  if (!pod.sidecar.running) return `connector-init exited: ${oneLine(pod.sidecar.tail(5))}`;
  if (pod.connector && !pod.connector.running)
    return `the connector exited: ${oneLine(pod.connector.tail(5))}`;
  return undefined;
}

function record(claims: Record<string, string>, n: number): ClaimRecord {
  const raw = claims[`ordinal.${n}`];
  if (raw === undefined) return {};
  try {
    return JSON.parse(raw) as ClaimRecord;
  } catch {
    throw new Error(`claims ordinal.${n} is not a record: ${raw.slice(0, 80)}`);
  }
}

function heartbeatAge(c: TenantConnector): number {
  return c.lastHeartbeatAt === null ? Infinity : Math.max(0, Date.now() - Date.parse(c.lastHeartbeatAt));
}

/** The connector id of the fake connector's last answered heartbeat (`{"heartbeat":200,"body":"{\"id\":…}"}`). */
function lastHeartbeatId(tail: string): string | undefined {
  for (const line of tail.split('\n').reverse()) {
    try {
      const beat = JSON.parse(line) as { heartbeat?: number; body?: string };
      if (beat.heartbeat !== 200 || beat.body === undefined) return undefined;
      return (JSON.parse(beat.body) as { id?: string }).id;
    } catch {
      // a line still being written
    }
  }
  return undefined;
}
