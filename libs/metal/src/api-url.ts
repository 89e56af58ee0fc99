import { quote } from './errors';

/** Where the Metal API answers (the spec's `servers[0].url`). */
export const DEFAULT_API_URL = 'https://api.equinix.com/metal/v1';

/**
 * The API URL every path is appended to, without a trailing slash: `https://api.equinix.com/metal/v1`
 * by default, or any http(s) endpoint that serves the metal/v1 spec (a fake in a test, a proxy).
 * A trailing slash is dropped. Throws an `Error` with one line saying what is wrong and what is
 * expected for anything else (another scheme, credentials, a query or a fragment).
 */
export function metalApiUrl(apiUrl: string | undefined): string {
  const text = (apiUrl ?? DEFAULT_API_URL).trim();
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new Error(`Metal API URL ${quote(text)} is not a URL: give one like ${DEFAULT_API_URL}`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new Error(`Metal API URL ${quote(text)} must be http or https, like ${DEFAULT_API_URL}`);
  }
  if (url.username || url.password || url.search || url.hash) {
    throw new Error(
      `Metal API URL ${quote(`${url.protocol}//${url.host}${url.pathname}`)} must not carry credentials, a query or a fragment (the token is an option of its own)`,
    );
  }
  return `${url.origin}${url.pathname.replace(/\/+$/, '')}`;
}
