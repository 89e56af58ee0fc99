import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { IMAGES, isAppImage, shippedNodeFlags, workspaceRoot } from '../src';

const dockerDir = join(workspaceRoot(), 'docker');
/** The Dockerfiles of the app images (pause, busybox and the node runtime run no /app/main.js). */
const dockerfiles = [
  ...new Set(
    Object.values(IMAGES)
      .filter(isAppImage)
      .map((r) => r.dockerfile),
  ),
].sort();

const nodeAccepts = (flags: string[]) =>
  spawnSync(process.execPath, [...flags, '-e', 'process.exit(0)'], { encoding: 'utf8' });

describe('shippedNodeFlags', () => {
  it('finds the docker folder’s images', () => {
    expect(dockerfiles).toEqual(expect.arrayContaining(['tower-proxy.Dockerfile', 'net-app.Dockerfile']));
    for (const f of dockerfiles) expect(readdirSync(dockerDir)).toContain(f);
  });

  it.each(dockerfiles)('%s: its node flags are flags this node accepts', (file) => {
    const flags = shippedNodeFlags(file);
    const r = nodeAccepts(flags);
    expect([r.status, r.stderr]).toEqual([0, '']);
  });

  it('would notice a flag node refuses (the check above can fail)', () => {
    const r = nodeAccepts(['--no-such-v8-flag-here']);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/bad option/);
  });

  describe('refuses an ENTRYPOINT it cannot read, naming the file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'knet-image-'));
    afterAll(() => rmSync(dir, { recursive: true, force: true }));
    it.each([
      ['none', 'FROM scratch\n', /x\.Dockerfile: expected one ENTRYPOINT .*, found 0/],
      ['shell form', 'ENTRYPOINT node /app/main.js\n', /\(exec form\), got node \/app\/main\.js/],
      ['not node', 'ENTRYPOINT ["/bin/sh", "/app/main.js"]\n', /got \["\/bin\/sh"/],
      ['another script', 'ENTRYPOINT ["node", "/app/other.js"]\n', /got \["node", "\/app\/other\.js"\]/],
      ['a non-flag', 'ENTRYPOINT ["node", "-r", "x", "/app/main.js"]\n', /got \["node", "-r"/],
      ['two', 'ENTRYPOINT ["node", "/app/main.js"]\nENTRYPOINT ["node", "/app/main.js"]\n', /found 2/],
    ])('%s', (_name, text, message) => {
      writeFileSync(join(dir, 'x.Dockerfile'), text);
      expect(() => shippedNodeFlags('x.Dockerfile', dir)).toThrow(message);
    });
    it('reads the flags of a good one', () => {
      writeFileSync(
        join(dir, 'x.Dockerfile'),
        'ENTRYPOINT ["/nodejs/bin/node", "--a", "--b=1", "/app/main.js"]\n',
      );
      expect(shippedNodeFlags('x.Dockerfile', dir)).toEqual(['--a', '--b=1']);
    });
  });
});
