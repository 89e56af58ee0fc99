import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ControlPlane,
  FakeTwingateTenant,
  ManagedProcess,
  appBundle,
  run,
  type FakeTenantOptions,
} from '@knet/testing';

export const NS = 'connectors';
export const FAKE_CONNECTOR = join(__dirname, 'fake-connector.mjs');

/** A pod of the connector StatefulSet, as processes: the sidecar and the connector container. */
export interface Pod {
  release: string;
  ordinal: number;
  handoffDir: string;
  sidecar: ManagedProcess;
  connector?: ManagedProcess;
}

/**
 * The real API server, a fake tenant, and the app as it ships (its bundle): pods are processes with
 * ordinals, each with its own handoff dir; the sidecar authenticates as the release's
 * ServiceAccount with the chart's Role (get/update on `<release>-connectors` only).
 */
export class ConnectorBed {
  readonly pods: Pod[] = [];
  private readonly kubeconfigs = new Map<string, Promise<string>>();
  private seq = 0;

  private constructor(
    readonly cp: ControlPlane,
    readonly tenant: FakeTwingateTenant,
    readonly bundle: string,
    readonly dir: string,
  ) {}

  static async start(tenant: FakeTenantOptions = {}): Promise<ConnectorBed> {
    const dir = mkdtempSync(join(tmpdir(), 'knet-connector-bed-'));
    const started = await Promise.allSettled([
      ControlPlane.start({ controllerManager: false }),
      FakeTwingateTenant.start(tenant),
      appBundle('connector-init'),
    ] as const);
    const [cp, t, bundle] = started;
    if (cp.status === 'rejected' || t.status === 'rejected' || bundle.status === 'rejected') {
      if (cp.status === 'fulfilled') await cp.value.stop();
      if (t.status === 'fulfilled') await t.value.stop();
      rmSync(dir, { recursive: true, force: true });
      throw [cp, t, bundle].flatMap((r) => (r.status === 'rejected' ? [r.reason as unknown] : []))[0];
    }
    await cp.value.kubectlOk(['create', 'namespace', NS]);
    return new ConnectorBed(cp.value, t.value, bundle.value, dir);
  }

  /** The release's ServiceAccount, Role and claims ConfigMap, as the chart makes them. */
  release(release: string): Promise<string> {
    let made = this.kubeconfigs.get(release);
    if (!made) {
      made = this.makeRelease(release);
      this.kubeconfigs.set(release, made);
    }
    return made;
  }

  private async makeRelease(release: string): Promise<string> {
    const cm = `${release}-connectors`;
    const ns = ['-n', NS];
    await this.cp.kubectlOk(['create', 'configmap', cm, ...ns]);
    await this.cp.kubectlOk(['create', 'serviceaccount', release, ...ns]);
    await this.cp.kubectlOk([
      'create',
      'role',
      release,
      '--verb=get,update,patch',
      '--resource=configmaps',
      `--resource-name=${cm}`,
      ...ns,
    ]);
    await this.cp.kubectlOk([
      'create',
      'rolebinding',
      release,
      `--role=${release}`,
      `--serviceaccount=${NS}:${release}`,
      ...ns,
    ]);
    return this.cp.serviceAccountKubeconfig(NS, release);
  }

  /** The command line of a `connector-init <command>` run against this bed. */
  async args(
    command: 'provision' | 'gc' | 'status',
    release: string,
    extra: string[] = [],
    network = 'lab',
  ): Promise<string[]> {
    return [
      this.bundle,
      command,
      '--api-url',
      this.tenant.url,
      '--network',
      network,
      '--release',
      release,
      '--namespace',
      NS,
      '--kubeconfig',
      await this.release(release),
      ...extra,
    ];
  }

  env(apiKey: string): NodeJS.ProcessEnv {
    return { PATH: process.env['PATH'], TWINGATE_API_KEY: apiKey, HOME: this.dir };
  }

  /** Starts the sidecar of `release`'s pod `ordinal` (not its connector container). */
  async startSidecar(
    release: string,
    ordinal: number,
    o: { apiKey?: string; extra?: string[]; network?: string } = {},
  ): Promise<Pod> {
    const handoffDir = join(this.dir, `${release}-${ordinal}`);
    mkdirSync(handoffDir, { recursive: true });
    const args = await this.args(
      'provision',
      release,
      [
        '--ordinal',
        String(ordinal),
        '--handoff-dir',
        handoffDir,
        '--launcher-shell',
        '/bin/busybox',
        '--metrics-port',
        '0',
        '--metrics-host',
        '127.0.0.1',
        '--reuse-min-age',
        '0s',
        ...(o.extra ?? []),
      ],
      o.network,
    );
    const sidecar = ManagedProcess.start(
      `${release}-${ordinal}-init-${++this.seq}`,
      process.execPath,
      args,
      join(this.dir, `${release}-${ordinal}-init-${this.seq}.log`),
      this.env(o.apiKey ?? 'test-key'),
    );
    const existing = this.pods.find((p) => p.release === release && p.ordinal === ordinal);
    if (existing) {
      existing.sidecar = sidecar;
      return existing;
    }
    const pod: Pod = { release, ordinal, handoffDir, sidecar };
    this.pods.push(pod);
    return pod;
  }

  /** Starts the pod's connector container: the launcher the sidecar installed, running the fake connector. */
  startConnector(pod: Pod): ManagedProcess {
    const n = ++this.seq;
    pod.connector = ManagedProcess.start(
      `${pod.release}-${pod.ordinal}-connector-${n}`,
      join(pod.handoffDir, 'sh'),
      [join(pod.handoffDir, 'launch'), process.execPath, FAKE_CONNECTOR, this.tenant.url],
      join(this.dir, `${pod.release}-${pod.ordinal}-connector-${n}.log`),
      { PATH: process.env['PATH'] }, // setpriv runs first; handoff.spec proves the launcher needs no PATH
    );
    return pod.connector;
  }

  /** Runs a one-shot command (gc, status, a provision expected to fail) to completion. */
  async runCommand(
    command: 'provision' | 'gc' | 'status',
    release: string,
    o: { apiKey?: string; extra?: string[]; env?: NodeJS.ProcessEnv; network?: string } = {},
  ) {
    const args = await this.args(command, release, o.extra ?? [], o.network);
    return run(process.execPath, args, {
      env: { ...this.env(o.apiKey ?? 'test-key'), ...o.env },
      timeoutMs: 60_000,
    });
  }

  /** The release's claims ConfigMap data, as the admin sees it. */
  async claims(release: string): Promise<Record<string, string>> {
    const out = await this.cp.kubectlOk([
      'get',
      'configmap',
      `${release}-connectors`,
      '-n',
      NS,
      '-o',
      'json',
    ]);
    return (JSON.parse(out) as { data?: Record<string, string> }).data ?? {};
  }

  log(p: ManagedProcess): string {
    try {
      return readFileSync(p.logFile, 'utf8');
    } catch {
      return '';
    }
  }

  async stopPods(filter: (p: Pod) => boolean = () => true): Promise<void> {
    await Promise.all(
      this.pods.filter(filter).flatMap((p) => [p.connector?.stop(1000), p.sidecar.stop(2000)]),
    );
  }

  async stop(): Promise<void> {
    await this.stopPods().catch(() => undefined);
    await this.tenant.stop().catch(() => undefined);
    await this.cp.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
