import { ApiException } from '@kubernetes/client-node';
import {
  KubeApiError,
  decodeApiError,
  isAlreadyExists,
  isConflict,
  isNotFound,
  isRetryable,
  statusError,
  wrapApiError,
  type DecodedApiError,
} from './errors';

const status = (code: number, reason: string, message: string, causes?: DecodedApiError['causes']) =>
  statusError(code, reason, message, causes ? { causes } : {});

describe('decodeApiError', () => {
  it.each([
    [status(404, 'NotFound', 'secrets "a" not found'), 404, 'NotFound', 'secrets "a" not found'],
    [
      status(409, 'AlreadyExists', 'secrets "a" already exists'),
      409,
      'AlreadyExists',
      'secrets "a" already exists',
    ],
    [
      new ApiException(502, 'HTTP-Code: 502', '<html>bad gateway</html>', {}),
      502,
      'HTTP502',
      '<html>bad gateway</html>',
    ],
    [
      new ApiException(503, 'HTTP-Code: 503', '', {}),
      503,
      'ServiceUnavailable',
      'no details from the API server',
    ],
    [
      Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' }),
      0,
      'ECONNREFUSED',
      'connect ECONNREFUSED 127.0.0.1:1',
    ],
    [
      new Error('request to x failed', {
        cause: Object.assign(new Error('getaddrinfo ENOTFOUND x'), { code: 'ENOTFOUND' }),
      }),
      0,
      'ENOTFOUND',
      'request to x failed',
    ],
    ['weird', 0, 'Unknown', 'weird'],
  ])('%#: decodes code %p reason %p', (err, code, reason, message) => {
    const d = decodeApiError(err);
    expect([d.code, d.reason, d.message]).toEqual([code, reason, message]);
  });

  it('keeps 422 causes and classifies errors', () => {
    const e = status(422, 'Invalid', 'Widget "w" is invalid: spec.port: Invalid value', [
      { field: 'spec.port', message: 'Invalid value' },
    ]);
    expect(decodeApiError(e).causes).toEqual([{ field: 'spec.port', message: 'Invalid value' }]);
    expect(isNotFound(status(404, 'NotFound', 'x'))).toBe(true);
    expect(isConflict(status(409, 'Conflict', 'x'))).toBe(true);
    expect(isConflict(status(409, 'AlreadyExists', 'x'))).toBe(false);
    expect(isAlreadyExists(status(409, 'AlreadyExists', 'x'))).toBe(true);
    expect(isRetryable(status(500, 'InternalError', 'x'))).toBe(true);
    expect(isRetryable(status(403, 'Forbidden', 'x'))).toBe(false);
    expect(isRetryable(Object.assign(new Error('x'), { code: 'ECONNRESET' }))).toBe(true);
  });

  it('wraps into one line that names the operation, idempotently', () => {
    const w = wrapApiError('get Secret a/b', status(401, 'Unauthorized', 'Unauthorized'));
    expect(w).toBeInstanceOf(KubeApiError);
    expect(w.message).toBe(
      'get Secret a/b: 401 Unauthorized: Unauthorized (credentials rejected: check the token or client certificate)',
    );
    expect(wrapApiError('other', w)).toBe(w);
    expect(isNotFound(wrapApiError('x', status(404, 'NotFound', 'gone')))).toBe(true);
    const multi = wrapApiError('x', new ApiException(500, 'm', 'line one\nline two', {}));
    expect(multi.message).not.toContain('\n');
  });
});
