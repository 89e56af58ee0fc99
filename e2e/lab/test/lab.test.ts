/**
 * `npm run lab` as a user runs it: the real command in a child process (node --import tsx, as the npm script),
 * with the real scenes, the test bed, network namespaces and the apps' bundles. `--check --json`
 * tours every scene and must pass and leave nothing behind; the refusals (no root, no ip, a lab
 * already running) exit 2 in one line and create nothing; Ctrl-C tears down, also mid-start.
 */
import { spawn, spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MAIN, NODE_TSX, lab, leftBy, root, type Run } from './lab-process';

jest.setTimeout(600_000);

let work: string;
beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'knet-lab-test-'));
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('npm run lab -- --check --json: the whole tour', () => {
  let run: Run;
  let code: number | null;
  const dir = () => join(work, 'tour');

  beforeAll(async () => {
    run = lab(['--check', '--json', '--with-node=false', `--dir=${dir()}`]);
    code = await run.exited;
  });

  it('exits 0 with every scene up and every proof passed', () => {
    expect({ code, stderr: run.stderr() }).toEqual({ code: 0, stderr: '' });
    const listed = spawnSync(process.execPath, [...NODE_TSX.slice(1), MAIN, '--list', '--with-node=false'], {
      cwd: root,
    })
      .stdout.toString()
      .trim()
      .split('\n')
      .map((l) => l.split(/\s+/)[0]);
    expect(listed).toEqual(expect.arrayContaining(['clusters', 'tower', 'pod-gateway', 'connector', 'kilo']));
    const up = run.events.filter((e) => e.event === 'scene').map((e) => [e.scene, e.state]);
    expect(up).toEqual(listed.map((s) => [s, 'up']));
    const proofs = run.events.filter((e) => e.event === 'proof');
    for (const s of listed) expect(proofs.filter((p) => p.scene === s).length).toBeGreaterThan(0);
    expect(proofs.filter((p) => p.ok !== true)).toEqual([]);
    for (const p of proofs) {
      expect(p.command).toEqual(expect.any(String));
      expect(p.result).toEqual(expect.any(String));
      expect(p.ms).toEqual(expect.any(Number));
    }
    expect(run.events.find((e) => e.event === 'summary')).toMatchObject({
      ok: true,
      passed: proofs.length,
      failed: 0,
    });
  });

  it('the proofs show the system doing its job', () => {
    const result = (scene: string, component: RegExp) =>
      String(
        run.events.find(
          (e) => e.event === 'proof' && e.scene === scene && component.test(String(e.component)),
        )?.result,
      );
    expect(result('tower', /kubectl/)).toContain('lab-member-only');
    expect(
      run.events.some(
        (e) => e.event === 'proof' && e.scene === 'pod-gateway' && /kill switch/.test(String(e.component)),
      ),
    ).toBe(true);
    // One connector per ordinal, each its own, ALIVE, and neither of its tokens readable anywhere.
    const connectors = run.events.filter(
      (e) => e.event === 'proof' && e.scene === 'connector' && /^connector-\d+$/.test(String(e.component)),
    );
    expect(connectors.map((e) => e.component)).toEqual(['connector-0', 'connector-1', 'connector-2']);
    for (const e of connectors) {
      expect(String(e.result)).toMatch(
        /^\S+ ALIVE, heartbeat (just now|\d s ago); no token in \d+ Secrets, \d+ ConfigMaps, handoff dir, log$/,
      );
    }
    expect(new Set(connectors.map((e) => String(e.result).split(' ')[0])).size).toBe(3);
    expect(result('connector', /^connector status$/)).toContain('3 distinct connectors');
    // Kilo: one leader per location (Kilo's choice with no hint and public endpoints: the first by
    // name), sessions with the other location and the Peer kgctl connect made; the whole matrix.
    expect(result('kilo', /^location east$/)).toMatch(
      /^leader east-1 198\.51\.100\.\d+\/27 \(\+east-2\); handshakes: west-1 (just now|\d+ s ago), lab-peer (just now|\d+ s ago)$/,
    );
    expect(result('kilo', /^location west$/)).toMatch(
      /^leader west-1 198\.51\.100\.\d+\/27 \(\+west-2\); handshakes: east-1 (just now|\d+ s ago), lab-peer (just now|\d+ s ago)$/,
    );
    expect(result('kilo', /^peer lab-peer$/)).toMatch(
      /^198\.51\.100\.10\/32, latest handshake (just now|\d+ s ago) \(seen by (east|west)-1 from 192\.0\.2\.130:\d+\)/,
    );
    expect(result('kilo', /^ping matrix$/)).toBe('12/12 node→pod pings, lab-peer → 4/4 pods');
    expect(result('kilo', /^kgctl graph$/)).toMatch(
      /^4 nodes, 2 locations, 2 leaders↔lab-peer → \S+\/kilo-graph\.svg, \S+\/kilo-graph\.png/,
    );
  });

  it('tears down and leaves nothing: no namespace, process, temp dir or lab folder', () => {
    expect(run.events.at(-1)).toMatchObject({ event: 'teardown', failures: [], left: [] });
    expect(leftBy(run.child.pid!)).toEqual([]);
    expect(existsSync(dir())).toBe(false);
  });
});

