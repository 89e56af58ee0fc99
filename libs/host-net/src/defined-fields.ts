/**
 * `o` without its undefined fields. An item built from optional sources (a parsed `ip -j` entry, a
 * spec made from a listed item) carries only the fields it has, as `ip -j` prints only what is set.
 */
export function definedFields<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}
