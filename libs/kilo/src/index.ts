export * from './types';
export * from './ip';
export * from './allocate';
export * from './leader';
export * from './topology';
export * from './wg-conf';
export * from './annotations';
export * from './wireguard';
