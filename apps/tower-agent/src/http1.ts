/**
 * The agent's HTTP/1.1 request framing: where each request head starts and ends in the byte stream
 * of a tunnel channel, and where its body ends. The agent rewrites request heads only (its own
 * Host and Authorization) and passes bodies and responses through as they are, so it must agree
 * with the API server (Go's net/http) on every request boundary. It does so by refusing whatever
 * two parsers could read differently: Content-Length together with Transfer-Encoding, repeated or
 * malformed Content-Length, any transfer coding but `chunked`, folded header lines, bare CR or LF,
 * control characters, a request-target that is not origin-form. Refused input never reaches the
 * API server.
 */

/** Largest request head (request line and header fields); Go's default limit is 1 MiB. */
export const MAX_HEAD_BYTES = 64 * 1024;
/** Largest chunk-size line (with extensions), as Go's chunked reader. */
const MAX_CHUNK_LINE = 4096;
/** Largest trailer section of a chunked body. */
const MAX_TRAILER_BYTES = 64 * 1024;

/** A request the agent refuses, with the status to answer it with. */
export class HttpError extends Error {
  constructor(
    readonly status: 400 | 431 | 501 | 505,
    message: string,
  ) {
    super(message);
  }
}

export interface RequestHead {
  method: string;
  /** origin-form (`/path?query`), or `*` */
  target: string;
  version: '1.0' | '1.1';
  /** Header fields in order, names as sent, values without surrounding whitespace. */
  fields: [string, string][];
  /**
   * `Connection: upgrade` with an `Upgrade` field: what follows the head is held until the API
   * server has answered (`RequestFramer.upgradeAnswered`): opaque after a 101, HTTP otherwise.
   */
  upgrade: boolean;
}

export type Piece =
  /** A complete request head. */
  | { kind: 'head'; head: RequestHead }
  /** Bytes of the current request's body, chunked framing included, to pass on unchanged. */
  | { kind: 'body'; data: Buffer }
  /** Bytes after an upgrade request the API server accepted (101): no longer HTTP. */
  | { kind: 'raw'; data: Buffer }
  /** Refused input; always the last piece, and the framer refuses everything after it. */
  | { kind: 'refused'; error: HttpError };

/** Where a framer is in a message body (fixed length, or the parts of a chunked one). */
type BodyState = 'fixed' | 'chunk-size' | 'chunk-data' | 'chunk-crlf' | 'trailer';

