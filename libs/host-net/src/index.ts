export * from './errors';
export * from './runner';
export * from './ip-types';
export { assertIfName, familyOf, ipArgs, routeFamily, ruleFamily } from './ip-args';
export { parseAddresses, parseLinks, parseNeighbours, parseRoutes, parseRules } from './ip-parse';
export * from './ip';
export * from './fdb';
export * from './sysctl';
export * from './iptables-rules';
export * from './iptables';
export * from './wireguard-format';
export * from './wireguard';
export * from './host-net';
export {
  canonicalPrefix,
  formatIp,
  networkOf,
  normalizeIp,
  parseIp,
  parsePrefix,
  prefixContains,
} from './addr-math';
export type { Prefix } from './addr-math';
export { protocolName, tableName } from './ip-names';
export * from './drift';
export * from './route-table';
export * from './rule-set';
export * from './address-set';
export * from './fdb-set';
export * from './vxlan-device';
export * from './wireguard-device';
export * from './ping';
export * from './fakes';
