import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';

// Test fixtures shared by the bootstrap specs and test/bootstrap.test.ts (not exported by the lib).

/** A CA as CABPK, KCP or `kubeadm init` make it: RSA-2048 by openssl, the key PKCS#1, written under `dir`. */
export async function opensslRsaCa(dir: string): Promise<{ certPem: string; keyPem: string }> {
  const [cert, key] = [join(dir, 'rsa-ca.crt'), join(dir, 'rsa-ca.key')];
  await execa('openssl', [
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-days',
    '3650',
    '-subj',
    '/CN=kubernetes',
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
    '-keyout',
    key,
    '-out',
    cert,
  ]);
  await execa('openssl', ['rsa', '-in', key, '-traditional', '-out', key]);
  return { certPem: await readFile(cert, 'utf8'), keyPem: await readFile(key, 'utf8') };
}

/** What `fn` throws (undefined when it returns), to match an error's fields: `kind`, `message`. */
export function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  return undefined;
}
