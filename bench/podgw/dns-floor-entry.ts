// The floor of a DNS server in Node, for bench/podgw/dns.ts: the least work any Node server can do
// per query. Every query is answered from one pre-built record (the question copied back, one A
// record) through the same lean UDP path our DnsServer uses (libs/dns/src/fastudp.ts), with no
// parsing, no cache and no allocation of its own. Whatever rate this reaches is an upper bound for
// our DnsServer on the same machine; the gap between it and dnsmasq is Node's per-datagram cost,
// not DNS work.
//   node dns-floor-entry.cjs '{"address":"127.0.0.64","port":5300}'
// Prints "ready" once listening; SIGTERM stops it.
import { createSocket } from 'node:dgram';
import { attachUdp } from '@knet/dns';

const cfg = JSON.parse(process.argv[2] ?? '{}') as { address: string; port: number };
// Answer RR: name = pointer to the question (0xc00c), type A, class IN, TTL 3600, 192.0.2.1.
const ANSWER = Buffer.from([0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0x0e, 0x10, 0, 4, 192, 0, 2, 1]);
const out = Buffer.alloc(512 + ANSWER.length);
const socket = createSocket('udp4');
socket.bind(cfg.port, cfg.address, () => {
  const udp = attachUdp(
    socket,
    (msg, port, address) => {
      // header (12) + one question; anything longer than a classic UDP query is ignored
      if (msg.length < 17 || msg.length > 512) return;
      msg.copy(out, 0, 0, msg.length);
      out[2] = 0x81; // QR, RD
      out[3] = 0x80; // RA, NOERROR
      out.writeUInt16BE(1, 6); // ANCOUNT
      out.writeUInt32BE(0, 8); // NSCOUNT, ARCOUNT (an EDNS OPT record in the query is dropped)
      ANSWER.copy(out, msg.length);
      udp.send(out.subarray(0, msg.length + ANSWER.length), port, address);
    },
    (err) => process.stderr.write(`dns-floor: ${err.message}\n`),
  );
  process.stdout.write(`ready${udp.fast ? '' : ' (public dgram API)'}\n`);
});
for (const sig of ['SIGTERM', 'SIGINT'] as const)
  process.once(sig, () => socket.close(() => process.exit(0)));
