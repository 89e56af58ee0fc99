/**
 * The images `npm run images` builds, their refs, the Dockerfile each one builds from and the
 * build arguments it gets, and the content keys of the cache. Pure (reads files, runs nothing).
 */
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { join, relative } from 'node:path';
import { UsageError } from '@knet/runtime';
import { load as parseYaml } from 'js-yaml';

/** Where the images are published: `ghcr.io/knet/<name>:<version>`. */
export const IMAGE_REGISTRY = 'ghcr.io/knet';

/** `org.opencontainers.image.source` of every image. */
export const IMAGE_SOURCE = 'https://github.com/knet/knet';

/**
 * What an image is made of:
 * - `node`: an app that needs only Node.js, on the distroless-like node runtime (non-root);
 * - `net`: an app that calls ip, bridge, iptables, sysctl, ping or wg, on the Debian base (root);
 * - `pause`: Kubernetes' pause, the kubelet's sandbox image;
 * - `busybox`: Debian's static busybox and its applets, for test pods;
 * - `wireguard-go`: Debian's wireguard-go alone, a stand-in for the public image kilo-agent's chart
 *   names for its userspace WireGuard sidecar (masipcat/wireguard-go-docker), which cannot be
 *   pulled here. For tests; never a chart default;
 * - `fake-connector`: a TEST stand-in for the vendor's connector image (twingate/connector) on the
 *   node runtime: /connectord runs libs/testing/assets/fake-connector.mjs, /connectorctl health
 *   answers the chart's probes. Never a chart default.
 */
export type ImageKind = 'node' | 'net' | 'pause' | 'busybox' | 'wireguard-go' | 'fake-connector';

export interface ImageRecipe {
  name: string;
  kind: ImageKind;
  /** A file of docker/. */
  dockerfile: string;
  /** The chart whose appVersion is the image's tag (apps only). */
  chart?: string;
  /** Images of this list that must be built first (their refs are build arguments). */
  needs?: readonly string[];
}

const app = (name: string, kind: 'node' | 'net', dockerfile: string, chart: string): ImageRecipe => ({
  name,
  kind,
  dockerfile,
  chart,
});

/** Every image, by name. An app's image carries `dist/apps/<name>/`, the app's bundle folder. */
export const IMAGES: Readonly<Record<string, ImageRecipe>> = Object.fromEntries(
  [
    app('tower-proxy', 'node', 'tower-proxy.Dockerfile', 'tower-proxy'),
    app('tower-agent', 'node', 'tower-agent.Dockerfile', 'tower-agent'),
    app('gateway-webhook', 'node', 'node-app.Dockerfile', 'pod-gateway'),
    app('capi-packet-manager', 'node', 'node-app.Dockerfile', 'capi-packet-manager'),
    // The CLI has no chart of its own; its build ships capi-packet-manager's clusterctl bundle.
    app('capi-packet', 'node', 'node-app.Dockerfile', 'capi-packet-manager'),
    { ...app('connector-init', 'node', 'connector-init.Dockerfile', 'connector'), needs: ['busybox'] },
    app('gateway-init', 'net', 'net-app.Dockerfile', 'pod-gateway'),
    app('gateway-sidecar', 'net', 'net-app.Dockerfile', 'pod-gateway'),
    app('client-init', 'net', 'net-app.Dockerfile', 'pod-gateway'),
    app('client-sidecar', 'net', 'net-app.Dockerfile', 'pod-gateway'),
    app('kilo-agent', 'net', 'net-app.Dockerfile', 'kilo-agent'),
    app('kgctl', 'net', 'net-app.Dockerfile', 'kilo-agent'),
    { name: 'pause', kind: 'pause', dockerfile: 'pause.Dockerfile' } satisfies ImageRecipe,
    { name: 'busybox', kind: 'busybox', dockerfile: 'busybox.Dockerfile' } satisfies ImageRecipe,
    {
      name: 'wireguard-go',
      kind: 'wireguard-go',
      dockerfile: 'wireguard-go.Dockerfile',
    } satisfies ImageRecipe,
    {
      name: 'fake-connector',
      kind: 'fake-connector',
      dockerfile: 'fake-connector.Dockerfile',
    } satisfies ImageRecipe,
  ].map((r) => [r.name, r]),
);

/** The Dockerfile of the node-only apps' runtime (built locally, not published). */
export const NODE_RUNTIME_DOCKERFILE = 'node-runtime.Dockerfile';

