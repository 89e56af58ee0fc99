export * from './fake-runner';
export * from './fake-ip-route';
export * from './fake-bridge-fdb';
export * from './fake-sysctl';
export * from './fake-iptables';
export * from './fake-wireguard';
export * from './fake-pinger';
export { networkOf, prefixContains, normalizeIp } from '../addr-math';
