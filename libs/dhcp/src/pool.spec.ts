import { LeasePool, LeaseSnapshotError, type LeasePoolConfig, type PoolClient } from './pool';

const T0 = Date.parse('2025-01-01T00:00:00Z');
const at = (sec: number) => T0 + sec * 1000;

const config: LeasePoolConfig = {
  network: '172.16.0', // pod-gateway's VXLAN_IP_NETWORK form
  gateway: '172.16.0.1',
  leaseTimeSec: 3600,
  offerHoldSec: 60,
  declineHoldSec: 600,
  reservations: [
    { hostname: 'torrent', ip: '172.16.0.5' },
    { hostname: 'pinned', ip: '172.16.0.22' }, // inside the dynamic range
  ],
};

const mk = (n: number, hostname?: string): PoolClient => ({
  clientKey: `mac:02:00:00:00:00:${n.toString(16).padStart(2, '0')}`,
  chaddr: `02:00:00:00:00:${n.toString(16).padStart(2, '0')}`,
  ...(hostname ? { hostname } : {}),
});
const A = mk(1, 'web');
const B = mk(2, 'db');
const C = mk(3);
const TORRENT = mk(4, 'torrent');

type Step =
  | ['offer', PoolClient, string | undefined, string | undefined] // client, requestedIp, expected ip
  | ['request', PoolClient, string, string] // client, ip, 'ack' or a NAK reason regexp source
  | ['release' | 'decline', PoolClient, string, boolean]
  | ['cancel', PoolClient]
  | ['sweep', string[]] // expected ended IPs
  | ['hosts', Record<string, string>];

/** Runs steps, each `[seconds since T0, ...step]`, against a fresh pool. */
function run(steps: [number, ...Step][], cfg: LeasePoolConfig = config): LeasePool {
  const pool = new LeasePool(cfg);
  for (const [sec, ...step] of steps) {
    const now = at(sec);
    const where = `step ${JSON.stringify([sec, step[0], (step[1] as PoolClient)?.clientKey ?? '', step[2]])}`;
    switch (step[0]) {
      case 'offer': {
        const [, client, requestedIp, expected] = step;
        const r = pool.offer({ ...client, ...(requestedIp ? { requestedIp } : {}) }, now);
        expect({ where, ip: r?.ip }).toEqual({ where, ip: expected });
        break;
      }
      case 'request': {
        const [, client, ip, expected] = step;
        const r = pool.request(client, ip, now);
        if (expected === 'ack') expect({ where, r: r.type }).toEqual({ where, r: 'ack' });
        else
          expect({ where, r: r.type === 'nak' ? r.reason : 'ack' }).toEqual({
            where,
            r: expect.stringMatching(expected),
          });
        break;
      }
      case 'release':
      case 'decline': {
        const [, client, ip, expected] = step;
        expect({ where, r: pool[step[0]](client, ip, now) }).toEqual({ where, r: expected });
        break;
      }
      case 'cancel':
        pool.cancelOffer(step[1].clientKey);
        break;
      case 'sweep':
        expect({ where, ended: pool.sweep(now).map((l) => l.ip) }).toEqual({ where, ended: step[1] });
        break;
      case 'hosts':
        expect({ where, hosts: pool.hosts(now) }).toEqual({ where, hosts: step[1] });
        break;
    }
  }
  return pool;
}

