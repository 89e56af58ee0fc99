/**
 * ensureImages and checkImage for real: five representative images (pause, busybox, a net app, a
 * node app, the wireguard-go stand-in) built with buildah from docker/*.Dockerfile (or found in the cache), each checked
 * under runc in namespaces of its own.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  chartAppVersion,
  checkImage,
  ensureImages,
  imagesDir,
  workspaceRoot,
  type BuiltImage,
  type CheckResult,
} from '../src';

jest.setTimeout(20 * 60_000);

const log = (l: string) => process.stderr.write(`images: ${l}\n`);
const names = ['pause', 'busybox', 'gateway-init', 'gateway-webhook', 'wireguard-go'] as const;
let images: Record<(typeof names)[number], BuiltImage>;
const checks = new Map<string, CheckResult[]>();
const leftovers = () => readdirSync(tmpdir()).filter((d) => d.startsWith('knet-image-check-'));
let before: string[] = [];

beforeAll(async () => {
  before = leftovers();
  images = await ensureImages(names, log);
  for (const n of names) checks.set(n, await checkImage(images[n], log));
});

describe('ensureImages', () => {
  it('names the images ghcr.io/knet/<name>:<version>, the app images with their chart’s appVersion', () => {
    const charts = join(workspaceRoot(), 'charts');
    expect(images['gateway-init'].ref).toBe(
      `ghcr.io/knet/gateway-init:${chartAppVersion(charts, 'pod-gateway')}`,
    );
    expect(images['gateway-webhook'].ref).toBe(
      `ghcr.io/knet/gateway-webhook:${chartAppVersion(charts, 'pod-gateway')}`,
    );
    expect(images.pause.ref).toMatch(/^ghcr\.io\/knet\/pause:\d+\.\d+(\.\d+)?$/);
    expect(images.busybox.ref).toMatch(/^ghcr\.io\/knet\/busybox:\d+\.\d+\.\d+$/);
  });

  it('writes oci-archives that carry their ref (ctr images import needs it) under the cache', () => {
    for (const n of names) {
      const img = images[n];
      expect(img.archive.startsWith(imagesDir() + '/')).toBe(true);
      expect(existsSync(img.archive)).toBe(true);
      const index = JSON.parse(
        execFileSync('tar', ['-xOf', img.archive, 'index.json'], { encoding: 'utf8' }),
      ) as {
        manifests: { annotations?: Record<string, string> }[];
      };
      expect(index.manifests.map((m) => m.annotations?.['org.opencontainers.image.ref.name'])).toEqual([
        img.ref,
      ]);
      expect(img.sizeBytes).toBeGreaterThan(0);
    }
    // A static pause and busybox are small; the node runtime and the Debian base are not.
    expect(images.pause.sizeBytes).toBeLessThan(2 * 2 ** 20);
    expect(images.busybox.sizeBytes).toBeLessThan(5 * 2 ** 20);
    expect(images['gateway-webhook'].sizeBytes).toBeGreaterThan(images.busybox.sizeBytes);
  });

  it('finds them in the cache the second time, without building', async () => {
    const again = await ensureImages(names, log);
    for (const n of names) expect(again[n]).toEqual({ ...images[n], cached: true });
  });

  it('refuses an unknown image with one line, before building anything', async () => {
    await expect(ensureImages(['gateway-init', 'no-such-image'], log)).rejects.toThrow(
      /^unknown image no-such-image; known: .*gateway-init/,
    );
  });
});

describe('checkImage under runc', () => {
  it.each(names)('%s passes every check', (n) => {
    const results = checks.get(n) ?? [];
    expect(results.length).toBeGreaterThan(0);
    expect(results.filter((r) => !r.ok).map((r) => `${r.check}: ${r.problem}`)).toEqual([]);
  });

  it('ran the net app’s tools in a network namespace of its own (only lo, no host interface)', () => {
    const ip = checks.get('gateway-init')?.find((r) => r.check === 'ip');
    const links = JSON.parse(ip?.stdout ?? '[]') as { ifname: string }[];
    expect(links.map((l) => l.ifname)).toEqual(['lo']);
  });

  it('ran the node app as nonroot with the CA certificates', () => {
    const probe = checks.get('gateway-webhook')?.find((r) => r.check === 'node runtime');
    expect(probe?.argv[0]).toBe('/nodejs/bin/node');
    expect(probe?.stdout).toMatch(/^user=nonroot uid=65532 certs=\d+ tmp=ok/);
  });

  it('made a userspace WireGuard device with wireguard-go, given only NET_ADMIN and /dev/net/tun', () => {
    const device = checks.get('wireguard-go')?.find((r) => r.check === 'device');
    expect(device?.argv).toEqual(['wireguard-go', 'wg0']);
    expect([device?.exitCode, device?.stdout]).toEqual([
      0,
      expect.stringMatching(/Starting wireguard-go version/),
    ]);
  });

  it('stopped pause with SIGTERM: it exited 0 saying so', () => {
    const term = checks.get('pause')?.find((r) => r.check === 'SIGTERM');
    expect(term?.exitCode).toBe(0);
    expect(term?.stderr).toMatch(/Shutting down, got signal: Terminated/);
  });

  it('left no runc state, buildah container or temp dir behind', () => {
    expect(leftovers().filter((d) => !before.includes(d))).toEqual([]);
    const storage = join(imagesDir(), 'storage');
    const containers = execFileSync(
      'buildah',
      [
        '--storage-driver',
        'vfs',
        '--root',
        join(storage, 'root'),
        '--runroot',
        join(storage, 'runroot'),
        'containers',
        '--quiet',
      ],
      { encoding: 'utf8' },
    );
    expect(containers.trim()).toBe('');
  });
});