/**
 * The TEST stand-in for the vendor's connector image (`fake-connector`): its tag (it follows no
 * chart) and the workspace files its Dockerfile copies, staged into the build context at the same
 * paths and covered by its content key.
 */
export const FAKE_CONNECTOR_IMAGE = {
  version: 'test',
  files: [
    'libs/testing/assets/fake-connector.mjs',
    'libs/testing/assets/fake-connector-image/connectord',
    'libs/testing/assets/fake-connector-image/connectorctl',
  ],
} as const;

/** Whether the image carries an app bundle (`dist/apps/<name>/`). */
export function isAppImage(recipe: ImageRecipe): boolean {
  return recipe.kind === 'node' || recipe.kind === 'net';
}

/**
 * The recipes of `names` and of the images they need, dependencies first; an unknown name is one
 * line that lists the known ones.
 */
export function resolveImages(names: readonly string[]): ImageRecipe[] {
  const unknown = names.filter((n) => !Object.hasOwn(IMAGES, n));
  if (unknown.length > 0) {
    throw new UsageError(
      `unknown image${unknown.length > 1 ? 's' : ''} ${unknown.join(', ')}; known: ${Object.keys(IMAGES).join(', ')}`,
    );
  }
  const out: ImageRecipe[] = [];
  const add = (name: string) => {
    const r = IMAGES[name] as ImageRecipe;
    if (out.includes(r)) return;
    for (const dep of r.needs ?? []) add(dep);
    out.push(r);
  };
  for (const n of names) add(n);
  return out;
}

/** `appVersion` of `charts/<chart>/Chart.yaml`. */
export function chartAppVersion(chartsDir: string, chart: string): string {
  const path = join(chartsDir, chart, 'Chart.yaml');
  const doc = parseYaml(readFileSync(path, 'utf8')) as { appVersion?: unknown } | null;
  const v = doc?.appVersion;
  if (typeof v !== 'string' || v === '')
    throw new Error(`${path}: no appVersion (a string) to tag the image with`);
  return v;
}

/** `ghcr.io/knet/<name>:<version>`. */
export function imageRef(name: string, version: string): string {
  if (!/^[a-z0-9][a-z0-9._-]*$/.test(name))
    throw new Error(`image name ${JSON.stringify(name)} is not a valid repository name`);
  if (!/^[\w][\w.-]{0,127}$/.test(version))
    throw new Error(`image tag ${JSON.stringify(version)} is not a valid tag`);
  return `${IMAGE_REGISTRY}/${name}:${version}`;
}

/** `TAG ?= 3.10.1` of Kubernetes' build/pause/Makefile: the pause image's version. */
export function pauseVersion(makefile: string): string {
  const m = /^TAG\s*\?=\s*(\S+)\s*$/m.exec(makefile);
  if (!m?.[1]) throw new Error('no `TAG ?= <version>` line in build/pause/Makefile');
  return m[1];
}

/** `BusyBox v1.35.0 (Debian 1:1.35.0-4+deb12u1+b1) multi-call binary.` → `1.35.0`. */
export function busyboxVersion(banner: string): string {
  const m = /^BusyBox v(\d+\.\d+\.\d+)/m.exec(banner);
  if (!m?.[1])
    throw new Error(`cannot read busybox's version from ${JSON.stringify(banner.split('\n')[0] ?? '')}`);
  return m[1];
}

/**
 * The upstream version of an installed Debian package, from a dpkg status file (`/var/lib/dpkg/status`):
 * `0.0.20220316-1+b4` → `0.0.20220316` (no epoch, no Debian revision), a valid image tag.
 */
export function debianUpstreamVersion(status: string, pkg: string): string {
  for (const para of status.split(/\n\n+/)) {
    if (!new RegExp(`^Package: ${pkg.replace(/[.+]/g, '\\$&')}$`, 'm').test(para)) continue;
    if (!/^Status: install ok installed$/m.test(para)) break;
    const v = /^Version: (?:\d+:)?([^\s]+?)(?:-[^-\s]+)?$/m.exec(para)?.[1];
    if (v && /^[\w][\w.]*$/.test(v)) return v;
    break;
  }
  throw new Error(`the Debian base has no installed package ${pkg} with a usable version (dpkg status)`);
}

/**
 * The `ARG` lines of a Dockerfile (before or after its FROM lines): name → default (`undefined`
 * when it has none). Quoted defaults are unquoted; a line continued with `\` is joined.
 */
