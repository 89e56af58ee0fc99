export * from './binaries';
export * from './controlplane';
export * from './ports';
export * from './process';
