import { Teardown } from './teardown';

describe('Teardown', () => {
  it('runs every step once, last registered first, also after a failed one', async () => {
    const t = new Teardown();
    const ran: string[] = [];
    t.defer('a', () => ran.push('a'));
    t.defer('b', () => {
      ran.push('b');
      throw new Error('b broke');
    });
    t.defer('c', async () => {
      await new Promise((r) => setTimeout(r, 5));
      ran.push('c');
    });
    expect(t.pending).toBe(3);
    expect(await t.run()).toEqual(['b: b broke']);
    expect(ran).toEqual(['c', 'b', 'a']);
    expect(await t.run()).toEqual(['b: b broke']);
    expect(ran).toEqual(['c', 'b', 'a']);
  });

  it('runs a step registered after the teardown started at once (Ctrl-C while a scene comes up)', async () => {
    const t = new Teardown();
    const ran: string[] = [];
    t.defer('early', () => ran.push('early'));
    const running = t.run();
    t.defer('late', () => ran.push('late'));
    await running;
    expect(ran).toEqual(['early', 'late']);
    t.defer('later', () => {
      throw new Error('gone');
    });
    expect(await t.run()).toEqual(['later: gone']);
  });
});
