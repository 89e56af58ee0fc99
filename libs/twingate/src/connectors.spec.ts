import {
  ApiServer,
  failure,
  clientOf,
  connectorNode,
  globalId,
  inTurn,
  NETWORK,
  sendData,
  sendGraphqlError,
  sendMutationRefused,
  withApiServer,
} from '../test/api-server';

const CONNECTOR_1 = 'Q29ubmVjdG9yOjE=';

describe('connectors', () => {
  let server: ApiServer;
  withApiServer((s) => (server = s));

  describe('getConnector', () => {
    it('returns every field of the connector', async () => {
      expect(globalId('Connector', 1)).toBe(CONNECTOR_1);
      server.onPost = (_req, res) => sendData(res, { connector: connectorNode(1) });
      const { client } = clientOf(server);
      expect(await client.getConnector(CONNECTOR_1)).toEqual({
        id: CONNECTOR_1,
        name: 'connector-1',
        state: 'ALIVE',
        remoteNetwork: NETWORK,
        hasStatusNotificationsEnabled: true,
        hostname: 'connector-1-7d9f8',
        version: '1.72.0',
        publicIP: '203.0.113.10',
        privateIPs: ['10.244.1.1'],
        lastHeartbeatAt: '2024-05-02T10:11:12.345678+00:00',
        createdAt: '2024-04-01T08:00:00.000000+00:00',
        updatedAt: '2024-05-02T10:11:12.345678+00:00',
      });
      const [post] = server.posts();
      expect(post?.operation).toBe('connector');
      expect(post?.query).toContain('fragment ConnectorFields on Connector');
    });

    it('a connector that never connected has null details (left out or null)', async () => {
      const fresh = connectorNode(2, {
        state: 'DEAD_NO_HEARTBEAT',
        hostname: null,
        version: null,
        publicIP: null,
        privateIPs: null,
        lastHeartbeatAt: null,
      });
      delete fresh['hasStatusNotificationsEnabled'];
      server.onPost = (_req, res) => sendData(res, { connector: fresh });
      const { client } = clientOf(server);
      expect(await client.getConnector(globalId('Connector', 2))).toMatchObject({
        state: 'DEAD_NO_HEARTBEAT',
        hasStatusNotificationsEnabled: null,
        hostname: null,
        privateIPs: null,
        lastHeartbeatAt: null,
      });
    });

    it('is undefined when the API answers null', async () => {
      server.onPost = (_req, res) => sendData(res, { connector: null });
      const { client } = clientOf(server);
      expect(await client.getConnector(globalId('Connector', 404))).toBeUndefined();
    });

    it('a GraphQL error (HTTP 200 with errors) is a graphql error naming the path', async () => {
      server.onPost = (_req, res) =>
        sendGraphqlError(res, 'connector', "{'id': ['Unable to parse global ID']}");
      const { client } = clientOf(server);
      const err = await failure(client.getConnector('not-an-id'));
      expect(err).toMatchObject({
        kind: 'graphql',
        operation: 'connector',
        status: 200,
        graphqlErrors: [{ message: "{'id': ['Unable to parse global ID']}", path: ['connector'] }],
      });
      expect(err.message).toBe(
        `connector: {'id': ['Unable to parse global ID']} (path connector, at 127.0.0.1:${server.port})`,
      );
    });

    it('a wrong shape is a protocol error naming the operation and the path', async () => {
      server.onPost = (_req, res) => sendData(res, { connector: connectorNode(1, { state: 'SLEEPING' }) });
      const { client } = clientOf(server);
      const err = await failure(client.getConnector(CONNECTOR_1));
      expect(err.kind).toBe('protocol');
      expect(err.message).toMatch(
        new RegExp(
          `^connector: unexpected answer from 127\\.0\\.0\\.1:${server.port}: data\\.connector\\.state: `,
        ),
      );
    });

    it('a wrong shape deep in a page names the edge', async () => {
      server.onPost = (_req, res) =>
        sendData(res, {
          connectors: {
            pageInfo: { hasNextPage: false },
            edges: [{ node: connectorNode(1) }, { node: connectorNode(2, { remoteNetwork: { id: 7 } }) }],
          },
        });
      const { client } = clientOf(server);
      const err = await failure(client.listAllConnectors());
      expect(err.message).toMatch(/: data\.connectors\.edges\[1\]\.node\.remoteNetwork\.id: /);
    });
  });

  describe('createConnector', () => {
    it('sends flat arguments and returns the new connector (a write)', async () => {
      const created = connectorNode(8, { name: 'whispering-petrel', state: 'DEAD_NO_HEARTBEAT' });
      server.onPost = (_req, res) =>
        sendData(res, { connectorCreate: { ok: true, error: null, entity: created } });
      const { client } = clientOf(server);
      const connector = await client.createConnector({ remoteNetworkId: NETWORK.id });
      expect(connector).toMatchObject({ id: globalId('Connector', 8), name: 'whispering-petrel' });
      const [post] = server.posts();
      expect(post?.operation).toBe('connectorCreate');
      expect(post?.query).toMatch(/^mutation connectorCreate\(\$remoteNetworkId: ID!, \$name: String/);
      expect(post?.query).toContain(
        'connectorCreate(remoteNetworkId: $remoteNetworkId, name: $name, hasStatusNotificationsEnabled: $hasStatusNotificationsEnabled)',
      );
      // Without a name the API picks one: the variable is left out, not sent empty.
      expect(post?.variables).toEqual({ remoteNetworkId: NETWORK.id });
      expect(client.stats).toMatchObject({ calls: 1, writes: 1, reads: 0 });
    });

    it('passes the name and the notification flag', async () => {
      server.onPost = (_req, res) =>
        sendData(res, {
          connectorCreate: { ok: true, error: null, entity: connectorNode(9, { name: 'k8s-0' }) },
        });
      const { client } = clientOf(server);
      await client.createConnector({
        remoteNetworkId: NETWORK.id,
        name: 'k8s-0',
        hasStatusNotificationsEnabled: false,
      });
      expect(server.posts()[0]?.variables).toEqual({
        remoteNetworkId: NETWORK.id,
        name: 'k8s-0',
        hasStatusNotificationsEnabled: false,
      });
    });

    it('ok:false is a mutation error with the API’s reason', async () => {
      server.onPost = (_req, res) =>
        sendMutationRefused(
          res,
          'connectorCreate',
          'Connector with this name already exists in this remote network.',
        );
      const { client } = clientOf(server);
      const err = await failure(client.createConnector({ remoteNetworkId: NETWORK.id, name: 'k8s-0' }));
      expect(err).toMatchObject({ kind: 'mutation', operation: 'connectorCreate' });
      expect(err.message).toBe(
        `connectorCreate refused: Connector with this name already exists in this remote network. (at 127.0.0.1:${server.port})`,
      );
    });

    it('ok:true without the entity is a protocol error', async () => {
      server.onPost = (_req, res) =>
        sendData(res, { connectorCreate: { ok: true, error: null, entity: null } });
      const { client } = clientOf(server);
      const err = await failure(client.createConnector({ remoteNetworkId: NETWORK.id }));
      expect(err.kind).toBe('protocol');
      expect(err.message).toMatch(/: data\.connectorCreate\.entity: /);
    });
  });

  it('updateConnector sends the id and the changed fields', async () => {
    server.onPost = (_req, res) =>
      sendData(res, {
        connectorUpdate: { ok: true, error: null, entity: connectorNode(1, { name: 'renamed' }) },
      });
    const { client } = clientOf(server);
    expect(await client.updateConnector({ id: CONNECTOR_1, name: 'renamed' })).toMatchObject({
      name: 'renamed',
    });
    const [post] = server.posts();
    expect(post?.query).toContain(
      'connectorUpdate(id: $id, name: $name, hasStatusNotificationsEnabled: $hasStatusNotificationsEnabled)',
    );
    expect(post?.variables).toEqual({ id: CONNECTOR_1, name: 'renamed' });
  });

  describe('deleteConnector', () => {
    it("is 'deleted' when the API deletes it", async () => {
      server.onPost = (_req, res) => sendData(res, { connectorDelete: { ok: true, error: null } });
      const { client } = clientOf(server);
      expect(await client.deleteConnector(CONNECTOR_1)).toBe('deleted');
      expect(server.posts().map((r) => r.operation)).toEqual(['connectorDelete']);
      expect(client.stats).toMatchObject({ calls: 1, writes: 1, reads: 0 });
    });

    it("is 'absent' when the API refuses and the connector is gone, whatever the refusal says", async () => {
      server.onPost = inTurn(
        (_req, res) => sendMutationRefused(res, 'connectorDelete', 'Something unexpected happened.'),
        (_req, res) => sendData(res, { connector: null }),
      );
      const { client } = clientOf(server);
      expect(await client.deleteConnector(CONNECTOR_1)).toBe('absent');
      expect(server.posts().map((r) => [r.operation, r.variables])).toEqual([
        ['connectorDelete', { id: CONNECTOR_1 }],
        ['connector', { id: CONNECTOR_1 }],
      ]);
      expect(client.stats).toMatchObject({ calls: 2, writes: 1, reads: 1 });
    });

    it('throws the refusal when the connector is still there, even if it says "does not exist"', async () => {
      server.onPost = inTurn(
        (_req, res) =>
          sendMutationRefused(
            res,
            'connectorDelete',
            `Field 'id' Connector with id '${CONNECTOR_1}' does not exist.`,
          ),
        (_req, res) => sendData(res, { connector: connectorNode(1) }),
      );
      const { client } = clientOf(server);
      const err = await failure(client.deleteConnector(CONNECTOR_1));
      expect(err).toMatchObject({ kind: 'mutation', operation: 'connectorDelete' });
      expect(err.message).toMatch(/^connectorDelete refused: Field 'id' Connector with id/);
    });

    it('a failed lookup throws the lookup error (its kind says whether to retry)', async () => {
      server.onPost = inTurn(
        (_req, res) => sendMutationRefused(res, 'connectorDelete', 'nope'),
        (_req, res) => sendGraphqlError(res, 'connector', 'Permission denied.'),
      );
      const { client } = clientOf(server);
      const err = await failure(client.deleteConnector(CONNECTOR_1));
      expect(err).toMatchObject({ kind: 'graphql', operation: 'connector' });
    });

    it('a GraphQL error on the delete itself is thrown as it is, without a lookup', async () => {
      server.onPost = (_req, res) =>
        sendGraphqlError(res, 'connectorDelete', "{'id': ['Unable to parse global ID']}");
      const { client } = clientOf(server);
      const err = await failure(client.deleteConnector('garbage'));
      expect(err.kind).toBe('graphql');
      expect(server.posts()).toHaveLength(1);
    });
  });
});