type State =
  | 'head'
  | BodyState
  /** After an upgrade request, until the API server's answer: bytes are held. */
  | 'upgrade'
  | 'raw';

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const REQUEST_LINE = /^([!#$%&'*+\-.^_`|~0-9A-Za-z]+) (\S+) HTTP\/(\d)\.(\d)$/;
/** Field values: no control characters but HTAB (obs-text, 0x80-0xFF, is allowed as RFC 9110 says). */
function hasControl(value: string): boolean {
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if ((c < 0x20 && c !== 0x09) || c === 0x7f) return true;
  }
  return false;
}
const CHUNK_LINE = /^([0-9a-fA-F]{1,13})(;[\t\x20-\x7e\x80-\xff]*)?$/;
const CRLF = Buffer.from('\r\n');
const HEAD_END = Buffer.from('\r\n\r\n');

/**
 * Splits a client's byte stream into request heads and body bytes, chunk by chunk as they arrive.
 * Input it refuses ends the pieces of that chunk with a `refused` piece (what came before it in
 * the same chunk is still returned); everything after that is refused as well.
 */
export class RequestFramer {
  private state: State = 'head';
  /** Bytes of an unfinished request head (copies: a chunk's memory is not kept). */
  private parts: Buffer[] = [];
  private partLen = 0;
  /** The last three bytes of `parts`, where a head end may begin. */
  private tail = Buffer.alloc(0);
  /** Body bytes still to come (fixed length), or of the current chunk. */
  private remaining = 0;
  /** An unfinished chunk-size or trailer line (latin1). */
  private line = '';
  /** How many bytes of the CRLF after a chunk's data have been seen. */
  private crlfSeen = 0;
  private trailerBytes = 0;
  private failed = false;
  /** Bytes after an upgrade request, held until the API server answered it. */
  private held: Buffer[] = [];

  /** True while an upgrade request waits for the API server's answer (what is pushed is held). */
  get awaitingUpgrade(): boolean {
    return this.state === 'upgrade';
  }

  /**
   * The API server's answer to the upgrade request: with 101 (`switched`) the rest of the stream
   * is opaque, and the held bytes come back as `raw`; otherwise the connection is still HTTP, and
   * the held bytes are framed as requests.
   */
  upgradeAnswered(switched: boolean): Piece[] {
    if (this.state !== 'upgrade') throw new Error('RequestFramer: no upgrade request is waiting');
    const held = Buffer.concat(this.held);
    this.held = [];
    if (switched) {
      this.state = 'raw';
      return held.length > 0 ? [{ kind: 'raw', data: held }] : [];
    }
    this.state = 'head';
    return this.push(held);
  }

  push(chunk: Buffer): Piece[] {
    if (this.failed)
      return [{ kind: 'refused', error: new HttpError(400, 'the request stream was already refused') }];
    const out: Piece[] = [];
    try {
      this.consume(chunk, out);
    } catch (e) {
      if (!(e instanceof HttpError)) throw e;
      this.failed = true;
      out.push({ kind: 'refused', error: e });
    }
    return out;
  }

  private consume(chunk: Buffer, out: Piece[]): void {
    let buf = chunk;
    let i = 0;
    while (i < buf.length) {
      if (this.state === 'raw') {
        out.push({ kind: 'raw', data: i === 0 ? buf : buf.subarray(i) });
        return;
      }
      if (this.state === 'upgrade') {
        this.held.push(Buffer.from(buf.subarray(i)));
        return;
      }
      if (this.state === 'head') {
        if (this.partLen > 0) {
          // Continuing a head that began in earlier chunks: look at the new bytes only (with the
          // last three before them), so a head arriving byte by byte costs linear time.
          const fresh = buf.subarray(i);
          const tail = this.tail;
          const seam = Buffer.concat([tail, fresh]);
          if (seam.indexOf(HEAD_END) < 0) {
            checkBareLf(seam, tail.length);
            this.keep(fresh);
            if (this.partLen > MAX_HEAD_BYTES) throw tooLarge();
            break;
          }
          buf = Buffer.concat([...this.parts, fresh]);
          i = 0;
          this.parts = [];
          this.partLen = 0;
          this.tail = Buffer.alloc(0);
        }
        // An empty line before a request line is ignored (RFC 9112, 2.2).
        while (buf[i] === 0x0d && buf[i + 1] === 0x0a) i += 2;
        if (i >= buf.length) break;
        const end = buf.indexOf(HEAD_END, i);
        if (end < 0) {
          if (buf.length - i > MAX_HEAD_BYTES) throw tooLarge();
          // A head with bare LFs would never end here: refuse it now rather than at the limit.
          checkBareLf(buf, i);
          this.keep(buf.subarray(i));
          break;
        }
        if (end - i > MAX_HEAD_BYTES) throw tooLarge();
        const head = parseHead(buf.toString('latin1', i, end));
        i = end + HEAD_END.length;
        this.state = this.afterHead(head); // first: a head whose framing is refused is not returned
        out.push({ kind: 'head', head });
        continue;
      }
      // Body states: what is consumed here is passed on as it is.
      const start = i;
      while (i < buf.length && (this.state as State) !== 'head') i = this.bodyStep(buf, i);
      if (i > start)
        out.push({ kind: 'body', data: start === 0 && i === buf.length ? buf : buf.subarray(start, i) });
    }
  }

  private keep(bytes: Buffer): void {
    this.parts.push(Buffer.from(bytes));
    this.partLen += bytes.length;
    this.tail = Buffer.concat([this.tail, bytes]).subarray(-3);
  }

  private afterHead(h: RequestHead): State {
    let length: number | undefined;
    let chunked = false;
    let codings: string[] | undefined;
    for (const [name, value] of h.fields) {
      const n = name.toLowerCase();
      if (n === 'content-length') {
        if (length !== undefined) throw new HttpError(400, 'more than one Content-Length field');
        if (!/^\d{1,15}$/.test(value))
          throw new HttpError(400, `malformed Content-Length ${JSON.stringify(value)}`);
        length = Number(value);
      } else if (n === 'transfer-encoding') {
        (codings ??= []).push(...value.split(',').map((c) => c.trim().toLowerCase()));
      }
    }
    if (codings) {
      if (h.version === '1.0') throw new HttpError(400, 'Transfer-Encoding in an HTTP/1.0 request');
      if (length !== undefined) throw new HttpError(400, 'both Content-Length and Transfer-Encoding');
      if (codings.length !== 1 || codings[0] !== 'chunked')
        throw new HttpError(
          501,
          `Transfer-Encoding ${JSON.stringify(codings.join(', '))} not supported (only chunked)`,
        );
      chunked = true;
    }
    if (h.upgrade) {
      if (chunked || (length ?? 0) > 0) throw new HttpError(400, 'an upgrade request with a body');
      return 'upgrade';
    }
    if (chunked) {
      this.line = '';
      return 'chunk-size';
    }
    if (length) {
      this.remaining = length;
      return 'fixed';
    }
    return 'head';
  }

  /** Consumes body bytes from `buf` at `i`; returns the new position. */
  private bodyStep(buf: Buffer, i: number): number {
    switch (this.state) {
      case 'fixed':
      case 'chunk-data': {
        const n = Math.min(this.remaining, buf.length - i);
        this.remaining -= n;
        if (this.remaining === 0) {
          if (this.state === 'fixed') this.state = 'head';
          else {
            this.state = 'chunk-crlf';
            this.crlfSeen = 0;
          }
        }
        return i + n;
      }
      case 'chunk-crlf': {
        if (buf[i] !== CRLF[this.crlfSeen]) throw new HttpError(400, 'chunk data not followed by CRLF');
        if (++this.crlfSeen === 2) {
          this.state = 'chunk-size';
          this.line = '';
        }
        return i + 1;
      }
      case 'chunk-size':
      case 'trailer': {
        const lf = buf.indexOf(0x0a, i);
        const stop = lf < 0 ? buf.length : lf + 1;
        this.line += buf.toString('latin1', i, stop);
        if (this.state === 'trailer') {
          this.trailerBytes += stop - i;
          if (this.trailerBytes > MAX_TRAILER_BYTES) throw new HttpError(431, 'trailer section too large');
        } else if (this.line.length > MAX_CHUNK_LINE) throw new HttpError(400, 'chunk-size line too long');
        if (lf >= 0) this.endLine();
        return stop;
      }
      default:
        return buf.length;
    }
  }

  private endLine(): void {
    const line = this.line;
    this.line = '';
    if (!line.endsWith('\r\n') || line.indexOf('\r') !== line.length - 2)
      throw new HttpError(400, 'a line of the chunked body does not end in CRLF');
    const text = line.slice(0, -2);
    if (this.state === 'chunk-size') {
      const m = CHUNK_LINE.exec(text);
      if (!m) throw new HttpError(400, `malformed chunk size ${JSON.stringify(text.slice(0, 40))}`);
      const size = parseInt(m[1] as string, 16);
      if (size === 0) {
        this.state = 'trailer';
        this.trailerBytes = 0;
      } else {
        this.state = 'chunk-data';
        this.remaining = size;
      }
      return;
    }
    if (text === '') {
      this.state = 'head'; // the end of the chunked body
      return;
    }
    parseField(text);
  }
}

/** Refuses an LF at or after `from` that does not follow a CR (the byte before `from` counts). */
function checkBareLf(buf: Buffer, from: number): void {
  for (let lf = buf.indexOf(0x0a, from); lf >= 0; lf = buf.indexOf(0x0a, lf + 1)) {
    if (lf === 0 || buf[lf - 1] !== 0x0d) throw new HttpError(400, 'bare CR or LF in the request head');
  }
}

function tooLarge(): HttpError {
  return new HttpError(431, `request head larger than ${MAX_HEAD_BYTES} bytes`);
}

function parseField(line: string): [string, string] {
  const colon = line.indexOf(':');
  const name = colon < 0 ? '' : line.slice(0, colon);
  // Also refuses obs-fold (a line starting with whitespace) and whitespace before the colon.
  if (!TOKEN.test(name))
    throw new HttpError(400, `malformed header field ${JSON.stringify(line.slice(0, 40))}`);
  const value = line.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, '');
  if (hasControl(value)) throw new HttpError(400, `control character in header field ${name}`);
  return [name, value];
}

