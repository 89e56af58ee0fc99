import { DEFAULT_API_URL, metalApiUrl } from './api-url';

describe('metalApiUrl', () => {
  it.each([
    [undefined, 'https://api.equinix.com/metal/v1'],
    ['https://api.equinix.com/metal/v1/', 'https://api.equinix.com/metal/v1'],
    [' http://127.0.0.1:8080/metal/v1// ', 'http://127.0.0.1:8080/metal/v1'],
    ['http://metal-api.capi-system.svc:8080', 'http://metal-api.capi-system.svc:8080'],
    ['https://api.packet.net', 'https://api.packet.net'],
    ['HTTPS://API.Equinix.com/metal/v1', 'https://api.equinix.com/metal/v1'],
  ])('%s → %s', (given, expected) => {
    expect(metalApiUrl(given)).toBe(expected);
  });

  it('defaults to the spec server', () => {
    expect(DEFAULT_API_URL).toBe('https://api.equinix.com/metal/v1');
  });

  it.each([
    [
      'api.equinix.com/metal/v1',
      'Metal API URL "api.equinix.com/metal/v1" is not a URL: give one like https://api.equinix.com/metal/v1',
    ],
    [
      'ftp://api.equinix.com',
      'Metal API URL "ftp://api.equinix.com" must be http or https, like https://api.equinix.com/metal/v1',
    ],
    [
      'https://user:hunter2@api.equinix.com/metal/v1',
      'Metal API URL "https://api.equinix.com/metal/v1" must not carry credentials, a query or a fragment (the token is an option of its own)',
    ],
    [
      'https://api.equinix.com/metal/v1?token=x',
      'Metal API URL "https://api.equinix.com/metal/v1" must not carry credentials, a query or a fragment (the token is an option of its own)',
    ],
  ])('refuses %s in one line', (given, message) => {
    expect(() => metalApiUrl(given)).toThrow(message);
  });
});
