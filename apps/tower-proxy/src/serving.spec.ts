import { Serving } from './serving';

/** A Serving over parts that record what is done to them (and to onLost) in `calls`. */
function recordingServing() {
  const calls: string[] = [];
  const parts = {
    controller: { setLeading: (l: boolean) => void calls.push(`leading ${l}`) },
    tunnel: { closeAll: (reason: string) => void calls.push(`tunnel closed: ${reason}`) },
    listeners: {
      closeAll: async () => {
        calls.push('listeners closed');
      },
    },
  };
  return { calls, s: new Serving(parts, () => calls.push('lost')) };
}

describe('Serving', () => {
  it('serves from start() on, with the controller leading', () => {
    const { calls, s } = recordingServing();
    expect(s.serving).toBe(false);
    s.start();
    expect(s.serving).toBe(true);
    expect(calls).toEqual(['leading true']);
  });

  it('losing the Lease stops serving at once, closes sessions and listeners, then calls onLost', () => {
    const { calls, s } = recordingServing();
    s.start();
    s.lost();
    expect(s.serving).toBe(false);
    expect(calls).toEqual([
      'leading true',
      'leading false',
      'tunnel closed: lost leadership',
      'listeners closed',
      'lost',
    ]);
  });

  it('stop() only stops accepting (the parts close in their own shutdown handlers)', () => {
    const { calls, s } = recordingServing();
    s.start();
    s.stop();
    expect(s.serving).toBe(false);
    expect(calls).toEqual(['leading true']);
  });
});
