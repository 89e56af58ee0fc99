import { CleanExit, UsageError } from './errors';
import {
  DEFAULT_EXIT_CODES,
  parseOptions,
  type OptionsProgram,
  type OptionSpecs,
  type ParsedOptions,
} from './options';

/**
 * A command line with subcommands (`connector-init provision|gc|status`, `kgctl graph|showconf`):
 * each subcommand is an ordinary program from `createProgram` (named `<tool> <command>` so its
 * usage line reads right), with its own options, env fallbacks and `--help`.
 */
export interface CommandSetConfig<C extends Record<string, OptionsProgram<OptionSpecs>>> {
  name: string;
  description: string;
  version?: string;
  /** Subcommand name → its program, in the order `--help` lists them. */
  commands: C;
  /** The exit codes the top-level `--help` lists (default: runMain's three). */
  exitCodes?: Readonly<Record<number, string>>;
}

/** The subcommand that was given and its parsed options, as a union discriminated by `command`. */
export type ParsedCommand<C extends Record<string, OptionsProgram<OptionSpecs>>> = {
  [K in keyof C & string]: { command: K; opts: ParsedOptions<C[K]['specs']> };
}[keyof C & string];

export type CommandSet<C extends Record<string, OptionsProgram<OptionSpecs>>> = CommandSetConfig<C>;

export function createCommandSet<const C extends Record<string, OptionsProgram<OptionSpecs>>>(
  config: CommandSetConfig<C>,
): CommandSet<C> {
  for (const name of Object.keys(config.commands)) {
    if (!/^[a-z][a-z-]*$/.test(name)) throw new Error(`command ${JSON.stringify(name)}: use lowercase words`);
  }
  return config;
}

/** The top-level help: usage, description, the commands with their descriptions, exit codes. */
export function commandSetHelp(set: CommandSetConfig<Record<string, OptionsProgram<OptionSpecs>>>): string {
  const names = Object.keys(set.commands);
  const width = Math.max(...names.map((n) => n.length));
  const codes = set.exitCodes ?? DEFAULT_EXIT_CODES;
  const codeWidth = Math.max(...Object.keys(codes).map((c) => c.length));
  return [
    `Usage: ${set.name} <command> [options]`,
    '',
    set.description,
    '',
    'Commands:',
    ...names.map((n) => `  ${n.padEnd(width)}  ${set.commands[n]?.command.description() ?? ''}`),
    '',
    'Options:',
    ...(set.version ? ['  -V, --version  print the version and exit'] : []),
    "  -h, --help     print this help, or a command's with `<command> --help`",
    '',
    'Exit codes:',
    ...Object.entries(codes).map(([c, what]) => `  ${c.padEnd(codeWidth)}  ${what}`),
    '',
  ].join('\n');
}

/**
 * Picks the subcommand from `argv` (as `process.argv`: node, script, command, args…) and parses
 * its options with `parseOptions` (flags, env fallbacks, schemas, validate). No command, an
 * unknown one or a flag before it → one-line `UsageError`; `--help`/`--version` print to `out`
 * and throw `CleanExit`.
 */
export function parseCommand<C extends Record<string, OptionsProgram<OptionSpecs>>>(
  set: CommandSet<C>,
  argv: readonly string[] = process.argv,
  env: NodeJS.ProcessEnv = process.env,
  out: { write(chunk: string): unknown } = process.stdout,
): ParsedCommand<C> {
  const [node = 'node', script = set.name, first, ...rest] = argv;
  const names = Object.keys(set.commands);
  const choices = `${names.slice(0, -1).join(', ')} or ${names.at(-1) ?? ''}`;
  if (first === undefined || first === '-h' || first === '--help' || first === 'help') {
    if (first === undefined) {
      throw new UsageError(`a command is required: ${choices} (${set.name} --help lists them)`);
    }
    const topic = first === 'help' ? rest[0] : undefined;
    if (topic === undefined) {
      out.write(commandSetHelp(set));
      throw new CleanExit('help');
    }
    return parseCommand(set, [node, script, topic, '--help'], env, out);
  }
  if (set.version && (first === '-V' || first === '--version')) {
    out.write(`${set.version}\n`);
    throw new CleanExit('version');
  }
  const program = Object.hasOwn(set.commands, first) ? set.commands[first] : undefined;
  if (!program) {
    const what = first.startsWith('-') ? `option ${first} before the command` : `unknown command '${first}'`;
    throw new UsageError(`${what}: use ${choices} (${set.name} --help lists them)`);
  }
  const opts = parseOptions(program, [node, `${script} ${first}`, ...rest], env);
  return { command: first, opts } as ParsedCommand<C>;
}
