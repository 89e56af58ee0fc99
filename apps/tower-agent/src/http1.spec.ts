import {
  HttpError,
  MAX_HEAD_BYTES,
  RequestFramer,
  ResponseFramer,
  parseHead,
  upstreamHead,
  type Piece,
  type ResponseEvent,
} from './http1';

/** Feeds `input` in pieces of `step` bytes (0: at once) and merges adjacent body/raw pieces. */
function frame(input: string, step = 0): (string | { head: string })[] {
  const f = new RequestFramer();
  const bytes = Buffer.from(input, 'latin1');
  const pieces: Piece[] = [];
  if (step === 0) pieces.push(...f.push(bytes));
  else for (let i = 0; i < bytes.length; i += step) pieces.push(...f.push(bytes.subarray(i, i + step)));
  const out: (string | { head: string })[] = [];
  for (const p of pieces) {
    if (p.kind === 'refused') throw p.error;
    if (p.kind === 'head')
      out.push({ head: `${p.head.method} ${p.head.target}${p.head.upgrade ? ' upgrade' : ''}` });
    else {
      const s = `${p.kind}:${p.data.toString('latin1')}`;
      const last = out.at(-1);
      if (typeof last === 'string' && last.startsWith(`${p.kind}:`))
        out[out.length - 1] = last + p.data.toString('latin1');
      else out.push(s);
    }
  }
  return out;
}

function refusal(input: string, step = 0): { status: number; message: string } {
  try {
    frame(input, step);
  } catch (e) {
    if (e instanceof HttpError) return { status: e.status, message: e.message };
    throw e;
  }
  throw new Error('not refused');
}

const CHUNKED_BODY = '5;name=value\r\nhello\r\n6\r\n world\r\n0\r\nX-Checksum: 1\r\n\r\n';

