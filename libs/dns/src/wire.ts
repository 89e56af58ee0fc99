// DNS wire format (RFC 1035, RFC 6891 EDNS), hand-written for the hot path: parsing a query's
// header and single question straight from the datagram, walking an upstream response to find its
// TTL fields, and encoding the few responses this server builds itself. Pure functions only.

export const TYPE_A = 1;
export const TYPE_SOA = 6;
export const TYPE_PTR = 12;
export const TYPE_AAAA = 28;
export const TYPE_OPT = 41;
export const CLASS_IN = 1;

export const RCODE_NOERROR = 0;
export const RCODE_FORMERR = 1;
export const RCODE_SERVFAIL = 2;
export const RCODE_NXDOMAIN = 3;
export const RCODE_NOTIMP = 4;
export const RCODE_REFUSED = 5;
/** Extended RCODE 16 (upper 8 bits in the OPT record): unsupported EDNS version. */
export const RCODE_BADVERS = 16;
/** parseQuery's verdict for packets that get no reply at all (too short, or a response). */
export const DROP = -1;

export const HEADER_LEN = 12;
/** Maximum wire length of a domain name (RFC 1035 §2.3.4). */
export const MAX_NAME_LEN = 255;
/** The EDNS UDP payload size this server advertises and accepts at most (DNS flag day 2020). */
export const OUR_EDNS_UDP_SIZE = 1232;

/** Bits of the key's last byte: EDNS presence, the DO bit and the CD bit of the query. */
export const KEY_EDNS = 1;
export const KEY_DO = 2;
export const KEY_CD = 4;

/** A query, as much of it as was parsed before a verdict. */
export interface ParsedQuery {
  /** RCODE to answer with (0 = well-formed query), or {@link DROP}. */
  rcode: number;
  id: number;
  /** Header bytes 2 and 3 as one number (QR, opcode, AA, TC, RD, RA, Z, AD, CD, RCODE). */
  flags: number;
  /** End of the question section (12 + qname + 4), or 0 when the question did not parse. */
  questionEnd: number;
  /** Wire length of the question name. */
  qnameLen: number;
  qtype: number;
  qclass: number;
  /**
   * Cache key: the question (qname lower-cased, qtype, qclass) in wire form as a latin1 string,
   * plus one byte of KEY_* flags. The first `qnameLen` characters are the lower-cased qname.
   */
  key: string;
  /** End of the last record that parsed (a forwarded query is cut here). */
  end: number;
  edns: boolean;
  /** EDNS DO bit. */
  dnssecOk: boolean;
  /** The client's EDNS UDP payload size (512 without EDNS). */
  udpSize: number;
}

const scratch = Buffer.allocUnsafe(MAX_NAME_LEN + 5);

/**
 * Parses a query datagram: header, exactly one question (no compression, labels ≤ 63, name ≤
 * 255), then walks the remaining records for an OPT record (one, root-named, in the additional
 * section, with well-formed options). Never throws. Lower-cases the question into `key`.
 */
