import { Counter, Registry, growthFeeder } from './metrics';

describe('growthFeeder', () => {
  it('feeds each series the growth of its total since the last scrape; a reset adds nothing', async () => {
    const registry = new Registry();
    const grow = growthFeeder();
    const totals = { a: 0, b: 0 };
    new Counter({
      name: 'x_total',
      help: 'x',
      labelNames: ['k'],
      registers: [registry],
      collect() {
        grow(this, 'a', { k: 'a' }, totals.a);
        grow(this, 'b', { k: 'b' }, totals.b);
      },
    });
    const scrape = async () => (await registry.metrics()).split('\n').filter((l) => l.startsWith('x_total{'));
    totals.a = 3;
    expect(await scrape()).toEqual(['x_total{k="a"} 3']);
    totals.a = 5;
    totals.b = 2;
    expect(await scrape()).toEqual(['x_total{k="a"} 5', 'x_total{k="b"} 2']);
    totals.a = 1; // the source was reset: nothing added, 1 is the new base
    expect(await scrape()).toEqual(['x_total{k="a"} 5', 'x_total{k="b"} 2']);
    totals.a = 4;
    expect(await scrape()).toEqual(['x_total{k="a"} 8', 'x_total{k="b"} 2']);
  });
});
