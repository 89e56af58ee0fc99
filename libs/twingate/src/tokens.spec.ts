import type { ServerResponse } from 'node:http';
import {
  API_KEY,
  ApiServer,
  clientOf,
  inTurn,
  sendData,
  sendJson,
  sendMutationRefused,
  withApiServer,
} from '../test/api-server';
import { TwingateError } from './errors';

const CONNECTOR_1 = 'Q29ubmVjdG9yOjE=';
/** Shaped like the real ones: the access token is a JWT, the refresh token an opaque string. */
const TOKENS = {
  accessToken:
    'eyJhbGciOiJFUzI1NiIsImtpZCI6InRnIn0.eyJudCI6IkFOIiwiYWlkIjoiMTIzNDUiLCJkaWQiOiI2Nzg5MCJ9.c2lnbmF0dXJlLW5vdC1yZWFs',
  refreshToken: 'rt_4f1c2b9e8d7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0',
};

function status(code: number) {
  return (_req: unknown, res: ServerResponse) =>
    sendJson(res, code, { detail: 'Token is invalid or expired' });
}

describe('tokens', () => {
  let server: ApiServer;
  withApiServer((s) => (server = s));

  describe('generateTokens', () => {
    it('runs connectorGenerateTokens and returns the pair (a write)', async () => {
      server.onPost = (_req, res) =>
        sendData(res, { connectorGenerateTokens: { ok: true, error: null, connectorTokens: TOKENS } });
      const { client } = clientOf(server);
      expect(await client.generateTokens(CONNECTOR_1)).toEqual(TOKENS);
      const [post] = server.posts();
      expect(post?.operation).toBe('connectorGenerateTokens');
      expect(post?.query).toContain('connectorGenerateTokens(connectorId: $connectorId)');
      expect(post?.variables).toEqual({ connectorId: CONNECTOR_1 });
      expect(client.stats).toMatchObject({ calls: 1, writes: 1 });
    });

    it('ok:false (e.g. a key without the Provision scope) is a mutation error', async () => {
      server.onPost = (_req, res) =>
        sendMutationRefused(
          res,
          'connectorGenerateTokens',
          'This API key does not have the Provision permission.',
        );
      const { client } = clientOf(server);
      const err: unknown = await client.generateTokens(CONNECTOR_1).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(TwingateError);
      expect(err).toMatchObject({
        kind: 'mutation',
        operation: 'connectorGenerateTokens',
        message: `connectorGenerateTokens refused: This API key does not have the Provision permission. (at 127.0.0.1:${server.port})`,
      });
    });

    it('an empty token is a protocol error that does not show the other one', async () => {
      server.onPost = (_req, res) =>
        sendData(res, {
          connectorGenerateTokens: {
            ok: true,
            error: null,
            connectorTokens: { ...TOKENS, refreshToken: '' },
          },
        });
      const { client } = clientOf(server);
      const err: unknown = await client.generateTokens(CONNECTOR_1).catch((e: unknown) => e);
      expect(err).toMatchObject({ kind: 'protocol' });
      const message = (err as Error).message;
      expect(message).toMatch(/data\.connectorGenerateTokens\.connectorTokens\.refreshToken: /);
      expect(message).not.toContain(TOKENS.accessToken);
    });
  });

  describe('validateTokens', () => {
    it('POSTs the refresh token with the access token as Bearer; 200 → true', async () => {
      server.onPost = (_req, res) => sendJson(res, 200, {});
      const { client } = clientOf(server);
      expect(await client.validateTokens(TOKENS)).toBe(true);
      const [post] = server.posts();
      expect(post?.path).toBe('/api/v4/connector/validate_tokens');
      expect(post?.headers['authorization']).toBe(`Bearer ${TOKENS.accessToken}`);
      expect(post?.headers['x-api-key']).toBe(API_KEY);
      expect(post?.headers['content-type']).toBe('application/json');
      expect(JSON.parse(post?.body ?? '')).toEqual({ refresh_token: TOKENS.refreshToken });
      expect(client.stats).toMatchObject({ calls: 1, reads: 1, writes: 0 });
    });

    it.each([401, 403])('%i → false, without retrying', async (code) => {
      server.onPost = status(code);
      const { client, waits } = clientOf(server);
      expect(await client.validateTokens(TOKENS)).toBe(false);
      expect(waits).toEqual([]);
      expect(server.posts()).toHaveLength(1);
    });

    it('retries a 5xx like any call', async () => {
      server.onPost = inTurn(status(502), (_req, res) => sendJson(res, 200, {}));
      const { client, waits } = clientOf(server);
      expect(await client.validateTokens(TOKENS)).toBe(true);
      expect(waits).toEqual([500]);
    });

    it('another status is an http error without the tokens in it', async () => {
      server.onPost = (_req, res) =>
        sendJson(res, 400, { errors: [{ message: `bad refresh_token ${TOKENS.refreshToken}` }] });
      const { client } = clientOf(server);
      const err: unknown = await client.validateTokens(TOKENS).catch((e: unknown) => e);
      expect(err).toMatchObject({ kind: 'http', status: 400, operation: 'validateTokens' });
      const message = (err as Error).message;
      expect(message).toBe(
        `validateTokens: HTTP 400 Bad Request from 127.0.0.1:${server.port}: bad refresh_token [REDACTED]`,
      );
      expect(message).not.toContain(TOKENS.refreshToken);
      expect(message).not.toContain(TOKENS.accessToken);
    });
  });
});