describe('refusals: one line, exit 2, nothing created', () => {
  it('not root', async () => {
    const dir = join(work, 'not-root');
    // uid 65534, but allowed to read the checkout: a clean clone may sit in a root-only directory
    // (mktemp -d is 0700, as in scripts/cold-check.sh), and the lab must get as far as its own check.
    const run = lab(['--check', `--dir=${dir}`], { ...process.env, HOME: work }, [
      'setpriv',
      '--reuid=65534',
      '--regid=65534',
      '--clear-groups',
      '--inh-caps=+dac_read_search',
      '--ambient-caps=+dac_read_search',
      '--',
    ]);
    expect(await run.exited).toBe(2);
    expect(run.stderr()).toMatch(
      /^lab: error: the lab needs root .* but runs as uid 65534: run it as root, e\.g\. sudo npm run lab\n$/,
    );
    expect(existsSync(dir)).toBe(false);
  });

  it('no ip', async () => {
    const dir = join(work, 'no-ip');
    // A PATH with node on it and nothing else (no ip, which lives next to node in /usr/bin here).
    const bin = join(work, 'bin-without-ip');
    mkdirSync(bin, { recursive: true });
    symlinkSync(process.execPath, join(bin, 'node'));
    const run = lab(['--check', `--dir=${dir}`], { ...process.env, PATH: bin });
    expect(await run.exited).toBe(2);
    expect(run.stderr()).toMatch(
      /^lab: error: the lab needs iproute2's `ip netns`, which failed here \(.*\): install iproute2 \(npm run setup does\)\n$/,
    );
    expect(existsSync(dir)).toBe(false);
  });

  it('a lab already running from the folder', async () => {
    const dir = join(work, 'running');
    const other = spawn('sleep', ['60']);
    try {
      mkdirSync(dir);
      writeFileSync(join(dir, 'lab.pid'), `${other.pid}\n`);
      const run = lab(['--check', `--dir=${dir}`]);
      expect(await run.exited).toBe(2);
      expect(run.stderr()).toBe(
        `lab: error: a lab is already running from ${dir} (pid ${other.pid}, ${dir}/lab.pid): use it, or stop it with Ctrl-C in its terminal or kill ${other.pid}\n`,
      );
      expect(readdirSync(dir)).toEqual(['lab.pid']);
      expect(readFileSync(join(dir, 'lab.pid'), 'utf8')).toBe(`${other.pid}\n`);
      expect(leftBy(run.child.pid!)).toEqual([]);
    } finally {
      other.kill();
    }
  });

  it('an unknown scene', async () => {
    const run = lab(['--only', 'towr', `--dir=${join(work, 'unknown')}`]);
    expect(await run.exited).toBe(2);
    expect(run.stderr()).toMatch(
      /^lab: error: --only: no scene "towr"; scenes are clusters, node, tower, pod-gateway, connector, kilo.*\n$/,
    );
  });
});

describe('Ctrl-C (SIGINT) tears everything down', () => {
  it('while running (the live table): exit 0, nothing left', async () => {
    const dir = join(work, 'sigint');
    const run = lab(['--only=clusters', '--json', `--dir=${dir}`]);
    await run.waitFor((e) => e.event === 'ready');
    expect(existsSync(join(dir, 'member.kubeconfig'))).toBe(true);
    run.child.kill('SIGINT');
    expect(await run.exited).toBe(0);
    expect(run.events.at(-1)).toMatchObject({ event: 'teardown', failures: [], left: [] });
    expect(leftBy(run.child.pid!)).toEqual([]);
    expect(existsSync(dir)).toBe(false);
  });

  it('while a scene is coming up: exit 130, nothing left', async () => {
    const dir = join(work, 'sigint-early');
    const run = lab(['--only=pod-gateway', '--check', '--json', '--with-node=false', `--dir=${dir}`]);
    await run.waitFor((e) => e.event === 'scene' && e.scene === 'clusters');
    await run.waitFor((e) => e.event === 'progress' && String(e.line).startsWith('pod-gateway:'));
    run.child.kill('SIGINT');
    expect(await run.exited).toBe(130);
    expect(run.events.at(-1)).toMatchObject({ event: 'teardown', failures: [], left: [] });
    expect(leftBy(run.child.pid!)).toEqual([]);
    expect(existsSync(dir)).toBe(false);
  });
});