export function parseQuery(buf: Buffer, len: number = buf.length): ParsedQuery {
  const q: ParsedQuery = {
    rcode: DROP,
    id: 0,
    flags: 0,
    questionEnd: 0,
    qnameLen: 0,
    qtype: 0,
    qclass: 0,
    key: '',
    end: 0,
    edns: false,
    dnssecOk: false,
    udpSize: 512,
  };
  if (len < HEADER_LEN || len > buf.length) return q;
  q.id = ((buf[0] as number) << 8) | (buf[1] as number);
  const flags = ((buf[2] as number) << 8) | (buf[3] as number);
  q.flags = flags;
  if (flags & 0x8000) return q; // a response: never answer it (reflection loops)
  if (((flags >> 11) & 0xf) !== 0) {
    q.rcode = RCODE_NOTIMP;
    return q;
  }
  q.rcode = RCODE_FORMERR;
  const qdcount = ((buf[4] as number) << 8) | (buf[5] as number);
  if (qdcount !== 1) return q;

  // Question name, copied lower-cased into the scratch key.
  let off = HEADER_LEN;
  let n = 0;
  for (;;) {
    if (off >= len) return q;
    const l = buf[off] as number;
    if (l === 0) {
      scratch[n++] = 0;
      off++;
      break;
    }
    if (l > 63) return q; // compression pointer (illegal in a question) or extended label type
    if (off + 1 + l > len || n + 1 + l + 1 > MAX_NAME_LEN) return q;
    scratch[n++] = l;
    off++;
    for (const e = off + l; off < e; off++) {
      const c = buf[off] as number;
      scratch[n++] = c >= 0x41 && c <= 0x5a ? c | 0x20 : c;
    }
  }
  if (off + 4 > len) return q;
  q.qnameLen = n;
  q.qtype = ((buf[off] as number) << 8) | (buf[off + 1] as number);
  q.qclass = ((buf[off + 2] as number) << 8) | (buf[off + 3] as number);
  scratch[n] = buf[off] as number;
  scratch[n + 1] = buf[off + 1] as number;
  scratch[n + 2] = buf[off + 2] as number;
  scratch[n + 3] = buf[off + 3] as number;
  off += 4;
  q.questionEnd = off;
  q.end = off;

  // The other sections: normally empty except for one OPT record.
  const an = ((buf[6] as number) << 8) | (buf[7] as number);
  const ns = ((buf[8] as number) << 8) | (buf[9] as number);
  const ar = ((buf[10] as number) << 8) | (buf[11] as number);
  const total = an + ns + ar;
  let version = 0;
  for (let i = 0; i < total; i++) {
    const nameStart = off;
    off = skipName(buf, off, len);
    if (off < 0 || off + 10 > len) return q;
    const type = ((buf[off] as number) << 8) | (buf[off + 1] as number);
    const rdlen = ((buf[off + 8] as number) << 8) | (buf[off + 9] as number);
    const rdata = off + 10;
    if (rdata + rdlen > len) return q;
    if (type === TYPE_OPT) {
      if (i < an + ns || q.edns || off !== nameStart + 1) return q; // wrong section, twice, or not root
      q.edns = true;
      q.udpSize = Math.max(512, ((buf[off + 2] as number) << 8) | (buf[off + 3] as number));
      version = buf[off + 5] as number;
      q.dnssecOk = ((buf[off + 6] as number) & 0x80) !== 0;
      // Options: code, length, data; they must tile the RDATA exactly.
      let o = rdata;
      while (o < rdata + rdlen) {
        if (o + 4 > rdata + rdlen) return q;
        o += 4 + (((buf[o + 2] as number) << 8) | (buf[o + 3] as number));
      }
      if (o !== rdata + rdlen) return q;
    }
    off = rdata + rdlen;
  }
  q.end = off;
  scratch[n + 4] = (q.edns ? KEY_EDNS : 0) | (q.dnssecOk ? KEY_DO : 0) | (flags & 0x0010 ? KEY_CD : 0);
  q.key = scratch.toString('latin1', 0, n + 5);
  q.rcode = q.edns && version !== 0 ? RCODE_BADVERS : RCODE_NOERROR;
  return q;
}

/**
 * Skips a (possibly compressed) name starting at `off`; returns the offset after it or -1.
 * A compression pointer ends the name, so it is never followed and loops cannot happen here.
 */
export function skipName(buf: Buffer, off: number, len: number = buf.length): number {
  let total = 0;
  for (;;) {
    if (off >= len) return -1;
    const l = buf[off] as number;
    if (l === 0) return off + 1;
    if ((l & 0xc0) === 0xc0) return off + 2 <= len ? off + 2 : -1;
    if (l > 63) return -1;
    total += l + 1;
    if (total + 1 > MAX_NAME_LEN) return -1;
    off += l + 1;
  }
}

/**
 * Reads a (possibly compressed) name as lower-case dotted text without the trailing dot ("" for
 * the root). Follows pointers only backwards and at most 127 times, so loops end. Null if bad.
 */
export function readName(buf: Buffer, off: number, len: number = buf.length): string | null {
  let out = '';
  let total = 0;
  let jumps = 0;
  let limit = off; // a pointer must point before the place it was read from
  for (;;) {
    if (off >= len) return null;
    const l = buf[off] as number;
    if (l === 0) return out;
    if ((l & 0xc0) === 0xc0) {
      if (off + 1 >= len || ++jumps > 127) return null;
      const target = ((l & 0x3f) << 8) | (buf[off + 1] as number);
      if (target >= limit) return null;
      limit = target;
      off = target;
      continue;
    }
    if (l > 63 || off + 1 + l > len) return null;
    total += l + 1;
    if (total + 1 > MAX_NAME_LEN) return null;
    let label = '';
    for (let i = off + 1; i < off + 1 + l; i++) {
      const c = buf[i] as number;
      label += String.fromCharCode(c >= 0x41 && c <= 0x5a ? c | 0x20 : c);
    }
    out = out ? `${out}.${label}` : label;
    off += l + 1;
  }
}

/** The dotted lower-case name of a key (or of any uncompressed lower-cased wire name). */
export function keyToName(key: string): string {
  let out = '';
  let i = 0;
  for (;;) {
    const l = key.charCodeAt(i);
    if (!(l > 0)) return out;
    const label = key.slice(i + 1, i + 1 + l);
    out = out ? `${out}.${label}` : label;
    i += l + 1;
  }
}

/**
 * Encodes a dotted name in wire form (no compression). Throws on an empty label, a label over 63
 * bytes or a name over 255 bytes; a trailing dot is allowed, "" and "." are the root.
 */
