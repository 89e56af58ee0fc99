/**
 * charts/connector on a real node: `helm install --wait` puts the StatefulSet's replicas on the
 * kubelet — connector-init as a native sidecar (our image) and the connector container (the TEST
 * stand-in image ghcr.io/knet/fake-connector: the vendor's twingate/connector cannot be pulled here)
 * — and every pod reaches Ready: each sidecar claims its own connector in the fake Twingate tenant,
 * generates its tokens and hands them through the pod's memory volume to the launcher, which execs
 * the entrypoint; the stand-in heartbeats the tenant with that pair and answers the chart's
 * `/connectorctl health` probes. `helm uninstall --wait` then runs the chart's pre-delete hook Job
 * for real (connector-init gc, no replica left): it deletes the release's connectors in the tenant,
 * and nothing of the release is left.
 *
 * The tenant (FakeTwingateTenant) runs in this process on the root namespace's loopback. The pods
 * reach it on the node's uplink ("the internet", 192.0.2.130): `bridgeLoopbackPort` makes its port
 * reachable on the uplink's loopback (a unix socket crossing, nothing routed), and a small front
 * there serves it on 192.0.2.130 — TLS on 443 with a certificate from the cluster's CA for
 * connector-init (which sends its API key over https only, or plain http to its own loopback), plain
 * http on 80 for the stand-in's heartbeats. connector-init gets the URL and the CA through the
 * chart's `init.extraEnv`: TWINGATE_API_URL=https://192.0.2.130 and NODE_EXTRA_CA_CERTS naming the
 * ca.crt of the ServiceAccount volume the chart already mounts into it (the cluster CA,
 * kube-root-ca.crt). The stand-in gets its URL from `connector.env`.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  bridgeLoopbackPort,
  ensureImages,
  FakeTwingateTenant,
  helmOrReport,
  kubectlOrReport,
  NodeBed,
  nodeReport,
  rootNetworkState,
  until,
  UPLINK_NETWORK,
  valuesFile,
  type BuiltImage,
  type LabProcess,
  type LoopbackBridge,
  type TenantConnector,
} from '@knet/testing';
import {
  chartAppVersion,
  chartDir,
  containerIdentity,
  releaseObjects,
  releasePods,
  type Pod,
} from './harness';

jest.setTimeout(20 * 60_000);

const log = (l: string) => process.stderr.write(`connector: ${l}\n`);

const NS = 'twingate';
/** Release "connector": the chart's fullname, the connectors' name prefix and the claims' ConfigMap. */
const RELEASE = 'connector';
const NETWORK = 'node-lab';
const API_KEY = 'node-provision-key';
const REPLICAS = 2;
/** The tenant's name in the chart (TWINGATE_URL of the connector container); `.test` resolves nowhere. */
const ACCOUNT = 'node-lab.twingate.test';
/** Where the kubelet mounts the chart's ServiceAccount volume (token, cluster CA, namespace) in connector-init. */
const SA_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';
const TENANT_API_URL = `https://${UPLINK_NETWORK.internet}`;
const TENANT_HEARTBEAT_URL = `http://${UPLINK_NETWORK.internet}`;

/**
 * The front on the uplink, run by `node -e` there: TLS (the cluster CA's certificate for
 * 192.0.2.130) on :443 and plain TCP on :80, each connection piped to the tenant's bridged port on
 * the uplink's loopback. Prints `fronting` once both listen, and one line per connection.
 */
const FRONT = `
const fs = require('fs'), net = require('net'), tls = require('tls');
const [certFile, keyFile, port, address] = process.argv.slice(1);
const pipe = (kind) => (c) => {
  console.log('connection ' + kind + ' from ' + c.remoteAddress);
  const u = net.connect(Number(port), '127.0.0.1');
  c.pipe(u).pipe(c);
  const end = () => { c.destroy(); u.destroy(); };
  c.on('error', end); u.on('error', end); c.on('close', end); u.on('close', end);
};
const secure = tls.createServer({ cert: fs.readFileSync(certFile), key: fs.readFileSync(keyFile) }, pipe('https'));
secure.on('tlsClientError', (e) => console.log('tls error ' + e.message));
let listening = 0;
const up = () => { if (++listening === 2) console.log('fronting'); };
secure.listen(443, address, up);
net.createServer(pipe('http')).listen(80, address, up);`;

const IMAGES = ['pause', 'connector-init', 'fake-connector'] as const;
let images: Record<(typeof IMAGES)[number], BuiltImage>;
let bed: NodeBed | undefined;
let tenant: FakeTwingateTenant | undefined;
let bridge: LoopbackBridge | undefined;
let front: LabProcess | undefined;
let certDir: string | undefined;
let installed = false;
let rootBefore = '';

