export {
  BOOTREPLY,
  BOOTREQUEST,
  BROADCAST_FLAG,
  MAGIC_COOKIE,
  MIN_MESSAGE_SIZE,
  DhcpDecodeError,
  DhcpMessageType,
  DhcpOption,
  clientKeyOf,
  decodeDhcp,
  encodeDhcp,
  messageTypeName,
  type DhcpMessage,
  type DhcpMessageInit,
  type DhcpMessageTypeName,
  type DhcpOptions,
} from './codec';
export * from './pool';
export * from './lease-file';
export * from './flooder';
export * from './fdb-watch';
export * from './in-use';
export * from './metrics';
export * from './server';
export * from './client';
export * from './transport';
export {
  inNetwork,
  intToIp,
  ipToInt,
  isIPv4,
  netmaskToPrefix,
  normalizeMac,
  parseNetwork,
  prefixToNetmask,
  type Ipv4Network,
} from './ipv4';
export * from './fake-network';
export * from './vxlan-frame';
