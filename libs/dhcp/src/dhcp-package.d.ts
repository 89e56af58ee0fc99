// The parts of the `dhcp` npm package (infusion/node-dhcp 0.2.20, untyped CommonJS) that
// @knet/dhcp uses: the packet codec and the options table. Its Server and Client are not used
// (see README.md). Referenced from codec.ts so that projects importing @knet/dhcp see it too.

declare module 'dhcp/lib/protocol.js' {
  /** Option values as the package's SeqBuffer reads/writes them, keyed by option code. */
  export type PackageOptions = Record<number, string | number | boolean | string[] | number[]>;

  export interface PackagePacket {
    op: number;
    htype: number;
    hlen: number;
    hops: number;
    xid: number;
    secs: number;
    flags: number;
    ciaddr: string;
    yiaddr: string;
    siaddr: string;
    giaddr: string;
    /** `AA-BB-CC-DD-EE-FF` when parsed; `aa:bb:…` or `aa-bb-…` accepted when formatting. */
    chaddr: string;
    sname: string;
    file: string;
    magicCookie?: number;
    options: PackageOptions;
  }

  /** The package's sequential buffer: a 1500-byte Buffer and a write cursor (no getBuffer()). */
  export interface SeqBuffer {
    _data: Buffer;
    _w: number;
    _r: number;
  }

  /** Throws plain Errors / RangeErrors on malformed input (see codec.ts for what it gets wrong). */
  export function parse(buf: Buffer): PackagePacket;
  /** Writes header, magic cookie, options (in ascending code order) and the end option. */
  export function format(data: PackagePacket): SeqBuffer;
}

declare module 'dhcp/lib/options.js' {
  export interface PackageOptionSpec {
    name: string;
    type?: string;
    config?: string;
    attr?: string;
    enum?: Record<number, string>;
  }
  /** Option code → description, including the SeqBuffer type used to read/write it. */
  export const opts: Record<number, PackageOptionSpec>;
}