export function dockerfileArgs(text: string): Map<string, string | undefined> {
  const args = new Map<string, string | undefined>();
  const lines = text.replace(/\\\r?\n/g, ' ').split(/\r?\n/);
  for (const line of lines) {
    const m = /^\s*ARG\s+([A-Za-z_][A-Za-z0-9_]*)(?:=(.*))?$/i.exec(line);
    if (!m?.[1]) continue;
    const raw = m[2]?.trim();
    const value = raw === undefined ? undefined : /^(["']).*\1$/.test(raw) ? raw.slice(1, -1) : raw;
    if (!args.has(m[1]) || value !== undefined) args.set(m[1], value);
  }
  return args;
}

/**
 * The build arguments passed to a Dockerfile, checked against its ARG lines: every one must be
 * declared (docker only warns about the others, and the build then silently uses its default).
 */
export function checkedBuildArgs(dockerfile: string, text: string, args: Record<string, string>): string[] {
  const declared = dockerfileArgs(text);
  const missing = Object.keys(args).filter((k) => !declared.has(k));
  if (missing.length > 0) {
    throw new Error(`docker/${dockerfile} declares no ARG ${missing.join(', ')}; add it or stop passing it`);
  }
  return Object.entries(args)
    .sort(([a], [b]) => a.localeCompare(b))
    .flatMap(([k, v]) => ['--build-arg', `${k}=${v}`]);
}

/** What the build arguments of an image are made of: its tag, and the refs of the images it builds FROM. */
export interface BuildArgInputs {
  version: string;
  /** The Debian base (net, busybox) or the node runtime (node); pause builds FROM scratch. */
  baseImage?: string;
  /** connector-init's busybox. */
  busyboxImage?: string;
}

/**
 * The build arguments of an image: VERSION and SOURCE (labels), APP for the Dockerfiles shared by
 * several apps, BASE_IMAGE (BASE_SETUP=none: the local base has the packages, no RUN step), and
 * BUSYBOX_IMAGE for connector-init.
 */
export function buildArgsFor(r: ImageRecipe, i: BuildArgInputs): Record<string, string> {
  const args: Record<string, string> = { VERSION: i.version, SOURCE: IMAGE_SOURCE };
  if (r.dockerfile === 'node-app.Dockerfile' || r.dockerfile === 'net-app.Dockerfile') args['APP'] = r.name;
  if (r.kind !== 'pause') {
    if (!i.baseImage) throw new Error(`image ${r.name} needs a base image`);
    args['BASE_IMAGE'] = i.baseImage;
  }
  if (r.kind === 'net' || r.kind === 'busybox' || r.kind === 'wireguard-go') args['BASE_SETUP'] = 'none';
  if (r.needs?.includes('busybox')) {
    if (!i.busyboxImage) throw new Error(`image ${r.name} needs the busybox image`);
    args['BUSYBOX_IMAGE'] = i.busyboxImage;
  }
  return args;
}

/** The Debian packages a Dockerfile installs on a public base: its `ARG PACKAGES="…"` default. */
export function dockerfilePackages(text: string): string[] {
  return (dockerfileArgs(text).get('PACKAGES') ?? '').split(/\s+/).filter(Boolean);
}

/** A short content key: sha256 over the parts in order, 16 hex digits. */
export function contentKey(parts: readonly (string | Buffer)[]): string {
  const h = createHash('sha256');
  for (const p of parts) {
    const b = typeof p === 'string' ? Buffer.from(p) : p;
    h.update(`${b.length}:`).update(b);
  }
  return h.digest('hex').slice(0, 16);
}

/**
 * The entries of a folder for a content key: relative path, type and mode bits that matter
 * (executable), and content or link target, sorted. A missing folder is an error naming it.
 */
export function treeParts(dir: string): (string | Buffer)[] {
  if (!existsSync(dir)) throw new Error(`${dir} does not exist`);
  const out: [string, (string | Buffer)[]][] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      const rel = relative(dir, p);
      const st = lstatSync(p);
      if (st.isSymbolicLink()) out.push([rel, [`link ${rel}`, readlinkSync(p)]]);
      else if (st.isDirectory()) {
        out.push([rel, [`dir ${rel}`]]);
        walk(p);
      } else out.push([rel, [`file ${rel} ${st.mode & 0o111 ? 'x' : '-'}`, readFileSync(p)]]);
    }
  };
  walk(dir);
  return out.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).flatMap(([, parts]) => parts);
}
