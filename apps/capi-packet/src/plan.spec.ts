import { OWNER, plan, type Item } from './plan';

const own = (name: string): Item => ({ name, ownedBy: OWNER });
const foreign = (name: string): Item => ({ name, ownedBy: 'someone-else' });

describe('plan', () => {
  it.each<[string, string[], Item[], { create: string[]; remove: string[] }]>([
    ['nothing to do', ['a'], [own('a')], { create: [], remove: [] }],
    ['creates what is missing, sorted', ['b', 'a'], [], { create: ['a', 'b'], remove: [] }],
    ['removes what it owns and no longer wants', [], [own('a')], { create: [], remove: ['a'] }],
    ['leaves what it does not own', [], [foreign('a')], { create: [], remove: [] }],
    ['a foreign item of the wanted name counts as there', ['a'], [foreign('a')], { create: [], remove: [] }],
  ])('%s', (_what, desired, observed, want) => {
    const p = plan(desired, observed);
    expect({ create: p.create.map((i) => i.name), remove: p.remove.map((i) => i.name) }).toEqual(want);
  });
});
