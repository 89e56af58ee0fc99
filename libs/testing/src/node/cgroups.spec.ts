import * as fs from 'node:fs';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cgroupTree } from './cgroups';

// readdirSync passes through unless a test says otherwise (to remove a folder mid-walk).
jest.mock('node:fs', () => {
  const real = jest.requireActual<typeof import('node:fs')>('node:fs');
  return { ...real, readdirSync: jest.fn(real.readdirSync) };
});
const readdir = fs.readdirSync as unknown as jest.Mock;
const realReaddir = jest.requireActual<typeof import('node:fs')>('node:fs').readdirSync;

describe('cgroupTree', () => {
  let mount: string;
  beforeEach(() => {
    mount = mkdtempSync(join(tmpdir(), 'knet-cgroups-'));
    mkdirSync(join(mount, 'knet-node-x', 'kubepods', 'pod1', 'c1'), { recursive: true });
    mkdirSync(join(mount, 'knet-node-x', 'kubepods', 'pod2'), { recursive: true });
  });
  afterEach(() => {
    readdir.mockImplementation(realReaddir);
    rmSync(mount, { recursive: true, force: true });
  });

  it('lists every folder of the node, deepest first', () => {
    const root = join(mount, 'knet-node-x');
    expect(cgroupTree('knet-node-x', [mount])).toEqual([
      join(root, 'kubepods', 'pod1', 'c1'),
      join(root, 'kubepods', 'pod1'),
      join(root, 'kubepods', 'pod2'),
      join(root, 'kubepods'),
      root,
    ]);
    expect(cgroupTree('knet-node-y', [mount])).toEqual([]);
  });

  it('leaves out a folder that goes while it is walked (runc removing a container), without an error', () => {
    const root = join(mount, 'knet-node-x');
    readdir.mockImplementation((path: fs.PathLike, options: never) => {
      if (String(path) === join(root, 'kubepods', 'pod1')) rmSync(String(path), { recursive: true });
      return realReaddir(path, options);
    });
    expect(cgroupTree('knet-node-x', [mount])).toEqual([
      join(root, 'kubepods', 'pod2'),
      join(root, 'kubepods'),
      root,
    ]);
  });

  it('still throws what is not a folder going away', () => {
    readdir.mockImplementation(() => {
      throw Object.assign(new Error('EACCES: permission denied'), { code: 'EACCES' });
    });
    expect(() => cgroupTree('knet-node-x', [mount])).toThrow('EACCES');
  });
});
