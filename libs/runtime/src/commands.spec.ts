import { z } from 'zod';
import { CleanExit, UsageError } from './errors';
import { commandSetHelp, createCommandSet, parseCommand } from './commands';
import { createProgram, schemas } from './options';

function makeSet() {
  return createCommandSet({
    name: 'tool',
    description: 'does two things',
    version: '1.2.3',
    commands: {
      run: createProgram({
        name: 'tool run',
        description: 'runs it',
        options: {
          count: {
            flag: '--count <n>',
            env: 'TOOL_COUNT',
            description: 'how many',
            schema: schemas.integer({ min: 0 }),
            default: 1,
          },
        },
      }),
      show: createProgram({
        name: 'tool show',
        description: 'shows it',
        options: {
          output: {
            flag: '-o, --output <format>',
            description: 'format',
            schema: z.enum(['table', 'json']),
            default: 'table',
          },
        },
      }),
    },
  });
}

const argv = (...args: string[]) => ['node', 'tool', ...args];

describe('parseCommand', () => {
  it('parses the chosen command with its own flags and env fallbacks', () => {
    expect(parseCommand(makeSet(), argv('run', '--count', '3'), {})).toEqual({
      command: 'run',
      opts: { count: 3 },
    });
    expect(parseCommand(makeSet(), argv('run'), { TOOL_COUNT: '7' })).toEqual({
      command: 'run',
      opts: { count: 7 },
    });
    expect(parseCommand(makeSet(), argv('show', '-o', 'json'), {})).toEqual({
      command: 'show',
      opts: { output: 'json' },
    });
  });

  it('refuses a missing or unknown command, or a flag before it, with one line naming the choices', () => {
    expect(() => parseCommand(makeSet(), argv(), {})).toThrow(
      new UsageError('a command is required: run or show (tool --help lists them)'),
    );
    expect(() => parseCommand(makeSet(), argv('walk'), {})).toThrow(
      new UsageError("unknown command 'walk': use run or show (tool --help lists them)"),
    );
    expect(() => parseCommand(makeSet(), argv('--count', '2'), {})).toThrow(
      /option --count before the command/,
    );
    expect(() => parseCommand(makeSet(), argv('constructor'), {})).toThrow(/unknown command 'constructor'/);
  });

  it("reports a command's bad flag the way parseOptions does", () => {
    expect(() => parseCommand(makeSet(), argv('run', '--count', '-1'), {})).toThrow(UsageError);
    expect(() => parseCommand(makeSet(), argv('show', '--count', '1'), {})).toThrow(
      /unknown option '--count'/,
    );
  });

  it('prints the top-level help, a command help and the version, then exits cleanly', () => {
    let printed = '';
    const out = { write: (s: string) => (printed += s) };
    expect(() => parseCommand(makeSet(), argv('--help'), {}, out)).toThrow(CleanExit);
    expect(printed).toBe(commandSetHelp(makeSet()));
    expect(printed).toContain('Usage: tool <command> [options]');
    expect(printed).toMatch(/ {2}run {3}runs it\n {2}show {2}shows it/);
    expect(printed).toContain('Exit codes:');
    printed = '';
    expect(() => parseCommand(makeSet(), argv('-V'), {}, out)).toThrow(CleanExit);
    expect(printed).toBe('1.2.3\n');
    const write = jest.spyOn(process.stdout, 'write').mockImplementation(() => true);
    try {
      expect(() => parseCommand(makeSet(), argv('help', 'run'), {}, out)).toThrow(CleanExit);
      expect(write.mock.calls.map((c) => String(c[0])).join('')).toContain('Usage: tool run [options]');
    } finally {
      write.mockRestore();
    }
  });
});
