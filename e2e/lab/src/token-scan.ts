/**
 * The connector scene's "no token readable" proof: the places a connector's tokens would be
 * readable if anything had stored them — every Secret and ConfigMap of a cluster, the files of a
 * pod's handoff dir, a log — as text to search ("haystacks"), and which of the tokens any of them
 * holds. Secret `data` and ConfigMap `binaryData` are base64 in the API's answer: they are searched
 * decoded (and the raw object too, for the base64 of a whole token and for annotations). A FIFO in
 * the handoff dir is never opened: opening it is what the connector's launcher does to get a fresh
 * pair, and would revoke the running one.
 */
import { lstatSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

/** One place to search: where it is (for the finding) and its text. */
export interface Haystack {
  where: string;
  text: string;
}

/** `kubectl get secrets,configmaps -A -o json`: the fields the scan decodes (all are searched). */
export interface KubeObjectList {
  items: {
    kind?: string;
    metadata?: { namespace?: string; name?: string; [field: string]: unknown };
    data?: Record<string, string>;
    binaryData?: Record<string, string>;
    [field: string]: unknown;
  }[];
}

/** Shorter than this, a "token" would match by chance (or everything, when empty): refused. */
const MIN_TOKEN_LENGTH = 16;

/** Each object as a whole, and each of its base64 values decoded (Secret data, ConfigMap binaryData). */
export function objectHaystacks(list: KubeObjectList): Haystack[] {
  const out: Haystack[] = [];
  for (const item of list.items) {
    const where = `${item.kind ?? 'object'} ${item.metadata?.namespace ?? ''}/${item.metadata?.name ?? '?'}`;
    out.push({ where, text: JSON.stringify(item) });
    const encoded = { ...(item.kind === 'Secret' ? item.data : {}), ...item.binaryData };
    for (const [key, value] of Object.entries(encoded)) {
      out.push({ where: `${where} key ${key}`, text: Buffer.from(value, 'base64').toString('latin1') });
    }
  }
  return out;
}

/**
 * The regular files directly in `dir` (FIFOs, sockets and links skipped, never opened) as
 * haystacks, with their names; a file that vanished meanwhile is skipped.
 */
export function fileHaystacks(dir: string, label = dir): { haystacks: Haystack[]; files: string[] } {
  const haystacks: Haystack[] = [];
  const files: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    try {
      if (!lstatSync(path).isFile()) continue;
      haystacks.push({ where: `${label}/${name}`, text: readFileSync(path).toString('latin1') });
      files.push(name);
    } catch {
      // gone meanwhile (the sidecar replaces its files atomically)
    }
  }
  return { haystacks, files };
}

/**
 * Where any of `tokens` (by name: "access token") appears, as it is or base64-encoded: one finding
 * per token and place ("access token in Secret ns/x key token"). Empty: none found.
 */
export function tokensFound(haystacks: readonly Haystack[], tokens: Record<string, string>): string[] {
  const needles: { name: string; value: string }[] = [];
  for (const [name, value] of Object.entries(tokens)) {
    if (value.length < MIN_TOKEN_LENGTH)
      throw new Error(`the ${name} is ${value.length} characters: too short to search for`);
    needles.push({ name, value }, { name: `${name} (base64)`, value: Buffer.from(value).toString('base64') });
  }
  const found: string[] = [];
  for (const h of haystacks) {
    for (const n of needles) if (h.text.includes(n.value)) found.push(`${n.name} in ${h.where}`);
  }
  return found;
}
