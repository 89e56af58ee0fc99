import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CommandError } from './errors';
import { ipArgs } from './ip-args';
import type { CommandRunner, Logger } from './runner';
import {
  parseWgDump,
  parseWgDumpAll,
  renderWgConfig,
  wgSetArgs,
  type WgConfig,
  type WgInterfaceState,
  type WgSetOptions,
} from './wireguard-format';

export type WgImplementation = 'kernel' | 'userspace';

/** Typed `wg` (wireguard-tools). Real: {@link ExecWireGuard}; in-memory: FakeWireGuard. */
export interface WireGuard {
  /**
   * Creates the interface: `ip link add NAME type wireguard`, or with `auto` (default), when the
   * kernel has no WireGuard, `wireguard-go NAME` (userspace; its control socket lives in
   * /var/run/wireguard of the caller's mount namespace, where `wg` must run too).
   */
  createInterface(
    name: string,
    options?: { implementation?: 'auto' | WgImplementation },
  ): Promise<WgImplementation>;
  /** `ip link del dev NAME` (wireguard-go exits when its tun device goes away). */
  deleteInterface(name: string): Promise<void>;
  /** Incremental change (`wg set`). Keys go through 0600 temp files, never argv. */
  set(iface: string, options: WgSetOptions): Promise<void>;
  /** Makes the interface match `config` exactly, keeping sessions of unchanged peers (`wg syncconf`). */
  syncconf(iface: string, config: WgConfig): Promise<void>;
  /** `wg show IFACE dump`, parsed. */
  show(iface: string): Promise<WgInterfaceState>;
  /** `wg show all dump`, parsed. */
  showAll(): Promise<WgInterfaceState[]>;
}

/**
 * Writes each secret to its own 0600 file in a fresh 0700 temp dir, runs `fn`, then removes them.
 * (Not /dev/stdin: Node gives children a socket as stdin, which `wg` cannot fopen.)
 */
async function withSecretFiles<T>(
  secrets: readonly string[],
  fn: (paths: string[]) => Promise<T>,
): Promise<T> {
  if (secrets.length === 0) return fn([]);
  const dir = await mkdtemp(join(tmpdir(), 'knet-wg-'));
  try {
    const paths = secrets.map((_, i) => join(dir, `secret-${i}`));
    await Promise.all(
      secrets.map((s, i) => writeFile(paths[i] as string, s.endsWith('\n') ? s : `${s}\n`, { mode: 0o600 })),
    );
    return await fn(paths);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * What wireguard-go's stderr says went wrong: its `ERROR:` lines without the interface and time
 * prefix (`ERROR: (wg0) 2026/12/06 19:34:45 Failed to create TUN device: …`), else the lines that
 * are not its "wireguard-go is not required" banner box.
 */
export function wireguardGoError(stderr: string): string {
  const lines = stderr.split('\n').map((l) => l.trim());
  const errors = lines
    .filter((l) => l.startsWith('ERROR:'))
    .map((l) => l.replace(/^ERROR:\s*(\(\S+\)\s*)?(\d{4}\/\d\d\/\d\d \d\d:\d\d:\d\d\s*)?/, ''));
  const rest = errors.length > 0 ? errors : lines.filter((l) => l !== '' && !/^[│┌└]/.test(l));
  return rest.join('; ') || 'it printed nothing';
}

export class ExecWireGuard implements WireGuard {
  constructor(
    private readonly runner: CommandRunner,
    private readonly options: { logger?: Logger } = {},
  ) {}

  async createInterface(
    name: string,
    options: { implementation?: 'auto' | WgImplementation } = {},
  ): Promise<WgImplementation> {
    const impl = options.implementation ?? 'auto';
    if (impl !== 'userspace') {
      try {
        await this.runner.run('ip', ipArgs.addWireGuard(name));
        return 'kernel';
      } catch (err) {
        const unsupported =
          err instanceof CommandError && /Unknown device type|not supported/i.test(err.stderr);
        if (impl === 'kernel' || !unsupported) throw err;
        this.options.logger?.debug({ iface: name }, 'wireguard: no kernel module, starting wireguard-go');
      }
    }
    ipArgs.addWireGuard(name); // validates the name
    try {
      await this.runner.run('wireguard-go', [name], { daemon: true });
    } catch (err) {
      if (impl === 'userspace' || !(err instanceof CommandError)) throw err;
      // One line that says both halves and what would fix either, not wireguard-go's banner.
      const why = err.kind === 'command-not-found' ? err.message : wireguardGoError(err.stderr);
      throw new CommandError(
        {
          command: err.command,
          stderr: err.stderr,
          ...(err.exitCode === undefined ? {} : { exitCode: err.exitCode }),
        },
        `cannot create WireGuard device ${name}: the kernel has no WireGuard (ip link add ${name} type wireguard: unsupported), and wireguard-go failed: ${why}; load the kernel's wireguard module, or give this process /dev/net/tun for wireguard-go`,
      );
    }
    return 'userspace';
  }

  async deleteInterface(name: string): Promise<void> {
    await this.runner.run('ip', ipArgs.deleteLink(name));
  }

  async set(iface: string, options: WgSetOptions): Promise<void> {
    const { secrets } = wgSetArgs(iface, options, () => '');
    await withSecretFiles(secrets, async (paths) => {
      const { args } = wgSetArgs(iface, options, (i) => paths[i] as string);
      await this.runner.run('wg', args);
    });
  }

  async syncconf(iface: string, config: WgConfig): Promise<void> {
    const text = renderWgConfig(config);
    await withSecretFiles([text], async ([path]) => {
      await this.runner.run('wg', ['syncconf', iface, path as string]);
    });
  }

  async show(iface: string): Promise<WgInterfaceState> {
    const { stdout } = await this.runner.run('wg', ['show', iface, 'dump']);
    return parseWgDump(stdout, iface);
  }

  async showAll(): Promise<WgInterfaceState[]> {
    const { stdout } = await this.runner.run('wg', ['show', 'all', 'dump']);
    return parseWgDumpAll(stdout);
  }
}
