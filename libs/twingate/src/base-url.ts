/** Tenants live at `https://<slug>.twingate.com`. */
export const TWINGATE_DOMAIN = 'twingate.com';

const SLUG = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/i;
const HOST_NAME = /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/i;
const SCHEME = /^[a-z][a-z0-9+.-]*:\/\//i;

/**
 * The API's base URL (no trailing slash; GraphQL is at `${base}/api/graphql/`) from an account or
 * an explicit URL. `apiUrl` wins over `account`.
 *
 * - account `acme`, `acme.twingate.com` or `https://acme.twingate.com` → `https://acme.twingate.com`;
 * - apiUrl: an https URL (a path prefix is kept), or http only for a loopback host (a local fake).
 *
 * Throws an `Error` with one line saying what is wrong and what is expected.
 */
export function twingateBaseUrl(o: { account?: string; apiUrl?: string }): string {
  const apiUrl = o.apiUrl?.trim();
  if (apiUrl) return fromUrl(apiUrl, 'apiUrl', true);
  const account = o.account?.trim();
  if (account) {
    if (SCHEME.test(account)) return fromUrl(account, 'account', false);
    if (SLUG.test(account)) return `https://${account.toLowerCase()}.${TWINGATE_DOMAIN}`;
    if (HOST_NAME.test(account)) return `https://${account.toLowerCase()}`;
    throw new Error(
      `twingate: account ${quote(account)} is not a tenant name (acme), a host name (acme.twingate.com) or an https URL`,
    );
  }
  throw new Error(
    'twingate: no account given: set the tenant (acme, acme.twingate.com or https://acme.twingate.com) or an API URL',
  );
}

/** True for hosts that never leave the machine: localhost, 127.0.0.0/8, ::1 (as URL.hostname spells them). */
export function isLoopbackHost(hostname: string): boolean {
  const h = hostname.toLowerCase();
  return h === 'localhost' || h === '[::1]' || /^127(\.\d{1,3}){3}$/.test(h);
}

/**
 * True when the API key may be sent to `url`: https anywhere, plain http only to a loopback host.
 * The same rule holds for the base URL given and for a shard the API redirects to.
 */
export function isAllowedApiOrigin(url: URL): boolean {
  return url.protocol === 'https:' || (url.protocol === 'http:' && isLoopbackHost(url.hostname));
}

function fromUrl(text: string, what: 'account' | 'apiUrl', pathAllowed: boolean): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new Error(`twingate: ${what} ${quote(text)} is not a URL (expected https://acme.twingate.com)`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new Error(`twingate: ${what} ${quote(text)} must be an https URL (https://acme.twingate.com)`);
  }
  if (!isAllowedApiOrigin(url)) {
    throw new Error(
      `twingate: ${what} ${quote(text)} uses plain http, allowed only for a loopback host (127.0.0.1, ::1, localhost): use https`,
    );
  }
  if (url.username || url.password || url.search || url.hash) {
    const shown = `${url.protocol}//${url.host}${url.pathname}`;
    throw new Error(`twingate: ${what} ${quote(shown)} must not carry credentials, a query or a fragment`);
  }
  const path = url.pathname.replace(/\/+$/, '');
  if (path !== '' && !pathAllowed) {
    throw new Error(`twingate: ${what} ${quote(text)} must not have a path (https://acme.twingate.com)`);
  }
  if (/\/api\/graphql$/.test(path)) {
    throw new Error(`twingate: ${what} ${quote(text)} must be the base URL, without /api/graphql/`);
  }
  return `${url.origin}${path}`;
}

function quote(text: string): string {
  return JSON.stringify(text.length > 100 ? `${text.slice(0, 100)}…` : text);
}