describe('RequestFramer', () => {
  const cases: [string, string, (string | { head: string })[]][] = [
    ['a GET', 'GET /api HTTP/1.1\r\nHost: x\r\n\r\n', [{ head: 'GET /api' }]],
    [
      'two pipelined requests',
      'GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n',
      [{ head: 'GET /a' }, { head: 'GET /b' }],
    ],
    [
      'a body by Content-Length, then the next request',
      'POST /a HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloGET /b HTTP/1.1\r\n\r\n',
      [{ head: 'POST /a' }, 'body:hello', { head: 'GET /b' }],
    ],
    [
      'a chunked body with an extension and a trailer, passed on as it is',
      `POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n${CHUNKED_BODY}GET /b HTTP/1.1\r\n\r\n`,
      [{ head: 'POST /a' }, `body:${CHUNKED_BODY}`, { head: 'GET /b' }],
    ],
    [
      'empty lines before a request line are ignored',
      '\r\n\r\nGET /a HTTP/1.1\r\n\r\n',
      [{ head: 'GET /a' }],
    ],
    [
      'an upgrade: what follows the head is held until the API server answers',
      'GET /exec HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n\r\n\x00\x01GET / HTTP/1.1\r\n',
      [{ head: 'GET /exec upgrade' }],
    ],
    [
      'Upgrade without Connection: upgrade is no upgrade',
      'GET /a HTTP/1.1\r\nUpgrade: h2c\r\n\r\nGET /b HTTP/1.1\r\n\r\n',
      [{ head: 'GET /a' }, { head: 'GET /b' }],
    ],
    ['OPTIONS *', 'OPTIONS * HTTP/1.1\r\n\r\n', [{ head: 'OPTIONS *' }]],
    ['HTTP/1.0', 'GET /a HTTP/1.0\r\n\r\n', [{ head: 'GET /a' }]],
  ];
  for (const [name, input, want] of cases) {
    it(`${name}: at once and byte by byte`, () => {
      expect(frame(input)).toEqual(want);
      expect(frame(input, 1)).toEqual(want);
      expect(frame(input, 7)).toEqual(want);
    });
  }

  describe('after an upgrade request', () => {
    const UPGRADE = 'GET /exec HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n\r\n';
    const kinds = (ps: Piece[]) =>
      ps.map((p) =>
        p.kind === 'head' ? `head ${p.head.target}` : `${p.kind}:${'data' in p ? p.data.toString() : ''}`,
      );

    it('accepted (101): what was held, and all that follows, is raw', () => {
      const f = new RequestFramer();
      expect(kinds(f.push(Buffer.from(`${UPGRADE}\x00GET /b HTTP/1.1\r\n\r\n`)))).toEqual(['head /exec']);
      expect(f.awaitingUpgrade).toBe(true);
      expect(kinds(f.push(Buffer.from('more')))).toEqual([]); // held too
      expect(kinds(f.upgradeAnswered(true))).toEqual(['raw:\x00GET /b HTTP/1.1\r\n\r\nmore']);
      expect(kinds(f.push(Buffer.from('GET /c HTTP/1.1\r\n\r\n')))).toEqual(['raw:GET /c HTTP/1.1\r\n\r\n']);
    });

    it('not accepted: what was held is framed as requests, refusals included', () => {
      const f = new RequestFramer();
      f.push(Buffer.from(`${UPGRADE}GET /b HTTP/1.1\r\n\r\nGET /c HT`));
      expect(kinds(f.upgradeAnswered(false))).toEqual(['head /b']);
      expect(f.awaitingUpgrade).toBe(false);
      expect(kinds(f.push(Buffer.from('TP/1.1\r\n\r\n')))).toEqual(['head /c']);
      const g = new RequestFramer();
      g.push(
        Buffer.from(`${UPGRADE}GET /b HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n`),
      );
      expect(kinds(g.upgradeAnswered(false))).toEqual(['refused:']);
    });

    it('nothing held: nothing returned', () => {
      const f = new RequestFramer();
      f.push(Buffer.from(UPGRADE));
      expect(f.upgradeAnswered(false)).toEqual([]);
      expect(() => f.upgradeAnswered(false)).toThrow('RequestFramer: no upgrade request is waiting');
    });
  });

  it('does not return a head whose framing it refuses', () => {
    const f = new RequestFramer();
    const pieces = f.push(Buffer.from('POST /a HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n'));
    expect(pieces.map((p) => p.kind)).toEqual(['refused']);
  });

  it('returns what came before refused input in the same chunk', () => {
    const f = new RequestFramer();
    const pieces = f.push(Buffer.from('GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\nX-A: \x01\r\n\r\n'));
    expect(pieces.map((p) => p.kind)).toEqual(['head', 'refused']);
  });

  it('passes body chunks on without copying them', () => {
    const f = new RequestFramer();
    f.push(Buffer.from('PUT /a HTTP/1.1\r\nContent-Length: 10\r\n\r\n'));
    const chunk = Buffer.from('0123456789');
    const [p] = f.push(chunk);
    expect(p).toEqual({ kind: 'body', data: chunk });
    expect(p?.kind === 'body' && p.data).toBe(chunk);
  });

  const refusals: [string, string, number, RegExp][] = [
    [
      'Content-Length and Transfer-Encoding',
      'POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n',
      400,
      /both/,
    ],
    [
      'two Content-Length fields (even equal)',
      'POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n',
      400,
      /more than one/,
    ],
    [
      'a signed Content-Length',
      'POST / HTTP/1.1\r\nContent-Length: +3\r\n\r\n',
      400,
      /malformed Content-Length/,
    ],
    [
      'a list as Content-Length',
      'POST / HTTP/1.1\r\nContent-Length: 3, 3\r\n\r\n',
      400,
      /malformed Content-Length/,
    ],
    [
      'a transfer coding but chunked',
      'POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n',
      501,
      /only chunked/,
    ],
    [
      'chunked twice',
      'POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n',
      501,
      /only chunked/,
    ],
    [
      'Transfer-Encoding in HTTP/1.0',
      'POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n',
      400,
      /HTTP\/1.0/,
    ],
    ['a folded header line', 'GET / HTTP/1.1\r\nX-A: 1\r\n 2\r\n\r\n', 400, /malformed header field/],
    [
      'whitespace before the colon',
      'GET / HTTP/1.1\r\nContent-Length : 3\r\n\r\n',
      400,
      /malformed header field/,
    ],
    ['a bare LF inside the head', 'GET / HTTP/1.1\r\nX-A: 1\nX-B: 2\r\n\r\n', 400, /bare CR or LF/],
    ['a head of bare LFs', 'GET / HTTP/1.1\nHost: x\n\n', 400, /bare CR or LF/],
    [
      'a control character in a value',
      'GET / HTTP/1.1\r\nX-A: a\x00b\r\n\r\n',
      400,
      /control character in header field X-A/,
    ],
    ['an absolute-form target', 'GET http://evil/ HTTP/1.1\r\n\r\n', 400, /origin-form/],
    ['an authority-form CONNECT', 'CONNECT api:443 HTTP/1.1\r\n\r\n', 400, /origin-form/],
    ['HTTP/2.0', 'GET / HTTP/2.0\r\n\r\n', 505, /HTTP\/2.0 not supported/],
    ['a malformed request line', 'GET  / HTTP/1.1\r\n\r\n', 400, /malformed request line/],
    [
      'an upgrade with a body',
      'GET / HTTP/1.1\r\nConnection: upgrade\r\nUpgrade: x\r\nContent-Length: 1\r\n\r\nx',
      400,
      /upgrade request with a body/,
    ],
    [
      'a non-hex chunk size',
      'POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n',
      400,
      /malformed chunk size/,
    ],
    [
      'a chunk size with trailing spaces',
      'POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5 \r\n',
      400,
      /malformed chunk size/,
    ],
    [
      'a chunk size over 13 hex digits',
      `POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n${'f'.repeat(14)}\r\n`,
      400,
      /malformed chunk size/,
    ],
    [
      'chunk data without its CRLF',
      'POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabX\r\n',
      400,
      /not followed by CRLF/,
    ],
    [
      'a chunk line ending in a bare LF',
      'POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\nab\r\n',
      400,
      /does not end in CRLF/,
    ],
    [
      'a malformed trailer field',
      `POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nbad trailer\r\n\r\n`,
      400,
      /malformed header field/,
    ],
  ];
  for (const [name, input, status, message] of refusals) {
    it(`refuses ${name} (${status}), at once and byte by byte`, () => {
      for (const step of [0, 1]) {
        const r = refusal(input, step);
        expect(r.status).toBe(status);
        expect(r.message).toMatch(message);
      }
    });
  }

  it('refuses a head larger than the limit before it ends (431)', () => {
    const f = new RequestFramer();
    f.push(Buffer.from('GET / HTTP/1.1\r\n'));
    const big = Buffer.from(`X-Big: ${'a'.repeat(MAX_HEAD_BYTES)}`);
    expect(f.push(big)).toEqual([{ kind: 'refused', error: expect.objectContaining({ status: 431 }) }]);
    expect(f.push(Buffer.from('\r\n\r\n'))).toEqual([
      {
        kind: 'refused',
        error: expect.objectContaining({ message: 'the request stream was already refused' }),
      },
    ]);
  });

  it('takes a long head in small pieces, and refuses one over the limit that arrives the same way', () => {
    const long = `GET /a HTTP/1.1\r\nX-Long: ${'v'.repeat(MAX_HEAD_BYTES - 100)}\r\n\r\n`;
    expect(frame(long, 1000)).toEqual([{ head: 'GET /a' }]);
    const over = `GET /a HTTP/1.1\r\nX-Long: ${'v'.repeat(MAX_HEAD_BYTES)}\r\n\r\n`;
    expect(refusal(over, 1000).status).toBe(431);
  });

  it('refuses an endless chunk-size line', () => {
    const f = new RequestFramer();
    f.push(Buffer.from('POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1'));
    expect(f.push(Buffer.from(';'.padEnd(5000, 'x')))).toEqual([
      { kind: 'refused', error: expect.objectContaining({ message: 'chunk-size line too long' }) },
    ]);
  });
});

