/**
 * The names `ip` prints for route protocols and routing tables (iproute2's `rt_protos` and
 * `rt_tables`), so that a number given to a wrapper compares equal to what `ip -j` prints back.
 */

/** iproute2's reserved route protocols (`/etc/iproute2/rt_protos`). */
const PROTOCOL_NAMES: Readonly<Record<number, string>> = {
  0: 'unspec',
  1: 'redirect',
  2: 'kernel',
  3: 'boot',
  4: 'static',
  8: 'gated',
  9: 'ra',
  10: 'mrt',
  11: 'zebra',
  12: 'bird',
  13: 'dnrouted',
  14: 'xorp',
  15: 'ntk',
  16: 'dhcp',
  18: 'keepalived',
  42: 'babel',
  99: 'openr',
  186: 'bgp',
  187: 'isis',
  188: 'ospf',
  189: 'rip',
  192: 'eigrp',
};

const TABLE_NAMES: Readonly<Record<number, string>> = { 253: 'default', 254: 'main', 255: 'local' };

/** A route (or rule) protocol as `ip -j` prints it: `4` → `static`, `77` → `77`, names kept. */
export function protocolName(protocol: string | number): string {
  const text = String(protocol);
  return /^\d+$/.test(text) ? (PROTOCOL_NAMES[Number(text)] ?? String(Number(text))) : text;
}

/** A routing table as `ip -j` prints it: `254` → `main`, `1107` → `1107`, names kept. */
export function tableName(table: string | number): string {
  const text = String(table);
  return /^\d+$/.test(text) ? (TABLE_NAMES[Number(text)] ?? String(Number(text))) : text;
}
