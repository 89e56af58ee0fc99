/**
 * Reads pod-gateway's `settings.sh`: a shell file of `KEY=value` assignments that the original
 * scripts `source`. We do not run a shell; we read the subset such files use — comments, blank
 * lines, `export KEY=value`, single and double quotes, backslash escapes, and `$VAR`, `${VAR}`,
 * `${VAR:-default}`, `${VAR-default}` expansion (from keys assigned earlier, then the environment).
 * Anything else (command substitution, conditionals, several words) is an error naming the line,
 * rather than a silently different value.
 */
import { errorMessage } from '@knet/runtime';

/** Where a value came from, for error messages: `/config/settings.sh:12` or `env VXLAN_ID`. */
export type Origin = string;

export interface Assignment {
  key: string;
  value: string;
  origin: Origin;
}

export class SettingsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SettingsError';
  }
}

const ASSIGNMENT = /^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$/;

/**
 * Parses one settings file. `lookup` resolves `$NAME` for names not assigned earlier in this file
 * (the caller passes earlier files' values, then the environment). Throws `SettingsError` with one
 * line: `<source>:<line>: <problem>`.
 */
export function parseShellAssignments(
  text: string,
  source: string,
  lookup: (name: string) => string | undefined = () => undefined,
): Assignment[] {
  const out: Assignment[] = [];
  const local = new Map<string, string>();
  const resolve = (name: string) => (local.has(name) ? local.get(name) : lookup(name));
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i] as string;
    const where = `${source}:${i + 1}`;
    const trimmed = raw.trim();
    if (trimmed === '' || trimmed.startsWith('#')) continue;
    const m = ASSIGNMENT.exec(raw);
    if (!m) {
      throw new SettingsError(
        `${where}: expected KEY=value (a settings file is read, not run by a shell), got ${JSON.stringify(trimmed.slice(0, 60))}`,
      );
    }
    const key = m[1] as string;
    let value: string;
    try {
      value = readWord(m[2] as string, resolve);
    } catch (e) {
      throw new SettingsError(`${where}: ${key}: ${errorMessage(e)}`);
    }
    local.set(key, value);
    out.push({ key, value, origin: where });
  }
  return out;
}

/** Reads the right-hand side of an assignment: one shell word, then optionally a comment. */
function readWord(input: string, resolve: (name: string) => string | undefined): string {
  let out = '';
  let i = 0;
  const fail = (msg: string): never => {
    throw new Error(msg);
  };
  while (i < input.length) {
    const c = input[i] as string;
    if (c === ' ' || c === '\t') {
      const rest = input.slice(i).trim();
      if (rest === '' || rest.startsWith('#')) return out;
      fail(`unquoted space before ${JSON.stringify(rest.slice(0, 30))}; quote the value ("a b")`);
    }
    if (c === "'") {
      const end = input.indexOf("'", i + 1);
      if (end < 0) fail('unterminated single quote');
      out += input.slice(i + 1, end);
      i = end + 1;
    } else if (c === '"') {
      i++;
      for (;;) {
        if (i >= input.length) fail('unterminated double quote');
        const d = input[i] as string;
        if (d === '"') {
          i++;
          break;
        }
        if (d === '\\' && i + 1 < input.length && '$`"\\'.includes(input[i + 1] as string)) {
          out += input[i + 1];
          i += 2;
        } else if (d === '$') {
          const [text, next] = expand(input, i, resolve);
          out += text;
          i = next;
        } else if (d === '`') {
          fail('command substitution (`...`) is not supported; write the value itself');
        } else {
          out += d;
          i++;
        }
      }
    } else if (c === '\\') {
      if (i + 1 < input.length) out += input[i + 1];
      i += 2;
    } else if (c === '$') {
      const [text, next] = expand(input, i, resolve);
      out += text;
      i = next;
    } else if (c === '`' || c === ';' || c === '|' || c === '&' || c === '<' || c === '>' || c === '(') {
      fail(`shell syntax ${JSON.stringify(c)} is not supported; write the value itself`);
    } else {
      out += c;
      i++;
    }
  }
  return out;
}

/** Expands `$NAME`, `${NAME}`, `${NAME:-default}` or `${NAME-default}` at input[i] === '$'. */
function expand(
  input: string,
  i: number,
  resolve: (name: string) => string | undefined,
): [text: string, next: number] {
  const next = input[i + 1];
  if (next === '(') throw new Error('command substitution ($(...)) is not supported; write the value itself');
  if (next === '{') {
    const end = input.indexOf('}', i + 2);
    if (end < 0) throw new Error('unterminated ${...}');
    const body = input.slice(i + 2, end);
    const m = /^([A-Za-z_][A-Za-z0-9_]*)(?:(:?-)(.*))?$/.exec(body);
    if (!m)
      throw new Error(
        `unsupported expansion \${${body}}; only \${NAME}, \${NAME:-default}, \${NAME-default}`,
      );
    const value = resolve(m[1] as string);
    if (m[2] === ':-') return [value === undefined || value === '' ? (m[3] ?? '') : value, end + 1];
    if (m[2] === '-') return [value === undefined ? (m[3] ?? '') : value, end + 1];
    return [value ?? '', end + 1];
  }
  const m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(input.slice(i + 1));
  if (!m) return ['$', i + 1];
  return [resolve(m[0]) ?? '', i + 1 + m[0].length];
}
