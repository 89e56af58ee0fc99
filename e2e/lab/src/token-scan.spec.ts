import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileHaystacks, objectHaystacks, tokensFound, type KubeObjectList } from './token-scan';

const ACCESS = 'eyJhbGciOiJFUzI1NiJ9.eyJ0eXAiOiJjb25uZWN0b3IifQ.c2lnbmF0dXJl';
const REFRESH = 'r'.repeat(40) + 'EFRESH' + '9'.repeat(54);
const tokens = { 'access token': ACCESS, 'refresh token': REFRESH };
const b64 = (s: string) => Buffer.from(s).toString('base64');

/** A cluster's Secrets and ConfigMaps as kubectl lists them, the claims ConfigMap among them. */
function cluster(...extra: KubeObjectList['items']): KubeObjectList {
  return {
    items: [
      {
        kind: 'Secret',
        metadata: { namespace: 'twingate', name: 'lab-connector-api-key' },
        data: { TWINGATE_API_KEY: b64('test-key') },
      },
      {
        kind: 'ConfigMap',
        metadata: { namespace: 'twingate', name: 'lab-connector-connectors' },
        data: { 'ordinal.0': '{"name":"lab-connector-0","id":"Q29ubmVjdG9yOjE=","origin":"created"}' },
      },
      ...extra,
    ],
  };
}

describe('tokensFound over Secrets and ConfigMaps', () => {
  it('finds nothing in a cluster that stores no token', () => {
    expect(tokensFound(objectHaystacks(cluster()), tokens)).toEqual([]);
  });

  it('finds a token in a Secret, where the API shows it base64-encoded', () => {
    const leak = cluster({
      kind: 'Secret',
      metadata: { namespace: 'twingate', name: 'connector-tokens' },
      data: { TWINGATE_ACCESS_TOKEN: b64(ACCESS) },
    });
    expect(tokensFound(objectHaystacks(leak), tokens)).toEqual([
      'access token (base64) in Secret twingate/connector-tokens',
      'access token in Secret twingate/connector-tokens key TWINGATE_ACCESS_TOKEN',
    ]);
  });

  it('finds a token inside a longer Secret value (not aligned for base64)', () => {
    const leak = cluster({
      kind: 'Secret',
      metadata: { namespace: 'default', name: 'env' },
      data: { '.env': b64(`X=1\nTWINGATE_REFRESH_TOKEN=${REFRESH}\n`) },
    });
    expect(tokensFound(objectHaystacks(leak), tokens)).toEqual([
      'refresh token in Secret default/env key .env',
    ]);
  });

  it('finds a token in ConfigMap data, binaryData or an annotation', () => {
    const leak = cluster(
      {
        kind: 'ConfigMap',
        metadata: { namespace: 'twingate', name: 'plain' },
        data: { tokens: `${ACCESS}\n${REFRESH}\n` },
      },
      { kind: 'ConfigMap', metadata: { namespace: 'a', name: 'bin' }, binaryData: { t: b64(`x${REFRESH}`) } },
      {
        kind: 'ConfigMap',
        metadata: { namespace: 'b', name: 'annotated', annotations: { note: ACCESS } },
      },
    );
    expect(tokensFound(objectHaystacks(leak), tokens)).toEqual([
      'access token in ConfigMap twingate/plain',
      'refresh token in ConfigMap twingate/plain',
      'refresh token in ConfigMap a/bin key t',
      'access token in ConfigMap b/annotated',
    ]);
  });

  it('refuses a token too short to search for (an empty one would match everything)', () => {
    expect(() => tokensFound(objectHaystacks(cluster()), { 'access token': '' })).toThrow(
      'the access token is 0 characters: too short to search for',
    );
  });
});

describe('fileHaystacks over a handoff dir', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'knet-token-scan-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('reads regular files, never opens the FIFO (that would take a fresh pair), skips links and dirs', () => {
    writeFileSync(join(dir, 'launch'), 'IFS= read -r a <"$d/tokens"\n');
    writeFileSync(join(dir, 'sh'), Buffer.from([0x7f, 0x45, 0x4c, 0x46, 0, 1, 2]));
    expect(spawnSync('mkfifo', [join(dir, 'tokens')]).status).toBe(0);
    symlinkSync('/etc/hostname', join(dir, 'link'));
    mkdirSync(join(dir, 'sub'));
    // Would block forever if the FIFO were opened (no writer).
    const { haystacks, files } = fileHaystacks(dir, 'pod-0');
    expect(files).toEqual(['launch', 'sh']);
    expect(haystacks.map((h) => h.where)).toEqual(['pod-0/launch', 'pod-0/sh']);
    expect(tokensFound(haystacks, tokens)).toEqual([]);
  });

  it('finds a token a file holds', () => {
    writeFileSync(join(dir, 'launch'), '#!/bin/sh\n');
    writeFileSync(join(dir, 'pair'), `${ACCESS}\n${REFRESH}\n`);
    expect(tokensFound(fileHaystacks(dir, 'pod-0').haystacks, tokens)).toEqual([
      'access token in pod-0/pair',
      'refresh token in pod-0/pair',
    ]);
  });
});