describe('upstreamHead', () => {
  it("drops the caller's Host and Authorization, hop-by-hop fields and those Connection names; sets ours", () => {
    const h = parseHead(
      [
        'GET /api/v1/pods?watch=1 HTTP/1.1',
        'Host: proxy:6443',
        'Authorization: Bearer caller',
        'Connection: keep-alive, X-Drop',
        'X-Drop: 1',
        'Keep-Alive: timeout=5',
        'TE: trailers',
        'Proxy-Authorization: Basic x',
        'Accept: application/json',
        'Impersonate-User: alice',
      ].join('\r\n'),
    );
    expect(upstreamHead(h, 'api:443', 'Bearer agent')).toBe(
      [
        'GET /api/v1/pods?watch=1 HTTP/1.1',
        'Host: api:443',
        'Authorization: Bearer agent',
        'Connection: keep-alive, X-Drop',
        'Accept: application/json',
        'Impersonate-User: alice',
        '',
        '',
      ].join('\r\n'),
    );
  });

  it('keeps the framing fields even when Connection names them (or the body would become requests)', () => {
    const h = parseHead(
      'POST /a HTTP/1.1\r\nConnection: content-length, transfer-encoding, x-a\r\nContent-Length: 5\r\nX-A: 1',
    );
    expect(upstreamHead(h, 'api', 'Bearer agent')).toBe(
      'POST /a HTTP/1.1\r\nHost: api\r\nAuthorization: Bearer agent\r\n' +
        'Connection: content-length, transfer-encoding, x-a\r\nContent-Length: 5\r\n\r\n',
    );
  });

  it('keeps Connection, Upgrade and Transfer-Encoding (the stream passes through as it is)', () => {
    const up = parseHead('GET /exec HTTP/1.1\r\nHost: p\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1');
    expect(upstreamHead(up, 'api', undefined)).toBe(
      'GET /exec HTTP/1.1\r\nHost: api\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n\r\n',
    );
    const post = parseHead('POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\nAuthorization: Bearer caller');
    expect(upstreamHead(post, 'api', undefined)).toBe(
      'POST /a HTTP/1.1\r\nHost: api\r\nTransfer-Encoding: chunked\r\n\r\n',
    );
  });
});

