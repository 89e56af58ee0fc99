export * from './binaries';
export * from './controlplane';
export * from './ports';
export * from './exec';
export * from './process';
