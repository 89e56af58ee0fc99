import { execFileSync } from 'node:child_process';
import { createHash, createPrivateKey, createPublicKey } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  decodeHello,
  decodeHelloReply,
  encodeHello,
  encodeOpenSshEd25519,
  fingerprintOfPublicKey,
  generateHostKey,
  loadHostKey,
  MIN_TOKEN_LENGTH,
  normalizeFingerprint,
  tunnelUrl,
} from './index';

/** DER header of a PKCS#8 ed25519 private key; the 32-byte seed follows. */
const PKCS8_ED25519_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

describe('host keys', () => {
  it('generates ed25519 keys whose fingerprint is what ssh-keygen prints', () => {
    const k = generateHostKey();
    const dir = mkdtempSync(join(tmpdir(), 'knet-hk-'));
    let out: string;
    try {
      writeFileSync(join(dir, 'k.pub'), k.publicKey + '\n');
      out = execFileSync('ssh-keygen', ['-lf', join(dir, 'k.pub')]).toString();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    expect(out.split(' ')[1]).toBe(k.fingerprint);
    expect(fingerprintOfPublicKey(k.publicKey)).toBe(k.fingerprint);
    const again = loadHostKey(k.privateKey);
    expect(again.fingerprint).toBe(k.fingerprint);
    expect(again.publicKey).toBe(k.publicKey.split(' ').slice(0, 2).join(' '));
  });

  it('writes a private key that ssh-keygen and ssh2 read, also when the public key starts with a zero byte', () => {
    // ssh2's own generator mangles exactly these keys (about 1 in 256); find one deterministically.
    let seed: Buffer | undefined;
    let pub: Buffer | undefined;
    for (let i = 0; i < 5000 && !pub; i++) {
      const s = createHash('sha256').update(`seed-${i}`).digest();
      const key = createPrivateKey({
        key: Buffer.concat([PKCS8_ED25519_PREFIX, s]),
        format: 'der',
        type: 'pkcs8',
      });
      const p = createPublicKey(key).export({ type: 'spki', format: 'der' }).subarray(-32);
      if (p[0] === 0) [seed, pub] = [s, p];
    }
    expect(pub?.[0]).toBe(0);
    const dir = mkdtempSync(join(tmpdir(), 'knet-hk-'));
    try {
      for (const k of [encodeOpenSshEd25519(seed!, pub!, 'zero-lead'), generateHostKey('fresh')]) {
        const file = join(dir, 'k');
        writeFileSync(file, k.privateKey, { mode: 0o600 });
        const derived = execFileSync('ssh-keygen', ['-y', '-f', file]).toString().trim();
        expect(derived.split(' ').slice(0, 2).join(' ')).toBe(k.publicKey.split(' ').slice(0, 2).join(' '));
        expect(loadHostKey(k.privateKey).fingerprint).toBe(k.fingerprint);
        rmSync(file);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('rejects a broken key and normalizes fingerprints', () => {
    expect(() => loadHostKey('not a key')).toThrow(/^SSH host key is not valid/);
    const fp = generateHostKey().fingerprint;
    expect(normalizeFingerprint(fp)).toBe(fp);
    expect(normalizeFingerprint(fp.slice('SHA256:'.length) + '=')).toBe(fp);
    expect(() => normalizeFingerprint('MD5:aa:bb')).toThrow(/must be a SHA-256 fingerprint/);
  });
});

describe('hello', () => {
  const hello = { version: 1 as const, cluster: 'alpha', token: 't'.repeat(64), agent: 'pod-1' };

  it('round-trips', () => {
    expect(decodeHello(encodeHello(hello))).toEqual({ ok: true, hello });
  });

  it.each([
    ['bash -c id', 'expected "knet-tower-hello <json>"'],
    ['knet-tower-hello {', 'hello is not valid JSON'],
    [
      'knet-tower-hello {"version":2,"cluster":"a","token":"t","agent":"x"}',
      'hello version: Invalid input: expected 1',
    ],
    [
      'knet-tower-hello {"version":1,"cluster":"A_B","token":"t","agent":"x"}',
      'hello cluster: must be a DNS subdomain name (the Cluster object name)',
    ],
    [
      'knet-tower-hello {"version":1,"cluster":"a","token":"","agent":"x"}',
      'hello token: Too small: expected string to have >=16 characters',
    ],
    [
      `knet-tower-hello {"version":1,"cluster":"a","token":"${'t'.repeat(15)}","agent":"x"}`,
      'hello token: Too small: expected string to have >=16 characters',
    ],
  ])('refuses %p', (cmd, message) => {
    expect(decodeHello(cmd)).toEqual({ ok: false, message });
  });

  it('accepts a token of MIN_TOKEN_LENGTH characters', () => {
    const h = { ...hello, token: 't'.repeat(MIN_TOKEN_LENGTH) };
    expect(MIN_TOKEN_LENGTH).toBe(16);
    expect(decodeHello(encodeHello(h))).toEqual({ ok: true, hello: h });
  });

  it('decodes replies and refuses malformed ones', () => {
    expect(decodeHelloReply('{"ok":false,"reason":"unauthorized","message":"m"}')).toEqual({
      ok: false,
      reason: 'unauthorized',
      message: 'm',
    });
    expect(decodeHelloReply('{"ok":false,"reason":"bad-token","message":"m"}')).toEqual({
      ok: false,
      reason: 'bad-token',
      message: 'm',
    });
    expect(() => decodeHelloReply('{"ok":true}')).toThrow(/malformed/);
    expect(() => decodeHelloReply('<html>')).toThrow(/not JSON/);
  });
});

describe('tunnelUrl', () => {
  it.each([
    ['http://tower:8080', 'ws://tower:8080/v1/tunnel'],
    ['https://tower.example.com', 'wss://tower.example.com/v1/tunnel'],
    ['https://lb.example.com/prefix/', 'wss://lb.example.com/prefix/v1/tunnel'],
    ['ws://[::1]:8080', 'ws://[::1]:8080/v1/tunnel'],
  ])('%s → %s', (input, want) => expect(tunnelUrl(input)).toBe(want));

  it('explains bad input', () => {
    expect(() => tunnelUrl('tower:8080')).toThrow(
      '--proxy-server scheme must be http, https, ws or wss, got "tower"',
    );
    expect(() => tunnelUrl('::')).toThrow(/--proxy-server must be a URL/);
  });
});
