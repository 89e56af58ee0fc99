export * from './binaries';
export * from './controlplane';
export * from './go-tools';
export * from './ports';
export * from './process';
