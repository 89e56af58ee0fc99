import {
  connectorName,
  ordinalFromPodName,
  parseClaims,
  pendingCreates,
  planGc,
  planProvision,
  renderStatusTable,
  reuseCandidates,
  serializeClaims,
  statusRows,
  withRecord,
  type Claims,
  type ConnectorView,
  type OrdinalRecord,
  type ProvisionPolicy,
} from './plan';

const NOW = Date.parse('2026-12-06T12:00:00Z');
const MIN = 60_000;
const ago = (ms: number) => new Date(NOW - ms).toISOString();
const policy = (ordinal: number, more: Partial<ProvisionPolicy> = {}): ProvisionPolicy => ({
  ordinal,
  namePrefix: 'edge',
  reuseOffline: true,
  reuseMinAgeMs: 10 * MIN,
  now: NOW,
  ...more,
});
const conn = (id: string, name: string, more: Partial<ConnectorView> = {}): ConnectorView => ({
  id,
  name,
  state: 'DEAD_HEARTBEAT_TOO_OLD',
  lastHeartbeatAt: ago(60 * MIN),
  createdAt: ago(24 * 60 * MIN),
  ...more,
});
const rec = (name: string, id?: string, origin: OrdinalRecord['origin'] = 'created'): OrdinalRecord =>
  id === undefined ? { name, origin, claimedAt: ago(MIN) } : { name, id, origin, claimedAt: ago(MIN) };
const claims = (entries: [number, OrdinalRecord][], network?: Claims['network']): Claims =>
  network ? { network, ordinals: new Map(entries) } : { ordinals: new Map(entries) };

describe('planProvision', () => {
  const cases: [string, Claims, ConnectorView[] | undefined, ProvisionPolicy, unknown][] = [
    [
      'a recorded connector: generate its tokens, no listing (restart)',
      claims([[2, rec('edge-2', 'C2')]]),
      undefined,
      policy(2),
      { kind: 'tokens', id: 'C2', name: 'edge-2' },
    ],
    ['nothing recorded and nothing listed yet: list', claims([]), undefined, policy(0), { kind: 'list' }],
    [
      'an offline connector nobody holds: claim it (adopted)',
      claims([]),
      [conn('X', 'whispering-petrel')],
      policy(0),
      { kind: 'claim', record: { name: 'whispering-petrel', id: 'X', origin: 'adopted', claimedAt: ago(0) } },
    ],
    [
      'no candidate: claim the ordinal name before creating',
      claims([]),
      [conn('A', 'busy', { state: 'ALIVE' })],
      policy(3),
      { kind: 'claim', record: { name: 'edge-3', origin: 'created', claimedAt: ago(0) } },
    ],
    [
      'reuse off: create even with offline connectors around',
      claims([]),
      [conn('X', 'whispering-petrel')],
      policy(1, { reuseOffline: false }),
      { kind: 'claim', record: { name: 'edge-1', origin: 'created', claimedAt: ago(0) } },
    ],
    [
      'claimed name, no connector of that name: create it',
      claims([[1, rec('edge-1')]]),
      [conn('X', 'other')],
      policy(1),
      { kind: 'create', name: 'edge-1' },
    ],
    [
      'claimed name and it exists (crash after create): record its id, create nothing',
      claims([[1, rec('edge-1')]]),
      [conn('N', 'edge-1', { state: 'DEAD_NO_HEARTBEAT', lastHeartbeatAt: null, createdAt: ago(1000) })],
      policy(1),
      { kind: 'claim', record: { ...rec('edge-1'), id: 'N' } },
    ],
    [
      'an unrecorded offline connector with our own ordinal name: adopt it as ours (former install)',
      claims([]),
      [conn('Z', 'aaa-first-alphabetically'), conn('O', 'edge-4')],
      policy(4),
      { kind: 'claim', record: { name: 'edge-4', id: 'O', origin: 'created', claimedAt: ago(0) } },
    ],
    [
      'our ordinal name ALIVE but unrecorded: refuse (another release with the same names)',
      claims([]),
      [conn('O', 'edge-4', { state: 'ALIVE' })],
      policy(4),
      {
        kind: 'refuse',
        message: expect.stringContaining('connector edge-4 (O) is ALIVE but not recorded for ordinal 4'),
      },
    ],
  ];
  cases.push([
    'the release is being uninstalled: refuse, even with a recorded connector',
    { ...claims([[2, rec('edge-2', 'C2')]]), deleting: '2026-12-06T12:00:00.000Z' },
    undefined,
    policy(2),
    { kind: 'refuse', message: expect.stringContaining('the release is being uninstalled') },
  ]);
  it.each(cases)('%s', (_what, c, listed, p, expected) => {
    expect(planProvision(c, listed, p)).toMatchObject(expected as object);
  });

  it('siblings starting together pick different candidates first', () => {
    const listed = ['a', 'b', 'c'].map((n) => conn(n.toUpperCase(), n));
    const picks = [0, 1, 2].map((o) => planProvision(claims([]), listed, policy(o)));
    expect(picks.map((p) => (p.kind === 'claim' ? p.record.id : p.kind))).toEqual(['A', 'B', 'C']);
  });
});