describe('LeasePool', () => {
  it.each<[string, [number, ...Step][]]>([
    [
      'lowest free dynamic address; offers are held for the client they were made to',
      [
        [0, 'offer', A, undefined, '172.16.0.20'],
        [0, 'offer', B, undefined, '172.16.0.21'],
        [1, 'request', B, '172.16.0.21', 'ack'],
        [1, 'request', C, '172.16.0.20', 'offered to another client'],
        [2, 'request', A, '172.16.0.20', 'ack'],
        [3, 'offer', C, undefined, '172.16.0.23'], // .22 is reserved for "pinned"
      ],
    ],
    [
      'the same client gets its lease back, also after it expired while nobody took the address',
      [
        [0, 'offer', A, undefined, '172.16.0.20'],
        [0, 'request', A, '172.16.0.20', 'ack'],
        [10, 'offer', A, '172.16.0.99', '172.16.0.20'],
        [5000, 'sweep', ['172.16.0.20']],
        [5000, 'offer', A, undefined, '172.16.0.20'],
        [5000, 'request', A, '172.16.0.20', 'ack'],
      ],
    ],
    [
      'a requested address is honoured only when free, dynamic, not reserved and not the gateway',
      [
        [0, 'offer', A, '172.16.0.100', '172.16.0.100'],
        [0, 'offer', B, '172.16.0.100', '172.16.0.20'], // offered to A
        [0, 'offer', C, '172.16.0.5', '172.16.0.21'], // reserved
        [0, 'cancel', C],
        [0, 'offer', C, '172.16.0.1', '172.16.0.21'], // gateway
        [0, 'cancel', C],
        [0, 'offer', C, '172.16.0.10', '172.16.0.21'], // below the dynamic range
        [0, 'cancel', C],
        [0, 'offer', C, '172.16.0.255', '172.16.0.21'], // broadcast
        [0, 'cancel', C],
        [0, 'offer', C, '10.9.9.9', '172.16.0.21'], // elsewhere
      ],
    ],
    [
      'reservations: by exact hostname (any case), never given to others',
      [
        [0, 'offer', TORRENT, '172.16.0.30', '172.16.0.5'],
        [0, 'request', TORRENT, '172.16.0.30', 'torrent has the reserved address 172.16.0.5'],
        [0, 'request', TORRENT, '172.16.0.5', 'ack'],
        [0, 'request', A, '172.16.0.5', 'reserved for another host'],
        [0, 'request', A, '172.16.0.22', 'reserved for another host'],
        [0, 'offer', { ...C, hostname: 'PINNED' }, undefined, '172.16.0.22'],
        [0, 'offer', { ...B, hostname: 'torrent-2' }, undefined, '172.16.0.20'], // exact match only
        [1, 'hosts', { torrent: '172.16.0.5' }],
      ],
    ],
    [
      'a reservation follows its hostname: a replaced pod takes the address over at the ACK',
      [
        [0, 'request', TORRENT, '172.16.0.5', 'ack'],
        [10, 'offer', mk(9, 'torrent'), undefined, '172.16.0.5'],
        [11, 'request', TORRENT, '172.16.0.5', 'ack'], // the old one still holds it until then
        [12, 'request', mk(9, 'torrent'), '172.16.0.5', 'ack'],
        [13, 'request', TORRENT, '172.16.0.5', 'leased to another client'],
      ],
    ],
    [
      'an unanswered offer is given to someone else after offerHoldSec',
      [
        [0, 'offer', A, undefined, '172.16.0.20'],
        [30, 'offer', B, undefined, '172.16.0.21'],
        [61, 'offer', C, undefined, '172.16.0.20'],
        [61, 'sweep', []],
      ],
    ],
    [
      'expiry frees the address; never-used addresses are preferred over expired leases',
      [
        [0, 'request', A, '172.16.0.20', 'ack'],
        [100, 'request', B, '172.16.0.20', 'leased to another client'],
        [3599, 'sweep', []],
        [3600, 'sweep', ['172.16.0.20']],
        [3600, 'sweep', []],
        [3601, 'offer', B, undefined, '172.16.0.21'],
        [3601, 'request', C, '172.16.0.20', 'ack'],
        [3602, 'offer', A, undefined, '172.16.0.23'],
      ],
    ],
    [
      'RELEASE frees the address; only its holder can release it',
      [
        [0, 'request', A, '172.16.0.20', 'ack'],
        [1, 'release', B, '172.16.0.20', false],
        [1, 'hosts', { web: '172.16.0.20' }],
        [2, 'release', A, '172.16.0.20', true],
        [2, 'hosts', {}],
        [2, 'release', A, '172.16.0.20', false],
        [3, 'request', B, '172.16.0.20', 'ack'],
      ],
    ],
    [
      'DECLINE quarantines the address for declineHoldSec',
      [
        [0, 'offer', A, undefined, '172.16.0.20'],
        [0, 'decline', B, '172.16.0.20', false], // not B's
        [1, 'decline', A, '172.16.0.20', true],
        [2, 'offer', A, undefined, '172.16.0.21'],
        [2, 'request', C, '172.16.0.20', 'declined recently'],
        [602, 'sweep', []],
        [602, 'request', C, '172.16.0.20', 'ack'],
      ],
    ],
    [
      'NAK for addresses that are not ours',
      [
        [0, 'request', A, '10.0.0.5', 'not a host address of 172.16.0.0/24'],
        [0, 'request', A, '172.16.0.0', 'not a host address'],
        [0, 'request', A, '172.16.0.255', 'not a host address'],
        [0, 'request', A, '172.16.0.1', 'is the gateway'],
        [0, 'request', A, '172.16.0.7', 'outside the dynamic range'],
        [0, 'request', A, '172.16.0.77', 'ack'], // init-reboot with a free address: fine
      ],
    ],
    [
      'a client has one lease: moving to another address frees the old one',
      [
        [0, 'request', A, '172.16.0.20', 'ack'],
        [1, 'request', A, '172.16.0.30', 'ack'],
        [1, 'request', B, '172.16.0.20', 'ack'],
        [2, 'hosts', { db: '172.16.0.20', web: '172.16.0.30' }],
      ],
    ],
    [
      'hosts(): active leases only, the newest ACK wins a hostname',
      [
        [0, 'request', A, '172.16.0.20', 'ack'],
        [5, 'request', { ...B, hostname: 'web' }, '172.16.0.21', 'ack'],
        [6, 'hosts', { web: '172.16.0.21' }],
        [3605, 'hosts', {}],
      ],
    ],
  ])('%s', (_name, steps) => {
    run(steps);
  });

  it('returns nothing when the pool is exhausted', () => {
    const pool = new LeasePool({ network: '192.0.2.0/29', gateway: '192.0.2.1', firstDynamic: 2 });
    expect([3, 4, 5, 6, 7].map((n) => pool.offer(mk(n), T0)?.ip)).toEqual([
      '192.0.2.2',
      '192.0.2.3',
      '192.0.2.4',
      '192.0.2.5',
      '192.0.2.6', // .7 is the broadcast address, never leased
    ]);
    expect(pool.offer(mk(8), T0)).toBeUndefined();
    expect(pool.offer(mk(8), at(61))?.ip).toBe('192.0.2.2');
  });

  it('never leases the broadcast address: lastDynamic defaults to .254 and .255 is refused', () => {
    expect(new LeasePool(config).lastDynamic).toBe(254);
    expect(() => new LeasePool({ ...config, lastDynamic: 255 })).toThrow(
      /lastDynamic must be an integer in 20..254/,
    );
  });

  it.each<[string, Partial<LeasePoolConfig>, RegExp]>([
    ['a bad network', { network: '172.16.0.0/33' }, /invalid network/],
    ['host bits', { network: '172.16.0.1/24' }, /host bits set/],
    ['a gateway elsewhere', { gateway: '10.0.0.1' }, /gateway 10.0.0.1 is not a host address/],
    ['firstDynamic 0', { firstDynamic: 0 }, /firstDynamic/],
    ['a reservation elsewhere', { reservations: [{ hostname: 'x', ip: '10.0.0.5' }] }, /reservation x/],
    ['the gateway reserved', { reservations: [{ hostname: 'x', ip: '172.16.0.1' }] }, /reservation x/],
    [
      'a bad hostname',
      { reservations: [{ hostname: 'a b', ip: '172.16.0.5' }] },
      /invalid reservation hostname/,
    ],
    [
      'a hostname twice',
      {
        reservations: [
          { hostname: 'x', ip: '172.16.0.5' },
          { hostname: 'X', ip: '172.16.0.6' },
        ],
      },
      /hostname x is reserved twice/,
    ],
    [
      'an address twice',
      {
        reservations: [
          { hostname: 'x', ip: '172.16.0.5' },
          { hostname: 'y', ip: '172.16.0.5' },
        ],
      },
      /address 172.16.0.5 is reserved twice/,
    ],
  ])('refuses a configuration with %s', (_name, change, re) => {
    expect(() => new LeasePool({ ...config, ...change })).toThrow(re);
  });

  describe('snapshot / restore', () => {
    const busy = () =>
      run([
        [0, 'request', A, '172.16.0.20', 'ack'],
        [0, 'request', TORRENT, '172.16.0.5', 'ack'],
        [1, 'request', B, '172.16.0.21', 'ack'],
        [2, 'release', B, '172.16.0.21', true],
        [3, 'offer', C, undefined, '172.16.0.23'],
        [3, 'decline', C, '172.16.0.23', true],
      ]);

    it('round-trips through JSON: leases, released records (stickiness) and quarantine survive', () => {
      const doc = JSON.parse(JSON.stringify(busy().snapshot()));
      expect(doc).toMatchObject({
        version: 1,
        leases: [
          {
            ip: '172.16.0.5',
            client: TORRENT.clientKey,
            hostname: 'torrent',
            expiresAt: '2025-01-01T01:00:00.000Z',
          },
          { ip: '172.16.0.20', client: A.clientKey, chaddr: A.chaddr, hostname: 'web' },
          { ip: '172.16.0.21', client: B.clientKey, expiresAt: '2025-01-01T00:00:02.000Z' },
        ],
        declined: [{ ip: '172.16.0.23', until: '2025-01-01T00:10:03.000Z' }],
      });
      const pool = new LeasePool(config);
      expect(pool.restore(doc, at(10))).toEqual({ restored: 3, dropped: 0 });
      expect(pool.hosts(at(10))).toEqual({ torrent: '172.16.0.5', web: '172.16.0.20' });
      expect(pool.offer(A, at(10))?.ip).toBe('172.16.0.20');
      expect(pool.offer(B, at(10))?.ip).toBe('172.16.0.21'); // its released address, still free
      expect(pool.request(C, '172.16.0.23', at(10))).toMatchObject({ type: 'nak' });
      expect(pool.snapshot()).toEqual(doc);
    });

    it('drops records the new configuration does not allow', () => {
      const doc = busy().snapshot();
      const pool = new LeasePool({ ...config, firstDynamic: 21, reservations: [] });
      // .20 is now below the range; torrent's .5 is no longer reserved (and below the range).
      expect(pool.restore(doc, at(10))).toEqual({ restored: 1, dropped: 2 });
      expect(pool.activeLeases(at(10))).toEqual([]);
    });

    it.each<[string, unknown, RegExp]>([
      ['not an object', 'x', /invalid lease document: \(root\)/],
      ['another version', { version: 2, leases: [] }, /version/],
      [
        'a bad address',
        { version: 1, leases: [{ ip: 'x', client: 'c', chaddr: A.chaddr, expiresAt: 'x', boundAt: 'x' }] },
        /leases.0.ip/,
      ],
      [
        'a bad date',
        {
          version: 1,
          leases: [{ ip: '172.16.0.20', client: 'c', chaddr: A.chaddr, expiresAt: 'soon', boundAt: 'x' }],
        },
        /expiresAt: not a date/,
      ],
    ])('refuses a document with %s (LeaseSnapshotError, one line)', (_name, doc, re) => {
      const pool = new LeasePool(config);
      expect(() => pool.restore(doc, T0)).toThrow(LeaseSnapshotError);
      expect(() => pool.restore(doc, T0)).toThrow(re);
    });
  });
});
