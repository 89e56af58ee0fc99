import {
  answer,
  clientOf,
  device,
  failureOf,
  leaksOf,
  ScriptedServer,
  sendJson,
  thrown,
  withScriptedServer,
} from '../test/scripted-server';
import type { DeviceCreateRequest } from './types';

const PROJECT = '5f0e3a2b-7c1d-4e8f-9a6b-2d4c8e1f0a3b';
const DEVICE = '9b5b3c1e-0d6a-4a57-9a2f-1c0f6d1e7a11';
const RESERVATION = 'b7a4c1d2-3e5f-4a6b-8c9d-0e1f2a3b4c5d';
const ASSIGNMENT = 'c8b5d2e3-4f6a-4b7c-9d0e-1f2a3b4c5d6e';

/** The body of the request the server received at `index`. */
function bodyOf(server: ScriptedServer, index = 0): unknown {
  return JSON.parse(server.requests[index]?.body ?? 'null');
}

describe('MetalClient operations', () => {
  let server: ScriptedServer;
  withScriptedServer((s) => (server = s));

  afterAll(() => {
    expect(thrown.flatMap((e) => leaksOf(e))).toEqual([]);
  });

  describe('devices', () => {
    it('createDevice POSTs the spec body in a metro (tags and ssh keys sent as given)', async () => {
      const input: DeviceCreateRequest = {
        hostname: 'c1-control-plane-x7k2p',
        plan: 'c3.small.x86',
        operating_system: 'ubuntu_22_04',
        metro: 'da',
        billing_cycle: 'hourly',
        userdata: '#cloud-config\nruncmd: []\n',
        tags: ['capp:cluster-id:c1', 'capp:machine-uid:m1', 'kubernetes.io/role:master'],
        project_ssh_keys: ['0e1f2a3b-4c5d-4e6f-8a9b-0c1d2e3f4a5b'],
        ssh_keys: [{ key: 'ssh-ed25519 AAAAC3Nz test', label: 'c1' }],
        hardware_reservation_id: 'next-available',
        ipxe_script_url: 'https://boot.example/ipxe',
        always_pxe: false,
        ip_addresses: [{ address_family: 4, public: false }],
        customdata: { cluster: 'c1' },
        locked: false,
        spot_instance: false,
      };
      server.on('POST', `/projects/${PROJECT}/devices`, answer(201, device(DEVICE, { state: 'queued' })));
      const { client, calls } = clientOf(server);
      const created = await client.createDevice(PROJECT, input, { include: ['ip_addresses'] });
      expect(created).toMatchObject({ id: DEVICE, state: 'queued' });
      expect(server.log()).toEqual([`POST /projects/${PROJECT}/devices?include=ip_addresses`]);
      expect(bodyOf(server)).toEqual(input);
      expect(calls[0]?.operation).toBe('createDevice');
    });

    it('createDevice takes a facility list, and refuses both or neither locally', async () => {
      server.on('POST', `/projects/${PROJECT}/devices`, answer(201, device(DEVICE)));
      const { client } = clientOf(server);
      const base = { plan: 'c3.small.x86', operating_system: 'ubuntu_22_04' };
      await client.createDevice(PROJECT, { ...base, facility: ['da11', 'any'] });
      expect(bodyOf(server)).toEqual({ ...base, facility: ['da11', 'any'] });

      const both = { ...base, metro: 'da', facility: ['da11'] } as unknown as DeviceCreateRequest;
      await expect(client.createDevice(PROJECT, both)).rejects.toThrow(
        /give a metro or a facility list, not both/,
      );
      const neither = { ...base } as unknown as DeviceCreateRequest;
      await expect(client.createDevice(PROJECT, neither)).rejects.toThrow(/neither is set/);
      expect(server.requests).toHaveLength(1);
    });

    it('getDevice sends include and exclude comma-separated, and encodes the id', async () => {
      server.on('GET', `/devices/${DEVICE}`, answer(200, device(DEVICE)));
      server.on('GET', '/devices/a%2Fb', answer(404, { errors: ['Not found'] }));
      const { client } = clientOf(server);
      await client.getDevice(DEVICE, { include: ['facility', 'ip_addresses'], exclude: ['project'] });
      expect(server.requests[0]?.query.get('include')).toBe('facility,ip_addresses');
      expect(server.requests[0]?.query.get('exclude')).toBe('project');
      expect((await failureOf(client.getDevice('a/b'))).kind).toBe('gone');
      expect(server.log()[1]).toBe('GET /devices/a%2Fb');
      await expect(client.getDevice(' ')).rejects.toThrow('Metal API: the device id is empty');
    });

    it('getDevice: 403 is forbidden (a failed provisioning), 404 gone', async () => {
      server.on(
        'GET',
        `/devices/${DEVICE}`,
        answer(403, { errors: ['You are not authorized to view this device'] }),
      );
      server.on('GET', '/devices/missing', answer(404, { errors: ['Not found'] }));
      const { client } = clientOf(server);
      expect(await failureOf(client.getDevice(DEVICE))).toMatchObject({ kind: 'forbidden', status: 403 });
      expect(await failureOf(client.getDevice('missing'))).toMatchObject({ kind: 'gone', status: 404 });
    });

    it('updateDevice PUTs the update input', async () => {
      server.on('PUT', `/devices/${DEVICE}`, (req, res) =>
        sendJson(res, 200, { ...device(DEVICE), ...JSON.parse(req.body) }),
      );
      const { client } = clientOf(server);
      const updated = await client.updateDevice(DEVICE, {
        hostname: 'renamed',
        tags: ['a', 'b'],
        locked: true,
      });
      expect(updated).toMatchObject({ hostname: 'renamed', tags: ['a', 'b'], locked: true });
      expect(server.log()).toEqual([`PUT /devices/${DEVICE}`]);
      expect(bodyOf(server)).toEqual({ hostname: 'renamed', tags: ['a', 'b'], locked: true });
    });

    it('deleteDevice sends force_delete and takes the 204; a device already gone is `gone`', async () => {
      server.on('DELETE', `/devices/${DEVICE}`, answer(204));
      server.on('DELETE', '/devices/missing', answer(404, { errors: ['Not found'] }));
      const { client } = clientOf(server);
      await expect(client.deleteDevice(DEVICE, { force_delete: true })).resolves.toBeUndefined();
      await client.deleteDevice(DEVICE);
      expect(server.log()).toEqual([
        `DELETE /devices/${DEVICE}?force_delete=true`,
        `DELETE /devices/${DEVICE}`,
      ]);
      expect((await failureOf(client.deleteDevice('missing', { force_delete: true }))).kind).toBe('gone');
    });

    it('listProjectDevices sends the server-side filters', async () => {
      server.on('GET', `/projects/${PROJECT}/devices`, answer(200, { devices: [device(DEVICE)], meta: {} }));
      const { client } = clientOf(server);
      await client.listProjectDevices(PROJECT, {
        tag: 'capp:cluster-id:c1',
        hostname: 'c1-',
        metro: 'da',
        reserved: false,
        categories: ['compute', 'current_gen'],
        per_page: 1000,
      });
      const q = server.requests[0]?.query;
      expect(q?.get('tag')).toBe('capp:cluster-id:c1');
      expect(q?.get('hostname')).toBe('c1-');
      expect(q?.get('metro')).toBe('da');
      expect(q?.get('reserved')).toBe('false');
      expect(q?.getAll('categories')).toEqual(['compute', 'current_gen']);
      expect(q?.get('per_page')).toBe('1000');
      await expect(client.listProjectDevices(PROJECT, { per_page: 1001 })).rejects.toThrow(
        'Metal API: per_page must be an integer from 1 to 1000, got 1001',
      );
    });

    it('findDevicesByTags filters by the first tag on the server and by all of them here', async () => {
      server.on(
        'GET',
        `/projects/${PROJECT}/devices`,
        answer(200, {
          devices: [
            device('d1', { tags: ['capp:cluster-id:c1', 'capp:machine-uid:m1'] }),
            device('d2', { tags: ['capp:cluster-id:c1', 'capp:machine-uid:m2'] }),
            device('d3', { tags: ['capp:cluster-id:c1'] }),
          ],
          meta: {},
        }),
      );
      const { client } = clientOf(server);
      const found = await client.findDevicesByTags(PROJECT, ['capp:cluster-id:c1', 'capp:machine-uid:m1']);
      expect(found.map((d) => d.id)).toEqual(['d1']);
      expect(server.requests[0]?.query.get('tag')).toBe('capp:cluster-id:c1');
      await expect(client.findDevicesByTags(PROJECT, [])).rejects.toThrow(/at least one tag/);
    });
  });

  describe('IP addresses', () => {
    it('requestIpReservation POSTs the request input and returns the reservation', async () => {
      const input = {
        type: 'public_ipv4' as const,
        quantity: 1,
        metro: 'da',
        tags: ['cluster-api-provider-packet:cluster-id:c1'],
        fail_on_approval_required: true,
        details: 'control plane endpoint of c1',
      };
      server.on(
        'POST',
        `/projects/${PROJECT}/ips`,
        answer(201, {
          id: RESERVATION,
          address: '203.0.113.10',
          cidr: 32,
          tags: input.tags,
          type: 'public_ipv4',
        }),
      );
      const { client } = clientOf(server);
      const r = await client.requestIpReservation(PROJECT, input);
      expect(r).toMatchObject({ id: RESERVATION, address: '203.0.113.10' });
      expect(bodyOf(server)).toEqual(input);
    });

    it('requestIpReservation over the quota with fail_on_approval_required is invalid', async () => {
      server.on('POST', `/projects/${PROJECT}/ips`, answer(422, { errors: ['IP quota exceeded'] }));
      const { client } = clientOf(server);
      const e = await failureOf(
        client.requestIpReservation(PROJECT, { type: 'public_ipv4', quantity: 1, metro: 'da' }),
      );
      expect(e).toMatchObject({ kind: 'invalid', errors: ['IP quota exceeded'] });
      expect(server.requests).toHaveLength(1);
    });

    it('listIpReservations sends types once per value', async () => {
      server.on(
        'GET',
        `/projects/${PROJECT}/ips`,
        answer(200, { ip_addresses: [{ id: RESERVATION }], meta: {} }),
      );
      const { client } = clientOf(server);
      await client.listIpReservations(PROJECT, { types: ['public_ipv4', 'global_ipv4'], per_page: 250 });
      expect(server.log()).toEqual([
        `GET /projects/${PROJECT}/ips?types=public_ipv4&types=global_ipv4&per_page=250`,
      ]);
    });

    it('getIpAddress, deleteIpReservation and unassignIpAddress use /ips/{id}', async () => {
      server.on('GET', `/ips/${RESERVATION}`, answer(200, { id: RESERVATION, assignments: [] }));
      server.on('DELETE', `/ips/${RESERVATION}`, answer(204));
      server.on('DELETE', `/ips/${ASSIGNMENT}`, answer(204));
      const { client, calls } = clientOf(server);
      expect(await client.getIpAddress(RESERVATION)).toEqual({ id: RESERVATION, assignments: [] });
      await client.deleteIpReservation(RESERVATION);
      await client.unassignIpAddress(ASSIGNMENT);
      expect(server.log()).toEqual([
        `GET /ips/${RESERVATION}`,
        `DELETE /ips/${RESERVATION}`,
        `DELETE /ips/${ASSIGNMENT}`,
      ]);
      expect(calls.map((c) => c.operation)).toEqual([
        'findIPAddressById',
        'deleteIPAddress',
        'deleteIPAddress',
      ]);
    });

    it('assignIpAddress POSTs {address}; listIpAssignments reads ip_addresses', async () => {
      server.on(
        'POST',
        `/devices/${DEVICE}/ips`,
        answer(201, {
          id: ASSIGNMENT,
          address: '203.0.113.10',
          assigned_to: { href: `/metal/v1/devices/${DEVICE}` },
        }),
      );
      server.on(
        'GET',
        `/devices/${DEVICE}/ips`,
        answer(200, { ip_addresses: [{ id: ASSIGNMENT, address: '203.0.113.10', public: true }] }),
      );
      const { client } = clientOf(server);
      const assigned = await client.assignIpAddress(DEVICE, { address: '203.0.113.10/32' });
      expect(assigned.id).toBe(ASSIGNMENT);
      expect(bodyOf(server)).toEqual({ address: '203.0.113.10/32' });
      expect((await client.listIpAssignments(DEVICE)).map((a) => a.address)).toEqual(['203.0.113.10']);
    });
  });

  describe('projects and answers', () => {
    it('getProject checks credentials: 200 with the project, 401 unauthorized', async () => {
      server.on('GET', `/projects/${PROJECT}`, answer(200, { id: PROJECT, name: 'capi' }));
      const { client } = clientOf(server);
      expect((await client.getProject(PROJECT)).name).toBe('capi');

      const other = await ScriptedServer.start();
      try {
        other.on('GET', `/projects/${PROJECT}`, answer(401, { error: 'Invalid authentication token' }));
        const e = await failureOf(clientOf(other).client.getProject(PROJECT));
        expect(e).toMatchObject({
          kind: 'unauthorized',
          status: 401,
          errors: ['Invalid authentication token'],
        });
        expect(e.message).toBe(
          `Metal API GET /projects/${PROJECT}: 401 unauthorized: the API token is missing, wrong or revoked: Invalid authentication token`,
        );
      } finally {
        await other.close();
      }
    });

    it('refuses a 2xx answer that is not a resource with an id', async () => {
      server.on('GET', `/devices/${DEVICE}`, answer(200, { hostname: 'x' }));
      const { client } = clientOf(server);
      const e = await failureOf(client.getDevice(DEVICE));
      expect(e).toMatchObject({ kind: 'terminal', status: 200 });
      expect(e.message).toMatch(
        /: 200 answer is not a resource with an id: is http:\/\/127\.0\.0\.1:\d+\/metal\/v1 the Metal API\?$/,
      );
    });
  });
});
