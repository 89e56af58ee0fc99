/** What capi-packet keeps in place (replace with the app's own desired state). */
export interface Item {
  name: string;
  /** Set on what capi-packet created, so it never touches anything else. */
  ownedBy?: string;
}

export interface Plan {
  create: Item[];
  remove: Item[];
}

export const OWNER = 'capi-packet';

/**
 * The pure core: what must change to go from `observed` to `desired`. Deterministic (sorted) and
 * free of I/O, so it is table-tested; the reconciler only fetches for it and applies it. Removes
 * only what this app owns.
 */
export function plan(desired: readonly string[], observed: readonly Item[]): Plan {
  const want = new Set(desired);
  const have = new Set(observed.map((i) => i.name));
  const byName = (a: Item, b: Item) => a.name.localeCompare(b.name);
  return {
    create: [...want]
      .filter((n) => !have.has(n))
      .map((name) => ({ name, ownedBy: OWNER }))
      .sort(byName),
    remove: observed.filter((i) => i.ownedBy === OWNER && !want.has(i.name)).sort(byName),
  };
}
