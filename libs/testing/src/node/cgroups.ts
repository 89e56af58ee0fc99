import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmdirSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';

/**
 * The kubelet's cgroup root for one node: a folder of that name at the top of every cgroup v1
 * hierarchy (this VM has no cgroup v2), made before the kubelet starts and removed at teardown, so a
 * node never leaves `/kubepods` behind and two nodes never share one.
 */

/** Mount points of the cgroup v1 hierarchies (from /proc/self/mountinfo), one per hierarchy. */
export function cgroupV1Mounts(mountinfo = readFileSync('/proc/self/mountinfo', 'utf8')): string[] {
  const out = new Set<string>();
  for (const line of mountinfo.split('\n')) {
    const [left, right] = line.split(' - ');
    if (!left || !right) continue;
    const fstype = right.split(' ')[0];
    if (fstype !== 'cgroup') continue;
    const mountPoint = left.split(' ')[4];
    if (mountPoint) out.add(mountPoint);
  }
  return [...out].sort();
}

/** Makes `/<name>` in every hierarchy; cpuset gets its parent's cpus and mems (it starts empty). */
export function createCgroupRoot(name: string, mounts = cgroupV1Mounts()): void {
  for (const m of mounts) {
    const dir = join(m, name);
    if (!existsSync(dir)) mkdirSync(dir);
    for (const f of ['cpuset.cpus', 'cpuset.mems']) {
      const parent = join(m, f);
      if (existsSync(parent) && readFileSync(join(dir, f), 'utf8').trim() === '') {
        writeFileSync(join(dir, f), readFileSync(parent, 'utf8'));
      }
    }
  }
}

/**
 * Every folder under `/<name>` in every hierarchy, deepest first. A folder that goes while it is
 * walked (runc and the kubelet remove a container's cgroups at any time) is left out, not an error.
 */
export function cgroupTree(name: string, mounts = cgroupV1Mounts()): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    let entries;
    try {
      entries = readdirSync(d, { withFileTypes: true });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw e;
    }
    for (const e of entries) {
      if (e.isDirectory()) walk(join(d, e.name));
    }
    out.push(d);
  };
  for (const m of mounts) {
    const root = join(m, name);
    if (existsSync(root) && statSync(root).isDirectory()) walk(root);
  }
  return out;
}

/** Pids in the node's cgroups (any hierarchy). */
export function cgroupPids(name: string, mounts = cgroupV1Mounts()): number[] {
  const pids = new Set<number>();
  for (const d of cgroupTree(name, mounts)) {
    try {
      for (const l of readFileSync(join(d, 'cgroup.procs'), 'utf8').split('\n')) {
        const n = Number(l);
        if (Number.isInteger(n) && n > 0) pids.add(n);
      }
    } catch {
      // removed meanwhile
    }
  }
  return [...pids];
}

/**
 * Thaws, then SIGKILLs, every process in the node's cgroups (runc freezes a cgroup while it kills or
 * updates a container, and a frozen process does not die), then removes the folders deepest first.
 * Returns the folders that could not be removed (a process that would not die), empty when all went.
 */
export async function removeCgroupRoot(name: string, mounts = cgroupV1Mounts()): Promise<string[]> {
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  for (let round = 0; round < 100; round++) {
    const pids = cgroupPids(name, mounts);
    if (pids.length === 0) break;
    for (const d of cgroupTree(name, mounts)) {
      try {
        if (existsSync(join(d, 'freezer.state'))) writeFileSync(join(d, 'freezer.state'), 'THAWED');
      } catch {
        // removed meanwhile
      }
    }
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    await sleep(100);
  }
  let left: string[] = [];
  for (let attempt = 0; attempt < 10; attempt++) {
    left = [];
    for (const d of cgroupTree(name, mounts)) {
      try {
        rmdirSync(d);
      } catch {
        left.push(d);
      }
    }
    if (left.length === 0) break;
    await sleep(200);
  }
  return left;
}

/** Names of node cgroup roots at the top of any hierarchy that start with `prefix`. */
export function cgroupRootsWithPrefix(prefix: string, mounts = cgroupV1Mounts()): string[] {
  const names = new Set<string>();
  for (const m of mounts) {
    try {
      for (const e of readdirSync(m, { withFileTypes: true })) {
        if (e.isDirectory() && e.name.startsWith(prefix)) names.add(e.name);
      }
    } catch {
      // unreadable hierarchy
    }
  }
  return [...names].sort();
}