export function encodeName(name: string): Buffer {
  const trimmed = name.endsWith('.') ? name.slice(0, -1) : name;
  if (trimmed === '') return Buffer.from([0]);
  const labels = trimmed.split('.');
  const parts: Buffer[] = [];
  for (const label of labels) {
    const b = Buffer.from(label, 'latin1');
    if (b.length === 0 || b.length > 63) throw new RangeError(`bad label in ${JSON.stringify(name)}`);
    parts.push(Buffer.from([b.length]), b);
  }
  parts.push(Buffer.from([0]));
  const out = Buffer.concat(parts);
  if (out.length > MAX_NAME_LEN) throw new RangeError(`name too long: ${name.slice(0, 40)}…`);
  return out;
}

/** What {@link analyzeResponse} found in an upstream response. */
export interface ResponseInfo {
  /** False when the message does not parse; nothing else is meaningful then. */
  ok: boolean;
  id: number;
  /** 4-bit RCODE of the header (the extended part is not merged). */
  rcode: number;
  truncated: boolean;
  ancount: number;
  /** End of the question section. */
  questionEnd: number;
  /** Offsets of the 32-bit TTL fields of every record except OPT. */
  ttlOffsets: number[];
  /** Smallest TTL of those records (Infinity when there are none). */
  minTtl: number;
  /** min(SOA TTL, SOA MINIMUM) of the first SOA in the authority section (RFC 2308), or -1. */
  negativeTtl: number;
  /** Start and end of the OPT record, or -1. */
  optStart: number;
  optEnd: number;
  /** End of the last record. */
  end: number;
}

/**
 * Walks a response with exactly one question and returns what caching and relaying need. Never
 * throws; a message that does not parse completely gives `ok: false`.
 */
export function analyzeResponse(buf: Buffer, len: number = buf.length): ResponseInfo {
  const info: ResponseInfo = {
    ok: false,
    id: 0,
    rcode: 0,
    truncated: false,
    ancount: 0,
    questionEnd: 0,
    ttlOffsets: [],
    minTtl: Infinity,
    negativeTtl: -1,
    optStart: -1,
    optEnd: -1,
    end: 0,
  };
  if (len < HEADER_LEN || len > buf.length) return info;
  info.id = buf.readUInt16BE(0);
  const flags = buf.readUInt16BE(2);
  info.rcode = flags & 0xf;
  info.truncated = (flags & 0x0200) !== 0;
  if (!(flags & 0x8000) || buf.readUInt16BE(4) !== 1) return info;
  let off = skipName(buf, HEADER_LEN, len);
  if (off < 0 || off + 4 > len) return info;
  off += 4;
  info.questionEnd = off;
  const an = buf.readUInt16BE(6);
  const ns = buf.readUInt16BE(8);
  const ar = buf.readUInt16BE(10);
  info.ancount = an;
  for (let i = 0; i < an + ns + ar; i++) {
    const start = off;
    off = skipName(buf, off, len);
    if (off < 0 || off + 10 > len) return info;
    const type = buf.readUInt16BE(off);
    const rdlen = buf.readUInt16BE(off + 8);
    const rdata = off + 10;
    if (rdata + rdlen > len) return info;
    if (type === TYPE_OPT) {
      if (i < an + ns || info.optStart >= 0 || off !== start + 1) return info; // once, root-named
      info.optStart = start;
      info.optEnd = rdata + rdlen;
    } else {
      const ttl = buf.readUInt32BE(off + 4) & 0x7fffffff; // RFC 2181 §8: the top bit means 0
      info.ttlOffsets.push(off + 4);
      if (ttl < info.minTtl) info.minTtl = ttl;
      if (type === TYPE_SOA && i >= an && i < an + ns && info.negativeTtl < 0) {
        const mname = skipName(buf, rdata, rdata + rdlen);
        const rname = mname < 0 ? -1 : skipName(buf, mname, rdata + rdlen);
        if (rname < 0 || rname + 20 !== rdata + rdlen) return info;
        info.negativeTtl = Math.min(ttl, buf.readUInt32BE(rname + 16) & 0x7fffffff);
      }
    }
    off = rdata + rdlen;
  }
  info.end = off;
  info.ok = true;
  return info;
}

/** True when two wire questions (from offset 12 to `end`) are equal ignoring ASCII case. */
export function sameQuestion(a: Buffer, aEnd: number, b: Buffer, bEnd: number): boolean {
  if (aEnd !== bEnd || aEnd > a.length || bEnd > b.length) return false;
  for (let i = HEADER_LEN; i < aEnd; i++) {
    let x = a[i] as number;
    let y = b[i] as number;
    if (x === y) continue;
    if (x >= 0x41 && x <= 0x5a) x |= 0x20;
    if (y >= 0x41 && y <= 0x5a) y |= 0x20;
    if (x !== y) return false;
  }
  return true;
}

