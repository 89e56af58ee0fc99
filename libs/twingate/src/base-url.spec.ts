import { twingateBaseUrl } from './base-url';

describe('twingateBaseUrl', () => {
  it.each([
    [{ account: 'acme' }, 'https://acme.twingate.com'],
    [{ account: 'ACME' }, 'https://acme.twingate.com'],
    [{ account: ' acme ' }, 'https://acme.twingate.com'],
    [{ account: 'acme.twingate.com' }, 'https://acme.twingate.com'],
    [{ account: 'acme.us1.twingate.com' }, 'https://acme.us1.twingate.com'],
    [{ account: 'https://acme.twingate.com' }, 'https://acme.twingate.com'],
    [{ account: 'https://acme.twingate.com/' }, 'https://acme.twingate.com'],
    [{ apiUrl: 'https://acme.twingate.com' }, 'https://acme.twingate.com'],
    [{ apiUrl: 'https://gateway.example.com/twingate/' }, 'https://gateway.example.com/twingate'],
    [{ apiUrl: 'http://127.0.0.1:8080' }, 'http://127.0.0.1:8080'],
    [{ apiUrl: 'http://localhost:3000/' }, 'http://localhost:3000'],
    [{ apiUrl: 'http://[::1]:9000' }, 'http://[::1]:9000'],
    [{ account: 'acme', apiUrl: 'http://127.0.0.2:1234' }, 'http://127.0.0.2:1234'],
  ])('%j → %s', (input, expected) => {
    expect(twingateBaseUrl(input)).toBe(expected);
  });

  it.each([
    [
      { apiUrl: 'http://acme.twingate.com' },
      /apiUrl "http:\/\/acme.twingate.com" uses plain http, allowed only for a loopback host/,
    ],
    [{ account: 'http://acme.twingate.com' }, /account "http:\/\/acme.twingate.com" uses plain http/],
    [{ apiUrl: 'http://10.0.0.1:8080' }, /plain http, allowed only for a loopback host/],
    [{ apiUrl: 'not a url' }, /apiUrl "not a url" is not a URL/],
    [{ apiUrl: 'ftp://acme.twingate.com' }, /must be an https URL/],
    [
      { apiUrl: 'https://user:s3cret@acme.twingate.com' },
      /^twingate: apiUrl "https:\/\/acme.twingate.com\/" must not carry credentials/,
    ],
    [
      { apiUrl: 'https://acme.twingate.com/?key=s3cret' },
      /^twingate: apiUrl "https:\/\/acme.twingate.com\/" must not carry .* a query/,
    ],
    [{ apiUrl: 'https://acme.twingate.com/api/graphql/' }, /without \/api\/graphql\//],
    [{ account: 'acme twingate' }, /account "acme twingate" is not a tenant name \(acme\), a host name/],
    [{ account: '-acme' }, /is not a tenant name/],
    [{ account: 'acme_corp.twingate.com' }, /is not a tenant name/],
    [{ account: 'https://acme.twingate.com/admin' }, /must not have a path/],
    [{}, /no account given/],
    [{ account: '', apiUrl: '  ' }, /no account given/],
  ])('%j is refused', (input, message) => {
    let thrown: unknown;
    try {
      twingateBaseUrl(input);
    } catch (e) {
      thrown = e;
    }
    expect(thrown).toBeInstanceOf(Error);
    const text = (thrown as Error).message;
    expect(text).toMatch(message);
    expect(text).toMatch(/^twingate: /);
    expect(text).not.toContain('\n');
    expect(text).not.toContain('s3cret');
  });
});
