// Cache of encoded upstream responses, keyed by the lower-cased question plus EDNS/DO/CD flags
// (ParsedQuery.key). A hit costs one copy and a few patched bytes: ID, RD, the client's question
// bytes (so its letter case survives) and the TTL fields, whose offsets were recorded at insert.
import { HEADER_LEN, RCODE_NOERROR, RCODE_NXDOMAIN, type ParsedQuery, type ResponseInfo } from './wire';

export interface CacheEntry {
  /** The response with ID 0, TTLs capped, EDNS options stripped and trailing bytes cut. */
  readonly data: Buffer;
  /** Offsets of the TTL fields in `data`. */
  readonly ttlOffsets: readonly number[];
  readonly questionEnd: number;
  /** Clock time (ms) of the insert; served TTLs are decremented by the whole seconds since. */
  readonly storedAt: number;
  readonly expiresAt: number;
  /** CLOCK (second chance) bit: set on every hit, cleared by the eviction sweep. */
  used: boolean;
}

export interface CacheOptions {
  /** Entry limit (default 10,000). */
  maxEntries?: number;
  /** Byte limit of the stored responses (default 16 MiB). */
  maxBytes?: number;
  /** Cap of positive TTLs in seconds (default 86,400). */
  maxTtl?: number;
  /** Cap of negative (NXDOMAIN/NODATA) TTLs in seconds, RFC 2308 §5 (default 300). */
  maxNegativeTtl?: number;
  /** Milliseconds clock (default Date.now); injectable for tests. */
  now?: () => number;
}

/**
 * How long (seconds) a response may be cached, 0 for not at all: never when it did not parse, is
 * truncated, or has an RCODE other than NOERROR/NXDOMAIN (SERVFAIL, REFUSED, …). Positive answers:
 * the smallest TTL of all records, capped. NXDOMAIN and NODATA: min(SOA TTL, SOA MINIMUM) and the
 * smallest TTL of the records, capped (RFC 2308); without an SOA they are not cached.
 */
export function cacheTtl(info: ResponseInfo, maxTtl = 86_400, maxNegativeTtl = 300): number {
  if (!info.ok || info.truncated) return 0;
  const negative = info.rcode === RCODE_NXDOMAIN || (info.rcode === RCODE_NOERROR && info.ancount === 0);
  if (negative) {
    if (info.negativeTtl < 0) return 0;
    return Math.min(info.negativeTtl, info.minTtl, maxNegativeTtl);
  }
  if (info.rcode !== RCODE_NOERROR) return 0;
  return Math.min(info.minTtl, maxTtl);
}

export class ResponseCache {
  private readonly map = new Map<string, CacheEntry>();
  private bytes = 0;
  readonly maxEntries: number;
  readonly maxBytes: number;
  readonly maxTtl: number;
  readonly maxNegativeTtl: number;
  readonly now: () => number;

  constructor(opts: CacheOptions = {}) {
    this.maxEntries = Math.max(1, opts.maxEntries ?? 10_000);
    this.maxBytes = opts.maxBytes ?? 16 * 1024 * 1024;
    this.maxTtl = opts.maxTtl ?? 86_400;
    this.maxNegativeTtl = opts.maxNegativeTtl ?? 300;
    this.now = opts.now ?? Date.now;
  }

  get size(): number {
    return this.map.size;
  }

  /** Stored bytes. */
  get byteSize(): number {
    return this.bytes;
  }

  /** The live entry for `key`, or undefined (an expired one is dropped). */
  get(key: string, now: number = this.now()): CacheEntry | undefined {
    const e = this.map.get(key);
    if (e === undefined) return undefined;
    if (now >= e.expiresAt) {
      this.delete(key, e);
      return undefined;
    }
    e.used = true;
    return e;
  }

  /**
   * Stores a response (copied) if {@link cacheTtl} allows; returns whether it did. `info` must be
   * analyzeResponse(response).
   */
  insert(key: string, response: Buffer, info: ResponseInfo, now: number = this.now()): boolean {
    const ttl = cacheTtl(info, this.maxTtl, this.maxNegativeTtl);
    if (ttl <= 0) return false;
    let length = info.end;
    if (info.optStart >= 0) {
      if (info.optEnd !== info.end) return false; // OPT not last (e.g. TSIG after it): leave it
      length = info.optStart + 11; // the OPT record without options (no cookies/ECS/padding)
    }
    const prev = this.map.get(key);
    if (prev) this.delete(key, prev);
    const data = Buffer.allocUnsafeSlow(length);
    response.copy(data, 0, 0, length);
    data[0] = 0;
    data[1] = 0;
    data[2] = (data[2] as number) & ~0x04; // AA: a cached answer is not authoritative (RFC 1035 §6.1)
    if (info.optStart >= 0) data.writeUInt16BE(0, info.optStart + 9); // root name, type, class, ttl, RDLENGTH
    const negative = info.rcode !== RCODE_NOERROR || info.ancount === 0;
    const cap = negative ? ttl : this.maxTtl;
    for (const o of info.ttlOffsets) data.writeUInt32BE(Math.min(data.readUInt32BE(o) & 0x7fffffff, cap), o);
    const entry: CacheEntry = {
      data,
      ttlOffsets: info.ttlOffsets,
      questionEnd: info.questionEnd,
      storedAt: now,
      expiresAt: now + ttl * 1000,
      used: false,
    };
    this.evict(now, length);
    this.map.set(key, entry);
    this.bytes += length;
    return true;
  }

  clear(): void {
    this.map.clear();
    this.bytes = 0;
  }

  private delete(key: string, e: CacheEntry): void {
    this.map.delete(key);
    this.bytes -= e.data.length;
  }

  /** CLOCK sweep from the oldest insert: expired and unused entries go, used ones get another lap. */
  private evict(now: number, incoming: number): void {
    for (let i = 0, limit = 2 * this.map.size + 1; i < limit; i++) {
      if (this.map.size < this.maxEntries && this.bytes + incoming <= this.maxBytes) return;
      const first = this.map.entries().next();
      if (first.done) return;
      const [k, e] = first.value;
      this.delete(k, e);
      if (e.used && now < e.expiresAt) {
        e.used = false;
        this.map.set(k, e);
        this.bytes += e.data.length;
      }
    }
  }
}

/**
 * The cached response for a client: a copy with the query's ID, RD bit and question bytes, and
 * each TTL decremented by the whole seconds the entry has been stored.
 */
export function serveEntry(e: CacheEntry, query: Buffer, q: ParsedQuery, now: number): Buffer {
  const data = e.data;
  const out = Buffer.allocUnsafe(data.length);
  data.copy(out, 0, 0, data.length);
  out[0] = q.id >> 8;
  out[1] = q.id & 0xff;
  out[2] = ((out[2] as number) & 0xfe) | ((q.flags >> 8) & 1);
  query.copy(out, HEADER_LEN, HEADER_LEN, e.questionEnd);
  const elapsed = Math.floor((now - e.storedAt) / 1000);
  if (elapsed > 0) {
    const offs = e.ttlOffsets;
    for (let i = 0; i < offs.length; i++) {
      const o = offs[i] as number;
      const ttl = data.readUInt32BE(o) - elapsed;
      out.writeUInt32BE(ttl > 0 ? ttl : 0, o);
    }
  }
  return out;
}