/** One record of a response built here: the owner is always the question name (pointer 0xC00C). */
export interface AnswerRecord {
  type: number;
  rdata: Buffer;
}

export interface BuildOptions {
  rcode: number;
  /** Authoritative answer (local names). */
  aa?: boolean;
  answers?: readonly AnswerRecord[];
  ttl?: number;
  /** Largest message the client accepts; the answers are dropped and TC set when it is exceeded. */
  maxSize?: number;
}

/**
 * Builds a response to a parsed query: same ID, opcode, RD and CD, RA set, the client's question
 * (byte for byte, so its letter case survives) when it parsed, the answers, and an OPT record when
 * the query had one (required for BADVERS, whose upper RCODE bits go there).
 */
export function buildResponse(query: Buffer, q: ParsedQuery, o: BuildOptions): Buffer {
  const answers = o.answers ?? [];
  const ttl = o.ttl ?? 0;
  const question = q.questionEnd > 0 ? q.questionEnd - HEADER_LEN : 0;
  let size = HEADER_LEN + question + (q.edns ? 11 : 0);
  for (const a of answers) size += 12 + a.rdata.length;
  const maxSize = o.maxSize ?? 65535;
  const truncated = size > maxSize && answers.length > 0;
  if (truncated) size = HEADER_LEN + question + (q.edns ? 11 : 0);
  const out = Buffer.alloc(size);
  out.writeUInt16BE(q.id, 0);
  const opcode = q.flags & 0x7800;
  out.writeUInt16BE(
    0x8000 |
      opcode |
      (o.aa ? 0x0400 : 0) |
      (truncated ? 0x0200 : 0) |
      (q.flags & 0x0100) | // RD
      0x0080 | // RA
      (q.flags & 0x0010) | // CD
      (o.rcode & 0xf),
    2,
  );
  out.writeUInt16BE(question > 0 ? 1 : 0, 4);
  let off = HEADER_LEN;
  if (question > 0) off += query.copy(out, off, HEADER_LEN, q.questionEnd);
  if (!truncated && question > 0) {
    out.writeUInt16BE(answers.length, 6);
    for (const a of answers) {
      out.writeUInt16BE(0xc00c, off);
      out.writeUInt16BE(a.type, off + 2);
      out.writeUInt16BE(CLASS_IN, off + 4);
      out.writeUInt32BE(ttl >>> 0, off + 6);
      out.writeUInt16BE(a.rdata.length, off + 10);
      off += 12 + a.rdata.copy(out, off + 12);
    }
  }
  if (q.edns) {
    out.writeUInt16BE(1, 10);
    off = writeOpt(out, off, o.rcode >> 4, q.dnssecOk);
  }
  return out;
}

/** Writes an OPT record without options (11 bytes). */
function writeOpt(out: Buffer, off: number, extRcode: number, dnssecOk: boolean): number {
  out[off] = 0;
  out.writeUInt16BE(TYPE_OPT, off + 1);
  out.writeUInt16BE(OUR_EDNS_UDP_SIZE, off + 3);
  out[off + 5] = extRcode & 0xff;
  out[off + 6] = 0; // version
  out.writeUInt16BE(dnssecOk ? 0x8000 : 0, off + 7);
  out.writeUInt16BE(0, off + 9);
  return off + 11;
}

/**
 * A truncated copy of a response that does not fit the client's UDP size: header (TC set, counts
 * cleared), the question and, when the client used EDNS, a fresh OPT record. The client then
 * retries over TCP.
 */
export function truncatedCopy(resp: Buffer, questionEnd: number, q: ParsedQuery): Buffer {
  const out = Buffer.alloc(questionEnd + (q.edns ? 11 : 0));
  resp.copy(out, 0, 0, questionEnd);
  out[2] = (out[2] as number) | 0x02;
  out.writeUInt32BE(0, 6);
  out.writeUInt16BE(0, 10);
  if (q.edns) {
    out.writeUInt16BE(1, 10);
    writeOpt(out, questionEnd, 0, q.dnssecOk);
  }
  return out;
}

/** The largest UDP response a client accepts: 512 without EDNS, else its advertised size. */
export function clientUdpLimit(q: ParsedQuery): number {
  return q.edns ? Math.max(512, q.udpSize) : 512;
}

/** A-record RDATA of a dotted IPv4 address, or null when it is not one. */
export function ipv4Bytes(address: string): Buffer | null {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(address);
  if (!m) return null;
  const b = [m[1], m[2], m[3], m[4]].map(Number);
  if (b.some((x) => x > 255)) return null;
  return Buffer.from(b);
}

/** "4.3.2.1.in-addr.arpa" for 1.2.3.4. */
export function reverseName(address: string): string {
  return `${address.split('.').reverse().join('.')}.in-addr.arpa`;
}
