export * from './binaries';
export * from './cgroups';
export * from './config';
export * from './node-bed';
export * from './uplink';
export * from './report';
export * from './charts-on-node';