/** Parses a request head (without its final empty line). */
export function parseHead(text: string): RequestHead {
  const lines = text.split('\r\n');
  for (const l of lines) {
    if (l.includes('\n') || l.includes('\r')) throw new HttpError(400, 'bare CR or LF in the request head');
  }
  const m = REQUEST_LINE.exec(lines[0] ?? '');
  if (!m) throw new HttpError(400, `malformed request line ${JSON.stringify((lines[0] ?? '').slice(0, 60))}`);
  const [, method, target, major, minor] = m as unknown as [string, string, string, string, string];
  if (major !== '1' || (minor !== '0' && minor !== '1'))
    throw new HttpError(505, `HTTP/${major}.${minor} not supported (HTTP/1.1 only)`);
  if (!(target.startsWith('/') || (target === '*' && method === 'OPTIONS')))
    throw new HttpError(400, 'the request-target must be a path (origin-form)');
  const fields = lines.slice(1).map(parseField);
  let hasUpgrade = false;
  let connectionUpgrade = false;
  for (const [name, value] of fields) {
    const n = name.toLowerCase();
    if (n === 'upgrade') hasUpgrade = true;
    else if (n === 'connection') connectionUpgrade ||= connectionTokens(value).includes('upgrade');
  }
  return {
    method,
    target,
    version: minor === '0' ? '1.0' : '1.1',
    fields,
    upgrade: hasUpgrade && connectionUpgrade,
  };
}

