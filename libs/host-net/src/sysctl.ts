import type { CommandRunner } from './runner';

/** Typed `sysctl`. Real: {@link ExecSysctl}; in-memory: FakeSysctl. */
export interface Sysctl {
  /** The value, trimmed (`sysctl -n KEY`). Unknown keys throw a CommandError of kind `not-found`. */
  get(key: string): Promise<string>;
  /** `sysctl -w KEY=VALUE`. */
  set(key: string, value: string | number): Promise<void>;
}

const KEY = /^[A-Za-z0-9_][A-Za-z0-9_.:/-]*$/;

export function assertSysctlKey(key: string): void {
  if (!KEY.test(key) || key.includes('..')) throw new TypeError(`invalid sysctl key ${JSON.stringify(key)}`);
}

export const sysctlArgs = {
  get(key: string): string[] {
    assertSysctlKey(key);
    return ['-n', key];
  },
  set(key: string, value: string | number): string[] {
    assertSysctlKey(key);
    const v = String(value);
    if (/[\r\n]/.test(v)) throw new TypeError(`invalid sysctl value for ${key}: contains a newline`);
    return ['-q', '-w', `${key}=${v}`];
  },
};

/** {@link Sysctl} over the `sysctl` binary (procps); runs in the runner's namespace, so per-netns keys work. */
export class ExecSysctl implements Sysctl {
  constructor(private readonly runner: CommandRunner) {}

  async get(key: string): Promise<string> {
    const { stdout } = await this.runner.run('sysctl', sysctlArgs.get(key));
    return stdout.trim();
  }

  async set(key: string, value: string | number): Promise<void> {
    await this.runner.run('sysctl', sysctlArgs.set(key, value));
  }
}