describe('ResponseFramer', () => {
  /** Feeds `input` in pieces of `step` bytes (0: at once) after `requests` (method, upgrade?). */
  function follow(requests: [string, boolean][], input: string, step = 0): ResponseEvent[] {
    const f = new ResponseFramer();
    for (const [m, u] of requests) f.request(m, u);
    const bytes = Buffer.from(input, 'latin1');
    const out: ResponseEvent[] = [];
    if (step === 0) out.push(...f.push(bytes));
    else for (let i = 0; i < bytes.length; i += step) out.push(...f.push(bytes.subarray(i, i + step)));
    return out;
  }
  const ok = (body: string) => `HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n\r\n${body}`;
  const chunked =
    'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=1\r\nhello\r\n0\r\nX-T: 1\r\n\r\n';
  const SWITCH = 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n';
  const GET: [string, boolean] = ['GET', false];
  const UP: [string, boolean] = ['GET', true];

  const cases: [string, [string, boolean][], string, ResponseEvent[]][] = [
    ['101 to the upgrade', [UP], `${SWITCH}raw bytes HTTP/1.1 200`, [{ kind: 'upgrade', switched: true }]],
    ['a final answer to the upgrade', [UP], ok('no'), [{ kind: 'upgrade', switched: false }]],
    [
      'after a response with a length',
      [GET, UP],
      ok('HTTP/1.1 101 Switching Protocols\r\n\r\n') + SWITCH,
      [{ kind: 'upgrade', switched: true }],
    ],
    [
      'after a chunked response with a trailer',
      [GET, UP],
      chunked + SWITCH,
      [{ kind: 'upgrade', switched: true }],
    ],
    [
      'after a response to HEAD (no body whatever its Content-Length)',
      [['HEAD', false], UP],
      `HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n${SWITCH}`,
      [{ kind: 'upgrade', switched: true }],
    ],
    [
      'after 204 and 304',
      [GET, GET, UP],
      `HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 304 Not Modified\r\nContent-Length: 7\r\n\r\n${SWITCH}`,
      [{ kind: 'upgrade', switched: true }],
    ],
    [
      'interim 100 Continue before the final answer',
      [UP],
      `HTTP/1.1 100 Continue\r\n\r\n${ok('x')}`,
      [{ kind: 'upgrade', switched: false }],
    ],
    ['no upgrade asked: nothing to report', [GET, GET], ok('a') + chunked, []],
    ['a body until close: what follows is its body', [GET, UP], `HTTP/1.1 200 OK\r\n\r\nbody ${SWITCH}`, []],
    [
      'a malformed status line',
      [UP],
      'HTTP/2 200\r\n\r\n',
      [{ kind: 'unframed', reason: 'malformed status line "HTTP/2 200"' }],
    ],
    [
      '101 to a request that asked for no upgrade',
      [GET],
      SWITCH,
      [{ kind: 'unframed', reason: '101 to a request that asked for no upgrade' }],
    ],
  ];
  for (const [name, requests, input, want] of cases) {
    it(`${name}: at once and byte by byte`, () => {
      expect(follow(requests, input)).toEqual(want);
      expect(follow(requests, input, 1)).toEqual(want);
      expect(follow(requests, input, 7)).toEqual(want);
    });
  }
});
