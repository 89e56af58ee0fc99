import type { Device } from '@knet/metal';
import { CLUSTER, EIP, NS, cluster, machine, packetCluster, packetMachine } from './fixture';
import {
  CREATE_INTENT_ANNOTATION,
  planCluster,
  planMachine,
  type DeviceObservation,
  type MachineInput,
} from './plan';

const ID = 'aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee';
const device = (state: string, extra: Partial<Device> = {}): Device => ({
  id: ID,
  hostname: 'cp-0',
  state,
  ip_addresses: [
    { id: 'ip1', address: '203.0.113.20', public: true, address_family: 4 },
    { id: 'ip2', address: '10.0.0.5', public: false, address_family: 4 },
    { id: 'ip3', address: '2001:db8::5', public: true, address_family: 6 },
  ],
  ...extra,
});

function input(over: Partial<MachineInput> & { name?: string; controlPlane?: boolean } = {}): MachineInput {
  const name = over.name ?? 'cp-0';
  return {
    packetMachine: packetMachine(name),
    machine: machine(name, { controlPlane: over.controlPlane ?? true }),
    cluster: cluster(),
    packetCluster: packetCluster(),
    device: { kind: 'not-looked-up' },
    pollIntervalMs: 15_000,
    ...over,
  };
}

describe('planMachine', () => {
  const found = (d: Device): DeviceObservation => ({ kind: 'found', device: d });
  const table: [string, MachineInput, string][] = [
    ['no owner Machine yet', input({ machine: undefined }), 'wait'],
    ['Cluster missing', input({ cluster: undefined }), 'wait'],
    ['paused Cluster', input({ cluster: cluster({ paused: true }) }), 'wait'],
    [
      'no finalizer yet',
      input({ packetMachine: packetMachine('cp-0', { finalizer: false }) }),
      'add-finalizer',
    ],
    ['cluster infrastructure not provisioned', input({ cluster: cluster({ provisioned: false }) }), 'wait'],
    [
      'no bootstrap data',
      input({ machine: machine('cp-0', { controlPlane: true, dataSecret: false }) }),
      'wait',
    ],
    ['new machine: intent first, no lookup', input(), 'record-create-intent'],
    [
      'intent recorded: look up before creating',
      input({ packetMachine: packetMachine('cp-0', { intent: true }) }),
      'look-up-device',
    ],
    [
      'intent, nothing found: read the bootstrap data',
      input({ packetMachine: packetMachine('cp-0', { intent: true }), device: { kind: 'absent' } }),
      'read-bootstrap-data',
    ],
    [
      'intent, nothing found, data read: create',
      input({
        packetMachine: packetMachine('cp-0', { intent: true }),
        device: { kind: 'absent' },
        userdata: '#cloud-config\n',
      }),
      'create-device',
    ],
    [
      'providerID: look up',
      input({ packetMachine: packetMachine('cp-0', { providerID: `equinixmetal://${ID}` }) }),
      'look-up-device',
    ],
    [
      'provider ID gone (404)',
      input({
        packetMachine: packetMachine('cp-0', { providerID: `equinixmetal://${ID}` }),
        device: { kind: 'gone' },
      }),
      'fail',
    ],
    [
      'provider ID refused (403: provisioning failed)',
      input({
        packetMachine: packetMachine('cp-0', { providerID: `equinixmetal://${ID}` }),
        device: { kind: 'forbidden' },
      }),
      'fail',
    ],
    ['queued device: status, requeue', input({ device: found(device('queued')) }), 'write-status'],
    ['failed device: terminal', input({ device: found(device('failed')) }), 'fail'],
    ['powering_off device: terminal', input({ device: found(device('powering_off')) }), 'fail'],
    [
      'active control plane, EIP free: assign',
      input({ device: found(device('active')), elasticIpHeld: false }),
      'assign-elastic-ip',
    ],
    [
      'active control plane, EIP held by another: ready',
      input({ device: found(device('active')), elasticIpHeld: true }),
      'write-status',
    ],
    [
      'active worker: ready',
      input({ name: 'w-0', controlPlane: false, device: found(device('active')), elasticIpHeld: false }),
      'write-status',
    ],
    [
      'ready machine: no API call',
      input({ packetMachine: packetMachine('cp-0', { ready: true, providerID: `equinixmetal://${ID}` }) }),
      'done',
    ],
  ];
  it.each(table)('%s', (_what, i, step) => {
    expect(planMachine(i).do).toBe(step);
  });

  it('creates with tags, ssh keys, metro and userdata actually sent', () => {
    const pm = packetMachine('cp-0', { intent: true, sshKeys: ['ssh-ed25519 AAAAC3Nza k@h'] });
    pm.spec.tags = ['team:a', 'capp:cluster-id:c1'];
    pm.spec.hardwareReservationID = 'r1, r2';
    const step = planMachine(input({ packetMachine: pm, device: { kind: 'absent' }, userdata: 'DATA' }));
    expect(step).toEqual({
      do: 'create-device',
      hardwareReservations: ['r1', 'r2'],
      request: {
        hostname: 'cp-0',
        plan: 'c3.small.x86',
        operating_system: 'ubuntu_24_04',
        billing_cycle: 'hourly',
        userdata: 'DATA',
        metro: 'da',
        tags: [
          'capp:cluster-id:c1',
          'capp:machine-uid:cp-0',
          `capp:namespace:${NS}`,
          'kubernetes.io/role:master',
          'team:a',
        ],
        ssh_keys: [{ label: 'cp-0-0', key: 'ssh-ed25519 AAAAC3Nza k@h' }],
      },
    });
  });

  it("the machine's facility overrides the cluster's metro", () => {
    const pm = packetMachine('w-0', { intent: true });
    pm.spec.facility = 'ny5';
    const step = planMachine(
      input({
        name: 'w-0',
        controlPlane: false,
        packetMachine: pm,
        device: { kind: 'absent' },
        userdata: 'x',
      }),
    );
    expect(step.do === 'create-device' && step.request).toMatchObject({ facility: ['ny5'] });
    expect(step.do === 'create-device' && 'metro' in step.request).toBe(false);
  });

  it('maps addresses: public → ExternalIP, private → InternalIP, the hostname', () => {
    const step = planMachine(
      input({ name: 'w-0', controlPlane: false, device: { kind: 'found', device: device('active') } }),
    );
    expect(step.do === 'write-status' && step.addresses).toEqual([
      { type: 'Hostname', address: 'cp-0' },
      { type: 'ExternalIP', address: '203.0.113.20' },
      { type: 'InternalIP', address: '10.0.0.5' },
      { type: 'ExternalIP', address: '2001:db8::5' },
    ]);
    expect(step.do === 'write-status' && step.ready).toBe(true);
  });

  it('a device that already holds the EIP is ready without assigning it again', () => {
    const d = device('active');
    d.ip_addresses!.push({ id: 'eip', address: EIP, public: true, address_family: 4 });
    expect(planMachine(input({ device: { kind: 'found', device: d }, elasticIpHeld: false })).do).toBe(
      'write-status',
    );
  });

  describe('deletion', () => {
    const deleting = (over: Parameters<typeof packetMachine>[1] = {}) => {
      const pm = packetMachine('cp-0', over);
      pm.metadata.deletionTimestamp = new Date();
      return pm;
    };
    it.each<[string, MachineInput, string]>([
      ['never created: finalizer off at once', input({ packetMachine: deleting() }), 'remove-finalizer'],
      [
        'intent without providerID: look up',
        input({ packetMachine: deleting({ intent: true }) }),
        'look-up-device',
      ],
      [
        'device found: delete it',
        input({
          packetMachine: deleting({ intent: true }),
          device: { kind: 'found', device: device('active') },
        }),
        'delete-device',
      ],
      [
        'device gone (404)',
        input({ packetMachine: deleting({ providerID: `equinixmetal://${ID}` }), device: { kind: 'gone' } }),
        'remove-finalizer',
      ],
      [
        'device refused (403)',
        input({
          packetMachine: deleting({ providerID: `equinixmetal://${ID}` }),
          device: { kind: 'forbidden' },
        }),
        'remove-finalizer',
      ],
      [
        'device deprovisioning: done',
        input({
          packetMachine: deleting({ intent: true }),
          device: { kind: 'found', device: device('deprovisioning') },
        }),
        'remove-finalizer',
      ],
      [
        'owner Machine already gone',
        input({ packetMachine: deleting({ providerID: `equinixmetal://${ID}` }), machine: undefined }),
        'look-up-device',
      ],
      [
        'paused cluster: untouched',
        input({ packetMachine: deleting({ intent: true }), cluster: cluster({ paused: true }) }),
        'wait',
      ],
    ])('%s', (_w, i, step) => {
      expect(planMachine(i).do).toBe(step);
    });
  });

  it('records the intent under a documented annotation', () => {
    expect(CREATE_INTENT_ANNOTATION).toBe('capi-packet.knet.dev/device-create-requested');
  });
});

