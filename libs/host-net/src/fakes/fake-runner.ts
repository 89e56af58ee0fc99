import { CommandError } from '../errors';
import type { CommandRunner, RunOptions, RunResult } from '../runner';

export interface RecordedCall {
  cmd: string;
  args: string[];
  options: RunOptions;
}

/** What a scripted command returns: output, or a failure (exit code and stderr). */
export type ScriptedResponse = Partial<RunResult> | { exitCode: number; stderr: string };

/**
 * A {@link CommandRunner} that records every call and answers from a script, for unit tests of code
 * that takes a runner. Unscripted commands succeed with empty output.
 */
export class FakeCommandRunner implements CommandRunner {
  readonly calls: RecordedCall[] = [];

  constructor(
    private readonly script: (call: RecordedCall) => ScriptedResponse | undefined = () => undefined,
  ) {}

  async run(cmd: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
    const call: RecordedCall = { cmd, args: [...args], options: { ...options } };
    this.calls.push(call);
    const response = this.script(call) ?? {};
    if ('exitCode' in response) {
      const prefix = options.namespace ? ['ip', 'netns', 'exec', options.namespace] : [];
      throw new CommandError({
        command: [...prefix, cmd, ...args],
        exitCode: response.exitCode,
        stderr: response.stderr,
      });
    }
    return { stdout: response.stdout ?? '', stderr: response.stderr ?? '' };
  }

  /** The recorded calls as command lines (`ip -4 addr add ...`), for compact assertions. */
  commandLines(): string[] {
    return this.calls.map((c) => [c.cmd, ...c.args].join(' '));
  }
}
