import { errorMessage } from './index';

describe('errorMessage', () => {
  it("is an Error's message, whole (every line)", () => {
    expect(errorMessage(new Error('ip: RTNETLINK answers: File exists'))).toBe(
      'ip: RTNETLINK answers: File exists',
    );
    expect(errorMessage(new TypeError('first\nsecond'))).toBe('first\nsecond');
  });

  it("is an error's name when its message is empty", () => {
    expect(errorMessage(new RangeError())).toBe('RangeError');
    expect(errorMessage({ message: '' })).toBe('Error');
  });

  it('reads error-like objects (DOMException, errors of another realm)', () => {
    expect(errorMessage(new DOMException('The operation was aborted.', 'AbortError'))).toBe(
      'The operation was aborted.',
    );
    expect(errorMessage({ name: 'ApiError', message: 'HTTP 409' })).toBe('HTTP 409');
  });

  it('is a thrown string as it is, and anything else inspected on one line', () => {
    expect(errorMessage('bare string')).toBe('bare string');
    expect(errorMessage({ code: 'ECONNRESET', nested: { a: [1, 2] } })).toBe(
      "{ code: 'ECONNRESET', nested: { a: [ 1, 2 ] } }",
    );
    expect(errorMessage(undefined)).toBe('undefined');
    expect(errorMessage(42)).toBe('42');
    expect(errorMessage(null)).toBe('null');
  });
});
