export * from './binaries';
export * from './cgroups';
export * from './config';
export * from './node-bed';
