import { renderKubeconfig } from '@knet/crypto';
import { kubeconfigTls } from './config';

describe('kubeconfigTls', () => {
  const pem = (what: string) => `-----BEGIN ${what}-----\nAAAA\n-----END ${what}-----\n`;

  it('gives the server and the PEM of the CA, client certificate and key', () => {
    const yaml = renderKubeconfig({
      name: 'a',
      server: 'https://127.0.0.1:6443',
      caPem: pem('CERTIFICATE'),
      credentials: { clientCertificatePem: pem('CERTIFICATE'), clientKeyPem: pem('PRIVATE KEY') },
    });
    expect(kubeconfigTls(yaml)).toEqual({
      server: 'https://127.0.0.1:6443',
      ca: pem('CERTIFICATE'),
      cert: pem('CERTIFICATE'),
      key: pem('PRIVATE KEY'),
    });
  });

  it('names what is missing', () => {
    const yaml = renderKubeconfig({
      name: 'a',
      server: 'https://127.0.0.1:6443',
      caPem: pem('CERTIFICATE'),
      credentials: { token: 't' },
    });
    expect(() => kubeconfigTls(yaml)).toThrow(
      'kubeconfig has no client-certificate-data in its current context',
    );
  });
});