function connectionTokens(value: string): string[] {
  return value
    .split(',')
    .map((t) => t.trim().toLowerCase())
    .filter(Boolean);
}

/** Fields that describe one hop and never go to the API server (Connection itself stays: see below). */
const HOP_BY_HOP = new Set([
  'keep-alive',
  'proxy-authorization',
  'proxy-authenticate',
  'proxy-connection',
  'te',
]);

/**
 * Connection options and fields a caller cannot have dropped by naming them in Connection: dropping
 * Content-Length or Transfer-Encoding would make the API server frame the body as requests.
 */
const NEVER_NAMED = new Set(['close', 'keep-alive', 'upgrade', 'content-length', 'transfer-encoding']);

/**
 * The head the agent sends upstream: the caller's Host and Authorization replaced by the agent's,
 * hop-by-hop fields (and those Connection names) dropped. Connection, Upgrade and Transfer-Encoding
 * stay: the body and the response pass through unchanged, over a connection that mirrors the
 * caller's one to one.
 */
export function upstreamHead(h: RequestHead, host: string, authorization: string | undefined): string {
  const named = new Set<string>();
  for (const [name, value] of h.fields) {
    if (name.toLowerCase() === 'connection') {
      for (const t of connectionTokens(value)) if (!NEVER_NAMED.has(t)) named.add(t);
    }
  }
  let out = `${h.method} ${h.target} HTTP/${h.version}\r\nHost: ${host}\r\n`;
  if (authorization) out += `Authorization: ${authorization}\r\n`;
  for (const [name, value] of h.fields) {
    const n = name.toLowerCase();
    if (n === 'host' || n === 'authorization' || HOP_BY_HOP.has(n) || named.has(n)) continue;
    out += `${name}: ${value}\r\n`;
  }
  return `${out}\r\n`;
}

/** What `ResponseFramer` reports: the answer to an upgrade request, or responses it cannot follow. */
export type ResponseEvent =
  /** The API server answered the upgrade request: 101 (switched) or a final response that is not. */
  | { kind: 'upgrade'; switched: boolean }
  /** A response it cannot frame: from here on, where responses end is unknown. */
  | { kind: 'unframed'; reason: string };

type ResponseState =
  | 'head'
  | BodyState
  /** The body runs until the API server closes the connection. */
  | 'until-close'
  /** After a 101, or a response it could not frame: nothing more is looked at. */
  | 'done';

const STATUS_LINE = /^HTTP\/1\.[01] (\d{3})(?: |$)/;

/**
 * Follows the API server's responses on one connection, only as far as needed to find the answer
 * to an upgrade request: response heads (status, framing fields) and chunk-size lines are read,
 * bodies are skipped by length, nothing is copied. Responses come in the order of the requests
 * (`request()` tells which); interim 1xx responses (100 Continue) precede a final one. Malformed
 * responses are not refused (the API server is trusted; the client sees them as they are), they
 * only end the following (`unframed`).
 */
export class ResponseFramer {
  private state: ResponseState = 'head';
  private readonly requests: { head: boolean; upgrade: boolean }[] = [];
  private headParts: Buffer[] = [];
  private headLen = 0;
  private remaining = 0;
  private line = '';

  /** A request forwarded on the connection (in order). */
  request(method: string, upgrade: boolean): void {
    this.requests.push({ head: method === 'HEAD', upgrade });
  }

  push(chunk: Buffer): ResponseEvent[] {
    const out: ResponseEvent[] = [];
    let i = 0;
    while (i < chunk.length && this.state !== 'done' && this.state !== 'until-close') {
      if (this.state === 'head') i = this.headStep(chunk, i, out);
      else i = this.bodyStep(chunk, i, out);
    }
    return out;
  }