beforeAll(async () => {
  rootBefore = await rootNetworkState();
  images = await ensureImages(IMAGES, log);
  tenant = await FakeTwingateTenant.start({ keys: { [API_KEY]: 'provision' }, networks: [NETWORK] });
  bed = await NodeBed.start({
    sandboxImage: images.pause,
    images: [images['connector-init'], images['fake-connector']],
    uplink: true,
    log,
  });
  const uplink = bed.uplink!;
  const tenantPort = Number(new URL(tenant.url).port);
  bridge = await bridgeLoopbackPort(uplink, tenantPort);
  certDir = mkdtempSync(join(tmpdir(), 'knet-connector-front-'));
  const cert = await bed.cp.servingCertificate('fake-twingate-tenant', [UPLINK_NETWORK.internet]);
  writeFileSync(join(certDir, 'tls.crt'), cert.certPem, { mode: 0o600 });
  writeFileSync(join(certDir, 'tls.key'), cert.keyPem, { mode: 0o600 });
  front = uplink.spawn('node', [
    '-e',
    FRONT,
    join(certDir, 'tls.crt'),
    join(certDir, 'tls.key'),
    String(tenantPort),
    UPLINK_NETWORK.internet,
  ]);
  await front.waitForOutput(/fronting/);
});

afterAll(async () => {
  if (bed && installed)
    await bed.cp.helm(['uninstall', RELEASE, '-n', NS, '--no-hooks', '--wait']).catch(() => undefined);
  try {
    await front?.kill().catch(() => undefined);
    await bridge?.close().catch(() => undefined);
    await bed?.stop();
  } finally {
    await tenant?.stop();
    if (certDir) rmSync(certDir, { recursive: true, force: true });
  }
  expect(await rootNetworkState()).toBe(rootBefore);
});

const node = () => {
  if (!bed) throw new Error('the node did not start');
  return bed;
};
const fakeTenant = () => {
  if (!tenant) throw new Error('the tenant did not start');
  return tenant;
};

/** `repository:tag` → the chart's `image` value. */
function imageValue(ref: string): { repository: string; tag: string } {
  const i = ref.lastIndexOf(':');
  return { repository: ref.slice(0, i), tag: ref.slice(i + 1) };
}

/** The chart's values for this node: the test's tenant and images, everything else as the chart has it. */
function chartValues(): Record<string, unknown> {
  return {
    twingate: { account: ACCOUNT, networkName: NETWORK, apiKey: API_KEY },
    connector: {
      replicas: REPLICAS,
      image: imageValue(images['fake-connector'].ref),
      env: { FAKE_CONNECTOR_TENANT_URL: TENANT_HEARTBEAT_URL },
    },
    init: {
      extraEnv: [
        { name: 'TWINGATE_API_URL', value: TENANT_API_URL },
        { name: 'NODE_EXTRA_CA_CERTS', value: `${SA_DIR}/ca.crt` },
      ],
    },
  };
}

/** The live (not deleted) connectors of the test's remote network, by name. */
function liveConnectors(): TenantConnector[] {
  return fakeTenant()
    .connectors()
    .filter((c) => c.networkName === NETWORK)
    .sort((a, b) => a.name.localeCompare(b.name));
}

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

/**
 * SHA-256 of the token pair in the environment of the connector container's PID 1 (the stand-in,
 * which the launcher exec'd): read in the container, only the digests leave it.
 */
async function connectorTokenDigests(pod: string): Promise<{ access: string; refresh: string }> {
  const probe = `
const env = Object.fromEntries(require('fs').readFileSync('/proc/1/environ', 'utf8').split('\\0').filter(Boolean).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
const h = (s) => require('crypto').createHash('sha256').update(s || '').digest('hex');
console.log(JSON.stringify({ access: h(env.TWINGATE_ACCESS_TOKEN), refresh: h(env.TWINGATE_REFRESH_TOKEN) }));`;
  const out = await kubectlOrReport(
    node(),
    ['exec', '-n', NS, pod, '-c', 'connector', '--', '/nodejs/bin/node', '-e', probe],
    [NS],
    60_000,
  );
  return JSON.parse(out) as { access: string; refresh: string };
}

interface ContainerStatus {
  name: string;
  ready: boolean;
  started?: boolean;
  restartCount: number;
  image: string;
  state: { running?: unknown; terminated?: unknown; waiting?: unknown };
}
/** The fields of a StatefulSet pod this test reads (harness's Pod has no container statuses). */
interface FullPod {
  metadata: { name: string };
  spec: {
    initContainers?: { name: string; image: string; restartPolicy?: string }[];
    containers: { name: string; image: string }[];
  };
  status: {
    phase?: string;
    conditions?: { type: string; status: string }[];
    initContainerStatuses?: ContainerStatus[];
    containerStatuses?: ContainerStatus[];
  };
}

