export { DEFAULT_API_URL, metalApiUrl } from './api-url';
export { MetalClient } from './client';
export {
  errorBodyMessages,
  isMetalError,
  isRetryable,
  kindOfStatus,
  MAX_ERROR_MESSAGE_CHARS,
  MAX_ERROR_MESSAGES,
  MetalApiError,
  type MetalApiErrorFields,
  type MetalErrorKind,
} from './errors';
export type { HttpFetch, HttpRequestInit } from './http';
export { EPOCH_SECONDS_THRESHOLD, MAX_SERVER_WAIT_MS, parseRateLimitReset, serverWaitMs } from './rate-limit';
export {
  DEFAULT_MAX_ATTEMPTS,
  DEFAULT_MAX_WAIT_MS,
  DEFAULT_TIMEOUT_MS,
  DEFAULT_USER_AGENT,
  MAX_ERROR_BODY_BYTES,
  MAX_RESPONSE_BYTES,
  RETRY_BASE_MS,
  RETRY_MAX_MS,
  type MetalCall,
  type MetalClientOptions,
} from './transport';
export type * from './types';