  private fail(out: ResponseEvent[], reason: string): number {
    this.state = 'done';
    out.push({ kind: 'unframed', reason });
    return Infinity;
  }

  private headStep(chunk: Buffer, i: number, out: ResponseEvent[]): number {
    // The head may span chunks: look for its end in what is kept plus the new bytes.
    const kept = this.headLen;
    const buf = kept > 0 ? Buffer.concat([...this.headParts, chunk.subarray(i)]) : chunk.subarray(i);
    const end = buf.indexOf(HEAD_END);
    if (end < 0) {
      if (buf.length > MAX_RESPONSE_HEAD) return this.fail(out, 'response head too large');
      this.headParts = [Buffer.from(buf)];
      this.headLen = buf.length;
      return chunk.length;
    }
    this.headParts = [];
    this.headLen = 0;
    const consumed = i + end + HEAD_END.length - kept;
    const lines = buf.toString('latin1', 0, end).split('\r\n');
    const m = STATUS_LINE.exec(lines[0] ?? '');
    if (!m) return this.fail(out, `malformed status line ${JSON.stringify((lines[0] ?? '').slice(0, 40))}`);
    const status = Number(m[1]);
    const request = this.requests[0];
    if (status >= 100 && status < 200) {
      if (status === 101) {
        this.requests.shift();
        this.state = 'done';
        out.push(
          request?.upgrade
            ? { kind: 'upgrade', switched: true }
            : { kind: 'unframed', reason: '101 to a request that asked for no upgrade' },
        );
        return Infinity;
      }
      return consumed; // interim: the final response follows
    }
    this.requests.shift();
    if (request?.upgrade) out.push({ kind: 'upgrade', switched: false });
    let length: number | undefined;
    let chunked = false;
    let codings = false;
    for (const l of lines.slice(1)) {
      const colon = l.indexOf(':');
      const name = l.slice(0, colon).toLowerCase();
      const value = l.slice(colon + 1).trim();
      if (name === 'content-length') {
        if (!/^\d{1,15}$/.test(value) || (length !== undefined && length !== Number(value)))
          return this.fail(out, 'malformed Content-Length in a response');
        length = Number(value);
      } else if (name === 'transfer-encoding') {
        codings = true;
        chunked =
          value
            .toLowerCase()
            .split(',')
            .map((c) => c.trim())
            .at(-1) === 'chunked';
      }
    }
    if (request?.head || status === 204 || status === 304) this.state = 'head';
    else if (codings) this.state = chunked ? 'chunk-size' : 'until-close';
    else if (length !== undefined) {
      this.remaining = length;
      this.state = length > 0 ? 'fixed' : 'head';
    } else this.state = 'until-close';
    this.line = '';
    return consumed;
  }

  private bodyStep(buf: Buffer, i: number, out: ResponseEvent[]): number {
    switch (this.state) {
      case 'fixed':
      case 'chunk-data': {
        const n = Math.min(this.remaining, buf.length - i);
        this.remaining -= n;
        if (this.remaining === 0) this.state = this.state === 'fixed' ? 'head' : 'chunk-crlf';
        return i + n;
      }
      case 'chunk-crlf':
      case 'chunk-size':
      case 'trailer': {
        const lf = buf.indexOf(0x0a, i);
        const stop = lf < 0 ? buf.length : lf + 1;
        this.line += buf.toString('latin1', i, stop);
        if (this.line.length > MAX_CHUNK_LINE) return this.fail(out, 'response chunk line too long');
        if (lf < 0) return stop;
        const text = this.line.replace(/\r?\n$/, '');
        this.line = '';
        if (this.state === 'chunk-crlf') {
          if (text !== '') return this.fail(out, 'response chunk data not followed by CRLF');
          this.state = 'chunk-size';
        } else if (this.state === 'chunk-size') {
          const m = /^([0-9a-fA-F]{1,13})\s*(;.*)?$/.exec(text);
          if (!m) return this.fail(out, 'malformed chunk size in a response');
          this.remaining = parseInt(m[1] as string, 16);
          this.state = this.remaining === 0 ? 'trailer' : 'chunk-data';
        } else if (text === '') this.state = 'head';
        return stop;
      }
      default:
        return buf.length;
    }
  }
}

/** Largest response head the agent follows (Go's API server sends a few hundred bytes). */
const MAX_RESPONSE_HEAD = 64 * 1024;