describe('charts/connector on a real node', () => {
  it('installs with helm --wait: every replica Ready, each with its own connector heartbeating the tenant', async () => {
    const b = node();
    const cp = b.cp;
    // connector-init runs as the chart has it by default (init.image is not set here).
    expect(images['connector-init'].ref).toBe(`ghcr.io/knet/connector-init:${chartAppVersion('connector')}`);
    const values = valuesFile(chartValues());
    installed = true;
    const started = Date.now();
    await helmOrReport(
      b,
      [
        'install',
        RELEASE,
        chartDir('connector'),
        '-n',
        NS,
        '--create-namespace',
        '--wait',
        '--timeout=5m',
        '--values',
        values.path,
      ],
      [NS],
    ).finally(values.remove);
    await kubectlOrReport(
      b,
      [
        'wait',
        '--for=condition=Ready',
        'pods',
        '-n',
        NS,
        '-l',
        'app.kubernetes.io/component=connector',
        '--timeout=180s',
      ],
      [NS],
    );
    log(`installed and Ready in ${((Date.now() - started) / 1000).toFixed(1)} s`);

    const listed: Pod[] = await releasePods(cp, NS, RELEASE);
    const pods = listed as unknown as FullPod[];
    expect(pods.map((p) => p.metadata.name).sort()).toEqual([`${RELEASE}-0`, `${RELEASE}-1`]);
    for (const p of pods) {
      const name = p.metadata.name;
      expect({
        name,
        phase: p.status.phase,
        ready: p.status.conditions?.find((c) => c.type === 'Ready')?.status,
      }).toEqual({
        name,
        phase: 'Running',
        ready: 'True',
      });
      // connector-init is the native sidecar (our image), started and ready; the connector container
      // runs the stand-in image; neither restarted.
      expect(p.spec.initContainers?.map((c) => [c.name, c.image, c.restartPolicy])).toEqual([
        ['connector-init', images['connector-init'].ref, 'Always'],
      ]);
      expect(p.spec.containers.map((c) => [c.name, c.image])).toEqual([
        ['connector', images['fake-connector'].ref],
      ]);
      const statuses = [...(p.status.initContainerStatuses ?? []), ...(p.status.containerStatuses ?? [])];
      expect(
        statuses.map((s) => [s.name, s.ready, s.started, s.restartCount, Boolean(s.state.running)]),
      ).toEqual([
        ['connector-init', true, true, 0, true],
        ['connector', true, true, 0, true],
      ]);
    }

    // The tenant: one connector per ordinal, named <release>-<ordinal>, ALIVE from the stand-in's
    // heartbeats with the pair its sidecar generated.
    const connectors = liveConnectors();
    expect(connectors.map((c) => [c.name, c.state, c.tokenGenerations])).toEqual([
      [`${RELEASE}-0`, 'ALIVE', 1],
      [`${RELEASE}-1`, 'ALIVE', 1],
    ]);
    // The claims connector-init wrote: each ordinal holds the connector it created.
    const claims = JSON.parse(
      await cp.kubectlOk(['get', 'configmap', `${RELEASE}-connectors`, '-n', NS, '-o', 'json']),
    ) as { data?: Record<string, string> };
    for (const [ordinal, c] of connectors.entries()) {
      expect(JSON.parse(claims.data?.[`ordinal.${ordinal}`] ?? '{}')).toMatchObject({
        id: c.id,
        name: c.name,
        origin: 'created',
      });
    }
    // Every admin API call came in with the chart's key, over the front's TLS (the only way in).
    const calls = fakeTenant().calls;
    expect(new Set(calls.map((c) => c.key))).toEqual(new Set([API_KEY]));
    expect(calls.filter((c) => c.operation === 'connectorCreate' && c.status === 200)).toHaveLength(REPLICAS);
    expect(calls.filter((c) => c.operation === 'connectorGenerateTokens' && c.status === 200)).toHaveLength(
      REPLICAS,
    );
    expect(front?.output()).toMatch(/connection https from 198\.51\.100\.\d+/);
    expect(front?.output()).not.toMatch(/tls error/);

    for (const [ordinal, c] of connectors.entries()) {
      const pod = `${RELEASE}-${ordinal}`;
      // The connector process (the launcher exec'd /connectord) holds exactly its own connector's
      // current pair, handed over through the memory volume.
      const tokens = fakeTenant().currentTokens(c.id);
      expect(tokens).toBeDefined();
      expect(await connectorTokenDigests(pod)).toEqual({
        access: sha256(tokens!.accessToken),
        refresh: sha256(tokens!.refreshToken),
      });
      // The chart's exec probe, as the kubelet runs it.
      expect(
        await kubectlOrReport(
          b,
          ['exec', '-n', NS, pod, '-c', 'connector', '--', '/connectorctl', 'health'],
          [NS],
        ),
      ).toMatch(/^healthy: last accepted heartbeat \d+ ms ago$/);
      // The chart's hardening holds in the running container: nonroot, no capabilities, no new
      // privileges, the RuntimeDefault seccomp filter, a read-only root.
      const id = await containerIdentity(
        cp,
        listed.find((p) => p.metadata.name === pod)!,
      );
      expect(id).toMatchObject({
        app: '/nodejs/bin/node /connectord',
        appUids: [65532, 65532, 65532, 65532],
        appGids: [65532, 65532, 65532, 65532],
        appCapEff: '0000000000000000',
        appNoNewPrivs: '1',
        appSeccomp: '2',
        uid: 65532,
        rootWrite: 'EROFS',
      });
    }
  });

  it('helm uninstall --wait runs the pre-delete hook Job on the node: it deletes the connectors in the tenant, and nothing of the release is left', async () => {
    const b = node();
    const cp = b.cp;
    const before = liveConnectors();
    expect(before).toHaveLength(REPLICAS);
    expect(await releaseObjects(cp, RELEASE)).not.toEqual([]);
    const deletesBefore = fakeTenant().calls.filter((c) => c.operation === 'connectorDelete').length;
    expect(deletesBefore).toBe(0);

    const started = Date.now();
    await helmOrReport(b, ['uninstall', RELEASE, '-n', NS, '--wait', '--timeout=4m'], [NS]);
    installed = false;
    log(`uninstalled in ${((Date.now() - started) / 1000).toFixed(1)} s`);

    // The hook Job ran on this node: its pod was scheduled, started and completed (the Job and its
    // pod are gone now, hook-succeeded; their events stay).
    const events = JSON.parse(await cp.kubectlOk(['get', 'events', '-n', NS, '-o', 'json'])) as {
      items: { reason: string; involvedObject: { kind: string; name: string } }[];
    };
    const hookPodEvents = events.items
      .filter(
        (e) => e.involvedObject.kind === 'Pod' && e.involvedObject.name.startsWith(`${RELEASE}-uninstall-`),
      )
      .map((e) => e.reason);
    expect(hookPodEvents).toEqual(expect.arrayContaining(['Scheduled', 'Started']));
    expect(
      events.items.some(
        (e) =>
          e.involvedObject.kind === 'Job' &&
          e.involvedObject.name === `${RELEASE}-uninstall` &&
          e.reason === 'Completed',
      ),
    ).toBe(true);

    // The tenant: both connectors deleted by the hook (nobody else calls connectorDelete here).
    const deletes = fakeTenant().calls.filter((c) => c.operation === 'connectorDelete');
    expect(deletes.map((c) => [c.key, c.status])).toEqual(before.map(() => [API_KEY, 200]));
    const deleted = fakeTenant()
      .connectors({ includeDeleted: true })
      .filter((c) => before.some((x) => x.id === c.id))
      .sort((a, b) => a.name.localeCompare(b.name));
    expect(deleted.map((c) => [c.name, c.deleted])).toEqual([
      [`${RELEASE}-0`, true],
      [`${RELEASE}-1`, true],
    ]);

    // Nothing of the release is left in the cluster: no object with its label in any namespace (the
    // pods, which the garbage collector deletes after the StatefulSet, included).
    let left: string[] = [];
    await until(
      () => `nothing of the release left; left: ${left.join(', ')}\n`,
      async () => {
        left = await releaseObjects(cp, RELEASE);
        return left.length === 0;
      },
      120_000,
    ).catch(async (e: unknown) => {
      throw new Error(`${String(e)}\n${await nodeReport(b, [NS])}`);
    });
    expect((await cp.helm(['list', '-A', '-q'])).stdout.trim()).toBe('');
    // …and, once the pods are gone, nothing in the tenant either: no sidecar provisioned a connector
    // again after the hook deleted them.
    expect(liveConnectors()).toEqual([]);
    expect(fakeTenant().calls.filter((c) => c.operation === 'connectorCreate')).toHaveLength(REPLICAS);
  });

  it('stops the node and leaves the root network namespace as it was', async () => {
    const b = node();
    await front?.kill();
    front = undefined;
    await bridge?.close();
    bridge = undefined;
    await b.stop();
    bed = undefined;
    expect(b.leftovers()).toEqual([]);
    expect(await rootNetworkState()).toBe(rootBefore);
  });
});