describe('planCluster', () => {
  it.each<[string, Parameters<typeof planCluster>[0], string]>([
    [
      'no owner Cluster',
      {
        packetCluster: { ...packetCluster(), metadata: { ...packetCluster().metadata, ownerReferences: [] } },
      },
      'wait',
    ],
    ['paused', { packetCluster: packetCluster(), cluster: cluster({ paused: true }) }, 'wait'],
    [
      'no finalizer',
      { packetCluster: packetCluster({ finalizer: false }), cluster: cluster() },
      'add-finalizer',
    ],
    [
      'no endpoint: look up the EIP by tag',
      { packetCluster: packetCluster({ endpoint: false }), cluster: cluster() },
      'look-up-elastic-ip',
    ],
    [
      'none tagged: reserve',
      { packetCluster: packetCluster({ endpoint: false }), cluster: cluster(), reservation: null },
      'reserve-elastic-ip',
    ],
    [
      'tagged reservation found: set the endpoint',
      {
        packetCluster: packetCluster({ endpoint: false }),
        cluster: cluster(),
        reservation: { id: 'r1', address: EIP },
      },
      'set-endpoint',
    ],
    ['endpoint set: ready', { packetCluster: packetCluster(), cluster: cluster() }, 'write-ready'],
    ['ready: no API call', { packetCluster: packetCluster({ ready: true }), cluster: cluster() }, 'done'],
  ])('%s', (_w, i, step) => {
    expect(planCluster(i).do).toBe(step);
  });

  it('reserves one public IPv4 in the metro, tagged for the cluster', () => {
    expect(
      planCluster({
        packetCluster: packetCluster({ endpoint: false }),
        cluster: cluster(),
        reservation: null,
      }),
    ).toEqual({
      do: 'reserve-elastic-ip',
      metro: 'da',
      tags: [`cluster-api-provider-packet:cluster-id:${CLUSTER}`],
    });
  });

  describe('deletion', () => {
    const deleting = (policy?: 'Retain' | 'Delete', id?: string) => {
      const p = packetCluster();
      p.metadata.deletionTimestamp = new Date();
      p.spec.eipReclaimPolicy = policy;
      if (id) p.status = { eipReservationID: id };
      return p;
    };
    it('keeps the EIP by default (CAPEM #203) and lets go', () => {
      expect(planCluster({ packetCluster: deleting() }).do).toBe('remove-finalizer');
    });
    it('releases it with eipReclaimPolicy Delete', () => {
      expect(planCluster({ packetCluster: deleting('Delete', 'r1') })).toEqual({
        do: 'release-elastic-ip',
        reservationId: 'r1',
      });
      expect(planCluster({ packetCluster: deleting('Delete') }).do).toBe('look-up-elastic-ip');
      expect(planCluster({ packetCluster: deleting('Delete'), reservation: null }).do).toBe(
        'remove-finalizer',
      );
      expect(planCluster({ packetCluster: deleting('Delete', 'r1'), reservation: null }).do).toBe(
        'remove-finalizer',
      );
    });
  });
});