describe('reuseCandidates', () => {
  it('never offers what a sibling holds or is named for, nor ALIVE or young connectors', () => {
    const c = claims([
      [0, rec('edge-0', 'S0')],
      [1, rec('taken-by-id', 'T1', 'adopted')],
      [2, rec('pending-name')],
    ]);
    const listed = [
      conn('S0', 'edge-0'),
      conn('T1', 'renamed-since'),
      conn('P', 'pending-name'),
      conn('E7', 'edge-7'),
      conn('AL', 'alive', { state: 'ALIVE' }),
      conn('Y', 'young', { state: 'DEAD_NO_HEARTBEAT', lastHeartbeatAt: null, createdAt: ago(2 * MIN) }),
      conn('R', 'recently-seen', { lastHeartbeatAt: ago(5 * MIN) }),
      conn('NODATE', 'no-dates', { lastHeartbeatAt: null, createdAt: null }),
      conn('OK2', 'zeta'),
      conn('OK1', 'alpha', { state: 'DEAD_NO_RELAYS' }),
      conn('EP', 'edge-prod'),
    ];
    expect(reuseCandidates(c, listed, policy(3)).map((x) => x.id)).toEqual(['OK1', 'EP', 'OK2']);
    // The ordinal's own record does not hide a connector from itself.
    expect(
      reuseCandidates(c, [conn('S0', 'edge-0')], policy(0, { namePrefix: 'other' })).map((x) => x.id),
    ).toEqual(['S0']);
  });

  it('a prefix with regex characters is matched literally', () => {
    const listed = [conn('A', 'edgeX-1'), conn('B', 'edge.x-1')];
    expect(reuseCandidates(claims([]), listed, policy(0, { namePrefix: 'edge.x' })).map((x) => x.id)).toEqual(
      ['A'],
    );
  });
});

describe('claims in a ConfigMap', () => {
  it('round-trips, keeps unknown keys, and drops records', () => {
    const c: Claims = {
      ...claims(
        [
          [0, rec('edge-0', 'C0')],
          [12, rec('edge-12')],
        ],
        { id: 'N1', name: 'lab' },
      ),
      deleting: '2026-12-06T12:00:00.000Z',
    };
    const data = serializeClaims(c, { 'future.key': 'kept', 'ordinal.5': 'dropped' });
    expect(Object.keys(data)).toEqual(['future.key', 'deleting', 'network', 'ordinal.0', 'ordinal.12']);
    expect(parseClaims(data, 'cm')).toEqual(c);
    expect(parseClaims(serializeClaims(withRecord(c, 0, undefined)), 'cm').ordinals.has(0)).toBe(false);
  });

  it.each([
    ['ordinal.1', 'not json', 'key ordinal.1 is not JSON'],
    ['ordinal.1', '{"name":"x","origin":"stolen","claimedAt":"t"}', 'key ordinal.1 must be'],
    ['ordinal.1', '{"name":"","origin":"created","claimedAt":"t"}', 'key ordinal.1 must be'],
    ['ordinal.1', '{"name":"x","id":7,"origin":"created","claimedAt":"t"}', 'key ordinal.1 must be'],
    ['network', '{"id":"N"}', 'key network must be'],
  ])('refuses a hand-edited %s = %s with one line', (key, value, message) => {
    expect(() => parseClaims({ [key]: value }, 'ConfigMap ns/r-connectors')).toThrow(
      `ConfigMap ns/r-connectors: ${message}`,
    );
  });

  it('ignores keys it does not know (a later version)', () => {
    expect(parseClaims({ 'ordinal.01': '{}', 'ordinal.x': '{}', other: '1' }, 'cm').ordinals.size).toBe(0);
  });
});

describe('ordinals and names', () => {
  it.each([
    ['edge-connector-0', 0],
    ['edge-connector-17', 17],
    ['edge-connector', undefined],
    ['edge-connector-07', undefined],
    ['x-1234567', undefined],
  ])('%s → %s', (pod, ordinal) => expect(ordinalFromPodName(pod)).toBe(ordinal));
  it('names a connector <prefix>-<ordinal>', () => expect(connectorName('edge', 3)).toBe('edge-3'));
});

describe('planGc', () => {
  const c = claims([
    [0, rec('edge-0', 'C0')],
    [3, rec('edge-3', 'C3')],
    [4, rec('old-one', 'A4', 'adopted')],
    [5, rec('edge-5')],
  ]);
  it('deletes what the release created above the replicas, releases adopted ones and pending claims', () => {
    const plan = planGc(c, 3, false);
    expect(plan).toEqual({
      delete: [{ ordinal: 3, id: 'C3', name: 'edge-3' }],
      release: [
        { ordinal: 4, name: 'old-one', id: 'A4' },
        { ordinal: 5, name: 'edge-5' },
      ],
    });
    expect(pendingCreates(plan, c)).toEqual([{ ordinal: 5, name: 'edge-5' }]);
  });
  it('with deleteAdopted, and with replicas 0 (uninstall), deletes those too', () => {
    expect(planGc(c, 3, true).delete.map((d) => d.id)).toEqual(['C3', 'A4']);
    expect(planGc(c, 0, false).delete.map((d) => d.id)).toEqual(['C0', 'C3']);
    expect(planGc(c, 6, false)).toEqual({ delete: [], release: [] });
  });
});

describe('status', () => {
  it('shows each ordinal with the vendor state, MISSING and PENDING', () => {
    const c = claims([
      [0, rec('edge-0', 'C0')],
      [1, rec('old', 'A1', 'adopted')],
      [2, rec('edge-2')],
    ]);
    const rows = statusRows(c, [
      conn('C0', 'edge-0', { state: 'ALIVE', lastHeartbeatAt: '2026-12-06T11:59:58.000Z' }),
    ]);
    expect(renderStatusTable(rows)).toBe(
      [
        'ORDINAL  CONNECTOR  ID  ORIGIN   STATE    LAST HEARTBEAT',
        '0        edge-0     C0  created  ALIVE    2026-12-06T11:59:58.000Z',
        '1        old        A1  adopted  MISSING  -',
        '2        edge-2     -   created  PENDING  -',
        '',
      ].join('\n'),
    );
  });
});
